//! The relational records beside the change log (migrations 0006 and 0007): the dispatcher's
//! reference data (customers, sites, technicians, catalog, stock) and the rows the projection
//! keeps in step with the documents. One trait, implemented for both stores
//! (`store/sqlite/records.rs`, `store/postgres/records.rs`); `Store::records` hands it out.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{DocMeta, StoreResult, StoredDoc};
use crate::projection::rows::DocRows;

/// Changes in the log after the projection's position.
#[derive(Clone, Debug, Default)]
pub struct Unprojected {
    /// The position read: every change up to it is projected.
    pub from: i64,
    /// The last change read; projecting `docs` moves the position here.
    pub to: i64,
    /// How many changes `from..=to` holds.
    pub changes: usize,
    /// The documents those changes belong to, each once, in the order of their first change.
    pub docs: Vec<Changed>,
}

/// A document with changes in `from..=to`: the state projected must hold every one of them.
#[derive(Clone, Debug)]
pub struct Changed {
    pub meta: DocMeta,
    /// The hashes of its changes in the range, as the log stores them (hex).
    pub hashes: Vec<String>,
}

/// How far the projection is behind the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub projected: i64,
    pub log_end: i64,
}

/// A filter of `GET /api/v1/jobs`, already checked. `after` is the cursor: the last row of the
/// previous page, as (sort time, id).
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    pub technician: Option<Uuid>,
    pub customer: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub q: Option<String>,
    pub flagged: Option<bool>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// One row of the job list.
