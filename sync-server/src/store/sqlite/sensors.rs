//! [`SensorStore`] on SQLite (migrations/sqlite/0010): times as microseconds, a batch of
//! readings in one `IMMEDIATE` transaction with one prepared statement.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use schemas::sensors::SensorRule;
use uuid::Uuid;

use super::{Id, SqliteStore, timestamp};
use crate::store::sensors::{Reading, Sensor, SensorJob, SensorStore};
use crate::store::{StoreError, StoreResult};

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

const SENSOR_COLUMNS: &str = "id, org_id, asset_id, kind, unit, min_value, max_value,
     consecutive, duration_s, hysteresis, cooldown_s, template, priority, assignee, created_at";

fn sensor(r: &Row<'_>) -> rusqlite::Result<Sensor> {
    let priority: String = r.get(12)?;
    Ok(Sensor {
        id: r.get::<_, Id>(0)?.0,
        org_id: r.get::<_, Id>(1)?.0,
        asset_id: r.get::<_, Id>(2)?.0,
        kind: r.get(3)?,
        unit: r.get(4)?,
        min: r.get(5)?,
        max: r.get(6)?,
        rule: SensorRule {
            consecutive: r.get(7)?,
            duration_s: r.get(8)?,
            hysteresis: r.get(9)?,
            cooldown_s: r.get(10)?,
            template: r.get(11)?,
            priority: schemas::Priority::parse(&priority).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    12,
                    rusqlite::types::Type::Text,
                    format!("unknown priority {priority:?}").into(),
                )
            })?,
            assignee: r.get(13)?,
        },
        created_at: timestamp(r, 14)?,
    })
}

const JOB_COLUMNS: &str = "sensor_id, fired_at, org_id, value, job_id, checklist_id, parts_id, claimed_at, job_created_at";

fn sensor_job(r: &Row<'_>) -> rusqlite::Result<SensorJob> {
    Ok(SensorJob {
        sensor_id: r.get::<_, Id>(0)?.0,
        fired_at: timestamp(r, 1)?,
        org_id: r.get::<_, Id>(2)?.0,
        value: r.get(3)?,
        job_id: r.get::<_, Id>(4)?.0,
        checklist_id: r.get::<_, Id>(5)?.0,
        parts_id: r.get::<_, Id>(6)?.0,
        claimed_at: timestamp(r, 7)?,
        job_created_at: match r.get::<_, Option<i64>>(8)? {
            None => None,
            Some(_) => Some(timestamp(r, 8)?),
        },
    })
}

