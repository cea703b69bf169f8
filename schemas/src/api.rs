//! The HTTP API's request and reply bodies (`/api/v1/...`), shared by the server and the device,
//! and the rules for the text they carry.
//!
//! Every refusal has the body [`ErrorBody`]: a stable `error` code a program can match and a
//! `message` for people. Text fields are checked ([`Validate`]) before anything reaches a store:
//! no NUL or other control characters (Postgres cannot store NUL in text; control characters in
//! names only confuse people), and bounded lengths.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::job::{Customer, Schedule, Site};
use crate::photo::ReviewState;
use crate::view::JobView;
use crate::{JobStatus, Priority};

/// Who a user is to the server: what they may do.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Technician,
    Dispatcher,
    BackOffice,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Technician,
        Role::Dispatcher,
        Role::BackOffice,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Technician => "technician",
            Role::Dispatcher => "dispatcher",
            Role::BackOffice => "back_office",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The body of every refusal.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `not-found`, `bad-request`, `conflict`, ...
    pub error: String,
    /// A sentence for people; not stable.
    pub message: String,
}

/// `POST /api/v1/auth/login`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
    /// The device's name, shown to admins; without one the sign-in is registered as a session.
    /// Either way its tokens can be revoked.
    #[serde(default)]
    pub device_name: Option<String>,
}

/// Tokens handed to a client after sign-in or refresh.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

/// The signed-in user, in [`LoginReply`].
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginUser {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub org_id: Uuid,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginReply {
    pub user: LoginUser,
    /// The device (or session) registered for this sign-in. Optional only for replies of older
    /// servers, which registered none without a device name.
    #[serde(default)]
    pub device_id: Option<Uuid>,
    pub tokens: Tokens,
}

/// `POST /api/v1/auth/refresh`: the refresh token is single use.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshReply {
    #[serde(default)]
    pub device_id: Option<Uuid>,
    pub tokens: Tokens,
}

/// `POST /api/v1/devices/{id}/revoke`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeReply {
    pub revoked: Uuid,
}

/// `POST /api/v1/jobs`.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// A checklist template's name; the default template when absent.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub customer: Option<Customer>,
    #[serde(default)]
    pub site: Option<Site>,
    /// The equipment the job is about; with an `id`, one of the org's assets (at `site`).
    #[serde(default)]
    pub asset: Option<crate::job::Asset>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// User names of technicians to assign.
    #[serde(default)]
    pub assignees: Vec<String>,
}

/// `PATCH /api/v1/jobs/{id}`: only the fields present change; `"schedule": null` clears it.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub schedule: Option<Option<Schedule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
}

/// `POST /api/v1/jobs/{id}/assign` and `/unassign`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The technician's user name.
    pub user: String,
}

/// `POST /api/v1/photos/{id}/review`: the back office approves or rejects a photo. A rejection
/// needs a note (the technician has to know what to redo).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub state: ReviewState,
    #[serde(default)]
    pub note: String,
}

/// One job in `GET /api/v1/review/jobs`: its view, and whether its checklist and parts still
/// match the summary the customer signed (`null` without a sign-off).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewJob {
    #[serde(flatten)]
    pub job: JobView,
    pub signoff_matches: Option<bool>,
}

/// `GET /api/v1/jobs`: a page of the org's jobs in (scheduled start, id) order; pass
/// `next_cursor` as `cursor` for the next page (`null` on the last).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    pub items: Vec<JobSummary>,
    pub next_cursor: Option<String>,
}

/// One job of the list, from the relational rows the projection keeps.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: Uuid,
    /// The org's human job number, `WO-000123`.
    pub number: String,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    pub customer: NamedRef,
    pub site: NamedRef,
    /// Technicians' user names.
    pub assignees: Vec<String>,
    /// The checklist template the job was made from.
    pub template: Option<String>,
    pub checklist: Counted,
    pub parts: i64,
    pub photos: i64,
    pub signed_off: bool,
    /// The server raised a flag on the job (a repair, a conflict, a late change).
    pub flagged: bool,
}

