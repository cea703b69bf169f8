//! Query tables: the rows screens read, derived from the documents.
//!
//! [`update_for`] rewrites a document's rows inside the transaction that persists its change;
//! [`Replica::rebuild_queries`] derives every row again from the documents. Both go through the
//! same row functions, so an incremental update and a rebuild cannot disagree.

use automerge::AutoCommit;
use chrono::{DateTime, Local, NaiveTime, TimeZone, Utc};
use rusqlite::{Connection, params};
use schemas::{DocKind, JobStatus, Priority};
use serde::Serialize;
use uuid::Uuid;

use crate::{Error, Replica, Result};

/// Rewrite the query rows derived from one document. A document that no longer decodes (a bug
/// in a peer) loses its rows instead of failing the write: its changes are still kept.
pub(crate) fn update_for(
    conn: &Connection,
    id: Uuid,
    kind: DocKind,
    doc: &AutoCommit,
) -> Result<()> {
    let sid = id.to_string();
    match kind {
        DocKind::Job => {
            conn.prepare_cached("DELETE FROM q_jobs WHERE id = ?1")?
                .execute([&sid])?;
            let Ok(job) = schemas::job::read(doc) else {
                warn_undecodable(id, kind);
                return insert_broken_job(conn, &sid, doc);
            };
            conn.prepare_cached(
                "INSERT INTO q_jobs (id, title, status, priority, scheduled_start, customer, site, assignees, signed_off)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                sid,
                job.title,
                job.status.as_str(),
                job.priority.as_str(),
                job.schedule.map(|s| schemas::job::ts(s.start)),
                job.customer.name,
                job.site.name,
                job.assignees.join(","),
                job.signoff.is_some(),
            ])?;
        }
        DocKind::Checklist => {
            conn.prepare_cached("DELETE FROM q_checklists WHERE checklist_id = ?1")?
                .execute([&sid])?;
            let Ok(c) = schemas::checklist::read(doc) else {
                return {
                    warn_undecodable(id, kind);
                    Ok(())
                };
            };
            let p = c.progress();
            conn.prepare_cached(
                "INSERT INTO q_checklists (checklist_id, job_id, total, done, required_total, required_done)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![sid, c.job_id.to_string(), p.total, p.done, p.required_total, p.required_done])?;
        }
        DocKind::Parts => {
            conn.prepare_cached("DELETE FROM q_parts WHERE parts_id = ?1")?
                .execute([&sid])?;
            let Ok(parts) = schemas::parts::read(doc) else {
                return {
                    warn_undecodable(id, kind);
                    Ok(())
                };
            };
            let mut insert = conn.prepare_cached(
                "INSERT INTO q_parts (parts_id, line_id, job_id, sku, description, qty, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for line in parts.lines.values() {
                insert.execute(params![
                    sid,
                    line.id,
                    parts.job_id.to_string(),
                    line.sku,
                    line.description,
                    line.qty,
                    line.source
                ])?;
            }
        }
        DocKind::Photo => {
            conn.prepare_cached("DELETE FROM q_photos WHERE id = ?1")?
                .execute([&sid])?;
            let Ok(p) = schemas::photo::read(doc) else {
                return {
                    warn_undecodable(id, kind);
                    Ok(())
                };
            };
            let upload = serde_json::to_value(p.upload)?;
            conn.prepare_cached(
                "INSERT INTO q_photos (id, job_id, checklist_item, sha256, upload) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![sid, p.job_id.to_string(), p.checklist_item, p.sha256, upload.as_str()])?;
        }
    }
    Ok(())
}

/// A job row for a job document that does not decode: what can be read of it, and why the rest
/// cannot, so the job stays in the list (marked broken) instead of disappearing.
fn insert_broken_job(conn: &Connection, sid: &str, doc: &AutoCommit) -> Result<()> {
    let json = schemas::read_json(doc);
    let text = |k: &str| json[k].as_str().unwrap_or_default().to_string();
    let title = Some(text("title"))
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "(unreadable job)".into());
    let status = JobStatus::parse(&text("status")).unwrap_or(JobStatus::OnHold);
    let priority = Priority::parse(&text("priority")).unwrap_or_default();
    let mut reasons = schemas::validate::diagnose(DocKind::Job, &json);
    if reasons.is_empty() {
        reasons.push("the document does not decode".into());
    }
    conn.prepare_cached(
        "INSERT INTO q_jobs (id, title, status, priority, scheduled_start, customer, site, assignees, signed_off, broken)
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, '', 0, ?7)",
    )?
    .execute(params![
        sid,
        title,
        status.as_str(),
        priority.as_str(),
        json["customer"]["name"].as_str().unwrap_or_default(),
        json["site"]["name"].as_str().unwrap_or_default(),
        reasons.join("; "),
    ])?;
    Ok(())
}

fn warn_undecodable(id: Uuid, kind: DocKind) {
    tracing::warn!(%id, %kind, "document does not decode; its query rows are left out");
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Doc(e.into())
    }
}

/// Which jobs to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFilter {
    All,
    /// Scheduled today (device's local day), or unscheduled and still open.
    Today,
    /// Scheduled after today.
    Upcoming,
    Status(JobStatus),
}

/// One row of the job list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobSummary {
    pub id: Uuid,
    pub title: String,
    pub status: JobStatus,
    pub priority: Priority,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub customer: String,
    pub site: String,
    pub checklist_done: u32,
    pub checklist_total: u32,
    pub parts_lines: u32,
    pub signed_off: bool,
    /// Local changes of the job's documents the server has not acknowledged yet.
    pub unsynced: u32,
    /// Set when the job's document cannot be read: why. The server repairs such documents; the
    /// job stays listed meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

