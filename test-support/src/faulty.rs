//! A [`Store`] that fails on demand, for tests of the server under store failures.
//!
//! [`FaultyStore`] delegates every method to the store it wraps (the `Store` trait has no default
//! method bodies, so a method added to the trait fails to compile here until it is forwarded, and
//! a test never silently runs a fallback instead of the real store's code). The methods that
//! write documents or load them (`create_document`, `append_changes`, `append_batch`, `load`, `changes_since`,
//! `save_snapshot`, `put_sync_state`, `put_sync_states`) can be made to fail with
//! `StoreError::Unavailable("injected fault")` (retryable, like an outage) before they reach the inner store, so a failed call
//! changes nothing. Every other method (user, token and device lookups, assignments, notices)
//! always goes through.
//!
//! It lives here, not in the server: the production crate carries no fault injection. A server
//! under test gets it in process: `sync_server::serve(AppState::new(config, faulty), listener, ..)`.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use sync_server::store::Store;
//! # use fieldsync_test_support::FaultyStore;
//! # fn demo(inner: Arc<dyn Store>) {
//! let faulty = Arc::new(FaultyStore::new(inner));
//! let store: Arc<dyn Store> = faulty.clone(); // hand this to the server
//! faulty.fail_next(2); // the next two writes or loads fail
//! # }
//! ```

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use uuid::Uuid;

use sync_server::store::{
    Append, AuditRecord, ChangeNotice, ChangeRecord, Device, DocMeta, Org, PhotoRecord, Role,
    Rotation, Store, StoreError, StoreResult, StoredDoc, TokenInfo, TokenRecord, User,
};

/// The message of every injected error.
pub const INJECTED_FAULT: &str = "injected fault";

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Mutex<Faults>,
    /// `append_batch` takes this for reading; [`FaultyStore::hold_appends`] for writing.
    appends_gate: tokio::sync::RwLock<()>,
    /// The size of every `append_batch` call that reached the inner store, in order.
    batch_sizes: Mutex<Vec<usize>>,
}

struct Faults {
    /// Calls still to fail outright, before any random failure.
    fail_next: u32,
    /// Chance of a random failure, in thousandths (0 = never).
    per_mille: u32,
    rng: SmallRng,
    /// Faults injected so far.
    injected: u64,
}

impl FaultyStore {
    /// Wrap `inner`; nothing fails until [`fail_next`](Self::fail_next) or
    /// [`set_failure_rate`](Self::set_failure_rate) says so.
    pub fn new(inner: Arc<dyn Store>) -> FaultyStore {
        FaultyStore {
            inner,
            faults: Mutex::new(Faults {
                fail_next: 0,
                per_mille: 0,
                rng: SmallRng::seed_from_u64(0),
                injected: 0,
            }),
            appends_gate: tokio::sync::RwLock::new(()),
            batch_sizes: Mutex::new(Vec::new()),
        }
    }

    /// Hold every `append_batch` call at its start until the guard is dropped (to let a queue
    /// of appends build up behind a commit in progress).
    pub async fn hold_appends(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.appends_gate.write().await
    }

    /// The number of appends in each `append_batch` call that reached the inner store so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batch_sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The store this one delegates to.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Make the next `n` calls of the write-or-load methods fail (replacing any count left).
    pub fn fail_next(&self, n: u32) {
        self.faults().fail_next = n;
    }

    /// Fail each call of the write-or-load methods with probability `per_mille`/1000 (capped at
    /// 1000; 0 turns random failures off). The failures are a function of `seed` and the order
    /// of the calls, so a test that makes its calls in a fixed order fails the same ones each run.
    pub fn set_failure_rate(&self, per_mille: u32, seed: u64) {
        let mut faults = self.faults();
        faults.per_mille = per_mille.min(1000);
        faults.rng = SmallRng::seed_from_u64(seed);
    }

