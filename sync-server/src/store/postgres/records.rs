//! [`Records`] on Postgres. The projection writes as the server's own user; the reads made on a
//! caller's behalf run in a tenant transaction ([`tenant_tx`]): role `fieldsync_tenant` with the
//! caller's org set, so the row-level security of migration 0007 holds even where a query forgot
//! its org.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{PgStore, TxError, db_error, retrying};
use crate::projection::rows::DocRows;
use crate::store::records::{
    self, Asset, CatalogItem, Changed, Customer, JobFilter, JobListRow, Position, Presence,
    Records, Site, StockLocation, StockRow, StoredTemplate, Technician, TechnicianRow, Unprojected,
};
use crate::store::{DocMeta, StoreError, StoreResult, StoredDoc};

/// A transaction that sees only `org_id`'s rows (row-level security), for reads made on a
/// caller's behalf.
pub(crate) async fn tenant_tx(
    pool: &sqlx::PgPool,
    org_id: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SET LOCAL ROLE fieldsync_tenant")
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "SELECT set_config('fieldsync.org_id', $1, true)",
        org_id.to_string()
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(tx)
}

/// One stock movement and the level it changes, together.
#[allow(clippy::too_many_arguments)]
async fn move_stock(
    tx: &mut Transaction<'_, Postgres>,
    org_id: Uuid,
    location_id: Uuid,
    sku: &str,
    qty: f64,
    reason: &str,
    job_line: Option<(Uuid, &str)>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO stock_movements (id, org_id, location_id, sku, qty, reason, job_id, line_id, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        Uuid::now_v7(),
        org_id,
        location_id,
        sku,
        qty,
        reason,
        job_line.map(|(job, _)| job),
        job_line.map(|(_, line)| line),
        at,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "INSERT INTO stock_levels (org_id, location_id, sku, on_hand) VALUES ($1, $2, $3, $4)
         ON CONFLICT (location_id, sku)
         DO UPDATE SET on_hand = stock_levels.on_hand + excluded.on_hand",
        org_id,
        location_id,
        sku,
        qty
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What the digest lists: the projected rows of one org (`$1`), each row as Postgres' text of
/// a record (summed quantities rounded, so float noise does not differ).
const DIGEST: &[(&str, &str)] = &[
    (
        "jobs",
        "SELECT ROW(id, number, title, priority, status, scheduled_start, scheduled_end,
                    sort_at, customer_id, customer_name, site_id, site_name, asset_id, asset_name,
                    assignees, signed_off, follow_up_of, created_at, created_by)::text
         FROM jobs WHERE org_id = $1",
    ),
    (
        "job_status_history",
        "SELECT ROW(job_id, position, from_status, to_status, by_name, at)::text
         FROM job_status_history WHERE org_id = $1",
    ),
    (
        "job_checklists",
        "SELECT ROW(id, job_id, template, title)::text FROM job_checklists WHERE org_id = $1",
    ),
    (
        "checklist_responses",
        "SELECT ROW(checklist_id, item_id, job_id, position, label, kind, required, value,
                    by_name, at)::text
         FROM checklist_responses WHERE org_id = $1",
    ),
    (
        "job_parts",
        "SELECT ROW(parts_id, line_id, job_id, sku, description, qty, unit, location_id,
                    unit_price_cents, unit_cost_cents, by_name, at)::text
         FROM job_parts WHERE org_id = $1",
    ),
    (
        "job_photos",
        "SELECT ROW(id, job_id, sha256, size, mime, width, height, taken_at, lat, lon,
                    checklist_item, caption, upload, review_state, review_by, review_at,
                    review_note)::text
         FROM job_photos WHERE org_id = $1",
    ),
    (
        "signatures",
        "SELECT ROW(job_id, signer_name, signed_at, summary_sha256, blob_sha256, by_name)::text
         FROM signatures WHERE org_id = $1",
    ),
    (
        "job_stock",
        "SELECT ROW(job_id, line_id, location_id, sku, round(SUM(qty)::numeric, 6))::text
         FROM stock_movements WHERE org_id = $1 AND reason = 'job_use'
         GROUP BY job_id, line_id, location_id, sku HAVING abs(SUM(qty)) > 1e-9",
    ),
    (
        "stock_levels",
        "SELECT ROW(location_id, sku, round(on_hand::numeric, 6))::text
         FROM stock_levels WHERE org_id = $1",
    ),
];