impl Replica {
    /// The job list, soonest first (unscheduled last), then by priority.
    pub fn list_jobs(&self, filter: JobFilter) -> Result<Vec<JobSummary>> {
        let (start, end) = local_day_bounds(self.now());
        let (clause, args): (&str, Vec<String>) = match filter {
            JobFilter::All => ("1", vec![]),
            JobFilter::Today => (
                "((j.scheduled_start >= ?1 AND j.scheduled_start < ?2)
                  OR (j.scheduled_start IS NULL AND j.status NOT IN ('completed', 'cancelled')))",
                vec![schemas::job::ts(start), schemas::job::ts(end)],
            ),
            JobFilter::Upcoming => ("j.scheduled_start >= ?1", vec![schemas::job::ts(end)]),
            JobFilter::Status(s) => ("j.status = ?1", vec![s.as_str().to_string()]),
        };
        let sql = format!(
            "SELECT j.id, j.title, j.status, j.priority, j.scheduled_start, j.customer, j.site, j.signed_off,
                    coalesce(c.done, 0), coalesce(c.total, 0),
                    (SELECT count(*) FROM q_parts p WHERE p.job_id = j.id), j.broken,
                    (SELECT count(*) FROM unacked u JOIN documents d ON d.id = u.doc_id
                     WHERE d.job_id = j.id)
             FROM q_jobs j LEFT JOIN q_checklists c ON c.job_id = j.id
             WHERE {clause}
             ORDER BY j.scheduled_start IS NULL, j.scheduled_start,
                      CASE j.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, j.id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, bool>(7)?,
                r.get::<_, u32>(8)?,
                r.get::<_, u32>(9)?,
                r.get::<_, u32>(10)?,
                r.get::<_, Option<String>>(11)?,
                r.get::<_, u32>(12)?,
            ))
        })?;
        let bad = |what: &str| Error::InvalidValue(format!("query table holds a bad {what}"));
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                title,
                status,
                priority,
                start,
                customer,
                site,
                signed_off,
                done,
                total,
                lines,
                broken,
                unsynced,
            ) = row?;
            out.push(JobSummary {
                id: Uuid::parse_str(&id).map_err(|_| bad("id"))?,
                title,
                status: JobStatus::parse(&status).ok_or_else(|| bad("status"))?,
                priority: Priority::parse(&priority).ok_or_else(|| bad("priority"))?,
                scheduled_start: start
                    .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.to_utc()))
                    .transpose()
                    .map_err(|_| bad("time"))?,
                customer,
                site,
                checklist_done: done,
                checklist_total: total,
                parts_lines: lines,
                signed_off,
                unsynced,
                broken,
            });
        }
        Ok(out)
    }

    /// The title of job `id`, when it is a job the device holds.
    pub fn job_title(&self, id: Uuid) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached("SELECT title FROM q_jobs WHERE id = ?1")?
            .query_row([id.to_string()], |r| r.get(0))
            .optional()?)
    }

    /// Local changes of job `id`'s documents the server has not acknowledged yet.
    pub fn unsynced_changes(&self, id: Uuid) -> Result<u32> {
        Ok(self.conn.prepare_cached(
            "SELECT count(*) FROM unacked u JOIN documents d ON d.id = u.doc_id WHERE d.job_id = ?1",
        )?
        .query_row([id.to_string()], |r| r.get(0))?)
    }

    /// SQLite's `data_version`: it changes when another connection (another thread or process
    /// on the same data dir, such as the sync loop) committed, so a screen knows to read again.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Derive every query row again from the documents.
    pub fn rebuild_queries(&mut self) -> Result<()> {
        // Under the write lock, so the documents read are the ones the rows are written for.
        self.write(|r| {
            let docs = r.documents()?;
            for d in &docs {
                r.loaded(d.id)?;
            }
            r.conn.execute_batch("DELETE FROM q_jobs; DELETE FROM q_checklists; DELETE FROM q_parts; DELETE FROM q_photos;")?;
            for d in &docs {
                let l = r.docs.loaded.get(&d.id).expect("loaded above");
                update_for(&r.conn, d.id, d.kind, &l.doc)?;
            }
            Ok(())
        })
    }

    /// Every query row, in a stable order, for comparing a replica's tables with a rebuild.
    pub fn query_tables_dump(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for sql in [
            "SELECT 'job', id, title, status, priority, scheduled_start, customer, site, assignees, signed_off FROM q_jobs ORDER BY id",
            "SELECT 'checklist', checklist_id, job_id, total, done, required_total, required_done FROM q_checklists ORDER BY checklist_id",
            "SELECT 'part', parts_id, line_id, job_id, sku, description, qty, source FROM q_parts ORDER BY parts_id, line_id",
            "SELECT 'photo', id, job_id, checklist_item, sha256, upload FROM q_photos ORDER BY id",
        ] {
            let mut stmt = self.conn.prepare(sql)?;
            let n = stmt.column_count();
            let rows = stmt.query_map([], |r| {
                let cols: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).map(|v| format!("{v:?}"))))
                    .collect();
                Ok(cols.join("|"))
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }
}

/// The current local day as a UTC range.
fn local_day_bounds(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let local = now.with_timezone(&Local).date_naive();
    let start = Local
        .from_local_datetime(&local.and_time(NaiveTime::MIN))
        .earliest()
        .map(|t| t.to_utc())
        .unwrap_or(now);
    (start, start + chrono::Duration::days(1))
}