    /// How many calls have failed by injection so far.
    pub fn injected(&self) -> u64 {
        self.faults().injected
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        // The lock is never held across anything that can panic halfway through an update.
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called first by each write-or-load method: `Err` when this call is to fail.
    fn check(&self) -> StoreResult<()> {
        let mut faults = self.faults();
        let fail = if faults.fail_next > 0 {
            faults.fail_next -= 1;
            true
        } else if faults.per_mille > 0 {
            let per_mille = faults.per_mille;
            faults.rng.random_range(0..1000) < per_mille
        } else {
            false
        };
        if fail {
            faults.injected += 1;
            // An outage, as the real stores report one: retryable (503 over HTTP).
            return Err(StoreError::Unavailable(INJECTED_FAULT.into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn migrate(&self) -> StoreResult<()> {
        self.inner.migrate().await
    }

    async fn create_org(&self, name: &str) -> StoreResult<Org> {
        self.inner.create_org(name).await
    }

    async fn org_by_name(&self, name: &str) -> StoreResult<Option<Org>> {
        self.inner.org_by_name(name).await
    }

    async fn create_user(
        &self,
        org_id: Uuid,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> StoreResult<User> {
        self.inner
            .create_user(org_id, name, role, password_hash)
            .await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        self.inner.user_by_name(name).await
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        self.inner.user(id).await
    }

    async fn users_in_org(&self, org_id: Uuid) -> StoreResult<Vec<User>> {
        self.inner.users_in_org(org_id).await
    }

    async fn register_device(&self, user_id: Uuid, name: &str) -> StoreResult<Device> {
        self.inner.register_device(user_id, name).await
    }

    async fn device(&self, id: Uuid) -> StoreResult<Option<Device>> {
        self.inner.device(id).await
    }

    async fn revoke_device(&self, id: Uuid) -> StoreResult<bool> {
        self.inner.revoke_device(id).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        self.inner.insert_token(token).await
    }

    async fn token(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        self.inner.token(hash).await
    }

    async fn delete_token(&self, hash: &str) -> StoreResult<bool> {
        self.inner.delete_token(hash).await
    }

    async fn use_refresh_token(
        &self,
        hash: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Rotation> {
        self.inner.use_refresh_token(hash, now).await
    }

    async fn create_document(&self, meta: &DocMeta) -> StoreResult<()> {
        self.check()?;
        self.inner.create_document(meta).await
    }

    async fn document(&self, id: Uuid) -> StoreResult<Option<DocMeta>> {
        self.inner.document(id).await
    }

    async fn job_documents(&self, job_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        self.inner.job_documents(job_id).await
    }

    async fn org_jobs(&self, org_id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.inner.org_jobs(org_id).await
    }

    async fn user_documents(&self, user_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        self.inner.user_documents(user_id).await
    }

    async fn org_documents(&self, org_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        self.inner.org_documents(org_id).await
    }

    async fn append_changes(&self, doc_id: Uuid, changes: &[ChangeRecord]) -> StoreResult<i64> {
        self.check()?;
        self.inner.append_changes(doc_id, changes).await
    }

    async fn append_changes_audited(
        &self,
        doc_id: Uuid,
        changes: &[ChangeRecord],
        audit: &[AuditRecord],
    ) -> StoreResult<i64> {
        self.check()?;
        self.inner
            .append_changes_audited(doc_id, changes, audit)
            .await
    }

    async fn append_batch(
        &self,
        batch: &[Append],
        announce_as: Option<Uuid>,
    ) -> StoreResult<Vec<i64>> {
        let _gate = self.appends_gate.read().await;
        self.check()?;
        self.batch_sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(batch.len());
        self.inner.append_batch(batch, announce_as).await
    }

    async fn job_audit(&self, job_id: Uuid) -> StoreResult<Vec<AuditRecord>> {
        self.check()?;
        self.inner.job_audit(job_id).await
    }

    async fn load(&self, doc_id: Uuid) -> StoreResult<StoredDoc> {
        self.check()?;
        self.inner.load(doc_id).await
    }

    async fn changes_since(&self, doc_id: Uuid, seq: i64) -> StoreResult<StoredDoc> {
        self.check()?;
        self.inner.changes_since(doc_id, seq).await
    }

    async fn save_snapshot(&self, doc_id: Uuid, snapshot: &[u8], upto_seq: i64) -> StoreResult<()> {
        self.check()?;
        self.inner.save_snapshot(doc_id, snapshot, upto_seq).await
    }

    async fn sync_state(&self, device_id: Uuid, doc_id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        self.inner.sync_state(device_id, doc_id).await
    }

    async fn put_sync_state(&self, device_id: Uuid, doc_id: Uuid, state: &[u8]) -> StoreResult<()> {
        self.check()?;
        self.inner.put_sync_state(device_id, doc_id, state).await
    }

    async fn put_sync_states(
        &self,
        device_id: Uuid,
        states: &[(Uuid, Vec<u8>)],
    ) -> StoreResult<()> {
        self.check()?;
        self.inner.put_sync_states(device_id, states).await
    }

    async fn sync_state_docs(&self, device_id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.inner.sync_state_docs(device_id).await
    }

    async fn delete_sync_state(&self, device_id: Uuid, doc_id: Uuid) -> StoreResult<()> {
        self.inner.delete_sync_state(device_id, doc_id).await
    }

    async fn assign(&self, job_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
        self.inner.assign(job_id, user_id).await
    }

    async fn unassign(&self, job_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
        self.inner.unassign(job_id, user_id).await
    }

    async fn assigned_jobs(&self, user_id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.inner.assigned_jobs(user_id).await
    }

    async fn job_assignees(&self, job_id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.inner.job_assignees(job_id).await
    }

    async fn put_photo(&self, photo: &PhotoRecord) -> StoreResult<()> {
        self.check()?;
        self.inner.put_photo(photo).await
    }

    async fn photo(&self, org_id: Uuid, sha256: &str) -> StoreResult<Option<PhotoRecord>> {
        self.check()?;
        self.inner.photo(org_id, sha256).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn publish_change(&self, notice: ChangeNotice) -> StoreResult<()> {
        self.inner.publish_change(notice).await
    }

    async fn subscribe_changes(&self) -> StoreResult<Option<mpsc::Receiver<ChangeNotice>>> {
        self.inner.subscribe_changes().await
    }

    fn records(&self) -> &dyn sync_server::store::records::Records {
        self.inner.records()
    }

    fn pm(&self) -> &dyn sync_server::store::pm::PmStore {
        self.inner.pm()
    }

    fn planning(&self) -> &dyn sync_server::store::planning::PlanningStore {
        self.inner.planning()
    }

    fn sla(&self) -> &dyn sync_server::store::sla::SlaStore {
        self.inner.sla()
    }

    fn sensor_store(&self) -> &dyn sync_server::store::sensors::SensorStore {
        self.inner.sensor_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_server::store::sqlite::SqliteStore;

    fn change(name: &str) -> ChangeRecord {
        ChangeRecord {
            hash: format!("hash-{name}"),
            bytes: format!("bytes-{name}").into_bytes(),
        }
    }

    async fn faulty_store() -> (FaultyStore, Uuid, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path().join("store.db")).unwrap();
        sqlite.migrate().await.unwrap();
        let store = FaultyStore::new(Arc::new(sqlite));
        let org = store.create_org("Acme Repairs").await.unwrap();
        let doc = Uuid::now_v7();
        store
            .create_document(&DocMeta {
                id: doc,
                org_id: org.id,
                kind: "job".into(),
                job_id: doc,
            })
            .await
            .unwrap();
        (store, doc, dir)
    }

    fn is_injected(result: &StoreResult<impl std::fmt::Debug>) -> bool {
        matches!(result, Err(e) if crate::is_injected(e))
    }

    #[tokio::test]
    async fn fail_next_fails_exactly_that_many_writes_and_writes_nothing() {
        let (store, doc, _dir) = faulty_store().await;
        store.fail_next(1);
        // Lookups are never failed, and do not use up the count.
        assert!(store.org_by_name("Acme Repairs").await.unwrap().is_some());
        let failed = store.append_changes(doc, &[change("a")]).await;
        assert!(is_injected(&failed), "{failed:?}");
        assert_eq!(store.injected(), 1);
        assert_eq!(
            store.load(doc).await.unwrap(),
            StoredDoc::default(),
            "the failed append wrote nothing"
        );

        let last = store.append_changes(doc, &[change("a")]).await.unwrap();
        assert_eq!(
            store.load(doc).await.unwrap(),
            StoredDoc {
                snapshot: None,
                changes: vec![change("a").bytes],
                last_seq: last
            }
        );
        assert_eq!(store.injected(), 1);
    }

    #[tokio::test]
    async fn put_sync_states_is_forwarded_and_can_fail() {
        let (store, doc, _dir) = faulty_store().await;
        let org = store.org_by_name("Acme Repairs").await.unwrap().unwrap();
        let user = store
            .create_user(org.id, "tech", Role::Technician, "hash")
            .await
            .unwrap();
        let device = store.register_device(user.id, "phone").await.unwrap().id;

        store.fail_next(1);
        let failed = store
            .put_sync_states(device, &[(doc, b"s1".to_vec())])
            .await;
        assert!(is_injected(&failed), "{failed:?}");
        assert_eq!(store.sync_state(device, doc).await.unwrap(), None);

        store
            .put_sync_states(device, &[(doc, b"s1".to_vec())])
            .await
            .unwrap();
        assert_eq!(
            store.sync_state(device, doc).await.unwrap(),
            Some(b"s1".to_vec())
        );
        // The inner store's own batch (one transaction) ran, so its errors come through as they
        // are: an unknown document fails the whole batch.
        let unknown = store
            .put_sync_states(device, &[(doc, b"s2".to_vec()), (Uuid::now_v7(), vec![])])
            .await;
        assert!(
            matches!(unknown, Err(StoreError::NotFound(_))),
            "{unknown:?}"
        );
        assert_eq!(
            store.sync_state(device, doc).await.unwrap(),
            Some(b"s1".to_vec())
        );
    }

    #[tokio::test]
    async fn failure_rate_is_deterministic_from_the_seed() {
        let (store, doc, _dir) = faulty_store().await;
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            store.set_failure_rate(300, 7);
            let mut failed = Vec::new();
            for _ in 0..50 {
                failed.push(is_injected(&store.changes_since(doc, 0).await));
            }
            outcomes.push(failed);
        }
        assert_eq!(outcomes[0], outcomes[1]);
        let failures = outcomes[0].iter().filter(|&&f| f).count();
        assert!((5..=30).contains(&failures), "{failures} of 50 at 30%");

        store.set_failure_rate(0, 7);
        for _ in 0..20 {
            store.changes_since(doc, 0).await.unwrap();
        }
        store.set_failure_rate(1000, 7);
        assert!(is_injected(&store.load(doc).await));
        assert!(store.user_by_name("nobody").await.is_ok());
    }
}
