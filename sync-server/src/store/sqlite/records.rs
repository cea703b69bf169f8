//! [`Records`] on SQLite: the projection's writes and the dispatcher's reads, in the terms of
//! migrations/sqlite/0006 (UUIDs as text, times as microseconds).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use uuid::Uuid;

use super::{Id, SqliteStore, doc_meta, stored_state, timestamp};
use crate::projection::rows::{self, ChecklistRows, DocRows, PartsRows, PhotoRow, Take};
use crate::store::records::{
    self, Asset, CatalogItem, Changed, Customer, JobFilter, JobListRow, Position, Presence,
    Records, Site, StockLocation, StockRow, StoredTemplate, Technician, TechnicianRow, Unprojected,
};
use crate::store::{StoreError, StoreResult, StoredDoc};

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn opt_time(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(_) => timestamp(row, idx).map(Some),
    }
}

fn position(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    tx.prepare_cached("SELECT upto_seq FROM projection_state WHERE name = 'rows'")?
        .query_row([], |r| r.get(0))
}

fn write_job(tx: &Transaction<'_>, rows: &DocRows) -> StoreResult<()> {
    let DocRows::Job {
        job,
        history,
        signature,
    } = rows
    else {
        return Ok(());
    };
    let known: Option<i64> = tx
        .query_row("SELECT number FROM jobs WHERE id = ?1", [Id(job.id)], |r| {
            r.get(0)
        })
        .optional()?;
    let number = match known {
        Some(n) => n,
        None => tx
            .prepare_cached(
                "INSERT INTO org_counters (org_id, next_job_number) VALUES (?1, 2)
             ON CONFLICT (org_id) DO UPDATE SET next_job_number = next_job_number + 1
             RETURNING next_job_number - 1",
            )?
            .query_row([Id(job.org_id)], |r| r.get(0))?,
    };
    tx.prepare_cached(
        "INSERT INTO jobs (id, org_id, number, title, priority, status, scheduled_start,
                           scheduled_end, sort_at, customer_id, customer_name, site_id, site_name,
                           asset_id, asset_name, assignees, signed_off, follow_up_of, created_at,
                           created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                 (SELECT id FROM customers WHERE id = ?10 AND org_id = ?2), ?11,
                 (SELECT id FROM sites WHERE id = ?12 AND org_id = ?2), ?13,
                 (SELECT id FROM assets WHERE id = ?14 AND org_id = ?2), ?15, ?16, ?17, ?18,
                 ?19, ?20)
         ON CONFLICT (id) DO UPDATE SET
             title = excluded.title, priority = excluded.priority, status = excluded.status,
             scheduled_start = excluded.scheduled_start, scheduled_end = excluded.scheduled_end,
             sort_at = excluded.sort_at, customer_id = excluded.customer_id,
             customer_name = excluded.customer_name, site_id = excluded.site_id,
             site_name = excluded.site_name, asset_id = excluded.asset_id,
             asset_name = excluded.asset_name, assignees = excluded.assignees,
             signed_off = excluded.signed_off, follow_up_of = excluded.follow_up_of,
             created_at = excluded.created_at, created_by = excluded.created_by",
    )?
    .execute(params![
        Id(job.id),
        Id(job.org_id),
        number,
        job.title,
        job.priority,
        job.status,
        job.scheduled_start.map(micros),
        job.scheduled_end.map(micros),
        micros(job.sort_at),
        job.customer_id.map(Id),
        job.customer_name,
        job.site_id.map(Id),
        job.site_name,
        job.asset_id.map(Id),
        job.asset_name,
        job.assignees,
        i64::from(job.signed_off),
        job.follow_up_of.map(Id),
        micros(job.created_at),
        job.created_by,
    ])?;
    tx.prepare_cached("DELETE FROM job_status_history WHERE job_id = ?1")?
        .execute([Id(job.id)])?;
    for h in history {
        tx.prepare_cached(
            "INSERT INTO job_status_history (org_id, job_id, position, from_status, to_status,
                                             by_name, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            Id(job.org_id),
            Id(job.id),
            h.position,
            h.from,
            h.to,
            h.by,
            micros(h.at)
        ])?;
    }
    tx.prepare_cached("DELETE FROM signatures WHERE job_id = ?1")?
        .execute([Id(job.id)])?;
    if let Some(s) = signature {
        tx.prepare_cached(
            "INSERT INTO signatures (job_id, org_id, signer_name, signed_at, summary_sha256,
                                     blob_sha256, by_name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            Id(job.id),
            Id(job.org_id),
            s.signer_name,
            micros(s.signed_at),
            s.summary_sha256,
            s.blob_sha256,
            s.by
        ])?;
    }
    Ok(())
}

fn write_checklist(tx: &Transaction<'_>, c: &ChecklistRows) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO job_checklists (id, org_id, job_id, template, title)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET template = excluded.template, title = excluded.title",
    )?
    .execute(params![
        Id(c.id),
        Id(c.org_id),
        Id(c.job_id),
        c.template,
        c.title
    ])?;
    tx.prepare_cached("DELETE FROM checklist_responses WHERE checklist_id = ?1")?
        .execute([Id(c.id)])?;
    for item in &c.items {
        tx.prepare_cached(
            "INSERT INTO checklist_responses (org_id, job_id, checklist_id, position, item_id,
                                              label, kind, required, value, by_name, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            Id(c.org_id),
            Id(c.job_id),
            Id(c.id),
            item.position,
            item.item_id,
            item.label,
            item.kind,
            i64::from(item.required),
            item.value.as_ref().map(|v| v.to_string()),
            item.by,
            item.at.map(micros),
        ])?;
    }
    Ok(())
}