#[async_trait]
impl Records for PgStore {
    async fn unprojected(&self, limit: i64) -> StoreResult<Unprojected> {
        retrying(move || async move {
            let mut tx = self
                .pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let from =
                sqlx::query_scalar!("SELECT upto_seq FROM projection_state WHERE name = 'rows'")
                    .fetch_one(&mut *tx)
                    .await?;
            let seqs = sqlx::query!(
                "SELECT c.seq, c.hash, d.id, d.org_id, d.kind, d.job_id
                 FROM changes c JOIN documents d ON d.id = c.doc_id
                 WHERE c.seq > $1 ORDER BY c.seq LIMIT $2",
                from,
                limit
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut docs: Vec<Changed> = Vec::new();
            let mut index = std::collections::HashMap::new();
            for s in &seqs {
                let at = *index.entry(s.id).or_insert_with(|| {
                    docs.push(Changed {
                        meta: DocMeta {
                            id: s.id,
                            org_id: s.org_id,
                            kind: s.kind.clone(),
                            job_id: s.job_id,
                        },
                        hashes: Vec::new(),
                    });
                    docs.len() - 1
                });
                docs[at].hashes.push(s.hash.clone());
            }
            Ok(Unprojected {
                from,
                to: seqs.last().map_or(from, |s| s.seq),
                changes: seqs.len(),
                docs,
            })
        })
        .await
    }

    async fn projection_states(&self, ids: &[Uuid]) -> StoreResult<Vec<StoredDoc>> {
        retrying(move || async move {
            let mut tx = self
                .pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            // Every document's snapshot and the changes after it, in two statements for the
            // whole batch (not a load per document).
            let mut snapshots: std::collections::HashMap<Uuid, Vec<u8>> = sqlx::query!(
                "SELECT doc_id, bytes FROM snapshots WHERE doc_id = ANY($1)",
                ids
            )
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| (r.doc_id, r.bytes))
            .collect();
            let mut changes: std::collections::HashMap<Uuid, Vec<Vec<u8>>> = Default::default();
            for r in sqlx::query!(
                r#"SELECT c.doc_id, c.bytes AS "bytes!" FROM changes c
                   LEFT JOIN snapshots s ON s.doc_id = c.doc_id
                   WHERE c.doc_id = ANY($1) AND c.bytes IS NOT NULL
                     AND c.seq > COALESCE(s.upto_seq, 0)
                   ORDER BY c.doc_id, c.seq"#,
                ids
            )
            .fetch_all(&mut *tx)
            .await?
            {
                changes.entry(r.doc_id).or_default().push(r.bytes);
            }
            tx.commit().await?;
            Ok(ids
                .iter()
                .map(|id| StoredDoc {
                    snapshot: snapshots.remove(id),
                    changes: changes.remove(id).unwrap_or_default(),
                    last_seq: 0,
                })
                .collect())
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
        retrying(move || async move {
            let mut tx = self.pool.begin().await?;
            // The rows and their position are made again from the log: this commit need not
            // wait for its WAL flush (a crash may undo it whole, never in part, and the rows are
            // then projected again), which keeps it off the path of the appends' commits.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
            // Held to the end of the transaction: a second node projecting meanwhile waits
            // here, then finds the position moved and writes nothing.
            let position = sqlx::query_scalar!(
                "SELECT upto_seq FROM projection_state WHERE name = 'rows' FOR UPDATE"
            )
            .fetch_one(&mut *tx)
            .await?;
            if position != from {
                return Ok(false);
            }
            // Jobs first: the other rows of a job refer to its row, and new jobs take their
            // numbers in the order of the log. Each kind is written in a few statements for
            // the whole batch (`batch.rs`).
            let (mut jobs, mut lists, mut parts, mut photos) = (vec![], vec![], vec![], vec![]);
            for r in rows {
                match r {
                    DocRows::Job {
                        job,
                        history,
                        signature,
                    } => jobs.push((job, history, signature)),
                    DocRows::Checklist(c) => lists.push(c),
                    DocRows::Parts(p) => parts.push(p),
                    DocRows::Photo(p) => photos.push(p),
                }
            }
            super::batch::jobs(&mut tx, &jobs).await?;
            super::batch::checklists(&mut tx, &lists).await?;
            super::batch::parts(&mut tx, &parts, at).await?;
            super::batch::photos(&mut tx, &photos).await?;
            sqlx::query!(
                "UPDATE projection_state SET upto_seq = $1, updated_at = $2 WHERE name = 'rows'",
                to,
                at
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn reset_projection(&self) -> StoreResult<()> {
        retrying(move || async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query!("SELECT upto_seq FROM projection_state WHERE name = 'rows' FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query!(
                "UPDATE stock_levels SET on_hand = on_hand - (
                     SELECT COALESCE(SUM(m.qty), 0) FROM stock_movements m
                     WHERE m.reason = 'job_use' AND m.location_id = stock_levels.location_id
                       AND m.sku = stock_levels.sku)"
            )
            .execute(&mut *tx)
            .await?;
            sqlx::raw_sql(
                "DELETE FROM stock_movements WHERE reason = 'job_use';
                 DELETE FROM job_status_history; DELETE FROM signatures;
                 DELETE FROM checklist_responses; DELETE FROM job_checklists;
                 DELETE FROM job_parts; DELETE FROM job_photos; DELETE FROM jobs;
                 DELETE FROM org_counters;
                 UPDATE projection_state SET upto_seq = 0 WHERE name = 'rows'",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn projection_position(&self) -> StoreResult<Position> {
        let row = sqlx::query!(
            r#"SELECT (SELECT upto_seq FROM projection_state WHERE name = 'rows') AS "projected!",
                      (SELECT COALESCE(MAX(seq), 0) FROM changes) AS "log_end!""#
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Position {
            projected: row.projected,
            log_end: row.log_end,
        })
    }

    async fn projection_digest(&self, org_id: Uuid) -> StoreResult<Vec<String>> {
        let mut lines = Vec::new();
        for (table, sql) in DIGEST {
            let rows: Vec<Option<String>> = sqlx::query_scalar(*sql)
                .bind(org_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            lines.extend(rows.into_iter().flatten().map(|r| format!("{table}|{r}")));
        }
        lines.sort();
        Ok(lines)
    }

    async fn list_jobs(&self, org_id: Uuid, f: &JobFilter) -> StoreResult<Vec<JobListRow>> {
        let q = f.q.as_ref().map(|q| {
            let escaped = q
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            r#"SELECT j.id, j.number, j.title, j.status, j.priority, j.sort_at, j.scheduled_start,
                      j.scheduled_end, j.customer_id, j.customer_name, j.site_id, j.site_name,
                      j.assignees,
                      (SELECT c.template FROM job_checklists c WHERE c.job_id = j.id LIMIT 1)
                          AS template,
                      (SELECT COUNT(*) FROM checklist_responses r WHERE r.job_id = j.id)
                          AS "items_total!",
                      (SELECT COUNT(*) FROM checklist_responses r
                        WHERE r.job_id = j.id AND r.value IS NOT NULL) AS "items_done!",
                      (SELECT COUNT(*) FROM job_parts p WHERE p.job_id = j.id) AS "parts!",
                      (SELECT COUNT(*) FROM job_photos p WHERE p.job_id = j.id) AS "photos!",
                      j.signed_off,
                      EXISTS (SELECT 1 FROM audit_log a WHERE a.job_id = j.id AND a.flagged
                              AND NOT EXISTS (SELECT 1 FROM audit_log r
                                              WHERE r.job_id = j.id AND r.action = 'resolved'
                                                AND r.before->>'flag' = a.id::text))
                          AS "flagged!"
               FROM jobs j
               WHERE j.org_id = $1
                 AND ($2::text IS NULL OR j.status = $2)
                 AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM assignments s
                                                  WHERE s.job_id = j.id AND s.user_id = $3))
                 AND ($4::timestamptz IS NULL OR j.sort_at >= $4)
                 AND ($5::timestamptz IS NULL OR j.sort_at < $5)
                 AND ($6::text IS NULL OR j.title ILIKE $6 OR j.customer_name ILIKE $6
                      OR j.site_name ILIKE $6 OR ('WO-' || lpad(j.number::text, 6, '0')) ILIKE $6)
                 AND ($7::boolean IS NULL OR $7 = EXISTS (SELECT 1 FROM audit_log a
                                                          WHERE a.job_id = j.id AND a.flagged
                              AND NOT EXISTS (SELECT 1 FROM audit_log r
                                              WHERE r.job_id = j.id AND r.action = 'resolved'
                                                AND r.before->>'flag' = a.id::text)))
                 AND ($8::timestamptz IS NULL OR (j.sort_at, j.id) > ($8, $9::uuid))
                 AND ($11::uuid IS NULL OR j.customer_id = $11)
               ORDER BY j.sort_at, j.id
               LIMIT $10"#,
            org_id,
            f.status,
            f.technician,
            f.from,
            f.to,
            q,
            f.flagged,
            f.after.map(|a| a.0),
            f.after.map(|a| a.1),
            f.limit,
            f.customer,
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| JobListRow {
                id: r.id,
                number: r.number,
                title: r.title,
                status: r.status,
                priority: r.priority,
                sort_at: r.sort_at,
                scheduled_start: r.scheduled_start,
                scheduled_end: r.scheduled_end,
                customer_id: r.customer_id,
                customer_name: r.customer_name,
                site_id: r.site_id,
                site_name: r.site_name,
                assignees: serde_json::from_str(&r.assignees).unwrap_or_default(),
                template: r.template,
                items_total: r.items_total,
                items_done: r.items_done,
                parts: r.parts,
                photos: r.photos,
                signed_off: r.signed_off,
                flagged: r.flagged,
            })
            .collect())
    }

    async fn job_number(&self, org_id: Uuid, job_id: Uuid) -> StoreResult<Option<i64>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let n = sqlx::query_scalar!(
            "SELECT number FROM jobs WHERE id = $1 AND org_id = $2",
            job_id,
            org_id
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(n)
    }

    async fn technicians(&self, org_id: Uuid) -> StoreResult<Vec<TechnicianRow>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            r#"SELECT u.id, u.name, COALESCE(t.display_name, u.name) AS "display_name!", t.phone AS "phone?",
                      ARRAY(SELECT s.name FROM technician_skills ts JOIN skills s ON s.id = ts.skill_id
                            WHERE ts.user_id = u.id ORDER BY s.name) AS "skills!",
                      (SELECT l.id FROM stock_locations l
                        WHERE l.technician_id = u.id AND l.kind = 'van') AS van
               FROM users u LEFT JOIN technicians t ON t.user_id = u.id
               WHERE u.org_id = $1 AND u.role = 'technician'
               ORDER BY u.name"#,
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| TechnicianRow {
                user_id: r.id,
                name: r.name,
                display_name: r.display_name,
                phone: r.phone,
                skills: r.skills,
                van: r.van,
            })
            .collect())
    }

    async fn put_technician(&self, t: &Technician) -> StoreResult<()> {
        retrying(move || async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query!(
                "INSERT INTO technicians (user_id, org_id, display_name, phone)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name,
                                                     phone = excluded.phone",
                t.user_id,
                t.org_id,
                t.display_name,
                t.phone
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "DELETE FROM technician_skills WHERE user_id = $1",
                t.user_id
            )
            .execute(&mut *tx)
            .await?;
            for skill in &t.skills {
                sqlx::query!(
                    "INSERT INTO skills (id, org_id, name) VALUES ($1, $2, $3)
                     ON CONFLICT (org_id, name) DO NOTHING",
                    Uuid::now_v7(),
                    t.org_id,
                    skill
                )
                .execute(&mut *tx)
                .await?;
                sqlx::query!(
                    "INSERT INTO technician_skills (org_id, user_id, skill_id)
                     SELECT $1, $2, id FROM skills WHERE org_id = $1 AND name = $3",
                    t.org_id,
                    t.user_id,
                    skill
                )
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn stock(&self, org_id: Uuid, location: Option<Uuid>) -> StoreResult<Vec<StockRow>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            "SELECT s.location_id, l.code, s.sku, s.on_hand
             FROM stock_levels s JOIN stock_locations l ON l.id = s.location_id
             WHERE s.org_id = $1 AND ($2::uuid IS NULL OR s.location_id = $2)
             ORDER BY l.code, s.sku",
            org_id,
            location
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| StockRow {
                location_id: r.location_id,
                location_code: r.code,
                sku: r.sku,
                on_hand: r.on_hand,
            })
            .collect())
    }

    async fn create_customer(&self, c: &Customer) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO customers (id, org_id, name, phone, email, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            c.id,
            c.org_id,
            c.name,
            c.phone,
            c.email,
            c.created_at
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn customers(&self, org_id: Uuid) -> StoreResult<Vec<(Customer, Vec<Site>)>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let customers = sqlx::query!(
            "SELECT id, name, phone, email, created_at FROM customers
             WHERE org_id = $1 ORDER BY name",
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut sites: Vec<Site> = sqlx::query!(
            "SELECT id, customer_id, name, address, time_zone FROM sites
             WHERE org_id = $1 ORDER BY name",
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|r| Site {
            id: r.id,
            org_id,
            customer_id: r.customer_id,
            name: r.name,
            address: r.address,
            time_zone: r.time_zone,
        })
        .collect();
        tx.commit().await.map_err(db_error)?;
        Ok(customers
            .into_iter()
            .map(|r| {
                let (mine, rest) = sites.drain(..).partition(|s| s.customer_id == r.id);
                sites = rest;
                (
                    Customer {
                        id: r.id,
                        org_id,
                        name: r.name,
                        phone: r.phone,
                        email: r.email,
                        created_at: r.created_at,
                    },
                    mine,
                )
            })
            .collect())
    }

    async fn customer_exists(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let found = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1 AND org_id = $2) AS "found!""#,
            id,
            org_id
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(found)
    }

    async fn site_customer(&self, org_id: Uuid, site_id: Uuid) -> StoreResult<Option<Uuid>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let customer = sqlx::query_scalar!(
            "SELECT customer_id FROM sites WHERE id = $1 AND org_id = $2",
            site_id,
            org_id
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(customer)
    }

    async fn catalog(&self, org_id: Uuid) -> StoreResult<Vec<CatalogItem>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            "SELECT id, sku, name, unit, unit_price_cents, unit_cost_cents
             FROM parts_catalog WHERE org_id = $1 ORDER BY sku",
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| CatalogItem {
                id: r.id,
                org_id,
                sku: r.sku,
                name: r.name,
                unit: r.unit,
                unit_price_cents: r.unit_price_cents,
                unit_cost_cents: r.unit_cost_cents,
            })
            .collect())
    }

