//! [`PlanningStore`] on Postgres (migrations/postgres/0012 and 0006). Reads run in a tenant
//! transaction (row-level security, see `records.rs`); writes name the org in their conditions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemas::planning::{JobTypeRequirements, PlanningSettings, Point};
use uuid::Uuid;

use super::records::tenant_tx;
use super::{PgStore, db_error};
use crate::store::planning::{PlanJob, PlanTechnician, PlanningStore, TimeBlock, point};
use crate::store::{StoreError, StoreResult};

fn minutes(n: Option<i32>) -> Option<u32> {
    n.and_then(|n| u32::try_from(n).ok())
}

fn assignees(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("a job's assignees do not parse: {e}")))
}

#[async_trait]
impl PlanningStore for PgStore {
    async fn planning_settings(&self, org_id: Uuid) -> StoreResult<PlanningSettings> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let row = sqlx::query!(
            "SELECT auto_assign, default_duration_min, speed_kmh
             FROM planning_settings WHERE org_id = $1",
            org_id
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(row
            .map(|r| PlanningSettings {
                auto_assign: r.auto_assign,
                default_duration_min: r.default_duration_min.max(1) as u32,
                speed_kmh: r.speed_kmh,
            })
            .unwrap_or_default())
    }

    async fn put_planning_settings(&self, org_id: Uuid, s: &PlanningSettings) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO planning_settings (org_id, auto_assign, default_duration_min, speed_kmh)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (org_id) DO UPDATE SET auto_assign = excluded.auto_assign,
                 default_duration_min = excluded.default_duration_min,
                 speed_kmh = excluded.speed_kmh",
            org_id,
            s.auto_assign,
            s.default_duration_min as i32,
            s.speed_kmh
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn job_types(&self, org_id: Uuid) -> StoreResult<Vec<JobTypeRequirements>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            "SELECT template, skills, estimated_minutes FROM job_type_requirements
             WHERE org_id = $1 ORDER BY template",
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| JobTypeRequirements {
                template: r.template,
                skills: r.skills,
                estimated_minutes: minutes(r.estimated_minutes),
            })
            .collect())
    }

    async fn put_job_type(&self, org_id: Uuid, t: &JobTypeRequirements) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO job_type_requirements (org_id, template, skills, estimated_minutes)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (org_id, template) DO UPDATE SET skills = excluded.skills,
                 estimated_minutes = excluded.estimated_minutes",
            org_id,
            t.template,
            &t.skills,
            t.estimated_minutes.map(|m| m as i32)
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn planning_jobs(
        &self,
        org_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PlanJob>> {
        self.plan_jobs(org_id, None, Some((from, to))).await
    }

    async fn planning_job(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<PlanJob>> {
        Ok(self.plan_jobs(org_id, Some(id), None).await?.pop())
    }

    async fn planning_technicians(
        &self,
        org_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PlanTechnician>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let techs = sqlx::query!(
            r#"SELECT u.id, u.name, t.display_name, t.home_lat, t.home_lon,
                      ARRAY(SELECT s.name FROM technician_skills ts JOIN skills s ON s.id = ts.skill_id
                            WHERE ts.user_id = u.id ORDER BY s.name) AS "skills!"
               FROM users u JOIN technicians t ON t.user_id = u.id
               WHERE u.org_id = $1 AND u.role = 'technician'
               ORDER BY u.name"#,
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let blocks = sqlx::query!(
            "SELECT id, user_id, starts_at, ends_at, kind FROM technician_time_blocks
             WHERE org_id = $1 AND ends_at > $2 AND starts_at < $3
             ORDER BY user_id, starts_at",
            org_id,
            from,
            to
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let mut out: Vec<PlanTechnician> = techs
            .into_iter()
            .map(|r| PlanTechnician {
                user_id: r.id,
                name: r.name,
                display_name: r.display_name,
                home: point(r.home_lat, r.home_lon),
                skills: r.skills,
                blocks: Vec::new(),
            })
            .collect();
        for b in blocks {
            if let Some(t) = out.iter_mut().find(|t| t.user_id == b.user_id) {
                t.blocks.push(TimeBlock {
                    id: b.id,
                    user_id: b.user_id,
                    starts_at: b.starts_at,
                    ends_at: b.ends_at,
                    kind: b.kind,
                });
            }
        }
        Ok(out)
    }

    async fn add_time_block(&self, org_id: Uuid, b: &TimeBlock) -> StoreResult<()> {
        let n = sqlx::query!(
            "INSERT INTO technician_time_blocks (id, org_id, user_id, starts_at, ends_at, kind)
             SELECT $1, $2, $3, $4, $5, $6
             WHERE EXISTS (SELECT 1 FROM technicians WHERE user_id = $3 AND org_id = $2)",
            b.id,
            org_id,
            b.user_id,
            b.starts_at,
            b.ends_at,
            b.kind
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("technician {}", b.user_id)));
        }
        Ok(())
    }

    async fn delete_time_block(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool> {
        Ok(sqlx::query!(
            "DELETE FROM technician_time_blocks WHERE id = $1 AND org_id = $2",
            id,
            org_id
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected()
            > 0)
    }

    async fn set_home(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        home: Option<Point>,
    ) -> StoreResult<bool> {
        Ok(sqlx::query!(
            "UPDATE technicians SET home_lat = $3, home_lon = $4
             WHERE user_id = $1 AND org_id = $2",
            user_id,
            org_id,
            home.map(|p| p.lat),
            home.map(|p| p.lon)
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected()
            > 0)
    }

    async fn site_location(&self, org_id: Uuid, site_id: Uuid) -> StoreResult<Option<Point>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let row = sqlx::query!(
            "SELECT lat, lon FROM sites WHERE id = $1 AND org_id = $2",
            site_id,
            org_id
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(row.and_then(|r| point(r.lat, r.lon)))
    }

    async fn set_site_location(
        &self,
        org_id: Uuid,
        site_id: Uuid,
        at: Option<Point>,
    ) -> StoreResult<bool> {
        Ok(sqlx::query!(
            "UPDATE sites SET lat = $3, lon = $4 WHERE id = $1 AND org_id = $2",
            site_id,
            org_id,
            at.map(|p| p.lat),
            at.map(|p| p.lon)
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected()
            > 0)
    }
}

impl PgStore {
    /// The jobs a plan reads, in `sort_at` order: one job (`id`) or those whose `sort_at` falls
    /// in `window` (the day's jobs for routes, the job itself for suggestions).
    async fn plan_jobs(
        &self,
        org_id: Uuid,
        id: Option<Uuid>,
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> StoreResult<Vec<PlanJob>> {
        let (from, to) = window.unzip();
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            r#"SELECT j.id, j.title, j.status, j.scheduled_start, j.scheduled_end,
                      s.lat AS "lat?", s.lon AS "lon?", j.assignees,
                      (SELECT c.template FROM job_checklists c WHERE c.job_id = j.id LIMIT 1)
                          AS "template?",
                      t.estimated_minutes AS "pm_minutes?", t.required_skills AS "pm_skills?"
               FROM jobs j
               LEFT JOIN sites s ON s.id = j.site_id
               LEFT JOIN pm_occurrences o ON o.job_id = j.id
               LEFT JOIN pm_schedules ps ON ps.id = o.schedule_id
               LEFT JOIN pm_templates t ON t.id = ps.template_id
               WHERE j.org_id = $1
                 AND ($2::uuid IS NULL OR j.id = $2)
                 AND ($3::timestamptz IS NULL OR j.sort_at >= $3)
                 AND ($4::timestamptz IS NULL OR j.sort_at < $4)
               ORDER BY j.sort_at, j.id"#,
            org_id,
            id,
            from,
            to
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.into_iter()
            .map(|r| {
                Ok(PlanJob {
                    id: r.id,
                    title: r.title,
                    status: r.status,
                    scheduled_start: r.scheduled_start,
                    scheduled_end: r.scheduled_end,
                    at: point(r.lat, r.lon),
                    assignees: assignees(&r.assignees)?,
                    template: r.template,
                    pm_minutes: minutes(r.pm_minutes),
                    pm_skills: r.pm_skills.unwrap_or_default(),
                })
            })
            .collect()
    }
}
