//! Documents in server memory: loaded on demand, kept in an LRU cache bounded by an estimate of
//! their memory, and written through to the change log.
//!
//! What a loaded document costs was measured, not guessed (`cargo bench -p schemas --bench
//! doc_memory`, Automerge 0.12, job-shaped documents): an empty document takes 10 KiB; a loaded
//! one about 15 KiB plus 40 bytes per op and 100 per change; and every change taken in over sync
//! after loading added about 1 KiB more (6 KiB with the first), which only loading the document
//! afresh gave back (after 200 edits: 236 KiB as received, 64 KiB loaded from its save). That
//! was Automerge's patch log, which the server now empties as it takes changes in
//! (`schemas::sync_message::receive` and `forget_patches`; `schemas/tests/patch_memory.rs`), so
//! the `taken_in` part of [`weight`] is now an over-estimate, on the safe side of the budget.
//! Each document's weight follows it as it grows, the cache unloads the least recently used past
//! its budget, and compaction, which saves the document anyway, also loads it afresh. A document
//! is never unloaded while a request holds it, so there is at most one copy of each document in
//! memory per node.
//!
//! A document that took changes in and has gone quiet can also be loaded afresh, from its own
//! save in memory ([`DocCache::settle_quiet`], when `FIELDSYNC_DOC_SETTLE_MS` is set), for one
//! save and one load (about 30 + 60 µs). Without the patches that is worth little (about 4 MiB
//! at 1,000 jobs, for a tenth more CPU per edit), so it is off by default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::{ActorId, AutoCommit, ChangeHash, ReadDoc};
use lru::LruCache;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::store::{Append, AuditRecord, ChangeRecord, DocMeta, Store, StoreError, StoredDoc};
use crate::sync::commit::GroupCommit;

/// What the server keeps beside each loaded document (its cache entry, handle and metadata, and
/// the allocator's share), measured by the `cache` bench (500 devices touch 50,000 small
/// documents through a 64 MiB cache): with the document's own figures alone the 3,975 documents
/// kept took 71.2 MiB of RSS, with 2 KiB beside each 3,545 took 66.2 MiB (19.1 KiB each).
const BESIDE_EACH_DOC: usize = 3 * 1024;

/// The estimate of what `doc` holds in memory, `since_load` changes after it was loaded (see the
/// module docs for the measurements behind each figure).
fn weight(doc: &AutoCommit, since_load: usize) -> usize {
    let stats = doc.stats();
    let loaded = BESIDE_EACH_DOC
        + 15 * 1024
        + 40 * stats.num_ops as usize
        + 100 * stats.num_changes as usize;
    let taken_in = if since_load == 0 {
        0
    } else {
        5 * 1024 + 1024 * since_load
    };
    loaded + taken_in
}

pub struct ServerDoc {
    pub meta: DocMeta,
    pub doc: AutoCommit,
    /// Every change the log holds up to this sequence number is in `doc`.
    pub applied_seq: i64,
    /// Changes appended since the last snapshot.
    since_snapshot: usize,
    /// Changes taken into `doc` since it was loaded (each costs memory a fresh load gives back).
    since_load: usize,
    /// What the document weighs saved (its snapshot and changes as stored), for the cost bound
    /// on a whole document.
    pub saved_bytes: usize,
    /// Set when the in-memory state got ahead of the store (a failed append) or was refused:
    /// nobody may read it any more; [`DocCache::lock`] loads a fresh copy instead.
    poisoned: bool,
}

pub type DocGuard = tokio::sync::OwnedMutexGuard<ServerDoc>;

pub type DocHandle = Arc<tokio::sync::Mutex<ServerDoc>>;