#[async_trait]
impl SensorStore for SqliteStore {
    async fn create_sensor(&self, s: &Sensor) -> StoreResult<()> {
        let s = s.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let owns = tx
                .query_row(
                    "SELECT 1 FROM assets WHERE id = ?1 AND org_id = ?2",
                    params![Id(s.asset_id), Id(s.org_id)],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !owns {
                return Err(StoreError::NotFound(format!("asset {}", s.asset_id)));
            }
            tx.execute(
                "INSERT INTO sensors (id, org_id, asset_id, kind, unit, min_value, max_value,
                                      consecutive, duration_s, hysteresis, cooldown_s, template,
                                      priority, assignee, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    Id(s.id),
                    Id(s.org_id),
                    Id(s.asset_id),
                    s.kind,
                    s.unit,
                    s.min,
                    s.max,
                    s.rule.consecutive,
                    s.rule.duration_s,
                    s.rule.hysteresis,
                    s.rule.cooldown_s,
                    s.rule.template,
                    s.rule.priority.as_str(),
                    s.rule.assignee,
                    micros(s.created_at)
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn sensors(&self, org_id: Option<Uuid>, id: Option<Uuid>) -> StoreResult<Vec<Sensor>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {SENSOR_COLUMNS} FROM sensors
                     WHERE (?1 IS NULL OR org_id = ?1) AND (?2 IS NULL OR id = ?2)
                     ORDER BY created_at, id"
                ))?
                .query_map(params![org_id.map(Id), id.map(Id)], sensor)?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn insert_readings(&self, readings: &[Reading]) -> StoreResult<()> {
        if readings.is_empty() {
            return Ok(());
        }
        let readings = readings.to_vec();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO sensor_readings (sensor_id, org_id, at, value)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for r in &readings {
                    stmt.execute(params![
                        Id(r.sensor_id),
                        Id(r.org_id),
                        micros(r.at),
                        r.value
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn readings(
        &self,
        org_id: Uuid,
        sensor_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Reading>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT at, value FROM sensor_readings
                     WHERE sensor_id = ?1 AND org_id = ?2 AND at >= ?3 AND at < ?4
                     ORDER BY at LIMIT ?5",
                )?
                .query_map(
                    params![Id(sensor_id), Id(org_id), micros(from), micros(to), limit],
                    |r| {
                        Ok(Reading {
                            sensor_id,
                            org_id,
                            at: timestamp(r, 0)?,
                            value: r.get(1)?,
                        })
                    },
                )?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn prune_readings(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.call(move |conn| {
            Ok(conn.execute(
                "DELETE FROM sensor_readings WHERE at < ?1",
                [micros(before)],
            )? as u64)
        })
        .await
    }

    async fn claim_sensor_job(&self, j: &SensorJob, cooldown_s: u32) -> StoreResult<bool> {
        let j = j.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let since = micros(j.fired_at) - i64::from(cooldown_s) * 1_000_000;
            let n = tx.execute(
                "UPDATE sensors SET armed = 0, last_fired_at = ?2
                 WHERE id = ?1 AND armed = 1 AND (last_fired_at IS NULL OR last_fired_at <= ?3)",
                params![Id(j.sensor_id), micros(j.fired_at), since],
            )?;
            if n == 0 {
                return Ok(false);
            }
            let inserted = tx.execute(
                "INSERT INTO sensor_jobs (sensor_id, fired_at, org_id, value, job_id, checklist_id,
                                          parts_id, claimed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (sensor_id, fired_at) DO NOTHING",
                params![
                    Id(j.sensor_id),
                    micros(j.fired_at),
                    Id(j.org_id),
                    j.value,
                    Id(j.job_id),
                    Id(j.checklist_id),
                    Id(j.parts_id),
                    micros(j.claimed_at)
                ],
            )?;
            if inserted == 0 {
                return Ok(false); // dropped: the sensor stays as it was
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn rearm_sensor(&self, sensor_id: Uuid) -> StoreResult<()> {
        self.call(move |conn| {
            conn.execute(
                "UPDATE sensors SET armed = 1 WHERE id = ?1 AND armed = 0",
                [Id(sensor_id)],
            )?;
            Ok(())
        })
        .await
    }

    async fn sensor_job_created(&self, job_id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
        self.call(move |conn| {
            conn.execute(
                "UPDATE sensor_jobs SET job_created_at = ?2
                 WHERE job_id = ?1 AND job_created_at IS NULL",
                params![Id(job_id), micros(at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_over_sensor_jobs(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<SensorJob>> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows = tx
                .prepare_cached(&format!(
                    "UPDATE sensor_jobs SET claimed_at = ?2
                     WHERE job_created_at IS NULL AND claimed_at < ?1
                     RETURNING {JOB_COLUMNS}"
                ))?
                .query_map(params![micros(stale_before), micros(now)], sensor_job)?
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(rows)
        })
        .await
    }

    async fn sensor_jobs(
        &self,
        org_id: Uuid,
        sensor_id: Option<Uuid>,
    ) -> StoreResult<Vec<SensorJob>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM sensor_jobs
                     WHERE org_id = ?1 AND (?2 IS NULL OR sensor_id = ?2)
                     ORDER BY fired_at DESC, sensor_id"
                ))?
                .query_map(params![Id(org_id), sensor_id.map(Id)], sensor_job)?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn asset_last_technician(
        &self,
        org_id: Uuid,
        asset_id: Uuid,
    ) -> StoreResult<Option<String>> {
        let text: Option<String> = self
            .call(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT assignees FROM jobs
                         WHERE org_id = ?1 AND asset_id = ?2 AND assignees <> '[]'
                         ORDER BY created_at DESC LIMIT 1",
                        params![Id(org_id), Id(asset_id)],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await?;
        Ok(crate::store::sensors::first_assignee(text.as_deref()))
    }
}