/// A name, and the record's id when the job was made from the dispatcher's records.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedRef {
    pub id: Option<Uuid>,
    pub name: String,
}

#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub done: i64,
    pub total: i64,
}

/// `GET /api/v1/technicians`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TechnicianSummary {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub skills: Vec<String>,
    /// Their van's stock location.
    pub van: Option<Uuid>,
    /// Connected to some node of the server now (as of the nodes' last heartbeat).
    pub online: bool,
    /// The last time a node saw one of their devices connected; `None`: never.
    pub last_sync_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/stock?location=ID`: on hand per location and SKU.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StockLevel {
    pub location_id: Uuid,
    pub location: String,
    pub sku: String,
    pub on_hand: f64,
}

/// `POST /api/v1/customers`.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A customer of the org, with their sites (`GET /api/v1/customers`).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub id: Uuid,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub sites: Vec<SiteRecord>,
}

/// `POST /api/v1/customers/{id}/sites`.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    pub name: String,
    #[serde(default)]
    pub address: Option<String>,
    /// An IANA time zone (`Europe/London`); UTC when absent.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub name: String,
    pub address: Option<String>,
    pub time_zone: String,
}

/// `POST /api/v1/catalog` (an existing SKU is updated), and the catalog's items.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItem {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub unit: Option<String>,
    /// What the customer pays per unit, in cents.
    pub unit_price_cents: i64,
    /// What the part costs the org per unit, in cents.
    pub unit_cost_cents: i64,
}

/// `POST /api/v1/stock/locations`: a warehouse, or a technician's van.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStockLocation {
    /// What part lines name as their `source` (`WH1`, `VAN-ANA`).
    pub code: String,
    pub name: String,
    /// `warehouse` or `van`.
    pub kind: String,
    /// A van's technician (user name).
    #[serde(default)]
    pub technician: Option<String>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StockLocationRecord {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub technician_id: Option<Uuid>,
}

/// `POST /api/v1/stock/receipts`: stock arriving at a location.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockReceipt {
    pub location_id: Uuid,
    pub sku: String,
    pub qty: f64,
}

/// `PUT /api/v1/technicians/{id}`: a technician's profile.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TechnicianProfile {
    pub display_name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub skills: Vec<String>,
}

/// `POST /api/v1/jobs/{id}/flags/{flag}/resolve`: a dispatcher settles a flag (a conflict, a
/// repair, a change after sign-off); the flag leaves the job and the board, its record stays.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveFlag {
    /// What was decided, for the audit log.
    #[serde(default)]
    pub note: String,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlagResolved {
    pub resolved: Uuid,
}

/// Format a job number as people read it.
pub fn job_number(n: i64) -> String {
    format!("WO-{n:06}")
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }
}

// ---- text rules ---------------------------------------------------------------------------------

/// Longest accepted lengths, in characters.
pub mod limits {
    /// User, device, template and assignee names.
    pub const NAME: usize = 100;
    pub const PASSWORD: usize = 1024;
    /// A job's title, a customer's or site's name, an address, a phone number.
    pub const LINE: usize = 200;
    /// A job's description.
    pub const TEXT: usize = 10_000;
    /// A job's notes.
    pub const NOTES: usize = 100_000;
    /// Access and refresh tokens (ours are 68 characters).
    pub const TOKEN: usize = 256;
}

/// A text field that breaks the rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct InvalidText {
    pub field: String,
    pub problem: String,
}

fn check(field: &str, value: &str, max: usize, multi_line: bool) -> Result<(), InvalidText> {
    let fail = |problem: String| {
        Err(InvalidText {
            field: field.to_owned(),
            problem,
        })
    };
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !(multi_line && matches!(c, '\n' | '\r' | '\t')))
    {
        return fail(format!(
            "contains the control character U+{:04X}",
            u32::from(c)
        ));
    }
    let len = value.chars().count();
    if len > max {
        return fail(format!(
            "is {len} characters long; at most {max} are allowed"
        ));
    }
    Ok(())
}

/// One line of text: no control characters, at most `max` characters.
pub fn single_line(field: &str, value: &str, max: usize) -> Result<(), InvalidText> {
    check(field, value, max, false)
}

/// Free text: no control characters but line breaks and tabs, at most `max` characters.
pub fn multi_line(field: &str, value: &str, max: usize) -> Result<(), InvalidText> {
    check(field, value, max, true)
}

/// Bodies whose text fields are checked before the server acts on them.
pub trait Validate {
    fn validate(&self) -> Result<(), InvalidText>;
}

impl Validate for LoginRequest {
    fn validate(&self) -> Result<(), InvalidText> {
        single_line("name", &self.name, limits::NAME)?;
        // Any printable character may be in a password, but not NUL or an unbounded length
        // (hashing cost).
        single_line("password", &self.password, limits::PASSWORD)?;
        if let Some(d) = &self.device_name {
            single_line("device_name", d, limits::NAME)?;
        }
        Ok(())
    }
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Result<(), InvalidText> {
        single_line("refresh_token", &self.refresh_token, limits::TOKEN)
    }
}

impl Validate for AssignRequest {
    fn validate(&self) -> Result<(), InvalidText> {
        single_line("user", &self.user, limits::NAME)
    }
}

impl Validate for ReviewRequest {
    fn validate(&self) -> Result<(), InvalidText> {
        multi_line("note", &self.note, limits::TEXT)?;
        if self.state == ReviewState::Rejected && self.note.trim().is_empty() {
            return Err(InvalidText {
                field: "note".into(),
                problem: "is required when rejecting a photo".into(),
            });
        }
        Ok(())
    }
}

fn customer(c: &Customer) -> Result<(), InvalidText> {
    single_line("customer.name", &c.name, limits::LINE)?;
    if let Some(p) = &c.phone {
        single_line("customer.phone", p, limits::LINE)?;
    }
    if let Some(e) = &c.email {
        single_line("customer.email", e, limits::LINE)?;
    }
    Ok(())
}

fn site(s: &Site) -> Result<(), InvalidText> {
    single_line("site.name", &s.name, limits::LINE)?;
    if let Some(a) = &s.address {
        multi_line("site.address", a, limits::LINE)?;
    }
    Ok(())
}

impl Validate for CreateJob {
    fn validate(&self) -> Result<(), InvalidText> {
        single_line("title", &self.title, limits::LINE)?;
        multi_line("description", &self.description, limits::TEXT)?;
        if let Some(t) = &self.template {
            single_line("template", t, limits::NAME)?;
        }
        if let Some(c) = &self.customer {
            customer(c)?;
        }
        if let Some(s) = &self.site {
            site(s)?;
        }
        if let Some(a) = &self.asset {
            required("asset.name", &a.name)?;
            single_line("asset.name", &a.name, limits::LINE)?;
            optional_line("asset.serial", &a.serial)?;
            optional_line("asset.model", &a.model)?;
        }
        for a in &self.assignees {
            single_line("assignees", a, limits::NAME)?;
        }
        Ok(())
    }
}

impl Validate for PatchJob {
    fn validate(&self) -> Result<(), InvalidText> {
        if let Some(t) = &self.title {
            single_line("title", t, limits::LINE)?;
        }
        if let Some(n) = &self.notes {
            multi_line("notes", n, limits::NOTES)?;
        }
        Ok(())
    }
}

pub(crate) fn required(field: &str, value: &str) -> Result<(), InvalidText> {
    if value.trim().is_empty() {
        return Err(InvalidText {
            field: field.into(),
            problem: "is required".into(),
        });
    }
    Ok(())
}

fn optional_line(field: &str, value: &Option<String>) -> Result<(), InvalidText> {
    match value {
        Some(v) => single_line(field, v, limits::LINE),
        None => Ok(()),
    }
}

impl Validate for ResolveFlag {
    fn validate(&self) -> Result<(), InvalidText> {
        multi_line("note", &self.note, limits::TEXT)
    }
}

impl Validate for NewCustomer {
    fn validate(&self) -> Result<(), InvalidText> {
        required("name", &self.name)?;
        single_line("name", &self.name, limits::LINE)?;
        optional_line("phone", &self.phone)?;
        optional_line("email", &self.email)
    }
}

impl Validate for NewSite {
    fn validate(&self) -> Result<(), InvalidText> {
        required("name", &self.name)?;
        single_line("name", &self.name, limits::LINE)?;
        if let Some(a) = &self.address {
            multi_line("address", a, limits::LINE)?;
        }
        if let Some(tz) = &self.time_zone {
            // An IANA name: letters, digits and `/_+-`, as in `America/Argentina/Buenos_Aires`.
            let ok = !tz.is_empty()
                && tz.len() <= 64
                && tz
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
            if !ok {
                return Err(InvalidText {
                    field: "time_zone".into(),
                    problem: "is not a time zone name such as Europe/London".into(),
                });
            }
        }
        Ok(())
    }
}

impl Validate for CatalogItem {
    fn validate(&self) -> Result<(), InvalidText> {
        required("sku", &self.sku)?;
        single_line("sku", &self.sku, limits::NAME)?;
        required("name", &self.name)?;
        single_line("name", &self.name, limits::LINE)?;
        optional_line("unit", &self.unit)?;
        for (field, v) in [
            ("unit_price_cents", self.unit_price_cents),
            ("unit_cost_cents", self.unit_cost_cents),
        ] {
            if v < 0 {
                return Err(InvalidText {
                    field: field.into(),
                    problem: "may not be negative".into(),
                });
            }
        }
        Ok(())
    }
}

impl Validate for NewStockLocation {
    fn validate(&self) -> Result<(), InvalidText> {
        required("code", &self.code)?;
        single_line("code", &self.code, limits::NAME)?;
        required("name", &self.name)?;
        single_line("name", &self.name, limits::LINE)?;
        match (self.kind.as_str(), &self.technician) {
            ("warehouse", None) | ("van", Some(_)) => {}
            ("warehouse", Some(_)) => {
                return Err(InvalidText {
                    field: "technician".into(),
                    problem: "is only for a van".into(),
                });
            }
            ("van", None) => {
                return Err(InvalidText {
                    field: "technician".into(),
                    problem: "is required for a van".into(),
                });
            }
            _ => {
                return Err(InvalidText {
                    field: "kind".into(),
                    problem: "is `warehouse` or `van`".into(),
                });
            }
        }
        optional_line("technician", &self.technician)
    }
}

impl Validate for StockReceipt {
    fn validate(&self) -> Result<(), InvalidText> {
        required("sku", &self.sku)?;
        single_line("sku", &self.sku, limits::NAME)?;
        if !self.qty.is_finite() || self.qty == 0.0 || self.qty.abs() > 1e9 {
            return Err(InvalidText {
                field: "qty".into(),
                problem: "is a number other than 0 (negative for a correction)".into(),
            });
        }
        Ok(())
    }
}

impl Validate for TechnicianProfile {
    fn validate(&self) -> Result<(), InvalidText> {
        required("display_name", &self.display_name)?;
        single_line("display_name", &self.display_name, limits::NAME)?;
        optional_line("phone", &self.phone)?;
        if self.skills.len() > 50 {
            return Err(InvalidText {
                field: "skills".into(),
                problem: "holds more than 50 skills".into(),
            });
        }
        for s in &self.skills {
            required("skills", s)?;
            single_line("skills", s, limits::NAME)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(single_line("name", "Ana María", limits::NAME).is_ok());
        let nul = single_line("name", "ana\0", limits::NAME).unwrap_err();
        assert_eq!(
            nul.to_string(),
            "`name` contains the control character U+0000"
        );
        assert!(single_line("name", "a\nb", limits::NAME).is_err());
        assert!(multi_line("notes", "a\nb\tc", limits::NOTES).is_ok());
        assert!(multi_line("notes", "a\u{7}b", limits::NOTES).is_err());
        assert!(single_line("name", &"é".repeat(100), limits::NAME).is_ok());
        assert!(single_line("name", &"é".repeat(101), limits::NAME).is_err());
    }

    #[test]
    fn bodies_refuse_unknown_fields_and_keep_null_apart_from_absent() {
        let err = serde_json::from_str::<CreateJob>(r#"{"title":"x","colour":"red"}"#);
        assert!(err.is_err());
        let p: PatchJob = serde_json::from_str(r#"{"schedule":null}"#).unwrap();
        assert_eq!(p.schedule, Some(None));
        let p: PatchJob = serde_json::from_str("{}").unwrap();
        assert_eq!(p.schedule, None);
        assert_eq!(serde_json::to_string(&p).unwrap(), "{}");
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::json!(r.as_str())
            );
        }
    }
}

/// `GET /api/v1/templates`: a checklist template the org's jobs can be made from, in its latest
/// version. An org's own version of a built-in template's name replaces the built-in one.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateRecord {
    #[serde(flatten)]
    pub template: crate::template::Template,
    /// True while the org uses the built-in pack's version (`version` 0).
    pub builtin: bool,
    #[serde(default)]
    pub updated_by: Option<String>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A template's rules are [`crate::template::problems`], which name every bad field at once; the
/// server checks them after trimming the name and title.
impl Validate for crate::template::Template {
    fn validate(&self) -> Result<(), InvalidText> {
        Ok(())
    }
}

/// `POST /api/v1/assets` and `PUT /api/v1/assets/{id}`: equipment at a customer's site (a
/// rooftop unit, a vehicle).
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAsset {
    pub site_id: Uuid,
    pub name: String,
    #[serde(default)]
    pub make: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    /// A vehicle's identification number: 17 letters and digits (no I, O or Q).
    #[serde(default)]
    pub vin: Option<String>,
    #[serde(default)]
    pub install_date: Option<chrono::NaiveDate>,
}

/// An asset of the org (`GET /api/v1/assets`).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssetRecord {
    pub id: Uuid,
    pub site_id: Uuid,
    pub customer_id: Uuid,
    pub name: String,
    pub make: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub vin: Option<String>,
    pub install_date: Option<chrono::NaiveDate>,
}

impl Validate for NewAsset {
    fn validate(&self) -> Result<(), InvalidText> {
        required("name", &self.name)?;
        single_line("name", &self.name, limits::LINE)?;
        optional_line("make", &self.make)?;
        optional_line("model", &self.model)?;
        optional_line("serial", &self.serial)?;
        if let Some(vin) = &self.vin
            && !is_vin(vin)
        {
            return Err(InvalidText {
                field: "vin".into(),
                problem: "is not a VIN: 17 letters and digits, without I, O or Q".into(),
            });
        }
        Ok(())
    }
}

/// ISO 3779's alphabet and length (the check digit is North America's only, so not checked).
pub fn is_vin(s: &str) -> bool {
    s.len() == 17
        && s.chars()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"IOQ".contains(c)))
}

/// A part line of a job with the catalog's prices, as projected (`GET /api/v1/jobs/{id}`).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PricedLine {
    pub line_id: String,
    pub sku: String,
    pub description: String,
    pub qty: f64,
    pub unit: Option<String>,
    /// The stock location the part came from (`VAN-ANA`, `WH1`).
    pub location: Option<String>,
    /// `None` for a SKU the catalog does not price.
    pub unit_price_cents: Option<i64>,
    pub unit_cost_cents: Option<i64>,
    /// `qty × unit price`, rounded to the cent.
    pub total_cents: Option<i64>,
}

// ---- KPIs -----------------------------------------------------------------------------------------

/// `GET /api/v1/kpis?from=&to=`: the org's field-service KPIs over the jobs completed from `from`
/// to `to` (UTC dates, both included), computed from the relational rows (as projected). A job
/// counts on the day of its last move to `completed`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    /// The first day, `YYYY-MM-DD`.
    pub from: String,
    /// The last day, `YYYY-MM-DD` (included).
    pub to: String,
    /// Jobs completed in the range (now `completed`, last moved there in the range).
    pub jobs_completed: i64,
    /// Of the completed jobs, the share that never went `on_hold` and have no follow-up job
    /// (no job names them in `follow_up_of`); `null` when none were completed.
    pub first_time_fix_rate: Option<f64>,
    /// Mean hours from a completed job's first move to `in_progress` to its last move to
    /// `completed` (status history), over the completed jobs that went `in_progress`; `null`
    /// when there are none.
    pub mean_time_to_complete_hours: Option<f64>,
    /// Of the completed jobs an SLA policy applies to (`/api/v1/sla/policies`), the share that
    /// met both their acknowledge and resolve limits (clocks as in `GET /api/v1/sla/jobs`);
    /// `null` when the org has no policy or no such job was completed (see `sla_note`).
    pub sla_compliance: Option<f64>,
    /// Over how many jobs `sla_compliance` was counted, or why it is `null` (`"no SLA
    /// policies"`).
    pub sla_note: Option<String>,
    /// Per technician (user name) assigned to completed jobs, by name: the days (UTC) on which
    /// they completed at least one job, the jobs, and jobs per such day. A job with two
    /// assignees counts for each.
    pub jobs_per_technician_per_day: Vec<TechnicianKpi>,
    /// Mean over the completed jobs of the sum of their part lines' `qty × unit cost` (the
    /// catalog's cost as projected; a SKU the catalog does not cost counts 0), rounded to the
    /// cent; `null` when none were completed.
    pub parts_cost_per_job_cents: Option<i64>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TechnicianKpi {
    pub technician: String,
    pub days_worked: i64,
    pub jobs: i64,
    pub per_day: f64,
}

