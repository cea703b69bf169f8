//! [`PmStore`] on Postgres (migrations/postgres/0009). Reads for a caller run in a tenant
//! transaction (row-level security, see `records.rs`); the scheduler's, across every org, as the
//! server's own user. A claim is `INSERT … ON CONFLICT DO NOTHING` on (schedule, due date); a
//! take-over is one `UPDATE … RETURNING` whose condition a concurrent taker re-checks after the
//! row lock, so each stale claim goes to one node.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::records::tenant_tx;
use super::{PgStore, db_error};
use crate::store::pm::{NewPmSchedule, PmOccurrence, PmSchedule, PmStore, PmTemplate};
use crate::store::{StoreError, StoreResult};

fn anchor_str(a: schemas::api::PmAnchor) -> &'static str {
    match a {
        schemas::api::PmAnchor::Due => "due",
        schemas::api::PmAnchor::Completion => "completion",
    }
}

fn anchor(text: &str) -> StoreResult<schemas::api::PmAnchor> {
    match text {
        "due" => Ok(schemas::api::PmAnchor::Due),
        "completion" => Ok(schemas::api::PmAnchor::Completion),
        other => Err(StoreError::Invalid(format!("unknown PM anchor {other:?}"))),
    }
}

fn count(n: i32, what: &str) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::Invalid(format!("negative {what} {n}")))
}

impl PgStore {
    /// A tenant transaction for one org, or a plain one for the scheduler's reads of every org.
    async fn pm_tx(&self, org_id: Option<Uuid>) -> StoreResult<Transaction<'static, Postgres>> {
        match org_id {
            Some(org) => tenant_tx(&self.pool, org).await.map_err(db_error),
            None => self.pool.begin().await.map_err(db_error),
        }
    }
}

