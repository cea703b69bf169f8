//! The projection's writes on Postgres, a batch at a time: each table gets one statement per
//! batch (arrays through `UNNEST`), not one per row, so a batch of two thousand changes costs
//! a few dozen round trips. The same rules as the SQLite store's row-at-a-time writes
//! (`store/sqlite/records.rs`): a document's rows replace what it projected before, new jobs
//! take their org's next numbers in batch order, parts lines move stock by the difference.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::TxError;
use crate::projection::rows::{
    self, ChecklistRows, JobRow, PartsRows, PhotoRow, SignatureRow, StatusRow, Take,
};

type Tx<'a, 'b> = &'a mut Transaction<'b, Postgres>;

pub(super) async fn jobs(
    tx: Tx<'_, '_>,
    jobs: &[(&JobRow, &Vec<StatusRow>, &Option<SignatureRow>)],
) -> Result<(), TxError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.0.id).collect();
    let known: HashMap<Uuid, i64> =
        sqlx::query!("SELECT id, number FROM jobs WHERE id = ANY($1)", &ids[..])
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|r| (r.id, r.number))
            .collect();
    // New jobs per org, in batch order (the log's): one counter update per org.
    let mut new_per_org: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for (j, ..) in jobs {
        if !known.contains_key(&j.id) {
            new_per_org.entry(j.org_id).or_default().push(j.id);
        }
    }
    let mut numbers = known;
    for (org, new) in new_per_org {
        let n = new.len() as i64;
        let first = sqlx::query_scalar!(
            r#"INSERT INTO org_counters (org_id, next_job_number) VALUES ($1, $2::bigint + 1)
               ON CONFLICT (org_id)
               DO UPDATE SET next_job_number = org_counters.next_job_number + $2::bigint
               RETURNING next_job_number - $2::bigint AS "first!""#,
            org,
            n
        )
        .fetch_one(&mut **tx)
        .await?;
        for (i, id) in new.into_iter().enumerate() {
            numbers.insert(id, first + i as i64);
        }
    }
    let number: Vec<i64> = jobs.iter().map(|j| numbers[&j.0.id]).collect();
    let org: Vec<Uuid> = jobs.iter().map(|j| j.0.org_id).collect();
    let title: Vec<String> = jobs.iter().map(|j| j.0.title.clone()).collect();
    let priority: Vec<String> = jobs.iter().map(|j| j.0.priority.clone()).collect();
    let status: Vec<String> = jobs.iter().map(|j| j.0.status.clone()).collect();
    let start: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.0.scheduled_start).collect();
    let end: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.0.scheduled_end).collect();
    let sort_at: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.0.sort_at).collect();
    let customer_id: Vec<Option<Uuid>> = jobs.iter().map(|j| j.0.customer_id).collect();
    let customer_name: Vec<String> = jobs.iter().map(|j| j.0.customer_name.clone()).collect();
    let site_id: Vec<Option<Uuid>> = jobs.iter().map(|j| j.0.site_id).collect();
    let site_name: Vec<String> = jobs.iter().map(|j| j.0.site_name.clone()).collect();
    let asset_id: Vec<Option<Uuid>> = jobs.iter().map(|j| j.0.asset_id).collect();
    let asset_name: Vec<Option<String>> = jobs.iter().map(|j| j.0.asset_name.clone()).collect();
    let assignees: Vec<String> = jobs.iter().map(|j| j.0.assignees.clone()).collect();
    let signed_off: Vec<bool> = jobs.iter().map(|j| j.0.signed_off).collect();
    let follow_up_of: Vec<Option<Uuid>> = jobs.iter().map(|j| j.0.follow_up_of).collect();
    let created_at: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.0.created_at).collect();
    let created_by: Vec<String> = jobs.iter().map(|j| j.0.created_by.clone()).collect();
    sqlx::query!(
        r#"INSERT INTO jobs (id, org_id, number, title, priority, status, scheduled_start,
                            scheduled_end, sort_at, customer_id, customer_name, site_id,
                            site_name, asset_id, asset_name, assignees, signed_off, follow_up_of,
                            created_at, created_by)
           SELECT u.id, u.org_id, u.number, u.title, u.priority, u.status, u.start, u.finish,
                  u.sort_at,
                  (SELECT c.id FROM customers c WHERE c.id = u.customer_id AND c.org_id = u.org_id),
                  u.customer_name,
                  (SELECT s.id FROM sites s WHERE s.id = u.site_id AND s.org_id = u.org_id),
                  u.site_name,
                  (SELECT a.id FROM assets a WHERE a.id = u.asset_id AND a.org_id = u.org_id),
                  u.asset_name, u.assignees, u.signed_off, u.follow_up_of, u.created_at,
                  u.created_by
           FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                       $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::uuid[],
                       $11::text[], $12::uuid[], $13::text[], $14::uuid[], $15::text[],
                       $16::text[], $17::boolean[], $18::uuid[], $19::timestamptz[], $20::text[])
                AS u(id, org_id, number, title, priority, status, start, finish, sort_at,
                     customer_id, customer_name, site_id, site_name, asset_id, asset_name,
                     assignees, signed_off, follow_up_of, created_at, created_by)
           ON CONFLICT (id) DO UPDATE SET
               title = excluded.title, priority = excluded.priority, status = excluded.status,
               scheduled_start = excluded.scheduled_start, scheduled_end = excluded.scheduled_end,
               sort_at = excluded.sort_at, customer_id = excluded.customer_id,
               customer_name = excluded.customer_name, site_id = excluded.site_id,
               site_name = excluded.site_name, asset_id = excluded.asset_id,
               asset_name = excluded.asset_name, assignees = excluded.assignees,
               signed_off = excluded.signed_off, follow_up_of = excluded.follow_up_of,
               created_at = excluded.created_at, created_by = excluded.created_by"#,
        &ids[..],
        &org[..],
        &number[..],
        &title[..],
        &priority[..],
        &status[..],
        &start[..] as &[Option<DateTime<Utc>>],
        &end[..] as &[Option<DateTime<Utc>>],
        &sort_at[..],
        &customer_id[..] as &[Option<Uuid>],
        &customer_name[..],
        &site_id[..] as &[Option<Uuid>],
        &site_name[..],
        &asset_id[..] as &[Option<Uuid>],
        &asset_name[..] as &[Option<String>],
        &assignees[..],
        &signed_off[..],
        &follow_up_of[..] as &[Option<Uuid>],
        &created_at[..],
        &created_by[..],
    )
    .execute(&mut **tx)
    .await?;

    sqlx::query!(
        "DELETE FROM job_status_history WHERE job_id = ANY($1)",
        &ids[..]
    )
    .execute(&mut **tx)
    .await?;
    let (mut h_org, mut h_job, mut h_pos, mut h_from, mut h_to, mut h_by, mut h_at) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (j, history, _) in jobs {
        for h in history.iter() {
            h_org.push(j.org_id);
            h_job.push(j.id);
            h_pos.push(h.position);
            h_from.push(h.from.clone());
            h_to.push(h.to.clone());
            h_by.push(h.by.clone());
            h_at.push(h.at);
        }
    }
    sqlx::query!(
        "INSERT INTO job_status_history (org_id, job_id, position, from_status, to_status,
                                         by_name, at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::integer[], $4::text[], $5::text[],
                              $6::text[], $7::timestamptz[])",
        &h_org[..],
        &h_job[..],
        &h_pos[..],
        &h_from[..] as &[Option<String>],
        &h_to[..],
        &h_by[..],
        &h_at[..],
    )
    .execute(&mut **tx)
    .await?;

    sqlx::query!("DELETE FROM signatures WHERE job_id = ANY($1)", &ids[..])
        .execute(&mut **tx)
        .await?;
    let signed: Vec<(&JobRow, &SignatureRow)> = jobs
        .iter()
        .filter_map(|(j, _, s)| s.as_ref().map(|s| (*j, s)))
        .collect();
    if !signed.is_empty() {
        let job: Vec<Uuid> = signed.iter().map(|(j, _)| j.id).collect();
        let org: Vec<Uuid> = signed.iter().map(|(j, _)| j.org_id).collect();
        let signer: Vec<String> = signed.iter().map(|(_, s)| s.signer_name.clone()).collect();
        let at: Vec<DateTime<Utc>> = signed.iter().map(|(_, s)| s.signed_at).collect();
        let summary: Vec<String> = signed
            .iter()
            .map(|(_, s)| s.summary_sha256.clone())
            .collect();
        let blob: Vec<String> = signed.iter().map(|(_, s)| s.blob_sha256.clone()).collect();
        let by: Vec<String> = signed.iter().map(|(_, s)| s.by.clone()).collect();
        sqlx::query!(
            "INSERT INTO signatures (job_id, org_id, signer_name, signed_at, summary_sha256,
                                     blob_sha256, by_name)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[],
                                  $5::text[], $6::text[], $7::text[])",
            &job[..],
            &org[..],
            &signer[..],
            &at[..],
            &summary[..],
            &blob[..],
            &by[..],
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn checklists(tx: Tx<'_, '_>, lists: &[&ChecklistRows]) -> Result<(), TxError> {
    if lists.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = lists.iter().map(|c| c.id).collect();
    let org: Vec<Uuid> = lists.iter().map(|c| c.org_id).collect();
    let job: Vec<Uuid> = lists.iter().map(|c| c.job_id).collect();
    let template: Vec<String> = lists.iter().map(|c| c.template.clone()).collect();
    let title: Vec<String> = lists.iter().map(|c| c.title.clone()).collect();
    sqlx::query!(
        "INSERT INTO job_checklists (id, org_id, job_id, template, title)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[])
         ON CONFLICT (id) DO UPDATE SET template = excluded.template, title = excluded.title",
        &ids[..],
        &org[..],
        &job[..],
        &template[..],
        &title[..],
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "DELETE FROM checklist_responses WHERE checklist_id = ANY($1)",
        &ids[..]
    )
    .execute(&mut **tx)
    .await?;
    let mut r = Responses::default();
    for c in lists {
        for item in &c.items {
            r.org.push(c.org_id);
            r.job.push(c.job_id);
            r.checklist.push(c.id);
            r.position.push(item.position);
            r.item.push(item.item_id.clone());
            r.label.push(item.label.clone());
            r.kind.push(item.kind.clone());
            r.required.push(item.required);
            r.value.push(item.value.as_ref().map(|v| v.to_string()));
            r.by.push(item.by.clone());
            r.at.push(item.at);
        }
    }
    sqlx::query!(
        "INSERT INTO checklist_responses (org_id, job_id, checklist_id, position, item_id, label,
                                          kind, required, value, by_name, at)
         SELECT u.org_id, u.job_id, u.checklist_id, u.position, u.item_id, u.label, u.kind,
                u.required, u.value::jsonb, u.by_name, u.at
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::integer[], $5::text[], $6::text[],
                     $7::text[], $8::boolean[], $9::text[], $10::text[], $11::timestamptz[])
              AS u(org_id, job_id, checklist_id, position, item_id, label, kind, required, value,
                   by_name, at)",
        &r.org[..],
        &r.job[..],
        &r.checklist[..],
        &r.position[..],
        &r.item[..],
        &r.label[..],
        &r.kind[..],
        &r.required[..],
        &r.value[..] as &[Option<String>],
        &r.by[..] as &[Option<String>],
        &r.at[..] as &[Option<DateTime<Utc>>],
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Default)]
struct Responses {
    org: Vec<Uuid>,
    job: Vec<Uuid>,
    checklist: Vec<Uuid>,
    position: Vec<i32>,
    item: Vec<String>,
    label: Vec<String>,
    kind: Vec<String>,
    required: Vec<bool>,
    value: Vec<Option<String>>,
    by: Vec<Option<String>>,
    at: Vec<Option<DateTime<Utc>>>,
}

