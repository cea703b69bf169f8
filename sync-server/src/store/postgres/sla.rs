//! [`SlaStore`] on Postgres (migrations/postgres/0011). Reads for a caller run in a tenant
//! transaction (row-level security, see `records.rs`); the watcher's, across every org, as the
//! server's own user. A claim is `INSERT … ON CONFLICT DO NOTHING` on (job, kind, level); a
//! delivery lease one `UPDATE … RETURNING` over rows locked with `SKIP LOCKED`, so two nodes
//! never send the same event at once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::records::tenant_tx;
use super::{PgStore, db_error};
use crate::store::records::day_bounds;
use crate::store::sla::{SlaDelivery, SlaEvent, SlaJob, SlaJobs, SlaPolicy, SlaStore};
use crate::store::{StoreError, StoreResult};

fn seconds(n: i32, what: &str) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::Invalid(format!("negative {what} {n}")))
}

fn hours(v: Option<serde_json::Value>) -> StoreResult<Option<schemas::api::BusinessHours>> {
    v.map(|v| {
        serde_json::from_value(v)
            .map_err(|e| StoreError::Invalid(format!("stored business hours do not parse: {e}")))
    })
    .transpose()
}

struct JobRow {
    id: Uuid,
    org_id: Uuid,
    number: i64,
    title: String,
    status: String,
    priority: String,
    template: Option<String>,
    created_at: DateTime<Utc>,
}

struct EventRow {
    org_id: Uuid,
    job_id: Uuid,
    kind: String,
    level: String,
    deadline: DateTime<Utc>,
    policy_id: Uuid,
    at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
}

impl EventRow {
    fn into_event(self) -> StoreResult<SlaEvent> {
        Ok(SlaEvent {
            org_id: self.org_id,
            job_id: self.job_id,
            kind: self.kind,
            level: self.level,
            deadline: self.deadline,
            policy_id: self.policy_id,
            at: self.at,
            delivered_at: self.delivered_at,
            attempts: seconds(self.attempts, "attempts")?,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
        })
    }
}

impl PgStore {
    /// A tenant transaction for one org, or a plain one for the watcher's reads of every org.
    async fn sla_tx(&self, org_id: Option<Uuid>) -> StoreResult<Transaction<'static, Postgres>> {
        match org_id {
            Some(org) => tenant_tx(&self.pool, org).await.map_err(db_error),
            None => self.pool.begin().await.map_err(db_error),
        }
    }
}

#[async_trait]
impl SlaStore for PgStore {
    async fn put_sla_policy(&self, p: &SlaPolicy) -> StoreResult<(SlaPolicy, bool)> {
        let business_hours = p
            .business_hours
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| StoreError::Invalid(format!("business_hours: {e}")))?;
        let r = sqlx::query!(
            r#"INSERT INTO sla_policies (id, org_id, job_type, priority,
                                         acknowledge_within_seconds, resolve_within_seconds,
                                         business_hours, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (org_id, job_type, priority) DO UPDATE
               SET acknowledge_within_seconds = EXCLUDED.acknowledge_within_seconds,
                   resolve_within_seconds = EXCLUDED.resolve_within_seconds,
                   business_hours = EXCLUDED.business_hours,
                   updated_at = EXCLUDED.updated_at
               RETURNING id, org_id, job_type, priority, acknowledge_within_seconds,
                         resolve_within_seconds, business_hours, created_at, updated_at,
                         (xmax = 0) AS "inserted!""#,
            p.id,
            p.org_id,
            p.job_type,
            p.priority,
            p.acknowledge_within_seconds as i32,
            p.resolve_within_seconds as i32,
            business_hours,
            p.created_at,
            p.updated_at
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok((
            SlaPolicy {
                id: r.id,
                org_id: r.org_id,
                job_type: r.job_type,
                priority: r.priority,
                acknowledge_within_seconds: seconds(
                    r.acknowledge_within_seconds,
                    "acknowledge_within_seconds",
                )?,
                resolve_within_seconds: seconds(
                    r.resolve_within_seconds,
                    "resolve_within_seconds",
                )?,
                business_hours: hours(r.business_hours)?,
                created_at: r.created_at,
                updated_at: r.updated_at,
            },
            r.inserted,
        ))
    }

