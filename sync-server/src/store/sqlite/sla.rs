//! [`SlaStore`] on SQLite (migrations/sqlite/0011): times as microseconds, business hours as
//! JSON text. A claim is `INSERT … ON CONFLICT DO NOTHING` on (job, kind, level); a delivery
//! lease an `UPDATE` of `next_attempt_at` in the same immediate transaction as the read.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, TransactionBehavior, params, params_from_iter};
use uuid::Uuid;

use super::{Id, SqliteStore, timestamp};
use crate::store::records::day_bounds;
use crate::store::sla::{SlaDelivery, SlaEvent, SlaJob, SlaJobs, SlaPolicy, SlaStore};
use crate::store::{StoreError, StoreResult};

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn opt_time(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(_) => timestamp(row, idx).map(Some),
    }
}

fn conversion(idx: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, what.into())
}

const POLICY_COLUMNS: &str = "id, org_id, job_type, priority, acknowledge_within_seconds,
     resolve_within_seconds, business_hours, created_at, updated_at";

fn policy(r: &Row<'_>) -> rusqlite::Result<SlaPolicy> {
    let hours: Option<String> = r.get(6)?;
    let business_hours = match hours {
        None => None,
        Some(text) => Some(
            serde_json::from_str(&text)
                .map_err(|e| conversion(6, format!("bad business hours {text:?}: {e}")))?,
        ),
    };
    Ok(SlaPolicy {
        id: r.get::<_, Id>(0)?.0,
        org_id: r.get::<_, Id>(1)?.0,
        job_type: r.get(2)?,
        priority: r.get(3)?,
        acknowledge_within_seconds: r.get(4)?,
        resolve_within_seconds: r.get(5)?,
        business_hours,
        created_at: timestamp(r, 7)?,
        updated_at: timestamp(r, 8)?,
    })
}

const EVENT_COLUMNS: &str = "org_id, job_id, kind, level, deadline, policy_id, at, delivered_at,
     attempts, next_attempt_at, last_error";

fn event(r: &Row<'_>) -> rusqlite::Result<SlaEvent> {
    Ok(SlaEvent {
        org_id: r.get::<_, Id>(0)?.0,
        job_id: r.get::<_, Id>(1)?.0,
        kind: r.get(2)?,
        level: r.get(3)?,
        deadline: timestamp(r, 4)?,
        policy_id: r.get::<_, Id>(5)?.0,
        at: timestamp(r, 6)?,
        delivered_at: opt_time(r, 7)?,
        attempts: r.get(8)?,
        next_attempt_at: timestamp(r, 9)?,
        last_error: r.get(10)?,
    })
}

fn policy_by_key(
    conn: &Connection,
    org_id: Uuid,
    job_type: &str,
    priority: &str,
) -> rusqlite::Result<SlaPolicy> {
    conn.query_row(
        &format!(
            "SELECT {POLICY_COLUMNS} FROM sla_policies
             WHERE org_id = ?1 AND job_type = ?2 AND priority = ?3"
        ),
        params![Id(org_id), job_type, priority],
        policy,
    )
}

