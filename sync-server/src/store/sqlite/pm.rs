//! [`PmStore`] on SQLite (migrations/sqlite/0009): dates as 'YYYY-MM-DD' text, which sorts as the
//! dates do, times as microseconds, the rule and the skills as JSON text.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};
use uuid::Uuid;

use super::{Id, SqliteStore, timestamp};
use crate::store::pm::{NewPmSchedule, PmOccurrence, PmSchedule, PmStore, PmTemplate};
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

fn date(row: &Row<'_>, idx: usize) -> rusqlite::Result<NaiveDate> {
    let text: String = row.get(idx)?;
    text.parse()
        .map_err(|e| conversion(idx, format!("bad date {text:?}: {e}")))
}

fn opt_date(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<NaiveDate>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(_) => date(row, idx).map(Some),
    }
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| conversion(idx, format!("bad JSON {text:?}: {e}")))
}

fn anchor_str(a: schemas::api::PmAnchor) -> &'static str {
    match a {
        schemas::api::PmAnchor::Due => "due",
        schemas::api::PmAnchor::Completion => "completion",
    }
}

fn anchor(row: &Row<'_>, idx: usize) -> rusqlite::Result<schemas::api::PmAnchor> {
    match row.get::<_, String>(idx)?.as_str() {
        "due" => Ok(schemas::api::PmAnchor::Due),
        "completion" => Ok(schemas::api::PmAnchor::Completion),
        other => Err(conversion(idx, format!("unknown anchor {other:?}"))),
    }
}

const OCCURRENCE_COLUMNS: &str = "schedule_id, due_date, org_id, job_id, checklist_id, parts_id,
     scheduled_start, claimed_at, job_created_at, completed_at";

fn occurrence(r: &Row<'_>) -> rusqlite::Result<PmOccurrence> {
    Ok(PmOccurrence {
        schedule_id: r.get::<_, Id>(0)?.0,
        due_date: date(r, 1)?,
        org_id: r.get::<_, Id>(2)?.0,
        job_id: r.get::<_, Id>(3)?.0,
        checklist_id: r.get::<_, Id>(4)?.0,
        parts_id: r.get::<_, Id>(5)?.0,
        scheduled_start: timestamp(r, 6)?,
        claimed_at: timestamp(r, 7)?,
        job_created_at: opt_time(r, 8)?,
        completed_at: opt_time(r, 9)?,
    })
}

