//! What assignment suggestions and route plans read and the few things they write (migration
//! 0012, and 0006's technician profiles, time blocks and site locations). One trait for both
//! stores (`store/sqlite/planning.rs`, `store/postgres/planning.rs`); `Store::planning` hands it
//! out. The decisions themselves are pure (`planning::suggest`, `planning::routes`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemas::planning::{JobTypeRequirements, PlanningSettings, Point};
use uuid::Uuid;

use super::StoreResult;

/// A job as planning sees it, from the projected rows.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanJob {
    pub id: Uuid,
    pub title: String,
    pub status: String,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    /// Its site's location.
    pub at: Option<Point>,
    pub assignees: Vec<String>,
    /// Its checklist template: the job's type of work.
    pub template: Option<String>,
    /// From its PM template, when a PM schedule made it.
    pub pm_minutes: Option<u32>,
    pub pm_skills: Vec<String>,
}

impl PlanJob {
    pub fn open(&self) -> bool {
        !matches!(self.status.as_str(), "completed" | "cancelled")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TimeBlock {
    pub id: Uuid,
    pub user_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// `available`, `break` or `pto`.
    pub kind: String,
}

/// A technician with a profile, as planning sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanTechnician {
    pub user_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub home: Option<Point>,
    pub skills: Vec<String>,
    /// Their time blocks overlapping the range asked for.
    pub blocks: Vec<TimeBlock>,
}

#[async_trait]
pub trait PlanningStore: Send + Sync + 'static {
    /// The org's settings (the defaults until written).
    async fn planning_settings(&self, org_id: Uuid) -> StoreResult<PlanningSettings>;
    async fn put_planning_settings(&self, org_id: Uuid, s: &PlanningSettings) -> StoreResult<()>;
    /// The org's job types, by template name.
    async fn job_types(&self, org_id: Uuid) -> StoreResult<Vec<JobTypeRequirements>>;
    async fn put_job_type(&self, org_id: Uuid, t: &JobTypeRequirements) -> StoreResult<()>;
    /// The org's jobs whose list time (scheduled start, or creation) is in `[from, to)`.
    async fn planning_jobs(
        &self,
        org_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PlanJob>>;
    async fn planning_job(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<PlanJob>>;
    /// The org's technicians with a profile, with their time blocks overlapping `[from, to)`.
    async fn planning_technicians(
        &self,
        org_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PlanTechnician>>;
    /// `NotFound` when the user has no technician profile in the org.
    async fn add_time_block(&self, org_id: Uuid, b: &TimeBlock) -> StoreResult<()>;
    /// True when the org had that block.
    async fn delete_time_block(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool>;
    /// A technician's home; false when they have no profile in the org.
    async fn set_home(&self, org_id: Uuid, user_id: Uuid, home: Option<Point>)
    -> StoreResult<bool>;
    /// A site's location, when the org has the site and it has one.
    async fn site_location(&self, org_id: Uuid, site_id: Uuid) -> StoreResult<Option<Point>>;
    /// A site's location; false when the org has no such site.
    async fn set_site_location(
        &self,
        org_id: Uuid,
        site_id: Uuid,
        at: Option<Point>,
    ) -> StoreResult<bool>;
}

/// A point from a row's two nullable columns.
pub fn point(lat: Option<f64>, lon: Option<f64>) -> Option<Point> {
    match (lat, lon) {
        (Some(lat), Some(lon)) => Some(Point { lat, lon }),
        _ => None,
    }
}
