//! The projection: keeps the relational rows (jobs, status history, checklist responses, parts
//! and the stock they move, photos, signatures) in step with the change log.
//!
//! How it stays right:
//! - **State, not events.** A document's rows are a function of its state ([`rows::rows_of`]);
//!   writing them replaces what the document projected before. Projecting a document twice, or
//!   a newer state than the changes read, changes nothing more; rebuilding from the log
//!   ([`rebuild`]) gives the same rows. Stock is the one running total: a parts line's
//!   movements are topped up by the difference to what the line takes now
//!   ([`rows::stock_deltas`]), so it too depends only on the state.
//! - **Its own position.** The rows and the position in the log they cover are written in one
//!   transaction, so a node killed between the log's commit and the projection's (or in the
//!   middle of it) projects those changes when it, or another node, next runs.
//! - **One node per change.** The write is conditional on the position still being the one read
//!   (on Postgres under a row lock); a node that lost the race writes nothing and reads again.
//!   On Postgres the log's order is its commit order (appends take an advisory lock), so reading
//!   "after position N" never skips a change that commits late.
//! - **Woken, and on a timer.** Local commits and other nodes' notices wake it; a tick every
//!   `projection_interval` catches up whatever no notice announced. Once woken it waits
//!   `projection_coalesce` (20 ms) for the commits right behind, so that at a trickle of edits
//!   several share a step instead of each paying for one.

pub mod rows;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use automerge::{AutoCommit, ChangeHash};
use chrono::Utc;
use schemas::DocKind;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::projection::rows::DocRows;
use crate::store::records::Changed;
use crate::store::{DocMeta, Store, StoreError, StoreResult, StoredDoc};
use crate::sync::docs::{self, DocCache, DocHandle};

/// A step of at most this many documents reads the loaded ones in place.
const IN_PLACE_MAX_DOCS: usize = 64;

/// How long a step waits for a loaded document that a connection holds (it fans an edit out to
/// the board, say) before reading it from the store instead.
const IN_PLACE_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// How many commit times the lag clock keeps for changes not yet projected; older ones are
/// dropped (the lag of those is then not measured, nothing else is lost).
const LAG_CLOCK_CAPACITY: usize = 16_384;

/// Wakes the projection and remembers when each change it has not yet projected was committed,
/// so the lag (commit → rows updated) can be measured.
#[derive(Default)]
pub struct Trigger {
    wake: Notify,
    committed: Mutex<VecDeque<(i64, Instant)>>,
    /// The newest change this node knows to be in the log.
    latest: std::sync::atomic::AtomicI64,
}

impl Trigger {
    /// A change reached `seq` in the log (committed here, or announced by another node).
    pub fn committed(&self, seq: i64) {
        self.latest
            .fetch_max(seq, std::sync::atomic::Ordering::Relaxed);
        {
            let mut q = self
                .committed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if q.len() >= LAG_CLOCK_CAPACITY {
                q.pop_front();
            }
            q.push_back((seq, Instant::now()));
        }
        self.wake.notify_one();
    }