    async fn locations(&self, org_id: Uuid) -> StoreResult<Vec<StockLocation>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            "SELECT id, code, name, kind, technician_id FROM stock_locations
             WHERE org_id = $1 ORDER BY code",
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| StockLocation {
                id: r.id,
                org_id,
                code: r.code,
                name: r.name,
                kind: r.kind,
                technician_id: r.technician_id,
            })
            .collect())
    }

    async fn create_site(&self, s: &Site) -> StoreResult<()> {
        let done = sqlx::query!(
            "INSERT INTO sites (id, org_id, customer_id, name, address, time_zone)
             SELECT $1, $2, c.id, $4, $5, $6 FROM customers c WHERE c.id = $3 AND c.org_id = $2",
            s.id,
            s.org_id,
            s.customer_id,
            s.name,
            s.address,
            s.time_zone
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("customer {}", s.customer_id)));
        }
        Ok(())
    }

    async fn create_location(&self, l: &StockLocation) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO stock_locations (id, org_id, code, name, kind, technician_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
            l.id,
            l.org_id,
            l.code,
            l.name,
            l.kind,
            l.technician_id
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn put_catalog_item(&self, i: &CatalogItem) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO parts_catalog (id, org_id, sku, name, unit, unit_price_cents,
                                        unit_cost_cents)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (org_id, sku) DO UPDATE SET
                 name = excluded.name, unit = excluded.unit,
                 unit_price_cents = excluded.unit_price_cents,
                 unit_cost_cents = excluded.unit_cost_cents",
            i.id,
            i.org_id,
            i.sku,
            i.name,
            i.unit,
            i.unit_price_cents,
            i.unit_cost_cents
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn receive_stock(
        &self,
        org_id: Uuid,
        location_id: Uuid,
        sku: &str,
        qty: f64,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        retrying(move || async move {
            let mut tx = self.pool.begin().await?;
            let org = sqlx::query_scalar!(
                "SELECT org_id FROM stock_locations WHERE id = $1",
                location_id
            )
            .fetch_optional(&mut *tx)
            .await?;
            if org != Some(org_id) {
                return Err(TxError::Store(StoreError::NotFound(format!(
                    "stock location {location_id}"
                ))));
            }
            let reason = if qty < 0.0 { "adjustment" } else { "receipt" };
            move_stock(&mut tx, org_id, location_id, sku, qty, reason, None, at).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn job_parts(
        &self,
        org_id: Uuid,
        job_id: Uuid,
    ) -> StoreResult<Vec<schemas::api::PricedLine>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            r#"SELECT p.line_id, p.sku, p.description, p.qty, p.unit, l.code AS "code?",
                      p.unit_price_cents, p.unit_cost_cents
               FROM job_parts p LEFT JOIN stock_locations l ON l.id = p.location_id
               WHERE p.org_id = $1 AND p.job_id = $2 ORDER BY p.at, p.line_id"#,
            org_id,
            job_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                crate::projection::rows::priced(
                    r.line_id,
                    r.sku,
                    r.description,
                    r.qty,
                    r.unit,
                    r.code,
                    r.unit_price_cents,
                    r.unit_cost_cents,
                )
            })
            .collect())
    }

    async fn update_customer(&self, c: &Customer) -> StoreResult<bool> {
        let n = sqlx::query!(
            "UPDATE customers SET name = $3, phone = $4, email = $5 WHERE id = $1 AND org_id = $2",
            c.id,
            c.org_id,
            c.name,
            c.phone,
            c.email
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(n.rows_affected() > 0)
    }

    async fn update_site(&self, s: &Site) -> StoreResult<Option<Uuid>> {
        sqlx::query_scalar!(
            "UPDATE sites SET name = $3, address = $4, time_zone = $5
             WHERE id = $1 AND org_id = $2 RETURNING customer_id",
            s.id,
            s.org_id,
            s.name,
            s.address,
            s.time_zone
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn create_asset(&self, a: &Asset) -> StoreResult<()> {
        // The site must be the org's: the insert takes it from a row of the org or fails.
        let n = sqlx::query!(
            "INSERT INTO assets (id, org_id, site_id, name, make, model, serial, vin, install_date)
             SELECT $1, $2, id, $4, $5, $6, $7, $8, $9 FROM sites WHERE id = $3 AND org_id = $2",
            a.id,
            a.org_id,
            a.site_id,
            a.name,
            a.make,
            a.model,
            a.serial,
            a.vin,
            a.install_date
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if n.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("site {}", a.site_id)));
        }
        Ok(())
    }

    async fn update_asset(&self, a: &Asset) -> StoreResult<bool> {
        let site_ok = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM sites WHERE id = $1 AND org_id = $2) AS "ok!""#,
            a.site_id,
            a.org_id
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        if !site_ok {
            return Err(StoreError::NotFound(format!("site {}", a.site_id)));
        }
        let n = sqlx::query!(
            "UPDATE assets SET site_id = $3, name = $4, make = $5, model = $6, serial = $7,
                               vin = $8, install_date = $9
             WHERE id = $1 AND org_id = $2",
            a.id,
            a.org_id,
            a.site_id,
            a.name,
            a.make,
            a.model,
            a.serial,
            a.vin,
            a.install_date
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(n.rows_affected() > 0)
    }

    async fn asset_site(&self, org_id: Uuid, asset: Uuid) -> StoreResult<Option<Uuid>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let site = sqlx::query_scalar!(
            "SELECT site_id FROM assets WHERE id = $1 AND org_id = $2",
            asset,
            org_id
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(site)
    }

    async fn assets(
        &self,
        org_id: Uuid,
        site: Option<Uuid>,
        customer: Option<Uuid>,
    ) -> StoreResult<Vec<(Asset, Uuid)>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            "SELECT a.id, a.site_id, a.name, a.make, a.model, a.serial, a.vin, a.install_date,
                    s.customer_id
             FROM assets a JOIN sites s ON s.id = a.site_id
             WHERE a.org_id = $1 AND ($2::uuid IS NULL OR a.site_id = $2)
               AND ($3::uuid IS NULL OR s.customer_id = $3)
             ORDER BY a.name, a.id",
            org_id,
            site,
            customer
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    Asset {
                        id: r.id,
                        org_id,
                        site_id: r.site_id,
                        name: r.name,
                        make: r.make,
                        model: r.model,
                        serial: r.serial,
                        vin: r.vin,
                        install_date: r.install_date,
                    },
                    r.customer_id,
                )
            })
            .collect())
    }

    async fn templates(&self, org_id: Uuid) -> StoreResult<Vec<StoredTemplate>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            "SELECT DISTINCT ON (name) body, created_by, created_at FROM checklist_templates
             WHERE org_id = $1 ORDER BY name, version DESC",
            org_id
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.into_iter()
            .map(|r| stored_template(org_id, r.body, r.created_by, r.created_at))
            .collect()
    }

    async fn template(
        &self,
        org_id: Uuid,
        name: &str,
        version: Option<u32>,
    ) -> StoreResult<Option<StoredTemplate>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let row = sqlx::query!(
            "SELECT body, created_by, created_at FROM checklist_templates
             WHERE org_id = $1 AND name = $2 AND ($3::integer IS NULL OR version = $3)
             ORDER BY version DESC LIMIT 1",
            org_id,
            name,
            version.map(|v| v as i32)
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        row.map(|r| stored_template(org_id, r.body, r.created_by, r.created_at))
            .transpose()
    }

    async fn add_template_version(&self, t: &StoredTemplate) -> StoreResult<()> {
        let body = serde_json::to_value(&t.template)
            .map_err(|e| StoreError::Invalid(format!("template: {e}")))?;
        sqlx::query!(
            "INSERT INTO checklist_templates (org_id, name, version, body, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            t.org_id,
            t.template.name,
            t.template.version as i32,
            body,
            t.created_by,
            t.created_at
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn put_presence(
        &self,
        node: Uuid,
        at: DateTime<Utc>,
        connected: &[(Uuid, Uuid, u32)],
    ) -> StoreResult<()> {
        let users: Vec<Uuid> = connected.iter().map(|c| c.0).collect();
        let orgs: Vec<Uuid> = connected.iter().map(|c| c.1).collect();
        let counts: Vec<i32> = connected.iter().map(|c| c.2 as i32).collect();
        retrying(|| {
            let (users, orgs, counts) = (&users, &orgs, &counts);
            async move {
                let mut tx = self.pool.begin().await?;
                // Whoever is not in the list left this node: gone as of now (their last sync).
                sqlx::query!(
                    "UPDATE presence SET connections = 0, seen_at = $2
                     WHERE node_id = $1 AND connections > 0 AND user_id <> ALL($3)",
                    node,
                    at,
                    users
                )
                .execute(&mut *tx)
                .await?;
                sqlx::query!(
                    "INSERT INTO presence (node_id, user_id, org_id, connections, seen_at)
                     SELECT $1, u, o, n, $2 FROM UNNEST($3::uuid[], $4::uuid[], $5::integer[])
                         AS x(u, o, n)
                     ON CONFLICT (node_id, user_id) DO UPDATE SET
                         connections = excluded.connections, seen_at = excluded.seen_at",
                    node,
                    at,
                    users,
                    orgs,
                    counts
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        })
        .await
    }

    async fn prune_presence(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query!(
            "DELETE FROM presence p
             WHERE p.seen_at < $1 AND EXISTS (
                 SELECT 1 FROM presence q WHERE q.user_id = p.user_id AND q.seen_at > p.seen_at)",
            before
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn presence(
        &self,
        org_id: Uuid,
        fresh_after: DateTime<Utc>,
    ) -> StoreResult<Vec<Presence>> {
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            r#"SELECT user_id,
                      bool_or(connections > 0 AND seen_at >= $2) AS "online!",
                      max(seen_at) AS last_seen
               FROM presence WHERE org_id = $1 GROUP BY user_id"#,
            org_id,
            fresh_after
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| Presence {
                user_id: r.user_id,
                online: r.online,
                last_seen: r.last_seen,
            })
            .collect())
    }

    async fn kpis(
        &self,
        org_id: Uuid,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> StoreResult<schemas::api::Kpis> {
        let (start, end) = records::day_bounds(from, to);
        let mut tx = tenant_tx(&self.pool, org_id).await.map_err(db_error)?;
        let rows = sqlx::query!(
            r#"SELECT j.assignees,
                      (SELECT min(h.at) FROM job_status_history h
                        WHERE h.job_id = j.id AND h.to_status = 'in_progress') AS started,
                      c.done AS "done!",
                      EXISTS (SELECT 1 FROM job_status_history h
                               WHERE h.job_id = j.id AND h.to_status = 'on_hold') AS "held!",
                      EXISTS (SELECT 1 FROM jobs f
                               WHERE f.org_id = j.org_id AND f.follow_up_of = j.id)
                          AS "followed_up!",
                      (SELECT coalesce(sum(p.qty * coalesce(p.unit_cost_cents, 0)), 0)::float8
                         FROM job_parts p WHERE p.job_id = j.id) AS "parts_cost!"
               FROM jobs j
               JOIN (SELECT job_id, max(at) AS done FROM job_status_history
                      WHERE org_id = $1 AND to_status = 'completed' GROUP BY job_id) c
                 ON c.job_id = j.id
               WHERE j.org_id = $1 AND j.status = 'completed'
                 AND c.done >= $2 AND c.done < $3"#,
            org_id,
            start,
            end
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let jobs: Vec<records::CompletedJob> = rows
            .into_iter()
            .map(|r| records::CompletedJob {
                assignees: r.assignees,
                started: r.started,
                completed: r.done,
                held: r.held,
                followed_up: r.followed_up,
                parts_cost_cents: r.parts_cost,
            })
            .collect();
        Ok(records::compute_kpis(from, to, &jobs))
    }
}

fn stored_template(
    org_id: Uuid,
    body: serde_json::Value,
    created_by: String,
    created_at: DateTime<Utc>,
) -> StoreResult<StoredTemplate> {
    let template = serde_json::from_value(body)
        .map_err(|e| StoreError::Invalid(format!("a stored template does not parse: {e}")))?;
    Ok(StoredTemplate {
        org_id,
        template,
        created_by,
        created_at,
    })
}