/// The stock location a line takes from: the one its `source` names, or the van of the
/// technician who added it.
fn line_location(
    tx: &Transaction<'_>,
    org_id: Uuid,
    line: &rows::PartRow,
) -> rusqlite::Result<Option<Uuid>> {
    let found: Option<Id> = match &line.source {
        Some(code) => tx
            .prepare_cached("SELECT id FROM stock_locations WHERE org_id = ?1 AND code = ?2")?
            .query_row(params![Id(org_id), code], |r| r.get(0))
            .optional()?,
        None => tx
            .prepare_cached(
                "SELECT l.id FROM stock_locations l JOIN users u ON u.id = l.technician_id
                 WHERE l.org_id = ?1 AND l.kind = 'van' AND u.name = ?2",
            )?
            .query_row(params![Id(org_id), line.by], |r| r.get(0))
            .optional()?,
    };
    Ok(found.map(|id| id.0))
}

fn write_parts(tx: &Transaction<'_>, p: &PartsRows, at: DateTime<Utc>) -> StoreResult<()> {
    tx.prepare_cached("DELETE FROM job_parts WHERE parts_id = ?1")?
        .execute([Id(p.id)])?;
    let mut wanted = Vec::new();
    for line in &p.lines {
        let location = line_location(tx, p.org_id, line)?;
        let prices: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT unit_price_cents, unit_cost_cents FROM parts_catalog
                 WHERE org_id = ?1 AND sku = ?2",
            )?
            .query_row(params![Id(p.org_id), line.sku], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        tx.prepare_cached(
            "INSERT INTO job_parts (org_id, job_id, parts_id, line_id, sku, description, qty, unit,
                                    location_id, unit_price_cents, unit_cost_cents, by_name, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            Id(p.org_id),
            Id(p.job_id),
            Id(p.id),
            line.line_id,
            line.sku,
            line.description,
            line.qty,
            line.unit,
            location.map(Id),
            prices.map(|p| p.0),
            prices.map(|p| p.1),
            line.by,
            micros(line.at),
        ])?;
        if let Some(location_id) = location {
            wanted.push(Take {
                line_id: line.line_id.clone(),
                location_id,
                sku: line.sku.clone(),
                qty: -line.qty,
            });
        }
    }
    let taken = tx
        .prepare_cached(
            "SELECT line_id, location_id, sku, SUM(qty) FROM stock_movements
             WHERE job_id = ?1 AND reason = 'job_use' GROUP BY line_id, location_id, sku",
        )?
        .query_map([Id(p.job_id)], |r| {
            Ok(Take {
                line_id: r.get(0)?,
                location_id: r.get::<_, Id>(1)?.0,
                sku: r.get(2)?,
                qty: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for d in rows::stock_deltas(&wanted, &taken) {
        move_stock(
            tx,
            p.org_id,
            d.location_id,
            &d.sku,
            d.qty,
            "job_use",
            Some((p.job_id, &d.line_id)),
            at,
        )?;
    }
    Ok(())
}

/// One stock movement and the level it changes, together.
#[allow(clippy::too_many_arguments)]
fn move_stock(
    tx: &Transaction<'_>,
    org_id: Uuid,
    location_id: Uuid,
    sku: &str,
    qty: f64,
    reason: &str,
    job_line: Option<(Uuid, &str)>,
    at: DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO stock_movements (id, org_id, location_id, sku, qty, reason, job_id, line_id, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        Id(Uuid::now_v7()),
        Id(org_id),
        Id(location_id),
        sku,
        qty,
        reason,
        job_line.map(|(job, _)| Id(job)),
        job_line.map(|(_, line)| line),
        micros(at),
    ])?;
    tx.prepare_cached(
        "INSERT INTO stock_levels (org_id, location_id, sku, on_hand) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (location_id, sku) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
    )?
    .execute(params![Id(org_id), Id(location_id), sku, qty])?;
    Ok(())
}

fn write_photo(tx: &Transaction<'_>, p: &PhotoRow) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO job_photos (id, org_id, job_id, sha256, size, mime, width, height,
                                            taken_at, lat, lon, checklist_item, caption, upload,
                                            review_state, review_by, review_at, review_note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        Id(p.id),
        Id(p.org_id),
        Id(p.job_id),
        p.sha256,
        p.size,
        p.mime,
        p.width,
        p.height,
        micros(p.taken_at),
        p.lat,
        p.lon,
        p.checklist_item,
        p.caption,
        p.upload,
        p.review_state,
        p.review_by,
        p.review_at.map(micros),
        p.review_note,
    ])?;
    Ok(())
}