// ---- SLA timers (in api/sla.rs) -----------------------------------------------------------------

mod sla;
pub use sla::*;

// ---- preventive maintenance ---------------------------------------------------------------------

/// `POST /api/v1/pm/templates`: a kind of preventive maintenance: the checklist its jobs are made
/// from, how long it takes, and the skills it needs.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPmTemplate {
    pub name: String,
    /// A checklist template's name (built-in or the org's own).
    pub checklist_template: String,
    /// 1 to 10,080 (a week): the job's scheduled end is its start plus this.
    pub estimated_minutes: u32,
    #[serde(default)]
    pub required_skills: Vec<String>,
}

/// A PM template of the org.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PmTemplateRecord {
    pub id: Uuid,
    pub name: String,
    pub checklist_template: String,
    pub estimated_minutes: u32,
    pub required_skills: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A unit of a PM interval.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PmUnit {
    Days,
    Weeks,
    /// Calendar months; a day past the next month's end becomes its last day (Jan 31 → Feb 28).
    Months,
}

/// A day of the week.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PmWeekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// When a PM schedule falls due, in the site's time zone.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PmRule {
    /// Every `n` days, weeks or months (`n` from 1 to 366).
    Every { n: u32, unit: PmUnit },
    /// The `day`th of each month (1 to 31; the last day of shorter months).
    DayOfMonth { day: u32 },
    /// The `nth` (1 to 4, or -1 for the last) `weekday` of each month: "first Monday".
    NthWeekday { nth: i32, weekday: PmWeekday },
}