    async fn sla_policies(&self, org_id: Option<Uuid>) -> StoreResult<Vec<SlaPolicy>> {
        let mut tx = self.sla_tx(org_id).await?;
        let rows = sqlx::query!(
            "SELECT id, org_id, job_type, priority, acknowledge_within_seconds,
                    resolve_within_seconds, business_hours, created_at, updated_at
             FROM sla_policies WHERE ($1::uuid IS NULL OR org_id = $1)
             ORDER BY org_id, job_type, priority",
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(SlaPolicy {
                    id: r.id,
                    org_id: r.org_id,
                    job_type: r.job_type,
                    priority: r.priority,
                    acknowledge_within_seconds: seconds(
                        r.acknowledge_within_seconds,
                        "acknowledge_within_seconds",
                    )?,
                    resolve_within_seconds: seconds(
                        r.resolve_within_seconds,
                        "resolve_within_seconds",
                    )?,
                    business_hours: hours(r.business_hours)?,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                })
            })
            .collect()
    }

    async fn sla_jobs(&self, which: SlaJobs) -> StoreResult<Vec<SlaJob>> {
        let org = match which {
            SlaJobs::Open(org, _) => org,
            SlaJobs::One(org, _) | SlaJobs::Completed(org, _, _) => Some(org),
        };
        let mut tx = self.sla_tx(org).await?;
        let rows: Vec<JobRow> = match which {
            SlaJobs::Open(org, since) => sqlx::query_as!(
                JobRow,
                r#"SELECT j.id, j.org_id, j.number, j.title, j.status, j.priority,
                          (SELECT c.template FROM job_checklists c
                           WHERE c.job_id = j.id LIMIT 1) AS template,
                          j.created_at
                   FROM jobs j
                   WHERE ($1::uuid IS NULL OR j.org_id = $1)
                     AND EXISTS (SELECT 1 FROM sla_policies p WHERE p.org_id = j.org_id)
                     AND (j.status NOT IN ('completed', 'cancelled')
                          OR EXISTS (SELECT 1 FROM job_status_history h
                                     WHERE h.job_id = j.id
                                       AND h.to_status IN ('completed', 'cancelled')
                                       AND h.at >= $2))
                   ORDER BY j.org_id, j.number"#,
                org,
                since
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?,
            SlaJobs::One(org, id) => sqlx::query_as!(
                JobRow,
                r#"SELECT j.id, j.org_id, j.number, j.title, j.status, j.priority,
                          (SELECT c.template FROM job_checklists c
                           WHERE c.job_id = j.id LIMIT 1) AS template,
                          j.created_at
                   FROM jobs j WHERE j.org_id = $1 AND j.id = $2"#,
                org,
                id
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?,
            SlaJobs::Completed(org, from, to) => {
                let (start, end) = day_bounds(from, to);
                sqlx::query_as!(
                    JobRow,
                    r#"SELECT j.id, j.org_id, j.number, j.title, j.status, j.priority,
                              (SELECT c.template FROM job_checklists c
                               WHERE c.job_id = j.id LIMIT 1) AS template,
                              j.created_at
                       FROM jobs j
                       JOIN LATERAL (SELECT max(h.at) AS done FROM job_status_history h
                                     WHERE h.job_id = j.id AND h.to_status = 'completed') d
                         ON true
                       WHERE j.org_id = $1 AND j.status = 'completed'
                         AND d.done >= $2 AND d.done < $3
                       ORDER BY j.number"#,
                    org,
                    start,
                    end
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?
            }
        };
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let history = sqlx::query!(
            "SELECT job_id, to_status, at FROM job_status_history
             WHERE job_id = ANY($1) ORDER BY job_id, position",
            &ids
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let events = sqlx::query_as!(
            EventRow,
            "SELECT org_id, job_id, kind, level, deadline, policy_id, at, delivered_at, attempts,
                    next_attempt_at, last_error
             FROM sla_events WHERE job_id = ANY($1) ORDER BY at, kind, level",
            &ids
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let mut jobs: Vec<SlaJob> = rows
            .into_iter()
            .map(|r| SlaJob {
                id: r.id,
                org_id: r.org_id,
                number: r.number,
                title: r.title,
                status: r.status,
                priority: r.priority,
                template: r.template,
                created_at: r.created_at,
                history: Vec::new(),
                events: Vec::new(),
            })
            .collect();
        let index: std::collections::HashMap<Uuid, usize> =
            jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
        for h in history {
            if let Some(&i) = index.get(&h.job_id) {
                jobs[i].history.push((h.to_status, h.at));
            }
        }
        for e in events {
            if let Some(&i) = index.get(&e.job_id) {
                jobs[i].events.push(e.into_event()?);
            }
        }
        Ok(jobs)
    }

    async fn claim_sla_event(&self, e: &SlaEvent) -> StoreResult<bool> {
        let r = sqlx::query!(
            "INSERT INTO sla_events (org_id, job_id, kind, level, deadline, policy_id, at,
                                     delivered_at, attempts, next_attempt_at, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (job_id, kind, level) DO NOTHING",
            e.org_id,
            e.job_id,
            e.kind,
            e.level,
            e.deadline,
            e.policy_id,
            e.at,
            e.delivered_at,
            e.attempts as i32,
            e.next_attempt_at,
            e.last_error
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(r.rows_affected() == 1)
    }

    async fn take_sla_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SlaDelivery>> {
        let rows = sqlx::query!(
            r#"UPDATE sla_events e SET next_attempt_at = $2
               FROM jobs j
               WHERE j.id = e.job_id AND e.delivered_at IS NULL AND e.next_attempt_at <= $1
                 AND (e.job_id, e.kind, e.level) IN (
                     SELECT job_id, kind, level FROM sla_events
                     WHERE delivered_at IS NULL AND next_attempt_at <= $1
                     ORDER BY next_attempt_at LIMIT $3
                     FOR UPDATE SKIP LOCKED)
               RETURNING e.org_id, e.job_id, e.kind, e.level, e.deadline, e.policy_id, e.at,
                         e.delivered_at, e.attempts, e.next_attempt_at, e.last_error,
                         j.number, j.title"#,
            now,
            lease_until,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(SlaDelivery {
                    event: EventRow {
                        org_id: r.org_id,
                        job_id: r.job_id,
                        kind: r.kind,
                        level: r.level,
                        deadline: r.deadline,
                        policy_id: r.policy_id,
                        at: r.at,
                        delivered_at: r.delivered_at,
                        attempts: r.attempts,
                        next_attempt_at: r.next_attempt_at,
                        last_error: r.last_error,
                    }
                    .into_event()?,
                    number: r.number,
                    title: r.title,
                })
            })
            .collect()
    }

    async fn sla_delivered(
        &self,
        job_id: Uuid,
        kind: &str,
        level: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query!(
            "UPDATE sla_events SET delivered_at = $4, attempts = attempts + 1, last_error = NULL
             WHERE job_id = $1 AND kind = $2 AND level = $3",
            job_id,
            kind,
            level,
            at
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn sla_delivery_failed(
        &self,
        job_id: Uuid,
        kind: &str,
        level: &str,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query!(
            "UPDATE sla_events SET attempts = attempts + 1, last_error = $4, next_attempt_at = $5
             WHERE job_id = $1 AND kind = $2 AND level = $3 AND delivered_at IS NULL",
            job_id,
            kind,
            level,
            error,
            next_attempt_at
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