#[derive(Clone, Debug, PartialEq)]
pub struct JobListRow {
    pub id: Uuid,
    pub number: i64,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub sort_at: DateTime<Utc>,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    pub customer_id: Option<Uuid>,
    pub customer_name: String,
    pub site_id: Option<Uuid>,
    pub site_name: String,
    pub assignees: Vec<String>,
    pub template: Option<String>,
    pub items_total: i64,
    pub items_done: i64,
    pub parts: i64,
    pub photos: i64,
    pub signed_off: bool,
    pub flagged: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TechnicianRow {
    pub user_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub skills: Vec<String>,
    pub van: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StockRow {
    pub location_id: Uuid,
    pub location_code: String,
    pub sku: String,
    pub on_hand: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub id: Uuid,
    pub org_id: Uuid,
    pub customer_id: Uuid,
    pub name: String,
    pub address: Option<String>,
    pub time_zone: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StockLocation {
    pub id: Uuid,
    pub org_id: Uuid,
    pub code: String,
    pub name: String,
    /// `warehouse` or `van`.
    pub kind: String,
    pub technician_id: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CatalogItem {
    pub id: Uuid,
    pub org_id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit: Option<String>,
    pub unit_price_cents: i64,
    pub unit_cost_cents: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Technician {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub display_name: String,
    pub phone: Option<String>,
    pub skills: Vec<String>,
}

#[async_trait]
pub trait Records: Send + Sync + 'static {
    /// The documents changed after the projection's position, reading at most `limit` changes.
    async fn unprojected(&self, limit: i64) -> StoreResult<Unprojected>;

    /// The stored state of each document in `ids` (its snapshot and the changes after it), in
    /// the order given, read together. Read after [`Records::unprojected`], it is at least as
    /// new as the changes that call saw: projecting a newer state is what a later step would do
    /// anyway. `last_seq` is not read.
    async fn projection_states(&self, ids: &[Uuid]) -> StoreResult<Vec<StoredDoc>>;

    /// Replace each document's rows with `rows` (job numbers taken for new jobs, stock moved by
    /// the difference of parts lines) and move the position from `from` to `to`, in one
    /// transaction. Returns false, writing nothing, when the position is no longer `from`
    /// (another node projected meanwhile): each change is projected by exactly one node.
    async fn project(
        &self,
        from: i64,
        to: i64,
        rows: &[DocRows],
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Drop every projected row (stock movements of parts lines included, their stock given
    /// back) and set the position to 0, so the next projection rebuilds from the whole log.
    async fn reset_projection(&self) -> StoreResult<()>;

    async fn projection_position(&self) -> StoreResult<Position>;

    /// Every projected row of `org_id` as one text line per row, sorted: what a rebuild must
    /// reproduce. Stock movements appear summed per job line, location and SKU (their split
    /// into rows depends on how often a line was projected, their sum does not).
    async fn projection_digest(&self, org_id: Uuid) -> StoreResult<Vec<String>>;

    /// A page of the org's jobs, in (sort time, id) order.
    async fn list_jobs(&self, org_id: Uuid, filter: &JobFilter) -> StoreResult<Vec<JobListRow>>;
    /// A job's number, once projected.
    async fn job_number(&self, org_id: Uuid, job_id: Uuid) -> StoreResult<Option<i64>>;

    async fn technicians(&self, org_id: Uuid) -> StoreResult<Vec<TechnicianRow>>;
    async fn put_technician(&self, t: &Technician) -> StoreResult<()>;

    /// Stock on hand per location and SKU; of one location when given.
    async fn stock(&self, org_id: Uuid, location: Option<Uuid>) -> StoreResult<Vec<StockRow>>;
    async fn create_customer(&self, c: &Customer) -> StoreResult<()>;
    /// The org's customers by name, each with its sites by name.
    async fn customers(&self, org_id: Uuid) -> StoreResult<Vec<(Customer, Vec<Site>)>>;
    /// Whether `id` is a customer of the org.
    async fn customer_exists(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool>;
    /// The customer a site of the org belongs to; `None` when it is not the org's site.
    async fn site_customer(&self, org_id: Uuid, site_id: Uuid) -> StoreResult<Option<Uuid>>;
    /// The org's parts catalog by SKU.
    async fn catalog(&self, org_id: Uuid) -> StoreResult<Vec<CatalogItem>>;
    /// The org's stock locations by code.
    async fn locations(&self, org_id: Uuid) -> StoreResult<Vec<StockLocation>>;
    async fn create_site(&self, s: &Site) -> StoreResult<()>;
    async fn create_location(&self, l: &StockLocation) -> StoreResult<()>;
    async fn put_catalog_item(&self, i: &CatalogItem) -> StoreResult<()>;
    /// Stock arriving at a location (a receipt movement; a negative quantity is an adjustment).
    async fn receive_stock(
        &self,
        org_id: Uuid,
        location_id: Uuid,
        sku: &str,
        qty: f64,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// A job's projected part lines with their catalog prices, in line order.
    async fn job_parts(
        &self,
        org_id: Uuid,
        job_id: Uuid,
    ) -> StoreResult<Vec<schemas::api::PricedLine>>;
    /// Change a customer's name and contacts; false when it is not the org's customer.
    async fn update_customer(&self, c: &Customer) -> StoreResult<bool>;
    /// Change a site's name, address and time zone; the site's customer, or `None` when it is
    /// not the org's site.
    async fn update_site(&self, s: &Site) -> StoreResult<Option<Uuid>>;
    /// `NotFound` when the site is not the org's.
    async fn create_asset(&self, a: &Asset) -> StoreResult<()>;
    /// False when the asset is not the org's; `NotFound` when the site is not.
    async fn update_asset(&self, a: &Asset) -> StoreResult<bool>;
    /// The site an asset of the org is at; `None` when it is not the org's asset.
    async fn asset_site(&self, org_id: Uuid, asset: Uuid) -> StoreResult<Option<Uuid>>;
    /// The org's assets, of one site or one customer's sites when given, by name.
    async fn assets(
        &self,
        org_id: Uuid,
        site: Option<Uuid>,
        customer: Option<Uuid>,
    ) -> StoreResult<Vec<(Asset, Uuid)>>;

    /// The latest version of each of the org's own templates, by name.
    async fn templates(&self, org_id: Uuid) -> StoreResult<Vec<StoredTemplate>>;
    /// One version of an org template (`None`: the latest); `None` when there is no such version.
    async fn template(
        &self,
        org_id: Uuid,
        name: &str,
        version: Option<u32>,
    ) -> StoreResult<Option<StoredTemplate>>;
    /// Store a new version of an org template. `Conflict` when that version exists already
    /// (another writer got there first): versions are never overwritten.
    async fn add_template_version(&self, t: &StoredTemplate) -> StoreResult<()>;

    /// This node's connected users at `at` (user, org, connections): their rows are refreshed,
    /// and users no longer connected here are marked gone as of `at`.
    async fn put_presence(
        &self,
        node: Uuid,
        at: DateTime<Utc>,
        connected: &[(Uuid, Uuid, u32)],
    ) -> StoreResult<()>;
    /// Drop rows last refreshed before `before` that a newer row of the same user supersedes
    /// (rows of nodes that stopped): each user keeps their newest row, so `last_seen` stays.
    async fn prune_presence(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Per technician of the org: whether some node saw them connected at or after `fresh_after`,
    /// and when they were last seen connected anywhere.
    async fn presence(
        &self,
        org_id: Uuid,
        fresh_after: DateTime<Utc>,
    ) -> StoreResult<Vec<Presence>>;

    /// The org's KPIs over the jobs completed on the UTC days `from..=to` (see
    /// [`schemas::api::Kpis`]): each store reads one [`CompletedJob`] per such job and
    /// [`compute_kpis`] does the rest.
    async fn kpis(
        &self,
        org_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<schemas::api::Kpis>;
}

/// Equipment at a site; listed with its site's customer.
#[derive(Clone, Debug, PartialEq)]
pub struct Asset {
    pub id: Uuid,
    pub org_id: Uuid,
    pub site_id: Uuid,
    pub name: String,
    pub make: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub vin: Option<String>,
    pub install_date: Option<chrono::NaiveDate>,
}

/// One version of an org's checklist template.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTemplate {
    pub org_id: Uuid,
    /// Its `version` is the stored version (1, 2, …).
    pub template: schemas::template::Template,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Where a user stands across every node.
#[derive(Clone, Debug, PartialEq)]
pub struct Presence {
    pub user_id: Uuid,
    pub online: bool,
    pub last_seen: Option<DateTime<Utc>>,
}

/// What the KPIs need of one completed job, as the stores read it.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletedJob {
    /// The `assignees` column: a JSON array of user names.
    pub assignees: String,
    /// The first move to `in_progress`, if any.
    pub started: Option<DateTime<Utc>>,
    /// The last move to `completed`.
    pub completed: DateTime<Utc>,
    /// Whether it ever went `on_hold`.
    pub held: bool,
    /// Whether another job is its follow-up.
    pub followed_up: bool,
    /// The sum of its part lines' `qty × unit cost` in cents (unrounded).
    pub parts_cost_cents: f64,
}

/// The UTC instants bounding the days `from..=to`: `[from 00:00, to + 1 day 00:00)`.
pub fn day_bounds(from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let end = to
        .succ_opt()
        .unwrap_or(to)
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    (start, end)
}

/// The KPIs of the jobs completed from `from` to `to` (the arithmetic the SQL leaves).
pub fn compute_kpis(from: NaiveDate, to: NaiveDate, jobs: &[CompletedJob]) -> schemas::api::Kpis {
    use std::collections::{BTreeMap, BTreeSet};
    let n = jobs.len();
    let mean = |sum: f64, count: usize| (count > 0).then(|| sum / count as f64);
    let fixed = jobs.iter().filter(|j| !j.held && !j.followed_up).count();
    let durations: Vec<f64> = jobs
        .iter()
        .filter_map(|j| j.started.map(|s| (j.completed - s).num_microseconds()))
        .map(|us| us.unwrap_or(i64::MAX) as f64 / 3_600_000_000.0)
        .collect();
    let mut per_tech: BTreeMap<String, (BTreeSet<NaiveDate>, i64)> = BTreeMap::new();
    for j in jobs {
        let names: Vec<String> = serde_json::from_str(&j.assignees).unwrap_or_default();
        let names: BTreeSet<String> = names.into_iter().collect();
        for name in names {
            let entry = per_tech.entry(name).or_default();
            entry.0.insert(j.completed.date_naive());
            entry.1 += 1;
        }
    }
    schemas::api::Kpis {
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        jobs_completed: n as i64,
        first_time_fix_rate: mean(fixed as f64, n),
        mean_time_to_complete_hours: mean(durations.iter().sum(), durations.len()),
        sla_compliance: None,
        sla_note: Some("no SLA policies".into()),
        jobs_per_technician_per_day: per_tech
            .into_iter()
            .map(|(technician, (days, jobs))| schemas::api::TechnicianKpi {
                technician,
                days_worked: days.len() as i64,
                jobs,
                per_day: jobs as f64 / days.len() as f64,
            })
            .collect(),
        parts_cost_per_job_cents: mean(jobs.iter().map(|j| j.parts_cost_cents).sum(), n)
            .map(|c| c.round() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 3, day)
            .unwrap()
            .and_hms_opt(hour, 0, 0)
            .unwrap()
            .and_utc()
    }

    fn job(who: &str, start: Option<(u32, u32)>, done: (u32, u32)) -> CompletedJob {
        CompletedJob {
            assignees: serde_json::to_string(&[who]).unwrap(),
            started: start.map(|(d, h)| at(d, h)),
            completed: at(done.0, done.1),
            held: false,
            followed_up: false,
            parts_cost_cents: 0.0,
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    #[test]
    fn nothing_completed_gives_nulls() {
        let k = compute_kpis(day(1), day(31), &[]);
        assert_eq!(k.jobs_completed, 0);
        assert_eq!(k.first_time_fix_rate, None);
        assert_eq!(k.mean_time_to_complete_hours, None);
        assert_eq!(k.parts_cost_per_job_cents, None);
        assert_eq!(k.sla_compliance, None);
        assert_eq!(k.sla_note.as_deref(), Some("no SLA policies"));
        assert!(k.jobs_per_technician_per_day.is_empty());
        assert_eq!(
            (k.from.as_str(), k.to.as_str()),
            ("2026-03-01", "2026-03-31")
        );
    }

    #[test]
    fn figures_of_a_known_set() {
        let mut a = job("ana", Some((2, 9)), (2, 11));
        a.parts_cost_cents = 300.0;
        let mut b = job("ana", Some((3, 12)), (3, 16));
        b.held = true;
        b.parts_cost_cents = 600.5;
        let mut c = job("bob", Some((3, 8)), (3, 11));
        c.followed_up = true;
        let d = job("bob", None, (3, 20));
        let k = compute_kpis(day(1), day(31), &[a, b, c, d]);
        assert_eq!(k.jobs_completed, 4);
        assert_eq!(k.first_time_fix_rate, Some(0.5));
        // (2 + 4 + 3) / 3: the job that never went in_progress has no duration.
        assert_eq!(k.mean_time_to_complete_hours, Some(3.0));
        // 900.5 / 4 = 225.125 → 225.
        assert_eq!(k.parts_cost_per_job_cents, Some(225));
        let techs: Vec<(&str, i64, i64, f64)> = k
            .jobs_per_technician_per_day
            .iter()
            .map(|t| (t.technician.as_str(), t.days_worked, t.jobs, t.per_day))
            .collect();
        assert_eq!(techs, [("ana", 2, 2, 1.0), ("bob", 1, 2, 2.0)]);
    }

    #[test]
    fn a_job_of_two_counts_for_each_and_bounds_cover_the_last_day() {
        let mut j = job("ana", None, (5, 23));
        j.assignees = r#"["bob","ana","ana"]"#.into();
        let k = compute_kpis(day(5), day(5), &[j]);
        let names: Vec<_> = k
            .jobs_per_technician_per_day
            .iter()
            .map(|t| (t.technician.as_str(), t.jobs))
            .collect();
        assert_eq!(names, [("ana", 1), ("bob", 1)]);
        assert_eq!(day_bounds(day(5), day(5)), (at(5, 0), at(6, 0)));
    }
}