/// What the next due date counts from.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PmAnchor {
    /// The last due date: a fixed rhythm, whenever the work was done.
    #[default]
    Due,
    /// The last completion: the next occurrence is planned once the previous job is completed.
    Completion,
}

/// `POST /api/v1/pm/schedules`: preventive maintenance of one asset.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPmSchedule {
    pub asset_id: Uuid,
    pub template_id: Uuid,
    pub rule: PmRule,
    #[serde(default)]
    pub anchor: PmAnchor,
    /// Days before the due date that the job is created (0 to 366); the server's default
    /// (`FIELDSYNC_PM_HORIZON_DAYS`) when absent.
    #[serde(default)]
    pub horizon_days: Option<u32>,
    /// The first due date (or the first the rule allows on or after it); today in the site's
    /// time zone when absent.
    #[serde(default)]
    pub start_date: Option<chrono::NaiveDate>,
    /// A technician's user name: each occurrence's job is assigned to them.
    #[serde(default)]
    pub assignee: Option<String>,
}

/// A PM schedule of the org, with its next due date.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PmScheduleRecord {
    pub id: Uuid,
    pub asset_id: Uuid,
    pub site_id: Uuid,
    pub template_id: Uuid,
    pub rule: PmRule,
    pub anchor: PmAnchor,
    pub horizon_days: u32,
    pub start_date: chrono::NaiveDate,
    pub assignee: Option<String>,
    /// The site's time zone, in which due dates are days.
    pub time_zone: String,
    pub last_due_date: Option<chrono::NaiveDate>,
    pub last_completed_at: Option<DateTime<Utc>>,
    /// `null` while a schedule anchored on completion waits for its open job to be completed.
    pub next_due_date: Option<chrono::NaiveDate>,
}