#[async_trait]
impl SlaStore for SqliteStore {
    async fn put_sla_policy(&self, p: &SlaPolicy) -> StoreResult<(SlaPolicy, bool)> {
        let p = p.clone();
        let hours = p
            .business_hours
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Invalid(format!("business_hours: {e}")))?;
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO sla_policies ({POLICY_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (org_id, job_type, priority) DO NOTHING"
                ),
                params![
                    Id(p.id),
                    Id(p.org_id),
                    p.job_type,
                    p.priority,
                    p.acknowledge_within_seconds,
                    p.resolve_within_seconds,
                    hours,
                    micros(p.created_at),
                    micros(p.updated_at)
                ],
            )? == 1;
            if !inserted {
                tx.execute(
                    "UPDATE sla_policies
                     SET acknowledge_within_seconds = ?4, resolve_within_seconds = ?5,
                         business_hours = ?6, updated_at = ?7
                     WHERE org_id = ?1 AND job_type = ?2 AND priority = ?3",
                    params![
                        Id(p.org_id),
                        p.job_type,
                        p.priority,
                        p.acknowledge_within_seconds,
                        p.resolve_within_seconds,
                        hours,
                        micros(p.updated_at)
                    ],
                )?;
            }
            let stored = policy_by_key(&tx, p.org_id, &p.job_type, &p.priority)?;
            tx.commit()?;
            Ok((stored, inserted))
        })
        .await
    }

    async fn sla_policies(&self, org_id: Option<Uuid>) -> StoreResult<Vec<SlaPolicy>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {POLICY_COLUMNS} FROM sla_policies
                     WHERE (?1 IS NULL OR org_id = ?1)
                     ORDER BY org_id, job_type, priority"
                ))?
                .query_map([org_id.map(Id)], policy)?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn sla_jobs(&self, which: SlaJobs) -> StoreResult<Vec<SlaJob>> {
        self.call(move |conn| {
            let (filter, args): (&str, Vec<Value>) = match which {
                SlaJobs::Open(org, since) => (
                    "(?1 IS NULL OR j.org_id = ?1)
                     AND EXISTS (SELECT 1 FROM sla_policies p WHERE p.org_id = j.org_id)
                     AND (j.status NOT IN ('completed', 'cancelled')
                          OR EXISTS (SELECT 1 FROM job_status_history h
                                     WHERE h.job_id = j.id
                                       AND h.to_status IN ('completed', 'cancelled')
                                       AND h.at >= ?2))",
                    vec![
                        org.map_or(Value::Null, |o| Value::Text(o.to_string())),
                        Value::Integer(micros(since)),
                    ],
                ),
                SlaJobs::One(org, id) => (
                    "j.org_id = ?1 AND j.id = ?2",
                    vec![Value::Text(org.to_string()), Value::Text(id.to_string())],
                ),
                SlaJobs::Completed(org, from, to) => {
                    let (start, end) = day_bounds(from, to);
                    (
                        "j.org_id = ?1 AND j.status = 'completed'
                         AND (SELECT max(h.at) FROM job_status_history h
                              WHERE h.job_id = j.id AND h.to_status = 'completed') >= ?2
                         AND (SELECT max(h.at) FROM job_status_history h
                              WHERE h.job_id = j.id AND h.to_status = 'completed') < ?3",
                        vec![
                            Value::Text(org.to_string()),
                            Value::Integer(micros(start)),
                            Value::Integer(micros(end)),
                        ],
                    )
                }
            };
            let mut jobs: Vec<SlaJob> = conn
                .prepare_cached(&format!(
                    "SELECT j.id, j.org_id, j.number, j.title, j.status, j.priority,
                            (SELECT c.template FROM job_checklists c WHERE c.job_id = j.id LIMIT 1),
                            j.created_at
                     FROM jobs j WHERE {filter}
                     ORDER BY j.org_id, j.number"
                ))?
                .query_map(params_from_iter(args), |r| {
                    Ok(SlaJob {
                        id: r.get::<_, Id>(0)?.0,
                        org_id: r.get::<_, Id>(1)?.0,
                        number: r.get(2)?,
                        title: r.get(3)?,
                        status: r.get(4)?,
                        priority: r.get(5)?,
                        template: r.get(6)?,
                        created_at: timestamp(r, 7)?,
                        history: Vec::new(),
                        events: Vec::new(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut history = conn.prepare_cached(
                "SELECT to_status, at FROM job_status_history WHERE job_id = ?1 ORDER BY position",
            )?;
            let mut events = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM sla_events WHERE job_id = ?1 ORDER BY at, kind, level"
            ))?;
            for j in &mut jobs {
                j.history = history
                    .query_map([Id(j.id)], |r| Ok((r.get(0)?, timestamp(r, 1)?)))?
                    .collect::<Result<_, _>>()?;
                j.events = events
                    .query_map([Id(j.id)], event)?
                    .collect::<Result<_, _>>()?;
            }
            Ok(jobs)
        })
        .await
    }

    async fn claim_sla_event(&self, e: &SlaEvent) -> StoreResult<bool> {
        let e = e.clone();
        self.call(move |conn| {
            let n = conn.execute(
                &format!(
                    "INSERT INTO sla_events ({EVENT_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (job_id, kind, level) DO NOTHING"
                ),
                params![
                    Id(e.org_id),
                    Id(e.job_id),
                    e.kind,
                    e.level,
                    micros(e.deadline),
                    Id(e.policy_id),
                    micros(e.at),
                    e.delivered_at.map(micros),
                    e.attempts,
                    micros(e.next_attempt_at),
                    e.last_error
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn take_sla_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SlaDelivery>> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let taken: Vec<SlaDelivery> = tx
                .prepare_cached(
                    "SELECT e.org_id, e.job_id, e.kind, e.level, e.deadline, e.policy_id, e.at,
                            e.delivered_at, e.attempts, e.next_attempt_at, e.last_error,
                            j.number, j.title
                     FROM sla_events e JOIN jobs j ON j.id = e.job_id
                     WHERE e.delivered_at IS NULL AND e.next_attempt_at <= ?1
                     ORDER BY e.next_attempt_at LIMIT ?2",
                )?
                .query_map(params![micros(now), limit], |r| {
                    Ok(SlaDelivery {
                        event: event(r)?,
                        number: r.get(11)?,
                        title: r.get(12)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            for d in &taken {
                tx.execute(
                    "UPDATE sla_events SET next_attempt_at = ?4
                     WHERE job_id = ?1 AND kind = ?2 AND level = ?3",
                    params![
                        Id(d.event.job_id),
                        d.event.kind,
                        d.event.level,
                        micros(lease_until)
                    ],
                )?;
            }
            tx.commit()?;
            Ok(taken)
        })
        .await
    }

    async fn sla_delivered(
        &self,
        job_id: Uuid,
        kind: &str,
        level: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (kind, level) = (kind.to_string(), level.to_string());
        self.call(move |conn| {
            conn.execute(
                "UPDATE sla_events SET delivered_at = ?4, attempts = attempts + 1,
                                       last_error = NULL
                 WHERE job_id = ?1 AND kind = ?2 AND level = ?3",
                params![Id(job_id), kind, level, micros(at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn sla_delivery_failed(
        &self,
        job_id: Uuid,
        kind: &str,
        level: &str,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let (kind, level, error) = (kind.to_string(), level.to_string(), error.to_string());
        self.call(move |conn| {
            conn.execute(
                "UPDATE sla_events SET attempts = attempts + 1, last_error = ?4,
                                       next_attempt_at = ?5
                 WHERE job_id = ?1 AND kind = ?2 AND level = ?3 AND delivered_at IS NULL",
                params![Id(job_id), kind, level, error, micros(next_attempt_at)],
            )?;
            Ok(())
        })
        .await
    }
}
