//! The server's document cache (`DocCache`) through its public API, on the embedded SQLite store
//! wrapped in a `FaultyStore`:
//!
//! - the memory budget: documents a request holds are never unloaded (one copy per document per
//!   node), and once they are released the cache is back within budget at the next load, having
//!   unloaded the least recently used;
//! - poisoning: when an append fails, the in-memory copy (which holds a change the store does
//!   not) is never served again, neither to the next request nor to one already waiting for it;
//!   the next lock reads the store's truth;
//! - weight: a document's estimate follows it as changes come in, so a growing document pushes
//!   others out, and compaction (which loads it afresh from its snapshot) gives the growth back;
//! - settling: a document quiet since it took changes in is loaded afresh from its own save (the
//!   same document, lighter), never while a request holds it, and keeps taking edits after.
//!
//! No test here depends on timing: a waiting request is detected by the handle count it adds.

use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ROOT, ReadDoc};
use fieldsync_test_support::FaultyStore;
use sync_server::metrics::Metrics;
use sync_server::store::sqlite::SqliteStore;
use sync_server::store::{DocMeta, Store};
use sync_server::sync::docs::{DocCache, DocHandle};
use uuid::Uuid;

/// Never compact: the tests read the change log as appended.
const NO_COMPACTION: usize = usize::MAX;

struct Fixture {
    faults: Arc<FaultyStore>,
    org: Uuid,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = SqliteStore::open(dir.path().join("store.db")).expect("open SQLite store");
        sqlite.migrate().await.expect("migrate");
        let faults = Arc::new(FaultyStore::new(Arc::new(sqlite)));
        let org = faults.create_org("Acme Repairs").await.expect("org").id;
        Fixture {
            faults,
            org,
            _dir: dir,
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        self.faults.clone()
    }

    fn cache(&self, budget: usize) -> (DocCache, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        (
            DocCache::new(
                self.store(),
                budget,
                NO_COMPACTION,
                metrics.clone(),
                Uuid::now_v7(),
            ),
            metrics,
        )
    }

    /// A registered, empty job document: every one weighs the same in the cache.
    async fn document(&self) -> DocMeta {
        let id = Uuid::now_v7();
        let meta = DocMeta {
            id,
            org_id: self.org,
            kind: "job".into(),
            job_id: id,
        };
        self.faults.create_document(&meta).await.expect("register");
        meta
    }

    async fn documents(&self, n: usize) -> Vec<DocMeta> {
        let mut docs = Vec::new();
        for _ in 0..n {
            docs.push(self.document().await);
        }
        docs
    }

    /// What the cache charges for one empty document, measured on a cache of its own.
    async fn empty_doc_weight(&self) -> usize {
        let (probe, metrics) = self.cache(usize::MAX);
        let meta = self.document().await;
        drop(probe.get(&meta).await.expect("load"));
        let weight = metrics.cache_bytes.get();
        assert!(weight > 0, "a loaded document has a weight");
        weight as usize
    }

    /// The document as the store has it, built from its log.
    async fn stored(&self, meta: &DocMeta) -> AutoCommit {
        let stored = self.faults.inner().load(meta.id).await.expect("load");
        let mut doc = match &stored.snapshot {
            Some(s) => AutoCommit::load(s).expect("snapshot loads"),
            None => AutoCommit::new(),
        };
        for c in &stored.changes {
            doc.load_incremental(c).expect("change loads");
        }
        doc
    }
}

fn loaded(cache: &DocCache, docs: &[DocMeta]) -> Vec<bool> {
    docs.iter().map(|d| cache.is_loaded(d.id)).collect()
}

fn title(doc: &AutoCommit) -> Option<String> {
    doc.get(ROOT, "title")
        .expect("read title")
        .map(|(v, _)| v.as_str().expect("a string").to_owned())
}