pub struct DocCache {
    store: Arc<dyn Store>,
    /// Appends go through here, committed together with other connections' (group commit).
    commits: GroupCommit,
    actor: ActorId,
    budget: usize,
    compact_every: usize,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

struct Inner {
    lru: LruCache<Uuid, (DocHandle, usize)>,
    bytes: usize,
    /// Loaded documents that took changes in since they were loaded, with when they last did.
    unsettled: HashMap<Uuid, Instant>,
}

impl DocCache {
    pub fn new(
        store: Arc<dyn Store>,
        budget: usize,
        compact_every: usize,
        metrics: Arc<Metrics>,
        node: Uuid,
    ) -> DocCache {
        DocCache {
            commits: GroupCommit::new(store.clone(), metrics.clone(), node),
            store,
            // Each node writes its own edits (a dispatcher's change made by the server) under its
            // own actor, so two nodes never produce clashing change sequences.
            actor: ActorId::random(),
            budget,
            compact_every: compact_every.max(1),
            metrics,
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                unsettled: HashMap::new(),
            }),
        }
    }

    /// The loaded document, loading it from the store if needed.
    #[tracing::instrument(level = "debug", skip_all, fields(doc = %meta.id))]
    pub async fn get(&self, meta: &DocMeta) -> Result<DocHandle, StoreError> {
        if let Some((h, _)) = self.inner.lock().expect("cache lock").lru.get(&meta.id) {
            return Ok(h.clone());
        }
        let stored = self.store.load(meta.id).await?;
        let saved_bytes = stored.snapshot.as_ref().map_or(0, Vec::len)
            + stored.changes.iter().map(Vec::len).sum::<usize>();
        let applied_seq = stored.last_seq;
        let doc = build(meta.id, &stored, &self.actor)?;
        let weight = weight(&doc, 0);
        let fresh = Arc::new(tokio::sync::Mutex::new(ServerDoc {
            meta: meta.clone(),
            doc,
            applied_seq,
            since_snapshot: stored.changes.len(),
            since_load: 0,
            saved_bytes,
            poisoned: false,
        }));
        let mut inner = self.inner.lock().expect("cache lock");
        // Someone may have loaded it while we were reading the store: keep theirs.
        if let Some((h, _)) = inner.lru.get(&meta.id) {
            return Ok(h.clone());
        }
        inner.lru.put(meta.id, (fresh.clone(), weight));
        inner.bytes += weight;
        self.evict_over_budget(&mut inner);
        Ok(fresh)
    }

    /// Lock the document for reading or changing it. Every change in a document obtained this way
    /// is in the store, so its heads may be acknowledged and shown to peers as durable.
    pub async fn lock(&self, meta: &DocMeta) -> Result<DocGuard, StoreError> {
        loop {
            let guard = self.get(meta).await?.lock_owned().await;
            if !guard.poisoned {
                return Ok(guard);
            }
        }
    }

    /// Throw away a locked document whose memory may hold changes the store does not: whoever
    /// waits on it will load it again from the log.
    pub fn discard(&self, mut guard: DocGuard) {
        guard.poisoned = true;
        let id = guard.meta.id;
        drop(guard);
        self.evict(id);
    }

    /// Unload least recently used documents until the estimate is within budget, skipping any
    /// that a request holds right now.
    fn evict_over_budget(&self, inner: &mut Inner) {
        let mut held = Vec::new();
        while inner.bytes > self.budget {
            let Some((id, (handle, weight))) = inner.lru.pop_lru() else {
                break;
            };
            if Arc::strong_count(&handle) > 1 {
                held.push((id, (handle, weight)));
                continue;
            }
            inner.bytes -= weight;
            inner.unsettled.remove(&id);
        }
        for (id, entry) in held {
            inner.lru.put(id, entry);
        }
        self.metrics.cache_documents.set(inner.lru.len() as i64);
        self.metrics.cache_bytes.set(inner.bytes as i64);
    }

    /// Forget a document whose in-memory state may be ahead of the store (a failed append) or
    /// was refused; the next use reloads it from the log.
    pub fn evict(&self, id: Uuid) {
        let mut inner = self.inner.lock().expect("cache lock");
        if let Some((_, weight)) = inner.lru.pop(&id) {
            inner.bytes -= weight;
        }
        inner.unsettled.remove(&id);
        self.metrics.cache_documents.set(inner.lru.len() as i64);
        self.metrics.cache_bytes.set(inner.bytes as i64);
    }

    /// The loaded document, if it is: never loads it and leaves its place in the LRU alone (the
    /// projection reads documents the connections keep warm; it must not decide what stays).
    pub fn peek(&self, id: Uuid) -> Option<DocHandle> {
        self.inner
            .lock()
            .expect("cache lock")
            .lru
            .peek(&id)
            .map(|(h, _)| h.clone())
    }

    pub fn is_loaded(&self, id: Uuid) -> bool {
        self.inner.lock().expect("cache lock").lru.contains(&id)
    }

    /// The documents in memory now.
    pub fn loaded_ids(&self) -> Vec<Uuid> {
        self.inner
            .lock()
            .expect("cache lock")
            .lru
            .iter()
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn loaded_count(&self) -> usize {
        self.inner.lock().expect("cache lock").lru.len()
    }

    /// Append to the log every change of `sd` that is not in `before`. Returns the sequence number
    /// the log reached, or `None` when there was nothing new. Compacts now and then.
    pub async fn persist(
        &self,
        sd: &mut ServerDoc,
        before: &[ChangeHash],
    ) -> Result<Option<i64>, StoreError> {
        self.persist_audited(sd, before, &[], None).await
    }

    /// [`DocCache::persist`], with audit rows and the sending device's sync state
    /// (`(device, encoded state)`) stored in the same commit as the changes.
    #[tracing::instrument(level = "debug", skip_all, fields(doc = %sd.meta.id))]
    pub async fn persist_audited(
        &self,
        sd: &mut ServerDoc,
        before: &[ChangeHash],
        audit: &[AuditRecord],
        sync_state: Option<(Uuid, Vec<u8>)>,
    ) -> Result<Option<i64>, StoreError> {
        // Every write path comes through here after changing the document (merges, the
        // server's own edits): the patches Automerge recorded meanwhile go, whoever made them.
        schemas::sync_message::forget_patches(&mut sd.doc);
        let changes = sd.doc.get_changes(before);
        if changes.is_empty() {
            return Ok(None);
        }
        let records: Vec<ChangeRecord> = changes
            .iter()
            .map(|c| ChangeRecord {
                hash: c.hash().to_string(),
                bytes: c.raw_bytes().to_vec(),
            })
            .collect();
        let started = std::time::Instant::now();
        let added: usize = records.iter().map(|r| r.bytes.len()).sum();
        let count = records.len();
        let seq = self
            .commits
            .append(Append {
                doc_id: sd.meta.id,
                changes: records,
                audit: audit.to_vec(),
                sync_state,
            })
            .await?;
        sd.saved_bytes += added;
        self.metrics
            .store_latency
            .observe(started.elapsed().as_secs_f64());
        sd.since_snapshot += count;
        sd.since_load += count;
        if sd.since_snapshot >= self.compact_every {
            // Not fatal when it fails: the log still holds every change.
            let snapshot = sd.doc.save();
            match self.store.save_snapshot(sd.meta.id, &snapshot, seq).await {
                Ok(()) => {
                    sd.since_snapshot = 0;
                    sd.saved_bytes = snapshot.len();
                    // The same state, loaded afresh, takes a fraction of the memory of one that
                    // took each change in as it came.
                    match AutoCommit::load(&snapshot) {
                        Ok(fresh) => {
                            sd.doc = fresh.with_actor(self.actor.clone());
                            sd.since_load = 0;
                        }
                        Err(e) => {
                            tracing::warn!(doc = %sd.meta.id, error = %e, "a snapshot just saved does not load");
                        }
                    }
                }
                Err(e) => tracing::warn!(doc = %sd.meta.id, error = %e, "compaction failed"),
            }
        }
        self.reweigh(sd);
        Ok(Some(seq))
    }

    /// Weigh a document again after it changed, and unload others if that takes the cache past
    /// its budget (never this one: its caller holds it).
    fn reweigh(&self, sd: &ServerDoc) {
        let now = weight(&sd.doc, sd.since_load);
        let mut inner = self.inner.lock().expect("cache lock");
        let Some((_, w)) = inner.lru.peek_mut(&sd.meta.id) else {
            return;
        };
        let was = std::mem::replace(w, now);
        inner.bytes = inner.bytes - was + now;
        if sd.since_load > 0 {
            inner.unsettled.insert(sd.meta.id, Instant::now());
        } else {
            inner.unsettled.remove(&sd.meta.id);
        }
        self.evict_over_budget(&mut inner);
    }

    /// Load afresh, from its own save in memory, every document that took changes in since it was
    /// loaded and has taken none for `quiet`: the same state (heads, so every peer's sync state
    /// stays right), in less memory. Nothing is written: the log already holds every change. A
    /// document in use right now is left for the next call. Returns how many were settled.
    pub async fn settle_quiet(&self, quiet: Duration) -> usize {
        let now = Instant::now();
        let due: Vec<(Uuid, DocHandle)> = {
            let inner = self.inner.lock().expect("cache lock");
            inner
                .unsettled
                .iter()
                .filter(|(_, at)| now.saturating_duration_since(**at) >= quiet)
                .filter_map(|(id, _)| inner.lru.peek(id).map(|(h, _)| (*id, h.clone())))
                .collect()
        };
        let mut settled = 0;
        for (id, handle) in due {
            let Ok(mut sd) = handle.try_lock() else {
                continue;
            };
            if sd.poisoned || sd.since_load == 0 {
                continue;
            }
            let saved = sd.doc.save();
            match AutoCommit::load(&saved) {
                Ok(fresh) => {
                    sd.doc = fresh.with_actor(self.actor.clone());
                    sd.since_load = 0;
                    settled += 1;
                }
                Err(e) => {
                    // Kept as it is (it serves as before); not tried again until it changes.
                    tracing::warn!(doc = %id, error = %e, "a document's own save does not load");
                    self.inner.lock().expect("cache lock").unsettled.remove(&id);
                    continue;
                }
            }
            self.reweigh(&sd);
            drop(sd);
            // A save and a load each: let the connections in between. (Tried on a blocking
            // thread instead: the `ack` bench's p99 at 1,000 documents went back from 2.8-3.2 to
            // 2.6 ms, but the paced 1,000-job peak went back to 127 MiB, the memory won lost;
            // why was not found.)
            tokio::task::yield_now().await;
        }
        self.metrics.documents_settled.inc_by(settled as u64);
        settled
    }

    /// [`DocCache::settle_quiet`] for as long as the server runs, looking every half of `quiet`.
    pub async fn settle_while_running(&self, quiet: Duration) {
        let mut tick = tokio::time::interval((quiet / 2).max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.settle_quiet(quiet).await;
        }
    }

    /// Bring a loaded document up to date with changes other nodes appended. Returns true when it
    /// changed; a document that is not loaded is left alone (it loads fresh when needed).
    #[tracing::instrument(level = "debug", skip_all, fields(doc = %id))]
    pub async fn refresh(&self, id: Uuid) -> Result<bool, StoreError> {
        let handle = match self.inner.lock().expect("cache lock").lru.peek(&id) {
            Some((h, _)) => h.clone(),
            None => return Ok(false),
        };
        let mut sd = handle.lock().await;
        if sd.poisoned {
            return Ok(false);
        }
        let newer = self.store.changes_since(id, sd.applied_seq).await?;
        let before = sd.doc.get_heads();
        let apply = |doc: &mut AutoCommit| -> Result<(), automerge::AutomergeError> {
            if let Some(s) = &newer.snapshot {
                doc.load_incremental(s)?;
            }
            for c in &newer.changes {
                doc.load_incremental(c)?;
            }
            schemas::sync_message::forget_patches(doc);
            Ok(())
        };
        if let Err(e) = apply(&mut sd.doc) {
            sd.poisoned = true;
            drop(sd);
            self.evict(id);
            return Err(StoreError::Database(format!(
                "document {id} from the log does not load: {e}"
            )));
        }
        sd.applied_seq = sd.applied_seq.max(newer.last_seq);
        sd.since_load += newer.changes.len();
        self.reweigh(&sd);
        Ok(sd.doc.get_heads() != before)
    }
}