    /// The newest change this node has committed or heard of (0: none yet). A change
    /// acknowledged to a device is at or before it (the ack follows the commit's notice).
    pub fn latest_committed(&self) -> i64 {
        self.latest.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Look at the log now (notices were lost, say).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Changes up to `seq` are in the rows: record their lag.
    fn projected(&self, seq: i64, metrics: &Metrics) {
        let now = Instant::now();
        let mut q = self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Notices may arrive out of seq order; keep those beyond `seq`.
        q.retain(|(s, at)| {
            if *s <= seq {
                metrics
                    .projection_lag
                    .observe(now.duration_since(*at).as_secs_f64());
                false
            } else {
                true
            }
        });
    }
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing after the position.
    Idle,
    /// Projected the changes up to `to`.
    Projected {
        changes: usize,
        docs: usize,
        to: i64,
    },
    /// Another node projected them first; read again.
    Lost,
}

/// Project the next `limit` changes after the position, every document read from the store.
pub async fn step(store: &dyn Store, limit: i64, metrics: &Metrics) -> StoreResult<Step> {
    step_with(store, None, limit, metrics).await
}

/// [`step`], reading in place the documents this node has in memory when they hold every change
/// read: at a steady trickle of edits that is nearly every document of a step (the one just
/// edited), and rebuilding it from the store was most of the step's cost. The rest (not loaded,
/// held by an edit in flight, or behind the log) are read from the store, at least as new as the
/// changes read.
pub async fn step_with(
    store: &dyn Store,
    loaded: Option<&DocCache>,
    limit: i64,
    metrics: &Metrics,
) -> StoreResult<Step> {
    let records = store.records();
    let next = records.unprojected(limit).await?;
    if next.changes == 0 {
        return Ok(Step::Idle);
    }
    let (from, to, changes) = (next.from, next.to, next.changes);
    let docs = next.docs.len();
    // In place one document at a time (never two locks held at once), for a small step; a
    // large one (catching up) rebuilds from the store on every core instead.
    let mut built = Vec::with_capacity(docs);
    let mut cold = Vec::new();
    for (i, changed) in next.docs.into_iter().enumerate() {
        let handle = loaded
            .filter(|_| docs <= IN_PLACE_MAX_DOCS)
            .and_then(|l| l.peek(changed.meta.id));
        let in_place = match handle {
            Some(h) => rows_in_place(h, &changed).await,
            None => None,
        };
        match in_place {
            Some(b) => built.push(b),
            None => {
                built.push(Built::Cold);
                cold.push((i, changed.meta));
            }
        }
    }
    if !cold.is_empty() {
        metrics.projection_docs_read.inc_by(cold.len() as u64);
        let ids: Vec<Uuid> = cold.iter().map(|(_, m)| m.id).collect();
        let states = records.projection_states(&ids).await?;
        let (at, metas): (Vec<usize>, Vec<DocMeta>) = cold.into_iter().unzip();
        let pairs: Vec<(DocMeta, StoredDoc)> = metas.into_iter().zip(states).collect();
        let from_store = tokio::task::spawn_blocking(move || rows_in_parallel(&pairs))
            .await
            .map_err(|e| StoreError::Failed(Box::new(e)))??;
        for (i, b) in at.into_iter().zip(from_store) {
            built[i] = b;
        }
    }
    // In the order of the log: new jobs take their numbers in it.
    let mut rows = Vec::with_capacity(built.len());
    let mut skipped = 0;
    for b in built {
        match b {
            Built::Rows(r) => rows.push(*r),
            Built::Undecodable => skipped += 1,
            Built::NotProjected | Built::Cold => {}
        }
    }
    metrics.projection_skipped.inc_by(skipped as u64);
    if records.project(from, to, &rows, Utc::now()).await? {
        Ok(Step::Projected { changes, docs, to })
    } else {
        Ok(Step::Lost)
    }
}

/// What a step made of one document.
enum Built {
    Rows(Box<DocRows>),
    /// A kind the projection does not know (nothing to write).
    NotProjected,
    /// Its state does not decode (counted; its rows stay as they were).
    Undecodable,
    /// Still to be read from the store.
    Cold,
}

/// A document's rows from its loaded copy, when that copy holds every change the step read
/// (another node may have appended changes this node has not taken in yet): `None` otherwise, or
/// when whoever holds the copy does not let go within [`IN_PLACE_WAIT`].
async fn rows_in_place(handle: DocHandle, changed: &Changed) -> Option<Built> {
    let hashes: Vec<ChangeHash> = changed
        .hashes
        .iter()
        .map(|h| h.parse())
        .collect::<Result<_, _>>()
        .ok()?;
    let mut guard = docs::lock_loaded(handle, IN_PLACE_WAIT).await?;
    let meta = changed.meta.clone();
    tokio::task::spawn_blocking(move || {
        let doc = &mut guard.doc;
        doc.get_missing_deps(&hashes)
            .is_empty()
            .then(|| rows_for(&meta, doc))
    })
    .await
    .ok()
    .flatten()
}

/// Each document's rows, built on as many threads as there are cores: rebuilding documents from
/// their changes is most of a large step's CPU. In the order given.
fn rows_in_parallel(docs: &[(DocMeta, StoredDoc)]) -> StoreResult<Vec<Built>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(docs.len().div_ceil(32))
        .max(1);
    // A small step (a few edits' documents) is built here: a thread would cost more than it saves.
    if threads == 1 {
        return rows_of_chunk(docs);
    }
    let per = docs.len().div_ceil(threads).max(1);
    let parts: Vec<StoreResult<Vec<Built>>> = std::thread::scope(|s| {
        let handles: Vec<_> = docs
            .chunks(per)
            .map(|chunk| s.spawn(move || rows_of_chunk(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a projection thread panicked"))
            .collect()
    });
    let mut built = Vec::with_capacity(docs.len());
    for part in parts {
        built.extend(part?);
    }
    Ok(built)
}

fn rows_of_chunk(docs: &[(DocMeta, StoredDoc)]) -> StoreResult<Vec<Built>> {
    docs.iter()
        .map(|(meta, stored)| {
            if DocKind::parse(&meta.kind).is_none() {
                return Ok(Built::NotProjected);
            }
            let doc = crate::sync::docs::build_doc(meta.id, stored)?;
            Ok(rows_for(meta, &doc))
        })
        .collect()
}

fn rows_for(meta: &DocMeta, doc: &AutoCommit) -> Built {
    let Some(kind) = DocKind::parse(&meta.kind) else {
        return Built::NotProjected;
    };
    match rows::rows_of(kind, meta.org_id, doc) {
        Ok(r) => Built::Rows(Box::new(r)),
        // The guard keeps undecodable states out of the log, so this is a document from
        // before a contract change: its rows stay as they were, and it is counted.
        Err(e) => {
            tracing::warn!(doc = %meta.id, error = %e, "document not projected: its state does not decode");
            Built::Undecodable
        }
    }
}

/// Project everything the log holds now; returns the position reached.
pub async fn catch_up(store: &dyn Store, limit: i64, metrics: &Metrics) -> StoreResult<i64> {
    loop {
        match step(store, limit, metrics).await? {
            Step::Idle => return Ok(store.records().projection_position().await?.projected),
            Step::Projected { .. } | Step::Lost => {}
        }
    }
}

/// Drop every projected row and project the whole log again.
pub async fn rebuild(store: &dyn Store, limit: i64, metrics: &Metrics) -> StoreResult<i64> {
    store.records().reset_projection().await?;
    catch_up(store, limit, metrics).await
}

/// The node's projection task: runs until the process ends.
pub async fn run(state: Arc<crate::AppState>) {
    let mut backoff = state.config.projection_interval;
    loop {
        let step = step_with(
            &*state.store,
            Some(&state.docs),
            state.config.projection_batch,
            &state.metrics,
        );
        match step.await {
            Ok(Step::Projected { changes, to, .. }) => {
                state.metrics.projection_steps.inc();
                state.metrics.projected_changes.inc_by(changes as u64);
                state.metrics.projection_position.set(to);
                state.projection.projected(to, &state.metrics);
                rows_moved(&state, to);
                backoff = state.config.projection_interval;
                // Read again only when more is known to be in the log: at a steady trickle of
                // edits each step is one change, and the read that would find nothing cost as
                // much as the step (a wake or the timer still brings whatever else came).
                if state.projection.latest_committed() > to
                    || changes as i64 >= state.config.projection_batch
                {
                    continue;
                }
            }
            Ok(Step::Lost) => continue,
            Ok(Step::Idle) => {
                backoff = state.config.projection_interval;
                // Another node may have projected: what it did counts here too.
                if let Ok(p) = state.store.records().projection_position().await {
                    state.projection.projected(p.projected, &state.metrics);
                    rows_moved(&state, p.projected);
                }
            }
            Err(e) => {
                state.metrics.projection_failures.inc();
                tracing::warn!(error = %e, "projection failed; trying again");
                backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
            }
        }
        tokio::select! {
            _ = state.projection.wake.notified() => {
                // Let the commits right behind this one into the same step.
                if !state.config.projection_coalesce.is_zero() {
                    tokio::time::sleep(state.config.projection_coalesce).await;
                }
            }
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

/// The rows now cover the log up to `position`: wake the live boards when that is news.
fn rows_moved(state: &crate::AppState, position: i64) {
    state.rows_position.send_if_modified(|known| {
        let news = position > *known;
        if news {
            *known = position;
        }
        news
    });
}

/// On a node that does not project: follow the position other nodes reach, woken by their
/// notices and on the same timer, so this node's live boards still update.
pub async fn follow(state: Arc<crate::AppState>) {
    loop {
        if let Ok(p) = state.store.records().projection_position().await {
            state.projection.projected(p.projected, &state.metrics);
            rows_moved(&state, p.projected);
        }
        tokio::select! {
            _ = state.projection.wake.notified() => {
                // Let the projecting node finish the transaction the notice announced.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            _ = tokio::time::sleep(state.config.projection_interval) => {}
        }
    }
}
