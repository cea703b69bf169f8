//! SLA timers in the store (migration 0011): the org's policies, the jobs the clocks read (their
//! projected rows and status history), and the breaches recorded. One trait, implemented for
//! both stores (`store/sqlite/sla.rs`, `store/postgres/sla.rs`); `Store::sla` hands it out.
//!
//! An event (a breach or an approaching one of a job's acknowledge or resolve clock) is claimed
//! by inserting its row, keyed by (job, kind, level), before it is counted or sent; only the
//! caller whose insert went in goes on, so two nodes and restarts record each once. Its webhook
//! delivery is tracked on the row: a sender takes a lease on an undelivered row by moving its
//! `next_attempt_at` on (a compare-and-set), then marks it delivered or failed.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use schemas::api::BusinessHours;
use uuid::Uuid;

use super::StoreResult;

/// A policy as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SlaPolicy {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_type: String,
    pub priority: String,
    pub acknowledge_within_seconds: u32,
    pub resolve_within_seconds: u32,
    pub business_hours: Option<BusinessHours>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which jobs [`SlaStore::sla_jobs`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaJobs {
    /// Jobs not completed or cancelled, and those that moved to `completed` or `cancelled` at or
    /// after the instant (so a job finished late between two runs still counts), of the org
    /// (every org's for `None`: the watcher) that has at least one policy.
    Open(Option<Uuid>, DateTime<Utc>),
    /// One job of the org, whatever its status.
    One(Uuid, Uuid),
    /// The org's jobs now `completed` whose last move there was on the UTC days `from..=to`
    /// (the KPIs' jobs).
    Completed(Uuid, NaiveDate, NaiveDate),
}

/// A job as the clocks read it.
#[derive(Clone, Debug, PartialEq)]
pub struct SlaJob {
    pub id: Uuid,
    pub org_id: Uuid,
    pub number: i64,
    pub title: String,
    pub status: String,
    pub priority: String,
    /// Its checklist's template (the job's type).
    pub template: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `(to_status, at)` in history order.
    pub history: Vec<(String, DateTime<Utc>)>,
    /// The events recorded for it.
    pub events: Vec<SlaEvent>,
}

/// A recorded breach or approaching one, with its delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct SlaEvent {
    pub org_id: Uuid,
    pub job_id: Uuid,
    /// `acknowledge` or `resolve`.
    pub kind: String,
    /// `approaching` or `breached`.
    pub level: String,
    pub deadline: DateTime<Utc>,
    pub policy_id: Uuid,
    pub at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// An undelivered event taken for sending, with what the webhook says of its job.
#[derive(Clone, Debug, PartialEq)]
pub struct SlaDelivery {
    pub event: SlaEvent,
    pub number: i64,
    pub title: String,
}

#[async_trait]
pub trait SlaStore: Send + Sync + 'static {
    /// Set the org's policy for (job type, priority): insert it, or replace the limits and hours
    /// of the one already set (which keeps its id and creation time). Returns the stored policy
    /// and whether it is new.
    async fn put_sla_policy(&self, p: &SlaPolicy) -> StoreResult<(SlaPolicy, bool)>;
    /// The org's policies (every org's for `None`: the watcher), by job type then priority.
    async fn sla_policies(&self, org_id: Option<Uuid>) -> StoreResult<Vec<SlaPolicy>>;
    /// Jobs with their status history and recorded events, by number.
    async fn sla_jobs(&self, which: SlaJobs) -> StoreResult<Vec<SlaJob>>;
    /// Claim an event: insert its row unless (job, kind, level) has one. True when this call
    /// inserted it.
    async fn claim_sla_event(&self, e: &SlaEvent) -> StoreResult<bool>;
    /// Up to `limit` undelivered events whose `next_attempt_at` is at or before `now`, each
    /// leased to this caller alone by moving its `next_attempt_at` to `lease_until`.
    async fn take_sla_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SlaDelivery>>;
    /// The webhook took the event.
    async fn sla_delivered(
        &self,
        job_id: Uuid,
        kind: &str,
        level: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// A delivery failed: count the attempt, keep the error, try again from `next_attempt_at`.
    async fn sla_delivery_failed(
        &self,
        job_id: Uuid,
        kind: &str,
        level: &str,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> StoreResult<()>;
}
