//! IoT sensors in the store (migration 0010): sensors with their trigger rules, their readings
//! (written in batches, read by time range, pruned by age), and the jobs their rules opened.
//! One trait, implemented for both stores (`store/sqlite/sensors.rs`,
//! `store/postgres/sensors.rs`); `Store::sensors` hands it out.
//!
//! A firing is *claimed* before its job is made ([`SensorStore::claim_sensor_job`]): in one
//! transaction the sensor is disarmed (only if it is armed and its cool-down has passed) and the
//! `sensor_jobs` row is inserted with the ids the job will have. Only the caller whose claim went
//! in makes the job, so however many nodes see a storm of readings, it opens one job. A claim
//! whose job was not finished (a node killed in between) is taken over after a lease by exactly
//! one caller ([`SensorStore::take_over_sensor_jobs`]), with the same ids.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemas::sensors::SensorRule;
use uuid::Uuid;

use super::StoreResult;

/// A sensor as written and read.
#[derive(Clone, Debug, PartialEq)]
pub struct Sensor {
    pub id: Uuid,
    pub org_id: Uuid,
    pub asset_id: Uuid,
    pub kind: String,
    pub unit: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub rule: SensorRule,
    pub created_at: DateTime<Utc>,
}

/// One reading of a sensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub sensor_id: Uuid,
    pub org_id: Uuid,
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// A firing of a sensor's rule and the job it makes.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorJob {
    pub sensor_id: Uuid,
    /// The time of the reading that fired.
    pub fired_at: DateTime<Utc>,
    pub org_id: Uuid,
    pub value: f64,
    pub job_id: Uuid,
    pub checklist_id: Uuid,
    pub parts_id: Uuid,
    pub claimed_at: DateTime<Utc>,
    pub job_created_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait SensorStore: Send + Sync + 'static {
    /// `NotFound` naming the asset when it is not the org's.
    async fn create_sensor(&self, s: &Sensor) -> StoreResult<()>;
    /// The org's sensors (every org's for `None`: the ingestion's cache), of one id when given,
    /// in creation order.
    async fn sensors(&self, org_id: Option<Uuid>, id: Option<Uuid>) -> StoreResult<Vec<Sensor>>;
    /// Write a batch of readings in one transaction (one statement on Postgres).
    async fn insert_readings(&self, readings: &[Reading]) -> StoreResult<()>;
    /// A sensor's readings with `from <= at < to`, in time order, at most `limit`.
    async fn readings(
        &self,
        org_id: Uuid,
        sensor_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Reading>>;
    /// Delete readings older than `before`; how many.
    async fn prune_readings(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Claim a firing: if the sensor is armed and last fired at least `cooldown_s` before
    /// `j.fired_at`, disarm it, note the firing, and insert `j`, in one transaction. True when
    /// this call claimed it.
    async fn claim_sensor_job(&self, j: &SensorJob, cooldown_s: u32) -> StoreResult<bool>;
    /// Arm the sensor again (a reading came back within the thresholds).
    async fn rearm_sensor(&self, sensor_id: Uuid) -> StoreResult<()>;
    /// The firing's job exists.
    async fn sensor_job_created(&self, job_id: Uuid, at: DateTime<Utc>) -> StoreResult<()>;
    /// Claimed firings whose job was not made and whose claim is older than `stale_before`: each
    /// is re-claimed as of `now` by exactly one caller and returned to that caller only.
    async fn take_over_sensor_jobs(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SensorJob>>;
    /// The org's firings, of one sensor when given, latest first.
    async fn sensor_jobs(
        &self,
        org_id: Uuid,
        sensor_id: Option<Uuid>,
    ) -> StoreResult<Vec<SensorJob>>;
    /// The technician who last worked on the asset: the first assignee of its latest job (by
    /// creation) that has one.
    async fn asset_last_technician(
        &self,
        org_id: Uuid,
        asset_id: Uuid,
    ) -> StoreResult<Option<String>>;
}

/// The first name of a projected job's `assignees` (a JSON array of user names).
pub fn first_assignee(text: Option<&str>) -> Option<String> {
    serde_json::from_str::<Vec<String>>(text?)
        .ok()?
        .into_iter()
        .next()
}
