//! The relational records beside the change log (migrations 0006 and 0007): the dispatcher's
//! reference data (customers, sites, technicians, catalog, stock) and the rows the projection
//! keeps in step with the documents. One trait, implemented for both stores
//! (`store/sqlite/records.rs`, `store/postgres/records.rs`); `Store::records` hands it out.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
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
    /// The documents those changes belong to, each once, in the order of their first change,
    /// with their stored state read in the same transaction (at least as new as the changes:
    /// projecting a newer state is what a later step would do anyway). `last_seq` is not read.
    pub docs: Vec<(DocMeta, StoredDoc)>,
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