#[tokio::test]
async fn held_documents_are_never_evicted_and_the_budget_holds_after_release() {
    let fx = Fixture::new().await;
    let w = fx.empty_doc_weight().await;
    let budget = 3 * w;
    let (cache, metrics) = fx.cache(budget);
    let docs = fx.documents(7).await;
    let bytes = || metrics.cache_bytes.get() as usize;

    // Five documents held at once (locked, as requests hold them): the budget is three, but none
    // of them may be unloaded while held.
    let mut guards = Vec::new();
    for d in &docs[..5] {
        guards.push(cache.lock(d).await.expect("lock"));
    }
    assert_eq!(loaded(&cache, &docs[..5]), vec![true; 5]);
    assert_eq!(cache.loaded_count(), 5);
    assert_eq!(bytes(), 5 * w, "over budget while everything is held");
    assert_eq!(metrics.cache_documents.get(), 5);

    // A held document is the one copy: asking again gives the same handle, not a second load.
    let again: DocHandle = cache.get(&docs[4]).await.expect("get");
    let twice = cache.get(&docs[4]).await.expect("get");
    assert!(Arc::ptr_eq(&again, &twice));
    drop((again, twice));

    // Release all but docs[0], the least recently used. The next load unloads the least recently
    // used documents until the estimate is within budget, skipping docs[0] because it is held.
    let first = guards.remove(0);
    drop(guards);
    cache.get(&docs[5]).await.expect("load a sixth");
    assert!(
        bytes() <= budget,
        "{} bytes over a budget of {budget}",
        bytes()
    );
    assert!(cache.is_loaded(docs[0].id), "held: never unloaded");
    assert!(cache.is_loaded(docs[5].id), "just loaded");
    assert_eq!(
        loaded(&cache, &docs[1..5]),
        vec![false, false, false, true],
        "the released ones went oldest first, and only as many as the budget needed"
    );
    assert_eq!(cache.loaded_count(), 3);

    // Released, docs[0] is unloaded like any other document as new ones come in.
    drop(first);
    let more = fx.documents(3).await;
    for d in &more {
        drop(cache.get(d).await.expect("load"));
        assert!(
            bytes() <= budget,
            "{} bytes over a budget of {budget}",
            bytes()
        );
        assert_eq!(cache.loaded_count(), 3);
    }
    assert!(!cache.is_loaded(docs[0].id), "released, then unloaded");
    assert_eq!(loaded(&cache, &more), vec![true; 3]);
    assert_eq!(loaded(&cache, &docs), vec![false; 7]);
    assert_eq!(metrics.cache_documents.get(), 3);
    assert_eq!(bytes(), 3 * w);
}