#[async_trait]
impl PmStore for PgStore {
    async fn create_pm_template(&self, t: &PmTemplate) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO pm_templates (id, org_id, name, checklist_template, estimated_minutes,
                                       required_skills, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            t.id,
            t.org_id,
            t.name,
            t.checklist_template,
            t.estimated_minutes as i32,
            &t.required_skills,
            t.created_at
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn pm_templates(&self, org_id: Uuid) -> StoreResult<Vec<PmTemplate>> {
        let mut tx = self.pm_tx(Some(org_id)).await?;
        let rows = sqlx::query!(
            "SELECT id, name, checklist_template, estimated_minutes, required_skills, created_at
             FROM pm_templates WHERE org_id = $1 ORDER BY name, id",
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(PmTemplate {
                    id: r.id,
                    org_id,
                    name: r.name,
                    checklist_template: r.checklist_template,
                    estimated_minutes: count(r.estimated_minutes, "estimated_minutes")?,
                    required_skills: r.required_skills,
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    async fn create_pm_schedule(&self, s: &NewPmSchedule) -> StoreResult<()> {
        let rule =
            serde_json::to_value(&s.rule).map_err(|e| StoreError::Invalid(format!("rule: {e}")))?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let found = sqlx::query!(
            r#"SELECT EXISTS (SELECT 1 FROM assets WHERE id = $1 AND org_id = $3) AS "asset!",
                      EXISTS (SELECT 1 FROM pm_templates WHERE id = $2 AND org_id = $3)
                          AS "template!""#,
            s.asset_id,
            s.template_id,
            s.org_id
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if !found.asset {
            return Err(StoreError::NotFound(format!("asset {}", s.asset_id)));
        }
        if !found.template {
            return Err(StoreError::NotFound(format!("template {}", s.template_id)));
        }
        sqlx::query!(
            "INSERT INTO pm_schedules (id, org_id, asset_id, template_id, rule, anchor,
                                       horizon_days, start_date, assignee, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            s.id,
            s.org_id,
            s.asset_id,
            s.template_id,
            rule,
            anchor_str(s.anchor),
            s.horizon_days as i32,
            s.start_date,
            s.assignee,
            s.created_at
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn pm_schedules(
        &self,
        org_id: Option<Uuid>,
        id: Option<Uuid>,
    ) -> StoreResult<Vec<PmSchedule>> {
        let mut tx = self.pm_tx(org_id).await?;
        let rows = sqlx::query!(
            r#"SELECT s.id, s.org_id, s.asset_id, s.template_id, s.rule, s.anchor,
                      s.horizon_days, s.start_date, s.assignee, s.created_at,
                      s.last_due_date, s.last_completed_at,
                      a.name AS asset_name, si.id AS site_id, si.name AS site_name,
                      c.id AS customer_id, c.name AS customer_name, si.time_zone,
                      t.name AS template_name, t.checklist_template, t.estimated_minutes,
                      t.required_skills, t.created_at AS template_created_at
               FROM pm_schedules s
               JOIN assets a ON a.id = s.asset_id
               JOIN sites si ON si.id = a.site_id
               JOIN customers c ON c.id = si.customer_id
               JOIN pm_templates t ON t.id = s.template_id
               WHERE ($1::uuid IS NULL OR s.org_id = $1) AND ($2::uuid IS NULL OR s.id = $2)
               ORDER BY s.created_at, s.id"#,
            org_id,
            id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(PmSchedule {
                    schedule: NewPmSchedule {
                        id: r.id,
                        org_id: r.org_id,
                        asset_id: r.asset_id,
                        template_id: r.template_id,
                        rule: serde_json::from_value(r.rule).map_err(|e| {
                            StoreError::Invalid(format!("a stored PM rule does not parse: {e}"))
                        })?,
                        anchor: anchor(&r.anchor)?,
                        horizon_days: count(r.horizon_days, "horizon_days")?,
                        start_date: r.start_date,
                        assignee: r.assignee,
                        created_at: r.created_at,
                    },
                    last_due_date: r.last_due_date,
                    last_completed_at: r.last_completed_at,
                    asset_name: r.asset_name,
                    site_id: r.site_id,
                    site_name: r.site_name,
                    customer_id: r.customer_id,
                    customer_name: r.customer_name,
                    time_zone: r.time_zone,
                    template: PmTemplate {
                        id: r.template_id,
                        org_id: r.org_id,
                        name: r.template_name,
                        checklist_template: r.checklist_template,
                        estimated_minutes: count(r.estimated_minutes, "estimated_minutes")?,
                        required_skills: r.required_skills,
                        created_at: r.template_created_at,
                    },
                })
            })
            .collect()
    }

    async fn pm_occurrences(
        &self,
        org_id: Option<Uuid>,
        schedule: Option<Uuid>,
    ) -> StoreResult<Vec<PmOccurrence>> {
        let mut tx = self.pm_tx(org_id).await?;
        let rows = sqlx::query_as!(
            PmOccurrence,
            "SELECT schedule_id, due_date, org_id, job_id, checklist_id, parts_id,
                    scheduled_start, claimed_at, job_created_at, completed_at
             FROM pm_occurrences
             WHERE ($1::uuid IS NULL OR org_id = $1) AND ($2::uuid IS NULL OR schedule_id = $2)
             ORDER BY schedule_id, due_date",
            org_id,
            schedule
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows)
    }

    async fn pm_latest_occurrences(&self) -> StoreResult<Vec<PmOccurrence>> {
        sqlx::query_as!(
            PmOccurrence,
            "SELECT DISTINCT ON (schedule_id)
                    schedule_id, due_date, org_id, job_id, checklist_id, parts_id,
                    scheduled_start, claimed_at, job_created_at, completed_at
             FROM pm_occurrences ORDER BY schedule_id, due_date DESC"
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn claim_pm_occurrence(&self, o: &PmOccurrence) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let n = sqlx::query!(
            "INSERT INTO pm_occurrences (schedule_id, due_date, org_id, job_id, checklist_id,
                                         parts_id, scheduled_start, claimed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (schedule_id, due_date) DO NOTHING",
            o.schedule_id,
            o.due_date,
            o.org_id,
            o.job_id,
            o.checklist_id,
            o.parts_id,
            o.scheduled_start,
            o.claimed_at
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if n == 1 {
            sqlx::query!(
                "UPDATE pm_schedules SET last_due_date = $2
                 WHERE id = $1 AND (last_due_date IS NULL OR last_due_date < $2)",
                o.schedule_id,
                o.due_date
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(n == 1)
    }

    async fn take_over_pm_occurrences(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PmOccurrence>> {
        // Under READ COMMITTED a second taker waits for the first's row lock, then re-checks
        // `claimed_at < $1` on the row the first wrote (now `$2`), and skips it.
        sqlx::query_as!(
            PmOccurrence,
            "UPDATE pm_occurrences SET claimed_at = $2
             WHERE job_created_at IS NULL AND claimed_at < $1
             RETURNING schedule_id, due_date, org_id, job_id, checklist_id, parts_id,
                       scheduled_start, claimed_at, job_created_at, completed_at",
            stale_before,
            now
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn pm_job_created(
        &self,
        schedule_id: Uuid,
        due_date: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query!(
            "UPDATE pm_occurrences SET job_created_at = $3
             WHERE schedule_id = $1 AND due_date = $2 AND job_created_at IS NULL",
            schedule_id,
            due_date,
            at
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn pm_note_completions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let n = sqlx::query!(
            "UPDATE pm_occurrences o SET completed_at = coalesce(
                 (SELECT max(h.at) FROM job_status_history h
                  WHERE h.job_id = o.job_id AND h.to_status = 'completed'), $1)
             WHERE o.completed_at IS NULL AND o.job_created_at IS NOT NULL
               AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.job_id AND j.status = 'completed')",
            now
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if n > 0 {
            sqlx::query!(
                "UPDATE pm_schedules s SET last_completed_at = (
                     SELECT max(o.completed_at) FROM pm_occurrences o WHERE o.schedule_id = s.id)
                 WHERE s.id IN (SELECT schedule_id FROM pm_occurrences
                                WHERE completed_at IS NOT NULL)"
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(n)
    }
}