/// Where each line of `lists` takes stock from, and its catalog prices, read for the whole
/// batch at once.
struct Lookups {
    /// (org, code) → location.
    codes: HashMap<(Uuid, String), Uuid>,
    /// (org, technician's user name) → their van.
    vans: HashMap<(Uuid, String), Uuid>,
    /// (org, sku) → (price, cost).
    prices: HashMap<(Uuid, String), (i64, i64)>,
}

async fn lookups(tx: Tx<'_, '_>, lists: &[&PartsRows]) -> Result<Lookups, TxError> {
    /// Per org: location codes named, authors of lines naming none, SKUs.
    #[derive(Default)]
    struct Wanted {
        codes: HashSet<String>,
        authors: HashSet<String>,
        skus: HashSet<String>,
    }
    let mut wanted: BTreeMap<Uuid, Wanted> = BTreeMap::new();
    for p in lists {
        let w = wanted.entry(p.org_id).or_default();
        for l in &p.lines {
            match &l.source {
                Some(code) => w.codes.insert(code.clone()),
                None => w.authors.insert(l.by.clone()),
            };
            w.skus.insert(l.sku.clone());
        }
    }
    let mut out = Lookups {
        codes: HashMap::new(),
        vans: HashMap::new(),
        prices: HashMap::new(),
    };
    for (org, w) in wanted {
        let codes: Vec<String> = w.codes.into_iter().collect();
        let authors: Vec<String> = w.authors.into_iter().collect();
        let skus: Vec<String> = w.skus.into_iter().collect();
        for r in sqlx::query!(
            "SELECT code, id FROM stock_locations WHERE org_id = $1 AND code = ANY($2)",
            org,
            &codes[..]
        )
        .fetch_all(&mut **tx)
        .await?
        {
            out.codes.insert((org, r.code), r.id);
        }
        for r in sqlx::query!(
            "SELECT u.name, l.id FROM stock_locations l JOIN users u ON u.id = l.technician_id
             WHERE l.org_id = $1 AND l.kind = 'van' AND u.name = ANY($2)",
            org,
            &authors[..]
        )
        .fetch_all(&mut **tx)
        .await?
        {
            out.vans.insert((org, r.name), r.id);
        }
        for r in sqlx::query!(
            "SELECT sku, unit_price_cents, unit_cost_cents FROM parts_catalog
             WHERE org_id = $1 AND sku = ANY($2)",
            org,
            &skus[..]
        )
        .fetch_all(&mut **tx)
        .await?
        {
            out.prices
                .insert((org, r.sku), (r.unit_price_cents, r.unit_cost_cents));
        }
    }
    Ok(out)
}

