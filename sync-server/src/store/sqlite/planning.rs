//! [`PlanningStore`] on SQLite (migrations/sqlite/0012 and 0006): times as microseconds, skill
//! lists as JSON text.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};
use schemas::planning::{JobTypeRequirements, PlanningSettings, Point};
use uuid::Uuid;

use super::{Id, SqliteStore, timestamp};
use crate::store::planning::{PlanJob, PlanTechnician, PlanningStore, TimeBlock, point};
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

fn json_list(row: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
        }),
    }
}

const JOB_COLUMNS: &str = "j.id, j.title, j.status, j.scheduled_start, j.scheduled_end,
     s.lat, s.lon, j.assignees,
     (SELECT c.template FROM job_checklists c WHERE c.job_id = j.id LIMIT 1),
     t.estimated_minutes, t.required_skills
     FROM jobs j
     LEFT JOIN sites s ON s.id = j.site_id
     LEFT JOIN pm_occurrences o ON o.job_id = j.id
     LEFT JOIN pm_schedules ps ON ps.id = o.schedule_id
     LEFT JOIN pm_templates t ON t.id = ps.template_id";

fn plan_job(r: &Row<'_>) -> rusqlite::Result<PlanJob> {
    let Id(id) = r.get(0)?;
    Ok(PlanJob {
        id,
        title: r.get(1)?,
        status: r.get(2)?,
        scheduled_start: opt_time(r, 3)?,
        scheduled_end: opt_time(r, 4)?,
        at: point(r.get(5)?, r.get(6)?),
        assignees: json_list(r, 7)?,
        template: r.get(8)?,
        pm_minutes: r.get::<_, Option<u32>>(9)?,
        pm_skills: json_list(r, 10)?,
    })
}