#[tokio::test]
async fn a_failed_append_poisons_the_copy_and_the_next_lock_reads_the_store() {
    let fx = Fixture::new().await;
    let (cache, _metrics) = fx.cache(usize::MAX);
    let cache = Arc::new(cache);
    let meta = fx.document().await;

    // A durable edit.
    let mut sd = cache.lock(&meta).await.expect("lock");
    let before: Vec<ChangeHash> = sd.doc.get_heads();
    sd.doc.put(ROOT, "title", "durable").unwrap();
    cache
        .persist(&mut sd, &before)
        .await
        .expect("append")
        .expect("something was appended");
    let durable_heads = sd.doc.get_heads();

    // An edit whose append fails: the in-memory copy is now ahead of the store.
    let before = sd.doc.get_heads();
    sd.doc.put(ROOT, "title", "lost").unwrap();
    let poisoned_handle = cache.get(&meta).await.expect("get");

    // Another request is already waiting for the document (it holds a handle and waits on the
    // lock): it must not get the poisoned copy either.
    let handles_before = Arc::strong_count(&poisoned_handle);
    let waiting = tokio::spawn({
        let cache = cache.clone();
        let meta = meta.clone();
        async move {
            let mut sd = cache.lock(&meta).await.expect("lock after poisoning");
            (title(&sd.doc), sd.doc.get_heads())
        }
    });
    // Wait (without a clock) until the waiter holds its handle and so waits on the lock.
    while Arc::strong_count(&poisoned_handle) == handles_before {
        tokio::task::yield_now().await;
    }

    fx.faults.fail_next(1);
    let failed = cache.persist(&mut sd, &before).await;
    assert!(
        matches!(&failed, Err(e) if fieldsync_test_support::is_injected(e)),
        "{failed:?}"
    );
    // What the server does with a failed append (ws.rs, api.rs): throw the copy away.
    cache.discard(sd);
    assert!(!cache.is_loaded(meta.id), "a discarded copy is unloaded");

    let mut truth = fx.stored(&meta).await;
    assert_eq!(
        title(&truth),
        Some("durable".into()),
        "the store never saw 'lost'"
    );
    assert_eq!(truth.get_heads(), durable_heads);

    let (waiter_title, waiter_heads) = waiting.await.expect("waiter");
    assert_eq!(
        waiter_title.as_deref(),
        Some("durable"),
        "the waiter read the store"
    );
    assert_eq!(waiter_heads, durable_heads);

    let mut sd = cache.lock(&meta).await.expect("lock again");
    assert_eq!(title(&sd.doc), Some("durable".into()));
    assert_eq!(sd.doc.get_heads(), durable_heads);
    let fresh = cache.get(&meta).await.expect("get");
    assert!(
        !Arc::ptr_eq(&fresh, &poisoned_handle),
        "a fresh copy, not the poisoned one"
    );
    drop(sd);

    // The fresh copy accepts edits and they are durable again.
    let mut sd = cache.lock(&meta).await.expect("lock");
    let before = sd.doc.get_heads();
    sd.doc.put(ROOT, "title", "retried").unwrap();
    cache
        .persist(&mut sd, &before)
        .await
        .expect("append")
        .unwrap();
    let heads = sd.doc.get_heads();
    drop(sd);
    let mut truth = fx.stored(&meta).await;
    assert_eq!(title(&truth), Some("retried".into()));
    assert_eq!(truth.get_heads(), heads);
}

#[tokio::test]
async fn a_failed_load_caches_nothing_and_the_next_lock_loads() {
    let fx = Fixture::new().await;
    let (cache, metrics) = fx.cache(usize::MAX);
    let meta = fx.document().await;

    fx.faults.fail_next(1);
    let failed = cache.lock(&meta).await;
    assert!(
        matches!(&failed, Err(e) if fieldsync_test_support::is_injected(e)),
        "{:?}",
        failed.err()
    );
    assert!(!cache.is_loaded(meta.id));
    assert_eq!(metrics.cache_bytes.get(), 0);

    let sd = cache.lock(&meta).await.expect("the next lock loads");
    assert_eq!(sd.meta, meta);
    assert!(cache.is_loaded(meta.id));
}

/// Retitle a document through the cache: one change, appended.
async fn retitle(cache: &DocCache, meta: &DocMeta, title: &str) {
    let mut sd = cache.lock(meta).await.expect("lock");
    let before: Vec<ChangeHash> = sd.doc.get_heads();
    sd.doc.put(ROOT, "title", title).unwrap();
    cache
        .persist(&mut sd, &before)
        .await
        .expect("append")
        .expect("something was appended");
}

#[tokio::test]
async fn a_document_weighs_what_it_grew_to_and_compaction_gives_the_growth_back() {
    let fx = Fixture::new().await;
    let metrics = Arc::new(Metrics::default());
    let cache = DocCache::new(fx.store(), usize::MAX, 16, metrics.clone(), Uuid::now_v7());
    let meta = fx.document().await;
    let bytes = || metrics.cache_bytes.get();
    drop(cache.get(&meta).await.expect("load"));

    // Every change taken in makes the document heavier, and the cache's estimate follows it
    // (a document created over sync used to keep the weight it had when it was loaded empty).
    let mut last = bytes();
    for n in 0..15 {
        retitle(&cache, &meta, &format!("edit {n}")).await;
        assert!(bytes() > last, "edit {n}: {} after {last}", bytes());
        last = bytes();
    }

    // The sixteenth change compacts: the document is loaded afresh from the snapshot it saved,
    // which weighs less than the copy that took each change in, and is the same document.
    retitle(&cache, &meta, "edit 15").await;
    assert!(
        bytes() < last,
        "{} after compaction, {last} before",
        bytes()
    );
    {
        let mut sd = cache.lock(&meta).await.expect("lock");
        let mut stored = fx.stored(&meta).await;
        assert_eq!(sd.doc.get_heads(), stored.get_heads());
        assert_eq!(title(&sd.doc).as_deref(), Some("edit 15"));
    }
    // And it takes edits as before.
    retitle(&cache, &meta, "after compaction").await;
    assert_eq!(
        title(&fx.stored(&meta).await).as_deref(),
        Some("after compaction")
    );
}