/// Lock a loaded document to read it in place, waiting at most `wait` for whoever holds it (an
/// edit in flight, a peer's sync): `None` when that takes longer or the copy was thrown away.
/// What the guard shows is in the store, as with [`DocCache::lock`].
pub async fn lock_loaded(handle: DocHandle, wait: std::time::Duration) -> Option<DocGuard> {
    let guard = tokio::time::timeout(wait, handle.lock_owned()).await.ok()?;
    (!guard.poisoned).then_some(guard)
}

/// A stored document as Automerge holds it, for reading (the projection).
pub fn build_doc(id: Uuid, stored: &StoredDoc) -> Result<AutoCommit, StoreError> {
    build(id, stored, &ActorId::random())
}

fn build(id: Uuid, stored: &StoredDoc, actor: &ActorId) -> Result<AutoCommit, StoreError> {
    let corrupt = |e: automerge::AutomergeError| {
        StoreError::Database(format!("document {id} in the log does not load: {e}"))
    };
    let mut doc = match &stored.snapshot {
        Some(s) => AutoCommit::load(s).map_err(corrupt)?,
        None => AutoCommit::new(),
    };
    for c in &stored.changes {
        doc.load_incremental(c).map_err(corrupt)?;
    }
    schemas::sync_message::forget_patches(&mut doc);
    doc.set_actor(actor.clone());
    Ok(doc)
}

impl std::fmt::Debug for DocCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocCache")
            .field("loaded", &self.loaded_count())
            .finish()
    }
}