#[async_trait]
impl PlanningStore for SqliteStore {
    async fn planning_settings(&self, org_id: Uuid) -> StoreResult<PlanningSettings> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT auto_assign, default_duration_min, speed_kmh
                     FROM planning_settings WHERE org_id = ?1",
                )?
                .query_row(params![Id(org_id)], |r| {
                    Ok(PlanningSettings {
                        auto_assign: r.get::<_, i64>(0)? != 0,
                        default_duration_min: r.get(1)?,
                        speed_kmh: r.get(2)?,
                    })
                })
                .optional()?
                .unwrap_or_default())
        })
        .await
    }

    async fn put_planning_settings(&self, org_id: Uuid, s: &PlanningSettings) -> StoreResult<()> {
        let s = s.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO planning_settings (org_id, auto_assign, default_duration_min, speed_kmh)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (org_id) DO UPDATE SET auto_assign = excluded.auto_assign,
                     default_duration_min = excluded.default_duration_min,
                     speed_kmh = excluded.speed_kmh",
                params![Id(org_id), s.auto_assign as i64, s.default_duration_min, s.speed_kmh],
            )?;
            Ok(())
        })
        .await
    }

    async fn job_types(&self, org_id: Uuid) -> StoreResult<Vec<JobTypeRequirements>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT template, skills, estimated_minutes FROM job_type_requirements
                     WHERE org_id = ?1 ORDER BY template",
                )?
                .query_map(params![Id(org_id)], |r| {
                    Ok(JobTypeRequirements {
                        template: r.get(0)?,
                        skills: json_list(r, 1)?,
                        estimated_minutes: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn put_job_type(&self, org_id: Uuid, t: &JobTypeRequirements) -> StoreResult<()> {
        let t = t.clone();
        let skills = serde_json::to_string(&t.skills)
            .map_err(|e| StoreError::Invalid(format!("skills: {e}")))?;
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO job_type_requirements (org_id, template, skills, estimated_minutes)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (org_id, template) DO UPDATE SET skills = excluded.skills,
                     estimated_minutes = excluded.estimated_minutes",
                params![Id(org_id), t.template, skills, t.estimated_minutes],
            )?;
            Ok(())
        })
        .await
    }

    async fn planning_jobs(
        &self,
        org_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PlanJob>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS}
                     WHERE j.org_id = ?1 AND j.sort_at >= ?2 AND j.sort_at < ?3
                     ORDER BY j.sort_at, j.id"
                ))?
                .query_map(params![Id(org_id), micros(from), micros(to)], plan_job)?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn planning_job(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<PlanJob>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} WHERE j.org_id = ?1 AND j.id = ?2"
                ))?
                .query_row(params![Id(org_id), Id(id)], plan_job)
                .optional()?)
        })
        .await
    }

    async fn planning_technicians(
        &self,
        org_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PlanTechnician>> {
        self.call(move |conn| {
            let mut techs = conn
                .prepare_cached(
                    "SELECT u.id, u.name, t.display_name, t.home_lat, t.home_lon,
                            (SELECT json_group_array(s.name) FROM technician_skills ts
                               JOIN skills s ON s.id = ts.skill_id WHERE ts.user_id = u.id)
                     FROM users u JOIN technicians t ON t.user_id = u.id
                     WHERE u.org_id = ?1 AND u.role = 'technician'
                     ORDER BY u.name",
                )?
                .query_map(params![Id(org_id)], |r| {
                    let Id(user_id) = r.get(0)?;
                    Ok(PlanTechnician {
                        user_id,
                        name: r.get(1)?,
                        display_name: r.get(2)?,
                        home: point(r.get(3)?, r.get(4)?),
                        skills: json_list(r, 5)?,
                        blocks: Vec::new(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let blocks = conn
                .prepare_cached(
                    "SELECT id, user_id, starts_at, ends_at, kind FROM technician_time_blocks
                     WHERE org_id = ?1 AND ends_at > ?2 AND starts_at < ?3
                     ORDER BY user_id, starts_at",
                )?
                .query_map(params![Id(org_id), micros(from), micros(to)], |r| {
                    let Id(id) = r.get(0)?;
                    let Id(user_id) = r.get(1)?;
                    Ok(TimeBlock {
                        id,
                        user_id,
                        starts_at: timestamp(r, 2)?,
                        ends_at: timestamp(r, 3)?,
                        kind: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            for b in blocks {
                if let Some(t) = techs.iter_mut().find(|t| t.user_id == b.user_id) {
                    t.blocks.push(b);
                }
            }
            Ok(techs)
        })
        .await
    }

    async fn add_time_block(&self, org_id: Uuid, b: &TimeBlock) -> StoreResult<()> {
        let b = b.clone();
        self.call(move |conn| {
            let n = conn.execute(
                "INSERT INTO technician_time_blocks (id, org_id, user_id, starts_at, ends_at, kind)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6
                 WHERE EXISTS (SELECT 1 FROM technicians WHERE user_id = ?3 AND org_id = ?2)",
                params![
                    Id(b.id),
                    Id(org_id),
                    Id(b.user_id),
                    micros(b.starts_at),
                    micros(b.ends_at),
                    b.kind
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("technician {}", b.user_id)));
            }
            Ok(())
        })
        .await
    }

    async fn delete_time_block(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool> {
        self.call(move |conn| {
            Ok(conn.execute(
                "DELETE FROM technician_time_blocks WHERE id = ?1 AND org_id = ?2",
                params![Id(id), Id(org_id)],
            )? > 0)
        })
        .await
    }

    async fn set_home(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        home: Option<Point>,
    ) -> StoreResult<bool> {
        self.call(move |conn| {
            Ok(conn.execute(
                "UPDATE technicians SET home_lat = ?3, home_lon = ?4
                 WHERE user_id = ?1 AND org_id = ?2",
                params![
                    Id(user_id),
                    Id(org_id),
                    home.map(|p| p.lat),
                    home.map(|p| p.lon)
                ],
            )? > 0)
        })
        .await
    }

    async fn site_location(&self, org_id: Uuid, site_id: Uuid) -> StoreResult<Option<Point>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached("SELECT lat, lon FROM sites WHERE id = ?1 AND org_id = ?2")?
                .query_row(params![Id(site_id), Id(org_id)], |r| {
                    Ok(point(r.get(0)?, r.get(1)?))
                })
                .optional()?
                .flatten())
        })
        .await
    }

    async fn set_site_location(
        &self,
        org_id: Uuid,
        site_id: Uuid,
        at: Option<Point>,
    ) -> StoreResult<bool> {
        self.call(move |conn| {
            Ok(conn.execute(
                "UPDATE sites SET lat = ?3, lon = ?4 WHERE id = ?1 AND org_id = ?2",
                params![
                    Id(site_id),
                    Id(org_id),
                    at.map(|p| p.lat),
                    at.map(|p| p.lon)
                ],
            )? > 0)
        })
        .await
    }
}