#[async_trait]
impl PmStore for SqliteStore {
    async fn create_pm_template(&self, t: &PmTemplate) -> StoreResult<()> {
        let t = t.clone();
        let skills = serde_json::to_string(&t.required_skills)
            .map_err(|e| StoreError::Invalid(format!("required_skills: {e}")))?;
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO pm_templates (id, org_id, name, checklist_template,
                                           estimated_minutes, required_skills, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    Id(t.id),
                    Id(t.org_id),
                    t.name,
                    t.checklist_template,
                    t.estimated_minutes,
                    skills,
                    micros(t.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn pm_templates(&self, org_id: Uuid) -> StoreResult<Vec<PmTemplate>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id, name, checklist_template, estimated_minutes, required_skills,
                            created_at
                     FROM pm_templates WHERE org_id = ?1 ORDER BY name, id",
                )?
                .query_map([Id(org_id)], |r| {
                    Ok(PmTemplate {
                        id: r.get::<_, Id>(0)?.0,
                        org_id,
                        name: r.get(1)?,
                        checklist_template: r.get(2)?,
                        estimated_minutes: r.get(3)?,
                        required_skills: json(r, 4)?,
                        created_at: timestamp(r, 5)?,
                    })
                })?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn create_pm_schedule(&self, s: &NewPmSchedule) -> StoreResult<()> {
        let s = s.clone();
        let rule = serde_json::to_string(&s.rule)
            .map_err(|e| StoreError::Invalid(format!("rule: {e}")))?;
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let owns = |sql: &str, id: Uuid| -> rusqlite::Result<bool> {
                Ok(tx
                    .query_row(sql, params![Id(id), Id(s.org_id)], |_| Ok(()))
                    .optional()?
                    .is_some())
            };
            if !owns(
                "SELECT 1 FROM assets WHERE id = ?1 AND org_id = ?2",
                s.asset_id,
            )? {
                return Err(StoreError::NotFound(format!("asset {}", s.asset_id)));
            }
            if !owns(
                "SELECT 1 FROM pm_templates WHERE id = ?1 AND org_id = ?2",
                s.template_id,
            )? {
                return Err(StoreError::NotFound(format!("template {}", s.template_id)));
            }
            tx.execute(
                "INSERT INTO pm_schedules (id, org_id, asset_id, template_id, rule, anchor,
                                           horizon_days, start_date, assignee, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    Id(s.id),
                    Id(s.org_id),
                    Id(s.asset_id),
                    Id(s.template_id),
                    rule,
                    anchor_str(s.anchor),
                    s.horizon_days,
                    s.start_date.to_string(),
                    s.assignee,
                    micros(s.created_at)
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn pm_schedules(
        &self,
        org_id: Option<Uuid>,
        id: Option<Uuid>,
    ) -> StoreResult<Vec<PmSchedule>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT s.id, s.org_id, s.asset_id, s.template_id, s.rule, s.anchor,
                            s.horizon_days, s.start_date, s.assignee, s.created_at,
                            s.last_due_date, s.last_completed_at,
                            a.name, si.id, si.name, c.id, c.name, si.time_zone,
                            t.name, t.checklist_template, t.estimated_minutes, t.required_skills,
                            t.created_at
                     FROM pm_schedules s
                     JOIN assets a ON a.id = s.asset_id
                     JOIN sites si ON si.id = a.site_id
                     JOIN customers c ON c.id = si.customer_id
                     JOIN pm_templates t ON t.id = s.template_id
                     WHERE (?1 IS NULL OR s.org_id = ?1) AND (?2 IS NULL OR s.id = ?2)
                     ORDER BY s.created_at, s.id",
                )?
                .query_map(params![org_id.map(Id), id.map(Id)], |r| {
                    let org_id = r.get::<_, Id>(1)?.0;
                    Ok(PmSchedule {
                        schedule: NewPmSchedule {
                            id: r.get::<_, Id>(0)?.0,
                            org_id,
                            asset_id: r.get::<_, Id>(2)?.0,
                            template_id: r.get::<_, Id>(3)?.0,
                            rule: json(r, 4)?,
                            anchor: anchor(r, 5)?,
                            horizon_days: r.get(6)?,
                            start_date: date(r, 7)?,
                            assignee: r.get(8)?,
                            created_at: timestamp(r, 9)?,
                        },
                        last_due_date: opt_date(r, 10)?,
                        last_completed_at: opt_time(r, 11)?,
                        asset_name: r.get(12)?,
                        site_id: r.get::<_, Id>(13)?.0,
                        site_name: r.get(14)?,
                        customer_id: r.get::<_, Id>(15)?.0,
                        customer_name: r.get(16)?,
                        time_zone: r.get(17)?,
                        template: PmTemplate {
                            id: r.get::<_, Id>(3)?.0,
                            org_id,
                            name: r.get(18)?,
                            checklist_template: r.get(19)?,
                            estimated_minutes: r.get(20)?,
                            required_skills: json(r, 21)?,
                            created_at: timestamp(r, 22)?,
                        },
                    })
                })?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn pm_occurrences(
        &self,
        org_id: Option<Uuid>,
        schedule: Option<Uuid>,
    ) -> StoreResult<Vec<PmOccurrence>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {OCCURRENCE_COLUMNS} FROM pm_occurrences
                     WHERE (?1 IS NULL OR org_id = ?1) AND (?2 IS NULL OR schedule_id = ?2)
                     ORDER BY schedule_id, due_date"
                ))?
                .query_map(params![org_id.map(Id), schedule.map(Id)], occurrence)?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn pm_latest_occurrences(&self) -> StoreResult<Vec<PmOccurrence>> {
        self.call(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {OCCURRENCE_COLUMNS} FROM pm_occurrences o
                     WHERE due_date = (SELECT max(l.due_date) FROM pm_occurrences l
                                       WHERE l.schedule_id = o.schedule_id)
                     ORDER BY schedule_id"
                ))?
                .query_map([], occurrence)?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn claim_pm_occurrence(&self, o: &PmOccurrence) -> StoreResult<bool> {
        let o = o.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                &format!(
                    "INSERT INTO pm_occurrences ({OCCURRENCE_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL)
                     ON CONFLICT (schedule_id, due_date) DO NOTHING"
                ),
                params![
                    Id(o.schedule_id),
                    o.due_date.to_string(),
                    Id(o.org_id),
                    Id(o.job_id),
                    Id(o.checklist_id),
                    Id(o.parts_id),
                    micros(o.scheduled_start),
                    micros(o.claimed_at)
                ],
            )?;
            if n == 1 {
                tx.execute(
                    "UPDATE pm_schedules SET last_due_date = ?2
                     WHERE id = ?1 AND (last_due_date IS NULL OR last_due_date < ?2)",
                    params![Id(o.schedule_id), o.due_date.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn take_over_pm_occurrences(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<PmOccurrence>> {
        self.call(move |conn| {
            // One connection and an immediate transaction: nobody else claims in between.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let taken = tx
                .prepare(&format!(
                    "UPDATE pm_occurrences SET claimed_at = ?2
                     WHERE job_created_at IS NULL AND claimed_at < ?1
                     RETURNING {OCCURRENCE_COLUMNS}"
                ))?
                .query_map(params![micros(stale_before), micros(now)], occurrence)?
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(taken)
        })
        .await
    }

    async fn pm_job_created(
        &self,
        schedule_id: Uuid,
        due_date: NaiveDate,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.call(move |conn| {
            conn.execute(
                "UPDATE pm_occurrences SET job_created_at = ?3
                 WHERE schedule_id = ?1 AND due_date = ?2 AND job_created_at IS NULL",
                params![Id(schedule_id), due_date.to_string(), micros(at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn pm_note_completions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE pm_occurrences SET completed_at = coalesce(
                     (SELECT max(h.at) FROM job_status_history h
                      WHERE h.job_id = pm_occurrences.job_id AND h.to_status = 'completed'), ?1)
                 WHERE completed_at IS NULL AND job_created_at IS NOT NULL
                   AND EXISTS (SELECT 1 FROM jobs j
                               WHERE j.id = pm_occurrences.job_id AND j.status = 'completed')",
                [micros(now)],
            )?;
            if n > 0 {
                tx.execute(
                    "UPDATE pm_schedules SET last_completed_at = (
                         SELECT max(o.completed_at) FROM pm_occurrences o
                         WHERE o.schedule_id = pm_schedules.id)
                     WHERE id IN (SELECT schedule_id FROM pm_occurrences
                                  WHERE completed_at IS NOT NULL)",
                    [],
                )?;
            }
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }
}
