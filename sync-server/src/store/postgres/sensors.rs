//! [`SensorStore`] on Postgres (migrations/postgres/0010). A batch of readings is one
//! `INSERT … SELECT FROM UNNEST` of four arrays: one statement and one round trip whatever the
//! batch's size. Reads for a caller run in a tenant transaction (row-level security, see
//! `records.rs`); the ingestion's (every org's sensors) as the server's own user. A claim is
//! one transaction: a conditional `UPDATE` of the sensor (armed, past its cool-down), which
//! a concurrent claimer re-checks after the row lock and so loses, then the `sensor_jobs` row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemas::sensors::SensorRule;
use uuid::Uuid;

use super::records::tenant_tx;
use super::{PgStore, db_error};
use crate::store::sensors::{Reading, Sensor, SensorJob, SensorStore};
use crate::store::{StoreError, StoreResult};

fn count(n: i32, what: &str) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::Invalid(format!("negative {what} {n}")))
}

fn priority(text: &str) -> StoreResult<schemas::Priority> {
    schemas::Priority::parse(text)
        .ok_or_else(|| StoreError::Invalid(format!("unknown priority {text:?}")))
}

#[async_trait]
impl SensorStore for PgStore {
    async fn create_sensor(&self, s: &Sensor) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let owns = sqlx::query_scalar!(
            "SELECT 1 AS one FROM assets WHERE id = $1 AND org_id = $2",
            s.asset_id,
            s.org_id
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .is_some();
        if !owns {
            return Err(StoreError::NotFound(format!("asset {}", s.asset_id)));
        }
        sqlx::query!(
            "INSERT INTO sensors (id, org_id, asset_id, kind, unit, min_value, max_value,
                                  consecutive, duration_s, hysteresis, cooldown_s, template,
                                  priority, assignee, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            s.id,
            s.org_id,
            s.asset_id,
            s.kind,
            s.unit,
            s.min,
            s.max,
            s.rule.consecutive as i32,
            s.rule.duration_s as i32,
            s.rule.hysteresis,
            s.rule.cooldown_s as i32,
            s.rule.template,
            s.rule.priority.as_str(),
            s.rule.assignee,
            s.created_at
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn sensors(&self, org_id: Option<Uuid>, id: Option<Uuid>) -> StoreResult<Vec<Sensor>> {
        let mut tx = match org_id {
            Some(org) => tenant_tx(&self.pool, org).await.map_err(db_error)?,
            None => self.pool.begin().await.map_err(db_error)?,
        };
        let rows = sqlx::query!(
            "SELECT id, org_id, asset_id, kind, unit, min_value, max_value, consecutive,
                    duration_s, hysteresis, cooldown_s, template, priority, assignee, created_at
             FROM sensors
             WHERE ($1::uuid IS NULL OR org_id = $1) AND ($2::uuid IS NULL OR id = $2)
             ORDER BY created_at, id",
            org_id,
            id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(Sensor {
                    id: r.id,
                    org_id: r.org_id,
                    asset_id: r.asset_id,
                    kind: r.kind,
                    unit: r.unit,
                    min: r.min_value,
                    max: r.max_value,
                    rule: SensorRule {
                        consecutive: count(r.consecutive, "consecutive")?,
                        duration_s: count(r.duration_s, "duration_s")?,
                        hysteresis: r.hysteresis,
                        cooldown_s: count(r.cooldown_s, "cooldown_s")?,
                        template: r.template,
                        priority: priority(&r.priority)?,
                        assignee: r.assignee,
                    },
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    async fn insert_readings(&self, readings: &[Reading]) -> StoreResult<()> {
        if readings.is_empty() {
            return Ok(());
        }
        let sensors: Vec<Uuid> = readings.iter().map(|r| r.sensor_id).collect();
        let orgs: Vec<Uuid> = readings.iter().map(|r| r.org_id).collect();
        let ats: Vec<DateTime<Utc>> = readings.iter().map(|r| r.at).collect();
        let values: Vec<f64> = readings.iter().map(|r| r.value).collect();
        sqlx::query!(
            "INSERT INTO sensor_readings (sensor_id, org_id, at, value)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::float8[])",
            &sensors,
            &orgs,
            &ats,
            &values
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn readings(
        &self,
        org_id: Uuid,
        sensor_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Reading>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            "SELECT at, value FROM sensor_readings
             WHERE sensor_id = $1 AND at >= $2 AND at < $3
             ORDER BY at LIMIT $4",
            sensor_id,
            from,
            to,
            limit
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| Reading {
                sensor_id,
                org_id,
                at: r.at,
                value: r.value,
            })
            .collect())
    }

    async fn prune_readings(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(
            sqlx::query!("DELETE FROM sensor_readings WHERE at < $1", before)
                .execute(&self.pool)
                .await
                .map_err(db_error)?
                .rows_affected(),
        )
    }

    async fn claim_sensor_job(&self, j: &SensorJob, cooldown_s: u32) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let since = j.fired_at - chrono::Duration::seconds(i64::from(cooldown_s));
        // Under READ COMMITTED a second claimer waits for the first's row lock, then re-checks
        // `armed` on the row the first wrote (now false), and updates nothing.
        let n = sqlx::query!(
            "UPDATE sensors SET armed = false, last_fired_at = $2
             WHERE id = $1 AND armed AND (last_fired_at IS NULL OR last_fired_at <= $3)",
            j.sensor_id,
            j.fired_at,
            since
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        let inserted = sqlx::query!(
            "INSERT INTO sensor_jobs (sensor_id, fired_at, org_id, value, job_id, checklist_id,
                                      parts_id, claimed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (sensor_id, fired_at) DO NOTHING",
            j.sensor_id,
            j.fired_at,
            j.org_id,
            j.value,
            j.job_id,
            j.checklist_id,
            j.parts_id,
            j.claimed_at
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if inserted == 0 {
            return Ok(false); // rolled back: the sensor stays as it was
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn rearm_sensor(&self, sensor_id: Uuid) -> StoreResult<()> {
        sqlx::query!(
            "UPDATE sensors SET armed = true WHERE id = $1 AND NOT armed",
            sensor_id
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn sensor_job_created(&self, job_id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query!(
            "UPDATE sensor_jobs SET job_created_at = $2
             WHERE job_id = $1 AND job_created_at IS NULL",
            job_id,
            at
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn take_over_sensor_jobs(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SensorJob>> {
        sqlx::query_as!(
            SensorJob,
            "UPDATE sensor_jobs SET claimed_at = $2
             WHERE job_created_at IS NULL AND claimed_at < $1
             RETURNING sensor_id, fired_at, org_id, value, job_id, checklist_id, parts_id,
                       claimed_at, job_created_at",
            stale_before,
            now
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn sensor_jobs(
        &self,
        org_id: Uuid,
        sensor_id: Option<Uuid>,
    ) -> StoreResult<Vec<SensorJob>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query_as!(
            SensorJob,
            "SELECT sensor_id, fired_at, org_id, value, job_id, checklist_id, parts_id,
                    claimed_at, job_created_at
             FROM sensor_jobs WHERE ($1::uuid IS NULL OR sensor_id = $1)
             ORDER BY fired_at DESC, sensor_id",
            sensor_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows)
    }

    async fn asset_last_technician(
        &self,
        org_id: Uuid,
        asset_id: Uuid,
    ) -> StoreResult<Option<String>> {
        let text = sqlx::query_scalar!(
            "SELECT assignees FROM jobs
             WHERE org_id = $1 AND asset_id = $2 AND assignees <> '[]'
             ORDER BY created_at DESC LIMIT 1",
            org_id,
            asset_id
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(crate::store::sensors::first_assignee(text.as_deref()))
    }
}