/// Rows as text for the digest: each column's value, `|`-separated.
fn row_lines(
    tx: &Transaction<'_>,
    table: &str,
    sql: &str,
    org_id: Uuid,
) -> StoreResult<Vec<String>> {
    let mut stmt = tx.prepare(sql)?;
    let n = stmt.column_count();
    let lines = stmt
        .query_map([Id(org_id)], |r| {
            let mut line = table.to_string();
            for i in 0..n {
                line.push('|');
                match r.get_ref(i)? {
                    ValueRef::Null => line.push_str("null"),
                    ValueRef::Integer(v) => line.push_str(&v.to_string()),
                    ValueRef::Real(v) => line.push_str(&format!("{v:.6}")),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        line.push_str(&String::from_utf8_lossy(t))
                    }
                }
            }
            Ok(line)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines)
}

/// What the digest lists, per table: the projected rows of one org (`?1`).
const DIGEST: &[(&str, &str)] = &[
    (
        "jobs",
        "SELECT id, number, title, priority, status, scheduled_start, scheduled_end, sort_at,
                customer_id, customer_name, site_id, site_name, asset_id, asset_name, assignees,
                signed_off, follow_up_of, created_at, created_by FROM jobs WHERE org_id = ?1",
    ),
    (
        "job_status_history",
        "SELECT job_id, position, from_status, to_status, by_name, at
         FROM job_status_history WHERE org_id = ?1",
    ),
    (
        "job_checklists",
        "SELECT id, job_id, template, title FROM job_checklists WHERE org_id = ?1",
    ),
    (
        "checklist_responses",
        "SELECT checklist_id, item_id, job_id, position, label, kind, required, value, by_name,
                at FROM checklist_responses WHERE org_id = ?1",
    ),
    (
        "job_parts",
        "SELECT parts_id, line_id, job_id, sku, description, qty, unit, location_id,
                unit_price_cents, unit_cost_cents, by_name, at FROM job_parts WHERE org_id = ?1",
    ),
    (
        "job_photos",
        "SELECT id, job_id, sha256, size, mime, width, height, taken_at, lat, lon,
                checklist_item, caption, upload, review_state, review_by, review_at, review_note
         FROM job_photos WHERE org_id = ?1",
    ),
    (
        "signatures",
        "SELECT job_id, signer_name, signed_at, summary_sha256, blob_sha256, by_name
         FROM signatures WHERE org_id = ?1",
    ),
    (
        "job_stock",
        "SELECT job_id, line_id, location_id, sku, SUM(qty) FROM stock_movements
         WHERE org_id = ?1 AND reason = 'job_use'
         GROUP BY job_id, line_id, location_id, sku HAVING ABS(SUM(qty)) > 1e-9",
    ),
    (
        "stock_levels",
        "SELECT location_id, sku, on_hand FROM stock_levels WHERE org_id = ?1",
    ),
];

#[async_trait]
impl Records for SqliteStore {
    async fn unprojected(&self, limit: i64) -> StoreResult<Unprojected> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let from = position(&tx)?;
            let seqs: Vec<(i64, Id, String)> = tx
                .prepare_cached(
                    "SELECT seq, doc_id, hash FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?
                .query_map(params![from, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut out = Unprojected {
                from,
                to: seqs.last().map_or(from, |s| s.0),
                changes: seqs.len(),
                docs: Vec::new(),
            };
            let mut index = std::collections::HashMap::new();
            for (_, Id(doc), hash) in seqs {
                let at = match index.get(&doc) {
                    Some(&at) => at,
                    None => {
                        let meta = tx
                            .prepare_cached(
                                "SELECT id, org_id, kind, job_id FROM documents WHERE id = ?1",
                            )?
                            .query_row([Id(doc)], doc_meta)?;
                        out.docs.push(Changed {
                            meta,
                            hashes: Vec::new(),
                        });
                        index.insert(doc, out.docs.len() - 1);
                        out.docs.len() - 1
                    }
                };
                out.docs[at].hashes.push(hash);
            }
            Ok(out)
        })
        .await
    }