pub(super) async fn parts(
    tx: Tx<'_, '_>,
    lists: &[&PartsRows],
    at: DateTime<Utc>,
) -> Result<(), TxError> {
    if lists.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = lists.iter().map(|p| p.id).collect();
    sqlx::query!("DELETE FROM job_parts WHERE parts_id = ANY($1)", &ids[..])
        .execute(&mut **tx)
        .await?;
    let found = lookups(tx, lists).await?;
    let mut l = Lines::default();
    // What each job's lines take now, per job.
    let mut wanted: HashMap<Uuid, (Uuid, Vec<Take>)> = HashMap::new();
    for p in lists {
        let w = &mut wanted.entry(p.job_id).or_insert((p.org_id, Vec::new())).1;
        for line in &p.lines {
            let location = match &line.source {
                Some(code) => found.codes.get(&(p.org_id, code.clone())),
                None => found.vans.get(&(p.org_id, line.by.clone())),
            }
            .copied();
            let prices = found.prices.get(&(p.org_id, line.sku.clone()));
            l.org.push(p.org_id);
            l.job.push(p.job_id);
            l.parts.push(p.id);
            l.line.push(line.line_id.clone());
            l.sku.push(line.sku.clone());
            l.description.push(line.description.clone());
            l.qty.push(line.qty);
            l.unit.push(line.unit.clone());
            l.location.push(location);
            l.price.push(prices.map(|p| p.0));
            l.cost.push(prices.map(|p| p.1));
            l.by.push(line.by.clone());
            l.at.push(line.at);
            if let Some(location_id) = location {
                w.push(Take {
                    line_id: line.line_id.clone(),
                    location_id,
                    sku: line.sku.clone(),
                    qty: -line.qty,
                });
            }
        }
    }
    sqlx::query!(
        "INSERT INTO job_parts (org_id, job_id, parts_id, line_id, sku, description, qty, unit,
                                location_id, unit_price_cents, unit_cost_cents, by_name, at)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                              $6::text[], $7::float8[], $8::text[], $9::uuid[], $10::bigint[],
                              $11::bigint[], $12::text[], $13::timestamptz[])",
        &l.org[..],
        &l.job[..],
        &l.parts[..],
        &l.line[..],
        &l.sku[..],
        &l.description[..],
        &l.qty[..],
        &l.unit[..] as &[Option<String>],
        &l.location[..] as &[Option<Uuid>],
        &l.price[..] as &[Option<i64>],
        &l.cost[..] as &[Option<i64>],
        &l.by[..],
        &l.at[..],
    )
    .execute(&mut **tx)
    .await?;

    // What the jobs' movements took so far, then the difference, in one insert, and the levels
    // summed per location and SKU (an upsert may touch a row once per statement).
    let jobs: Vec<Uuid> = wanted.keys().copied().collect();
    let mut taken: HashMap<Uuid, Vec<Take>> = HashMap::new();
    for r in sqlx::query!(
        r#"SELECT job_id AS "job_id!", line_id AS "line_id!", location_id, sku,
                  SUM(qty) AS "qty!"
           FROM stock_movements WHERE job_id = ANY($1) AND reason = 'job_use'
           GROUP BY job_id, line_id, location_id, sku"#,
        &jobs[..]
    )
    .fetch_all(&mut **tx)
    .await?
    {
        taken.entry(r.job_id).or_default().push(Take {
            line_id: r.line_id,
            location_id: r.location_id,
            sku: r.sku,
            qty: r.qty,
        });
    }
    let mut m = Movements::default();
    let mut levels: BTreeMap<(Uuid, String), (Uuid, f64)> = BTreeMap::new();
    for (job, (org, want)) in &wanted {
        let had = taken.remove(job).unwrap_or_default();
        for d in rows::stock_deltas(want, &had) {
            m.id.push(Uuid::now_v7());
            m.org.push(*org);
            m.location.push(d.location_id);
            m.sku.push(d.sku.clone());
            m.qty.push(d.qty);
            m.job.push(*job);
            m.line.push(d.line_id);
            levels
                .entry((d.location_id, d.sku))
                .or_insert((*org, 0.0))
                .1 += d.qty;
        }
    }
    if m.id.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO stock_movements (id, org_id, location_id, sku, qty, reason, job_id, line_id,
                                      at)
         SELECT u.id, u.org_id, u.location_id, u.sku, u.qty, 'job_use', u.job_id, u.line_id, $8
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::float8[], $6::uuid[],
                     $7::text[])
              AS u(id, org_id, location_id, sku, qty, job_id, line_id)",
        &m.id[..],
        &m.org[..],
        &m.location[..],
        &m.sku[..],
        &m.qty[..],
        &m.job[..],
        &m.line[..],
        at,
    )
    .execute(&mut **tx)
    .await?;
    let (mut lo, mut ll, mut ls, mut lq) = (vec![], vec![], vec![], vec![]);
    for ((location, sku), (org, qty)) in levels {
        lo.push(org);
        ll.push(location);
        ls.push(sku);
        lq.push(qty);
    }
    sqlx::query!(
        "INSERT INTO stock_levels (org_id, location_id, sku, on_hand)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::float8[])
         ON CONFLICT (location_id, sku)
         DO UPDATE SET on_hand = stock_levels.on_hand + excluded.on_hand",
        &lo[..],
        &ll[..],
        &ls[..],
        &lq[..],
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Default)]
struct Lines {
    org: Vec<Uuid>,
    job: Vec<Uuid>,
    parts: Vec<Uuid>,
    line: Vec<String>,
    sku: Vec<String>,
    description: Vec<String>,
    qty: Vec<f64>,
    unit: Vec<Option<String>>,
    location: Vec<Option<Uuid>>,
    price: Vec<Option<i64>>,
    cost: Vec<Option<i64>>,
    by: Vec<String>,
    at: Vec<DateTime<Utc>>,
}