/// One due date of a schedule and the job made for it.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PmOccurrenceRecord {
    pub due_date: chrono::NaiveDate,
    pub job_id: Uuid,
    pub scheduled_start: DateTime<Utc>,
    /// False for the moment between claiming the due date and its job existing.
    pub job_created: bool,
    pub completed_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/pm/schedules/{id}`: the schedule and its occurrences, latest first.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PmScheduleDetail {
    #[serde(flatten)]
    pub schedule: PmScheduleRecord,
    pub occurrences: Vec<PmOccurrenceRecord>,
}

impl Validate for NewPmTemplate {
    fn validate(&self) -> Result<(), InvalidText> {
        required("name", &self.name)?;
        single_line("name", &self.name, limits::LINE)?;
        required("checklist_template", &self.checklist_template)?;
        single_line("checklist_template", &self.checklist_template, limits::NAME)?;
        if !(1..=10_080).contains(&self.estimated_minutes) {
            return Err(InvalidText {
                field: "estimated_minutes".into(),
                problem: "must be from 1 to 10080 (a week)".into(),
            });
        }
        if self.required_skills.len() > 50 {
            return Err(InvalidText {
                field: "required_skills".into(),
                problem: "names at most 50 skills".into(),
            });
        }
        for s in &self.required_skills {
            required("required_skills", s)?;
            single_line("required_skills", s, limits::NAME)?;
        }
        Ok(())
    }
}

impl Validate for NewPmSchedule {
    fn validate(&self) -> Result<(), InvalidText> {
        let bad = |field: &str, problem: &str| {
            Err(InvalidText {
                field: field.into(),
                problem: problem.into(),
            })
        };
        match &self.rule {
            PmRule::Every { n, .. } if !(1..=366).contains(n) => {
                return bad("rule.n", "must be from 1 to 366");
            }
            PmRule::DayOfMonth { day } if !(1..=31).contains(day) => {
                return bad("rule.day", "must be from 1 to 31");
            }
            PmRule::NthWeekday { nth, .. } if !matches!(nth, 1..=4 | -1) => {
                return bad("rule.nth", "must be 1 to 4, or -1 for the last");
            }
            _ => {}
        }
        if self.horizon_days.is_some_and(|h| h > 366) {
            return bad("horizon_days", "must be from 0 to 366");
        }
        if let Some(a) = &self.assignee {
            required("assignee", a)?;
            single_line("assignee", a, limits::NAME)?;
        }
        Ok(())
    }
}