    async fn projection_states(&self, ids: &[Uuid]) -> StoreResult<Vec<StoredDoc>> {
        let ids = ids.to_vec();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let mut out = Vec::with_capacity(ids.len());
            for doc in ids {
                out.push(stored_state(&tx, doc)?);
            }
            Ok(out)
        })
        .await
    }

    async fn project(
        &self,
        from: i64,
        to: i64,
        rows: &[DocRows],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let rows = rows.to_vec();
        self.call(move |conn| {
            super::without_fsync(conn, |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if position(&tx)? != from {
                    return Ok(false);
                }
                // Jobs first: the other rows of a job refer to its row, and new jobs take their
                // numbers in the order of the log.
                for r in rows.iter().filter(|r| matches!(r, DocRows::Job { .. })) {
                    write_job(&tx, r)?;
                }
                for r in &rows {
                    match r {
                        DocRows::Job { .. } => {}
                        DocRows::Checklist(c) => write_checklist(&tx, c)?,
                        DocRows::Parts(p) => write_parts(&tx, p, at)?,
                        DocRows::Photo(p) => write_photo(&tx, p)?,
                    }
                }
                tx.prepare_cached(
                    "UPDATE projection_state SET upto_seq = ?1, updated_at = ?2
                     WHERE name = 'rows'",
                )?
                .execute(params![to, micros(at)])?;
                tx.commit()?;
                Ok(true)
            })
        })
        .await
    }

    async fn reset_projection(&self) -> StoreResult<()> {
        self.call(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(
                "UPDATE stock_levels SET on_hand = on_hand - (
                     SELECT COALESCE(SUM(m.qty), 0) FROM stock_movements m
                     WHERE m.reason = 'job_use' AND m.location_id = stock_levels.location_id
                       AND m.sku = stock_levels.sku);
                 DELETE FROM stock_movements WHERE reason = 'job_use';
                 DELETE FROM job_status_history;
                 DELETE FROM signatures;
                 DELETE FROM checklist_responses;
                 DELETE FROM job_checklists;
                 DELETE FROM job_parts;
                 DELETE FROM job_photos;
                 DELETE FROM jobs;
                 DELETE FROM org_counters;
                 UPDATE projection_state SET upto_seq = 0 WHERE name = 'rows';",
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn projection_position(&self) -> StoreResult<Position> {
        self.call(|conn| {
            let tx = conn.transaction()?;
            let projected = position(&tx)?;
            let log_end = tx
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes")?
                .query_row([], |r| r.get(0))?;
            Ok(Position { projected, log_end })
        })
        .await
    }

    async fn projection_digest(&self, org_id: Uuid) -> StoreResult<Vec<String>> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let mut lines = Vec::new();
            for (table, sql) in DIGEST {
                lines.extend(row_lines(&tx, table, sql, org_id)?);
            }
            lines.sort();
            Ok(lines)
        })
        .await
    }

    async fn list_jobs(&self, org_id: Uuid, f: &JobFilter) -> StoreResult<Vec<JobListRow>> {
        let f = f.clone();
        self.call(move |conn| {
            // `q` matches as a substring, its LIKE wildcards taken literally. The time bounds and
            // the cursor are written so that absent ones still let SQLite range-scan the
            // (org_id, sort_at, id) index (an `?4 IS NULL OR ...` would not).
            let q = f.q.as_ref().map(|q| {
                let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                format!("%{escaped}%")
            });
            let rows = conn
                .prepare_cached(
                    "SELECT j.id, j.number, j.title, j.status, j.priority, j.sort_at,
                            j.scheduled_start, j.scheduled_end, j.customer_id, j.customer_name,
                            j.site_id, j.site_name, j.assignees,
                            (SELECT c.template FROM job_checklists c WHERE c.job_id = j.id LIMIT 1),
                            (SELECT COUNT(*) FROM checklist_responses r WHERE r.job_id = j.id),
                            (SELECT COUNT(*) FROM checklist_responses r
                              WHERE r.job_id = j.id AND r.value IS NOT NULL),
                            (SELECT COUNT(*) FROM job_parts p WHERE p.job_id = j.id),
                            (SELECT COUNT(*) FROM job_photos p WHERE p.job_id = j.id),
                            j.signed_off,
                            EXISTS (SELECT 1 FROM audit_log a WHERE a.job_id = j.id AND a.flagged = 1
                                    AND NOT EXISTS (SELECT 1 FROM audit_log r
                                                    WHERE r.job_id = j.id AND r.action = 'resolved'
                                                      AND json_extract(r.before, '$.flag') = a.id))
                     FROM jobs j
                     WHERE j.org_id = ?1
                       AND (?2 IS NULL OR j.status = ?2)
                       AND (?3 IS NULL OR EXISTS (SELECT 1 FROM assignments s
                                                  WHERE s.job_id = j.id AND s.user_id = ?3))
                       AND j.sort_at >= COALESCE(?4, -9223372036854775808)
                       AND j.sort_at < COALESCE(?5, 9223372036854775807)
                       AND (?6 IS NULL OR j.title LIKE ?6 ESCAPE '\\'
                            OR j.customer_name LIKE ?6 ESCAPE '\\'
                            OR j.site_name LIKE ?6 ESCAPE '\\'
                            OR printf('WO-%06d', j.number) LIKE ?6 ESCAPE '\\')
                       AND (?7 IS NULL OR ?7 = EXISTS (SELECT 1 FROM audit_log a
                                                       WHERE a.job_id = j.id AND a.flagged = 1
                                                         AND NOT EXISTS (SELECT 1 FROM audit_log r
                                                    WHERE r.job_id = j.id AND r.action = 'resolved'
                                                      AND json_extract(r.before, '$.flag') = a.id)))
                       AND (j.sort_at, j.id) > (COALESCE(?8, -9223372036854775808), COALESCE(?9, ''))
                       AND (?11 IS NULL OR j.customer_id = ?11)
                     ORDER BY j.sort_at, j.id
                     LIMIT ?10",
                )?
                .query_map(
                    params![
                        Id(org_id),
                        f.status,
                        f.technician.map(Id),
                        f.from.map(micros),
                        f.to.map(micros),
                        q,
                        f.flagged.map(i64::from),
                        f.after.map(|a| micros(a.0)),
                        f.after.map(|a| Id(a.1)),
                        f.limit,
                        f.customer.map(Id),
                    ],
                    |r| {
                        let assignees: String = r.get(12)?;
                        Ok(JobListRow {
                            id: r.get::<_, Id>(0)?.0,
                            number: r.get(1)?,
                            title: r.get(2)?,
                            status: r.get(3)?,
                            priority: r.get(4)?,
                            sort_at: timestamp(r, 5)?,
                            scheduled_start: opt_time(r, 6)?,
                            scheduled_end: opt_time(r, 7)?,
                            customer_id: r.get::<_, Option<Id>>(8)?.map(|i| i.0),
                            customer_name: r.get(9)?,
                            site_id: r.get::<_, Option<Id>>(10)?.map(|i| i.0),
                            site_name: r.get(11)?,
                            assignees: serde_json::from_str(&assignees).unwrap_or_default(),
                            template: r.get(13)?,
                            items_total: r.get(14)?,
                            items_done: r.get(15)?,
                            parts: r.get(16)?,
                            photos: r.get(17)?,
                            signed_off: r.get::<_, i64>(18)? != 0,
                            flagged: r.get::<_, i64>(19)? != 0,
                        })
                    },
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn job_number(&self, org_id: Uuid, job_id: Uuid) -> StoreResult<Option<i64>> {
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT number FROM jobs WHERE id = ?1 AND org_id = ?2",
                    params![Id(job_id), Id(org_id)],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn technicians(&self, org_id: Uuid) -> StoreResult<Vec<TechnicianRow>> {
        self.call(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT u.id, u.name, COALESCE(t.display_name, u.name), t.phone,
                            (SELECT group_concat(s.name, char(31)) FROM (
                                SELECT s.name FROM technician_skills ts
                                JOIN skills s ON s.id = ts.skill_id
                                WHERE ts.user_id = u.id ORDER BY s.name) s),
                            (SELECT l.id FROM stock_locations l
                              WHERE l.technician_id = u.id AND l.kind = 'van')
                     FROM users u LEFT JOIN technicians t ON t.user_id = u.id
                     WHERE u.org_id = ?1 AND u.role = 'technician'
                     ORDER BY u.name",
                )?
                .query_map([Id(org_id)], |r| {
                    Ok(TechnicianRow {
                        user_id: r.get::<_, Id>(0)?.0,
                        name: r.get(1)?,
                        display_name: r.get(2)?,
                        phone: r.get(3)?,
                        skills: split_names(&r.get::<_, Option<String>>(4)?.unwrap_or_default()),
                        van: r.get::<_, Option<Id>>(5)?.map(|i| i.0),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn put_technician(&self, t: &Technician) -> StoreResult<()> {
        let t = t.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO technicians (user_id, org_id, display_name, phone)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name,
                                                     phone = excluded.phone",
                params![Id(t.user_id), Id(t.org_id), t.display_name, t.phone],
            )?;
            tx.execute(
                "DELETE FROM technician_skills WHERE user_id = ?1",
                [Id(t.user_id)],
            )?;
            for skill in &t.skills {
                tx.execute(
                    "INSERT INTO skills (id, org_id, name) VALUES (?1, ?2, ?3)
                     ON CONFLICT (org_id, name) DO NOTHING",
                    params![Id(Uuid::now_v7()), Id(t.org_id), skill],
                )?;
                tx.execute(
                    "INSERT INTO technician_skills (org_id, user_id, skill_id)
                     SELECT ?1, ?2, id FROM skills WHERE org_id = ?1 AND name = ?3",
                    params![Id(t.org_id), Id(t.user_id), skill],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn stock(&self, org_id: Uuid, location: Option<Uuid>) -> StoreResult<Vec<StockRow>> {
        self.call(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT s.location_id, l.code, s.sku, s.on_hand
                     FROM stock_levels s JOIN stock_locations l ON l.id = s.location_id
                     WHERE s.org_id = ?1 AND (?2 IS NULL OR s.location_id = ?2)
                     ORDER BY l.code, s.sku",
                )?
                .query_map(params![Id(org_id), location.map(Id)], |r| {
                    Ok(StockRow {
                        location_id: r.get::<_, Id>(0)?.0,
                        location_code: r.get(1)?,
                        sku: r.get(2)?,
                        on_hand: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn create_customer(&self, c: &Customer) -> StoreResult<()> {
        let c = c.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO customers (id, org_id, name, phone, email, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    Id(c.id),
                    Id(c.org_id),
                    c.name,
                    c.phone,
                    c.email,
                    micros(c.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn customers(&self, org_id: Uuid) -> StoreResult<Vec<(Customer, Vec<Site>)>> {
        self.call(move |conn| {
            let customers = conn
                .prepare_cached(
                    "SELECT id, name, phone, email, created_at FROM customers
                     WHERE org_id = ?1 ORDER BY name",
                )?
                .query_map([Id(org_id)], |r| {
                    Ok(Customer {
                        id: r.get::<_, Id>(0)?.0,
                        org_id,
                        name: r.get(1)?,
                        phone: r.get(2)?,
                        email: r.get(3)?,
                        created_at: timestamp(r, 4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut sites = conn
                .prepare_cached(
                    "SELECT id, customer_id, name, address, time_zone FROM sites
                     WHERE org_id = ?1 ORDER BY name",
                )?
                .query_map([Id(org_id)], |r| {
                    Ok(Site {
                        id: r.get::<_, Id>(0)?.0,
                        org_id,
                        customer_id: r.get::<_, Id>(1)?.0,
                        name: r.get(2)?,
                        address: r.get(3)?,
                        time_zone: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(customers
                .into_iter()
                .map(|c| {
                    let (mine, rest) = sites.drain(..).partition(|s| s.customer_id == c.id);
                    sites = rest;
                    (c, mine)
                })
                .collect())
        })
        .await
    }

    async fn customer_exists(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool> {
        self.call(move |conn| {
            Ok(conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM customers WHERE id = ?1 AND org_id = ?2)",
                params![Id(id), Id(org_id)],
                |r| r.get::<_, i64>(0),
            )? != 0)
        })
        .await
    }

    async fn site_customer(&self, org_id: Uuid, site_id: Uuid) -> StoreResult<Option<Uuid>> {
        self.org_row_id(
            "SELECT customer_id FROM sites WHERE id = ?1 AND org_id = ?2",
            site_id,
            org_id,
        )
        .await
    }

    async fn catalog(&self, org_id: Uuid) -> StoreResult<Vec<CatalogItem>> {
        self.call(move |conn| {
            let items = conn
                .prepare_cached(
                    "SELECT id, sku, name, unit, unit_price_cents, unit_cost_cents
                     FROM parts_catalog WHERE org_id = ?1 ORDER BY sku",
                )?
                .query_map([Id(org_id)], |r| {
                    Ok(CatalogItem {
                        id: r.get::<_, Id>(0)?.0,
                        org_id,
                        sku: r.get(1)?,
                        name: r.get(2)?,
                        unit: r.get(3)?,
                        unit_price_cents: r.get(4)?,
                        unit_cost_cents: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(items)
        })
        .await
    }

    async fn locations(&self, org_id: Uuid) -> StoreResult<Vec<StockLocation>> {
        self.call(move |conn| {
            let items = conn
                .prepare_cached(
                    "SELECT id, code, name, kind, technician_id FROM stock_locations
                     WHERE org_id = ?1 ORDER BY code",
                )?
                .query_map([Id(org_id)], |r| {
                    Ok(StockLocation {
                        id: r.get::<_, Id>(0)?.0,
                        org_id,
                        code: r.get(1)?,
                        name: r.get(2)?,
                        kind: r.get(3)?,
                        technician_id: r.get::<_, Option<Id>>(4)?.map(|i| i.0),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(items)
        })
        .await
    }

    async fn create_site(&self, s: &Site) -> StoreResult<()> {
        let s = s.clone();
        self.call(move |conn| {
            let customer_org: Option<Id> = conn
                .query_row(
                    "SELECT org_id FROM customers WHERE id = ?1",
                    [Id(s.customer_id)],
                    |r| r.get(0),
                )
                .optional()?;
            if customer_org.map(|o| o.0) != Some(s.org_id) {
                return Err(StoreError::NotFound(format!("customer {}", s.customer_id)));
            }
            conn.execute(
                "INSERT INTO sites (id, org_id, customer_id, name, address, time_zone)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    Id(s.id),
                    Id(s.org_id),
                    Id(s.customer_id),
                    s.name,
                    s.address,
                    s.time_zone
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_location(&self, l: &StockLocation) -> StoreResult<()> {
        let l = l.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO stock_locations (id, org_id, code, name, kind, technician_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    Id(l.id),
                    Id(l.org_id),
                    l.code,
                    l.name,
                    l.kind,
                    l.technician_id.map(Id)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn put_catalog_item(&self, i: &CatalogItem) -> StoreResult<()> {
        let i = i.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO parts_catalog (id, org_id, sku, name, unit, unit_price_cents,
                                            unit_cost_cents)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (org_id, sku) DO UPDATE SET
                     name = excluded.name, unit = excluded.unit,
                     unit_price_cents = excluded.unit_price_cents,
                     unit_cost_cents = excluded.unit_cost_cents",
                params![
                    Id(i.id),
                    Id(i.org_id),
                    i.sku,
                    i.name,
                    i.unit,
                    i.unit_price_cents,
                    i.unit_cost_cents
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn receive_stock(
        &self,
        org_id: Uuid,
        location_id: Uuid,
        sku: &str,
        qty: f64,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let sku = sku.to_string();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let org: Option<Id> = tx
                .query_row(
                    "SELECT org_id FROM stock_locations WHERE id = ?1",
                    [Id(location_id)],
                    |r| r.get(0),
                )
                .optional()?;
            if org.map(|o| o.0) != Some(org_id) {
                return Err(StoreError::NotFound(format!(
                    "stock location {location_id}"
                )));
            }
            let reason = if qty < 0.0 { "adjustment" } else { "receipt" };
            move_stock(&tx, org_id, location_id, &sku, qty, reason, None, at)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn job_parts(
        &self,
        org_id: Uuid,
        job_id: Uuid,
    ) -> StoreResult<Vec<schemas::api::PricedLine>> {
        self.call(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT p.line_id, p.sku, p.description, p.qty, p.unit, l.code,
                            p.unit_price_cents, p.unit_cost_cents
                     FROM job_parts p LEFT JOIN stock_locations l ON l.id = p.location_id
                     WHERE p.org_id = ?1 AND p.job_id = ?2 ORDER BY p.at, p.line_id",
                )?
                .query_map(params![Id(org_id), Id(job_id)], |r| {
                    Ok(crate::projection::rows::priced(
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn update_customer(&self, c: &Customer) -> StoreResult<bool> {
        let c = c.clone();
        self.call(move |conn| {
            let n = conn.execute(
                "UPDATE customers SET name = ?3, phone = ?4, email = ?5
                 WHERE id = ?1 AND org_id = ?2",
                params![Id(c.id), Id(c.org_id), c.name, c.phone, c.email],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn update_site(&self, s: &Site) -> StoreResult<Option<Uuid>> {
        let s = s.clone();
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "UPDATE sites SET name = ?3, address = ?4, time_zone = ?5
                     WHERE id = ?1 AND org_id = ?2 RETURNING customer_id",
                    params![Id(s.id), Id(s.org_id), s.name, s.address, s.time_zone],
                    |r| r.get::<_, Id>(0),
                )
                .optional()?
                .map(|i| i.0))
        })
        .await
    }

    async fn create_asset(&self, a: &Asset) -> StoreResult<()> {
        let a = a.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            site_of_org(&tx, a.org_id, a.site_id)?;
            tx.execute(
                "INSERT INTO assets (id, org_id, site_id, name, make, model, serial, vin,
                                     install_date)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    Id(a.id),
                    Id(a.org_id),
                    Id(a.site_id),
                    a.name,
                    a.make,
                    a.model,
                    a.serial,
                    a.vin,
                    a.install_date.map(|d| d.to_string())
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn update_asset(&self, a: &Asset) -> StoreResult<bool> {
        let a = a.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            site_of_org(&tx, a.org_id, a.site_id)?;
            let n = tx.execute(
                "UPDATE assets SET site_id = ?3, name = ?4, make = ?5, model = ?6, serial = ?7,
                                   vin = ?8, install_date = ?9
                 WHERE id = ?1 AND org_id = ?2",
                params![
                    Id(a.id),
                    Id(a.org_id),
                    Id(a.site_id),
                    a.name,
                    a.make,
                    a.model,
                    a.serial,
                    a.vin,
                    a.install_date.map(|d| d.to_string())
                ],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn asset_site(&self, org_id: Uuid, asset: Uuid) -> StoreResult<Option<Uuid>> {
        self.org_row_id(
            "SELECT site_id FROM assets WHERE id = ?1 AND org_id = ?2",
            asset,
            org_id,
        )
        .await
    }

    async fn assets(
        &self,
        org_id: Uuid,
        site: Option<Uuid>,
        customer: Option<Uuid>,
    ) -> StoreResult<Vec<(Asset, Uuid)>> {
        self.call(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT a.id, a.site_id, a.name, a.make, a.model, a.serial, a.vin,
                            a.install_date, s.customer_id
                     FROM assets a JOIN sites s ON s.id = a.site_id
                     WHERE a.org_id = ?1 AND (?2 IS NULL OR a.site_id = ?2)
                       AND (?3 IS NULL OR s.customer_id = ?3)
                     ORDER BY a.name, a.id",
                )?
                .query_map(params![Id(org_id), site.map(Id), customer.map(Id)], |r| {
                    let date: Option<String> = r.get(7)?;
                    Ok((
                        Asset {
                            id: r.get::<_, Id>(0)?.0,
                            org_id,
                            site_id: r.get::<_, Id>(1)?.0,
                            name: r.get(2)?,
                            make: r.get(3)?,
                            model: r.get(4)?,
                            serial: r.get(5)?,
                            vin: r.get(6)?,
                            install_date: date.and_then(|d| d.parse().ok()),
                        },
                        r.get::<_, Id>(8)?.0,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn templates(&self, org_id: Uuid) -> StoreResult<Vec<StoredTemplate>> {
        self.call(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT t.body, t.created_by, t.created_at FROM checklist_templates t
                     WHERE t.org_id = ?1 AND t.version = (
                         SELECT max(v.version) FROM checklist_templates v
                         WHERE v.org_id = t.org_id AND v.name = t.name)
                     ORDER BY t.name",
                )?
                .query_map([Id(org_id)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, timestamp(r, 2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(body, by, at)| stored_template(org_id, &body, by, at))
                .collect()
        })
        .await
    }

    async fn template(
        &self,
        org_id: Uuid,
        name: &str,
        version: Option<u32>,
    ) -> StoreResult<Option<StoredTemplate>> {
        let name = name.to_string();
        self.call(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT body, created_by, created_at FROM checklist_templates
                     WHERE org_id = ?1 AND name = ?2 AND (?3 IS NULL OR version = ?3)
                     ORDER BY version DESC LIMIT 1",
                )?
                .query_row(params![Id(org_id), name, version], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, timestamp(r, 2)?))
                })
                .optional()?;
            row.map(|(body, by, at)| stored_template(org_id, &body, by, at))
                .transpose()
        })
        .await
    }

    async fn add_template_version(&self, t: &StoredTemplate) -> StoreResult<()> {
        let t = t.clone();
        let body = serde_json::to_string(&t.template)
            .map_err(|e| StoreError::Invalid(format!("template: {e}")))?;
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO checklist_templates (org_id, name, version, body, created_by,
                                                  created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    Id(t.org_id),
                    t.template.name,
                    t.template.version,
                    body,
                    t.created_by,
                    micros(t.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn put_presence(
        &self,
        node: Uuid,
        at: DateTime<Utc>,
        connected: &[(Uuid, Uuid, u32)],
    ) -> StoreResult<()> {
        let connected = connected.to_vec();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Whoever is not in the list left this node: gone as of now (their last sync).
            let here: Vec<String> = connected.iter().map(|c| c.0.to_string()).collect();
            tx.execute(
                "UPDATE presence SET connections = 0, seen_at = ?2
                 WHERE node_id = ?1 AND connections > 0
                   AND user_id NOT IN (SELECT value FROM json_each(?3))",
                params![
                    Id(node),
                    micros(at),
                    serde_json::to_string(&here).expect("strings serialize")
                ],
            )?;
            for (user, org, n) in &connected {
                tx.prepare_cached(
                    "INSERT INTO presence (node_id, user_id, org_id, connections, seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (node_id, user_id) DO UPDATE SET
                         connections = excluded.connections, seen_at = excluded.seen_at",
                )?
                .execute(params![Id(node), Id(*user), Id(*org), n, micros(at)])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn prune_presence(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.call(move |conn| {
            let n = conn.execute(
                "DELETE FROM presence AS p
                 WHERE p.seen_at < ?1 AND EXISTS (
                     SELECT 1 FROM presence q
                     WHERE q.user_id = p.user_id AND q.seen_at > p.seen_at)",
                [micros(before)],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn presence(
        &self,
        org_id: Uuid,
        fresh_after: DateTime<Utc>,
    ) -> StoreResult<Vec<Presence>> {
        self.call(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT user_id, max(connections > 0 AND seen_at >= ?2), max(seen_at)
                     FROM presence WHERE org_id = ?1 GROUP BY user_id",
                )?
                .query_map(params![Id(org_id), micros(fresh_after)], |r| {
                    Ok(Presence {
                        user_id: r.get::<_, Id>(0)?.0,
                        online: r.get::<_, i64>(1)? != 0,
                        last_seen: opt_time(r, 2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn kpis(
        &self,
        org_id: Uuid,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> StoreResult<schemas::api::Kpis> {
        let (start, end) = records::day_bounds(from, to);
        let jobs = self
            .call(move |conn| {
                let rows = conn
                    .prepare_cached(
                        "SELECT j.assignees,
                                (SELECT min(h.at) FROM job_status_history h
                                  WHERE h.job_id = j.id AND h.to_status = 'in_progress'),
                                c.done,
                                EXISTS (SELECT 1 FROM job_status_history h
                                         WHERE h.job_id = j.id AND h.to_status = 'on_hold'),
                                EXISTS (SELECT 1 FROM jobs f
                                         WHERE f.org_id = j.org_id AND f.follow_up_of = j.id),
                                (SELECT coalesce(sum(p.qty * coalesce(p.unit_cost_cents, 0)), 0.0)
                                   FROM job_parts p WHERE p.job_id = j.id)
                         FROM jobs j
                         JOIN (SELECT job_id, max(at) AS done FROM job_status_history
                                WHERE org_id = ?1 AND to_status = 'completed' GROUP BY job_id) c
                           ON c.job_id = j.id
                         WHERE j.org_id = ?1 AND j.status = 'completed'
                           AND c.done >= ?2 AND c.done < ?3",
                    )?
                    .query_map(params![Id(org_id), micros(start), micros(end)], |r| {
                        Ok(records::CompletedJob {
                            assignees: r.get(0)?,
                            started: opt_time(r, 1)?,
                            completed: timestamp(r, 2)?,
                            held: r.get::<_, i64>(3)? != 0,
                            followed_up: r.get::<_, i64>(4)? != 0,
                            parts_cost_cents: r.get(5)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        Ok(records::compute_kpis(from, to, &jobs))
    }
}

impl SqliteStore {
    /// The id `sql` selects from the row it finds for `?1 = id` and `?2 = org`: a reference
    /// of one of the org's records (a site's customer, an asset's site), `None` when the record
    /// is not the org's.
    async fn org_row_id(
        &self,
        sql: &'static str,
        id: Uuid,
        org: Uuid,
    ) -> StoreResult<Option<Uuid>> {
        self.call(move |conn| {
            Ok(conn
                .query_row(sql, params![Id(id), Id(org)], |r| r.get::<_, Id>(0))
                .optional()?
                .map(|i| i.0))
        })
        .await
    }
}

/// `NotFound` unless `site` is a site of `org`.
fn site_of_org(tx: &Transaction<'_>, org: Uuid, site: Uuid) -> StoreResult<()> {
    let owner: Option<Id> = tx
        .query_row("SELECT org_id FROM sites WHERE id = ?1", [Id(site)], |r| {
            r.get(0)
        })
        .optional()?;
    if owner.map(|o| o.0) != Some(org) {
        return Err(StoreError::NotFound(format!("site {site}")));
    }
    Ok(())
}

fn stored_template(
    org_id: Uuid,
    body: &str,
    created_by: String,
    created_at: DateTime<Utc>,
) -> StoreResult<StoredTemplate> {
    let template = serde_json::from_str(body)
        .map_err(|e| StoreError::Invalid(format!("a stored template does not parse: {e}")))?;
    Ok(StoredTemplate {
        org_id,
        template,
        created_by,
        created_at,
    })
}

/// Names joined with the unit separator (which a name cannot hold: text fields refuse control
/// characters).
fn split_names(joined: &str) -> Vec<String> {
    joined
        .split('\u{1f}')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