#[derive(Default)]
struct Movements {
    id: Vec<Uuid>,
    org: Vec<Uuid>,
    location: Vec<Uuid>,
    sku: Vec<String>,
    qty: Vec<f64>,
    job: Vec<Uuid>,
    line: Vec<String>,
}

pub(super) async fn photos(tx: Tx<'_, '_>, photos: &[&PhotoRow]) -> Result<(), TxError> {
    if photos.is_empty() {
        return Ok(());
    }
    macro_rules! col {
        ($f:ident) => {
            photos.iter().map(|p| p.$f.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query!(
        "INSERT INTO job_photos (id, org_id, job_id, sha256, size, mime, width, height, taken_at,
                                 lat, lon, checklist_item, caption, upload, review_state,
                                 review_by, review_at, review_note)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[],
                              $6::text[], $7::integer[], $8::integer[], $9::timestamptz[],
                              $10::float8[], $11::float8[], $12::text[], $13::text[], $14::text[],
                              $15::text[], $16::text[], $17::timestamptz[], $18::text[])
         ON CONFLICT (id) DO UPDATE SET
             sha256 = excluded.sha256, size = excluded.size, mime = excluded.mime,
             width = excluded.width, height = excluded.height, taken_at = excluded.taken_at,
             lat = excluded.lat, lon = excluded.lon, checklist_item = excluded.checklist_item,
             caption = excluded.caption, upload = excluded.upload,
             review_state = excluded.review_state, review_by = excluded.review_by,
             review_at = excluded.review_at, review_note = excluded.review_note",
        &col!(id)[..],
        &col!(org_id)[..],
        &col!(job_id)[..],
        &col!(sha256)[..],
        &col!(size)[..],
        &col!(mime)[..],
        &col!(width)[..],
        &col!(height)[..],
        &col!(taken_at)[..],
        &col!(lat)[..] as &[Option<f64>],
        &col!(lon)[..] as &[Option<f64>],
        &col!(checklist_item)[..] as &[Option<String>],
        &col!(caption)[..],
        &col!(upload)[..],
        &col!(review_state)[..] as &[Option<String>],
        &col!(review_by)[..] as &[Option<String>],
        &col!(review_at)[..] as &[Option<DateTime<Utc>>],
        &col!(review_note)[..] as &[Option<String>],
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
