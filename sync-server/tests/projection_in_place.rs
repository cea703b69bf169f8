//! The projection reading documents in place (`projection::step_with` given the node's
//! `DocCache`), on the embedded SQLite store: a loaded document that holds every change of the
//! step is read in memory; one that is behind the log (another node appended to it), held by an
//! edit in flight, or not loaded is read from the store and rebuilt. Whichever way, the rows are
//! those of the newest state, the same rows a rebuild from the log gives.
//!
//! `fieldsync_projection_documents_read_total` (`Metrics::projection_docs_read`) counts the
//! documents read from the store, so each case names the path it took.

use std::sync::Arc;

use automerge::{ActorId, AutoCommit, ChangeHash};
use chrono::Utc;
use schemas::job::{self, NewJob};
use sync_server::metrics::Metrics;
use sync_server::projection::{self, Step};
use sync_server::store::records::JobFilter;
use sync_server::store::sqlite::SqliteStore;
use sync_server::store::{ChangeRecord, DocMeta, Store};
use sync_server::sync::docs::{DocCache, build_doc};
use uuid::Uuid;

/// Never compact: every change stays in the log as appended.
const NO_COMPACTION: usize = usize::MAX;

struct Fixture {
    store: Arc<dyn Store>,
    cache: DocCache,
    metrics: Arc<Metrics>,
    org: Uuid,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let sqlite = SqliteStore::open(dir.path().join("store.db")).expect("open SQLite store");
        sqlite.migrate().await.expect("migrate");
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let org = store.create_org("Acme Repairs").await.expect("org").id;
        let metrics = Arc::new(Metrics::default());
        let cache = DocCache::new(
            store.clone(),
            64 << 20,
            NO_COMPACTION,
            metrics.clone(),
            Uuid::now_v7(),
        );
        Fixture {
            store,
            cache,
            metrics,
            org,
            _dir: dir,
        }
    }

    /// A job document made through the cache, as a device's first sync makes it: registered,
    /// loaded here, its changes appended.
    async fn job(&self, title: &str) -> DocMeta {
        let (job_id, checklist_id, parts_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let meta = DocMeta {
            id: job_id,
            org_id: self.org,
            kind: "job".into(),
            job_id,
        };
        self.store.create_document(&meta).await.expect("register");
        let tpl = schemas::template::find("hvac_maintenance").expect("built-in template");
        let new = NewJob {
            title: title.into(),
            ..Default::default()
        };
        let mut bundle = job::new_bundle_with_ids(
            &ActorId::random(),
            (job_id, checklist_id, parts_id),
            &new,
            &tpl,
            "ana",
            Utc::now(),
        )
        .expect("bundle");
        bundle.job.commit();
        let mut sd = self.cache.lock(&meta).await.expect("lock");
        let before = sd.doc.get_heads();
        sd.doc.merge(&mut bundle.job).expect("merge");
        self.cache.persist(&mut sd, &before).await.expect("persist");
        meta
    }

    /// Retitle the job through the cache (the node's own edit path).
    async fn retitle_here(&self, meta: &DocMeta, title: &str) {
        let mut sd = self.cache.lock(meta).await.expect("lock");
        let before = sd.doc.get_heads();
        job::set_title(&mut sd.doc, title).expect("title");
        sd.doc.commit();
        self.cache.persist(&mut sd, &before).await.expect("persist");
    }

    /// Retitle the job as another node would: straight into the log, this node's copy untold.
    async fn retitle_elsewhere(&self, meta: &DocMeta, title: &str) {
        let stored = self.store.load(meta.id).await.expect("load");
        let mut doc: AutoCommit = build_doc(meta.id, &stored).expect("build");
        let before: Vec<ChangeHash> = doc.get_heads();
        job::set_title(&mut doc, title).expect("title");
        doc.commit();
        let records: Vec<ChangeRecord> = doc
            .get_changes(&before)
            .iter()
            .map(|c| ChangeRecord {
                hash: c.hash().to_string(),
                bytes: c.raw_bytes().to_vec(),
            })
            .collect();
        self.store
            .append_changes(meta.id, &records)
            .await
            .expect("append");
    }

    /// One projection step with this node's documents; returns how many it read from the store.
    async fn step(&self) -> u64 {
        let before = self.metrics.projection_docs_read.get();
        let step = projection::step_with(&*self.store, Some(&self.cache), 1_000, &self.metrics)
            .await
            .expect("step");
        assert!(matches!(step, Step::Projected { .. }), "{step:?}");
        self.metrics.projection_docs_read.get() - before
    }

    async fn titles(&self) -> Vec<String> {
        let filter = JobFilter {
            limit: 100,
            ..Default::default()
        };
        let mut titles: Vec<String> = self
            .store
            .records()
            .list_jobs(self.org, &filter)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.title)
            .collect();
        titles.sort();
        titles
    }
}

#[tokio::test]
async fn each_document_is_read_in_place_only_when_its_copy_holds_every_change() {
    let fx = Fixture::new().await;

    // Made here: the loaded copy holds every change, nothing is read from the store.
    let cooler = fx.job("Walk-in cooler").await;
    let ice = fx.job("Ice machine").await;
    assert_eq!(fx.step().await, 0, "both documents are loaded and current");
    assert_eq!(fx.titles().await, ["Ice machine", "Walk-in cooler"]);

    // Another node retitled the cooler: this node's copy is behind the log, so the step reads
    // the store, and the rows show the other node's title (not the stale copy's).
    fx.retitle_elsewhere(&cooler, "Walk-in freezer").await;
    assert_eq!(fx.step().await, 1, "the stale copy is not used");
    assert_eq!(fx.titles().await, ["Ice machine", "Walk-in freezer"]);
    assert!(fx.cache.is_loaded(cooler.id), "the stale copy stays loaded");

    // Caught up (as a notice from the other node would), then edited here: in place again.
    fx.cache.refresh(cooler.id).await.expect("refresh");
    fx.retitle_here(&cooler, "Reach-in freezer").await;
    assert_eq!(fx.step().await, 0);
    assert_eq!(fx.titles().await, ["Ice machine", "Reach-in freezer"]);

    // Held by an edit in flight (which may hold changes not yet committed): read from the store,
    // without waiting for the edit.
    fx.retitle_here(&ice, "Ice maker").await;
    let held = fx.cache.lock(&ice).await.expect("lock");
    assert_eq!(fx.step().await, 1, "a held document is not waited for");
    drop(held);
    assert_eq!(fx.titles().await, ["Ice maker", "Reach-in freezer"]);

    // Not loaded at all: read from the store.
    fx.retitle_here(&cooler, "Blast chiller").await;
    fx.cache.evict(cooler.id);
    assert_eq!(fx.step().await, 1);
    assert_eq!(fx.titles().await, ["Blast chiller", "Ice maker"]);

    // Whatever path each step took, the rows are what a rebuild from the log gives.
    let live = fx.store.records().projection_digest(fx.org).await.unwrap();
    projection::rebuild(&*fx.store, 3, &Metrics::default())
        .await
        .expect("rebuild");
    assert_eq!(
        fx.store.records().projection_digest(fx.org).await.unwrap(),
        live
    );
}