#[tokio::test]
async fn a_growing_document_pushes_the_least_recently_used_out() {
    let fx = Fixture::new().await;
    let w = fx.empty_doc_weight().await;
    let (cache, metrics) = fx.cache(3 * w);
    let docs = fx.documents(3).await;
    for d in &docs {
        drop(cache.get(d).await.expect("load"));
    }
    assert_eq!(loaded(&cache, &docs), vec![true; 3]);

    // Only docs[2] is edited; as it grows past what the budget leaves, the others go, oldest
    // first, and the one being edited stays.
    for n in 0..20 {
        retitle(&cache, &docs[2], &format!("edit {n}")).await;
    }
    assert_eq!(loaded(&cache, &docs), vec![false, false, true]);
    assert_eq!(metrics.cache_documents.get(), 1);
}

#[tokio::test]
async fn a_quiet_document_is_loaded_afresh_but_never_while_held() {
    let fx = Fixture::new().await;
    let (cache, metrics) = fx.cache(usize::MAX);
    let docs = fx.documents(2).await;
    let bytes = || metrics.cache_bytes.get();
    for d in &docs {
        drop(cache.get(d).await.expect("load"));
    }
    let loaded_weight = bytes();
    assert_eq!(
        cache.settle_quiet(std::time::Duration::ZERO).await,
        0,
        "nothing taken in yet: nothing to settle"
    );

    for n in 0..5 {
        retitle(&cache, &docs[0], &format!("edit {n}")).await;
        retitle(&cache, &docs[1], &format!("edit {n}")).await;
    }
    let grown = bytes();
    assert!(grown > loaded_weight);

    // Not quiet long enough: left alone.
    assert_eq!(
        cache
            .settle_quiet(std::time::Duration::from_secs(3600))
            .await,
        0
    );
    // docs[1] is held by a request (an edit in flight): only docs[0] is settled, and it is the
    // same document, lighter.
    let held = cache.lock(&docs[1]).await.expect("lock");
    let heads_before = {
        let mut sd = cache.lock(&docs[0]).await.expect("lock");
        sd.doc.get_heads()
    };
    assert_eq!(cache.settle_quiet(std::time::Duration::ZERO).await, 1);
    assert_eq!(metrics.documents_settled.get(), 1);
    let after_one = bytes();
    assert!(
        after_one < grown,
        "{after_one} after settling, {grown} before"
    );
    {
        let mut sd = cache.lock(&docs[0]).await.expect("lock");
        assert_eq!(sd.doc.get_heads(), heads_before);
        assert_eq!(title(&sd.doc).as_deref(), Some("edit 4"));
    }
    // Released, the other is settled at the next look; the first is not settled twice.
    drop(held);
    assert_eq!(cache.settle_quiet(std::time::Duration::ZERO).await, 1);
    assert!(bytes() < after_one);
    assert_eq!(cache.settle_quiet(std::time::Duration::ZERO).await, 0);
    // Both weigh now what they weigh loaded from the store by a cache of their own.
    let (fresh, fresh_metrics) = fx.cache(usize::MAX);
    for d in &docs {
        drop(fresh.get(d).await.expect("load"));
    }
    assert_eq!(bytes(), fresh_metrics.cache_bytes.get());

    // A settled document takes edits as before, and the log has them.
    retitle(&cache, &docs[0], "after settling").await;
    assert_eq!(
        title(&fx.stored(&docs[0]).await).as_deref(),
        Some("after settling")
    );
    let mut sd = cache.lock(&docs[0]).await.expect("lock");
    assert_eq!(sd.doc.get_heads(), fx.stored(&docs[0]).await.get_heads());
}
