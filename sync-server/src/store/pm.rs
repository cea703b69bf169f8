//! Preventive maintenance in the store (migration 0009): PM templates, schedules per asset, and
//! the occurrences the scheduler claimed (`planning::scheduler`). One trait, implemented for both
//! stores (`store/sqlite/pm.rs`, `store/postgres/pm.rs`); `Store::pm` hands it out.
//!
//! An occurrence is claimed by inserting its row, keyed by (schedule, due date), before its job
//! is made; only the caller whose insert went in makes the job. A claimed row whose job was not
//! finished (a node killed in between) is taken over after a lease by exactly one caller
//! ([`PmStore::take_over_pm_occurrences`]), with the same job ids.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use schemas::api::{PmAnchor, PmRule};
use uuid::Uuid;

use super::StoreResult;

#[derive(Clone, Debug, PartialEq)]
pub struct PmTemplate {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub checklist_template: String,
    pub estimated_minutes: u32,
    pub required_skills: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A schedule as written.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPmSchedule {
    pub id: Uuid,
    pub org_id: Uuid,
    pub asset_id: Uuid,
    pub template_id: Uuid,
    pub rule: PmRule,
    pub anchor: PmAnchor,
    pub horizon_days: u32,
    pub start_date: NaiveDate,
    pub assignee: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A schedule as read, with what its jobs are made from: the asset, its site and customer, the
/// site's time zone and the template.
#[derive(Clone, Debug, PartialEq)]
pub struct PmSchedule {
    pub schedule: NewPmSchedule,
    pub last_due_date: Option<NaiveDate>,
    pub last_completed_at: Option<DateTime<Utc>>,
    pub asset_name: String,
    pub site_id: Uuid,
    pub site_name: String,
    pub customer_id: Uuid,
    pub customer_name: String,
    pub time_zone: String,
    pub template: PmTemplate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PmOccurrence {
    pub schedule_id: Uuid,
    pub due_date: NaiveDate,
    pub org_id: Uuid,
    /// The ids the occurrence's job documents get (chosen at the claim, so whoever finishes a
    /// claim makes the same job).
    pub job_id: Uuid,
    pub checklist_id: Uuid,
    pub parts_id: Uuid,
    pub scheduled_start: DateTime<Utc>,
    pub claimed_at: DateTime<Utc>,
    /// When the job was made; `None` while claimed only.
    pub job_created_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait PmStore: Send + Sync + 'static {
    /// `Conflict` when the org has a PM template of that name.
    async fn create_pm_template(&self, t: &PmTemplate) -> StoreResult<()>;
    /// The org's PM templates by name.
    async fn pm_templates(&self, org_id: Uuid) -> StoreResult<Vec<PmTemplate>>;
    /// `NotFound` naming `asset` or `template` when either is not the org's.
    async fn create_pm_schedule(&self, s: &NewPmSchedule) -> StoreResult<()>;
    /// The org's schedules (every org's for `None`: the scheduler), of one id when given, in
    /// creation order.
    async fn pm_schedules(
        &self,
        org_id: Option<Uuid>,
        id: Option<Uuid>,
    ) -> StoreResult<Vec<PmSchedule>>;
    /// Occurrences of the org (every org's for `None`), of one schedule when given, by schedule
    /// then due date.
    async fn pm_occurrences(
        &self,
        org_id: Option<Uuid>,
        schedule: Option<Uuid>,
    ) -> StoreResult<Vec<PmOccurrence>>;
    /// The latest occurrence of every schedule of every org: all the scheduler's decision needs
    /// (earlier ones never count again), so a run reads one row per schedule, not the history.
    async fn pm_latest_occurrences(&self) -> StoreResult<Vec<PmOccurrence>>;
    /// Claim an occurrence: insert its row unless (schedule, due date) has one, and raise the
    /// schedule's last due date to it, in one transaction. True when this call inserted it.
    async fn claim_pm_occurrence(&self, o: &PmOccurrence) -> StoreResult<bool>;
    /// Claimed occurrences whose job was not made and whose claim is older than `stale_before`:
    /// each is re-claimed as of `now` by exactly one caller (a compare-and-set on the claim time)
    /// and returned to that caller only.
    async fn take_over_pm_occurrences(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PmOccurrence>>;
    /// The occurrence's job exists.
    async fn pm_job_created(
        &self,
        schedule_id: Uuid,
        due_date: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Occurrences whose projected job row is `completed` get their completion time (the status
    /// history's, else `now`), and their schedules' last completion moves to it. Returns how
    /// many occurrences were completed.
    async fn pm_note_completions(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}
