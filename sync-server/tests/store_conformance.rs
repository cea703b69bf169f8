//! One list of behaviours every `Store` must have, run against each implementation.
//!
//! Each test below is a plain `async fn(&dyn Store)` (or, for what happens between server nodes,
//! `async fn(TwoNodes<'_>)`); `backend_tests!` turns the lists into `sqlite::<name>` and
//! `postgres::<name>` tests, each on a fresh, migrated store: a SQLite file in a temporary
//! directory, or a new Postgres database that is dropped afterwards.
//!
//! The Postgres tests need a server: `postgres://postgres@127.0.0.1:5432` (trust auth) unless
//! `FIELDSYNC_TEST_POSTGRES` names another one (a URL without a database name); the database per
//! test is `fieldsync_test_support::PgDb`.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ROOT, ReadDoc};
use chrono::{DateTime, Duration, Utc};
use fieldsync_test_support::PgDb;
use sync_server::store::postgres::PgStore;
use sync_server::store::sqlite::SqliteStore;
use sync_server::store::{
    Append, AuditRecord, ChangeNotice, ChangeRecord, DocMeta, Notified, PhotoRecord, Role,
    Rotation, Store, StoreError, StoredDoc, TokenKind, TokenRecord,
};
use uuid::Uuid;

// ---- fixtures -------------------------------------------------------------------------------

/// Two stores on one database, as two server nodes would have.
struct TwoNodes<'a> {
    a: &'a dyn Store,
    b: &'a dyn Store,
    /// Whether the backend serves several nodes (Postgres) or one (embedded SQLite).
    multi_node: bool,
}

struct SqliteBackend {
    store: SqliteStore,
    dir: tempfile::TempDir,
}

impl SqliteBackend {
    const MULTI_NODE: bool = false;

    async fn new() -> SqliteBackend {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(dir.path().join("store.db")).expect("open SQLite store");
        store.migrate().await.expect("migrate SQLite store");
        SqliteBackend { store, dir }
    }

    /// Another store on the same database file.
    async fn peer(&self) -> SqliteStore {
        SqliteStore::open(self.dir.path().join("store.db")).expect("open second SQLite store")
    }
}

/// A Postgres database of its own for one test, dropped when the test ends, passed or failed.
struct PostgresBackend {
    store: PgStore,
    // Dropped after the store (fields drop in order); the drop ends any connection left.
    db: PgDb,
}

impl PostgresBackend {
    const MULTI_NODE: bool = true;

    async fn new() -> PostgresBackend {
        let db = PgDb::create().await;
        let store = PgStore::connect(&db.url)
            .await
            .expect("connect Postgres store");
        store.migrate().await.expect("migrate Postgres store");
        PostgresBackend { store, db }
    }

    /// Another store (pool) on the same database.
    async fn peer(&self) -> PgStore {
        PgStore::connect(&self.db.url)
            .await
            .expect("connect second Postgres store")
    }
}

macro_rules! backend_tests {
    (
        stores: [$($name:ident),* $(,)?],
        two_nodes: [$($pair:ident),* $(,)?] $(,)?
    ) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = crate::SqliteBackend::new().await;
                    crate::$name(&backend.store).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $pair() {
                    let backend = crate::SqliteBackend::new().await;
                    let peer = backend.peer().await;
                    crate::$pair(crate::TwoNodes {
                        a: &backend.store,
                        b: &peer,
                        multi_node: crate::SqliteBackend::MULTI_NODE,
                    })
                    .await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = crate::PostgresBackend::new().await;
                    crate::$name(&backend.store).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $pair() {
                    let backend = crate::PostgresBackend::new().await;
                    let peer = backend.peer().await;
                    crate::$pair(crate::TwoNodes {
                        a: &backend.store,
                        b: &peer,
                        multi_node: crate::PostgresBackend::MULTI_NODE,
                    })
                    .await;
                }
            )*
        }
    };
}

backend_tests! {
    stores: [
        orgs_and_users,
        devices_and_revocation,
        tokens,
        concurrent_token_deletes,
        refresh_token_use_is_single,
        errors_are_classified,
        document_registry,
        append_is_idempotent_by_hash,
        concurrent_appends,
        batch_appends_commit_together,
        unknown_document_is_not_found,
        snapshot_compacts_the_log,
        changes_since,
        sync_states,
        sync_states_in_one_batch,
        sync_state_docs_and_deletion,
        assignments,
        user_documents,
        org_documents,
        automerge_round_trip,
        photo_rows,
        ping,
    ],
    two_nodes: [
        change_notices,
        commits_announce_their_documents,
    ],
}

// ---- helpers --------------------------------------------------------------------------------

/// Fake changes for tests that only count and order them: the store does not look inside.
fn change(name: &str) -> ChangeRecord {
    ChangeRecord {
        hash: format!("hash-{name}"),
        bytes: format!("bytes-{name}").into_bytes(),
    }
}

fn bytes(names: &[&str]) -> Vec<Vec<u8>> {
    names.iter().map(|name| change(name).bytes).collect()
}

/// An org with one user, for tests about something else.
/// A stored image's row: written once, replaced whole (thumbnails added), scoped to its org.
async fn photo_rows(store: &dyn Store) {
    let (org, _) = org_with_user(store).await;
    let other = store.create_org("Other").await.unwrap().id;
    let sha = "ab".repeat(32);
    assert_eq!(store.photo(org, &sha).await.unwrap(), None);
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let mut row = PhotoRecord {
        org_id: org,
        sha256: sha.clone(),
        size: 5_000_000_000,
        mime: "image/jpeg".into(),
        width: 4000,
        height: 3000,
        taken_at: Some(at - Duration::days(1)),
        location: Some(schemas::photo::GeoPoint {
            lat: 48.8566,
            lon: -2.35,
        }),
        thumbnails: vec![],
        stored_at: at,
    };
    store.put_photo(&row).await.unwrap();
    assert_eq!(store.photo(org, &sha).await.unwrap(), Some(row.clone()));
    row.thumbnails = vec![320, 1280];
    row.taken_at = None;
    row.location = None;
    store.put_photo(&row).await.unwrap();
    assert_eq!(store.photo(org, &sha).await.unwrap(), Some(row));
    assert_eq!(store.photo(other, &sha).await.unwrap(), None);
}

async fn org_with_user(store: &dyn Store) -> (Uuid, Uuid) {
    let org = store.create_org("Acme Repairs").await.unwrap();
    let user = store
        .create_user(org.id, "tess", Role::Technician, "argon2-hash")
        .await
        .unwrap();
    (org.id, user.id)
}

/// Register a document of `kind` belonging to `job_id`.
async fn document_of(store: &dyn Store, org_id: Uuid, kind: &str, job_id: Uuid) -> DocMeta {
    let meta = DocMeta {
        id: Uuid::now_v7(),
        org_id,
        kind: kind.into(),
        job_id,
    };
    store.create_document(&meta).await.unwrap();
    meta
}

/// In the order `user_documents` and `org_documents` promise: by job, then document.
fn by_job(mut docs: Vec<DocMeta>) -> Vec<DocMeta> {
    docs.sort_by_key(|doc| (doc.job_id, doc.id));
    docs
}

async fn job_document(store: &dyn Store, org_id: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create_document(&DocMeta {
            id,
            org_id,
            kind: "job".into(),
            job_id: id,
        })
        .await
        .unwrap();
    id
}

/// Now, at the microsecond precision both stores keep.
fn now_micros() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

// ---- tests ----------------------------------------------------------------------------------

async fn orgs_and_users(store: &dyn Store) {
    let acme = store.create_org("Acme Repairs").await.unwrap();
    assert_eq!(
        store.org_by_name("Acme Repairs").await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(store.org_by_name("Nobody").await.unwrap(), None);
    let err = store.create_org("Acme Repairs").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "duplicate org name: {err:?}"
    );

    let tess = store
        .create_user(acme.id, "tess", Role::Technician, "hash-1")
        .await
        .unwrap();
    let dana = store
        .create_user(acme.id, "dana", Role::Dispatcher, "hash-2")
        .await
        .unwrap();
    assert_eq!(tess.org_id, acme.id);
    assert_eq!(tess.role, Role::Technician);
    assert_eq!(
        store.user_by_name("tess").await.unwrap(),
        Some(tess.clone())
    );
    assert_eq!(store.user(dana.id).await.unwrap(), Some(dana.clone()));
    assert_eq!(store.user_by_name("nobody").await.unwrap(), None);
    assert_eq!(store.user(Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(store.users_in_org(acme.id).await.unwrap(), vec![dana, tess]);

    // Names are unique across the server, not per org: people sign in with the name alone.
    let other = store.create_org("Other Org").await.unwrap();
    let err = store
        .create_user(other.id, "tess", Role::Admin, "hash-3")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "duplicate user name: {err:?}"
    );
    assert_eq!(store.users_in_org(other.id).await.unwrap(), vec![]);

    let err = store
        .create_user(Uuid::now_v7(), "orphan", Role::BackOffice, "h")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "user in an unknown org: {err:?}"
    );
}

async fn devices_and_revocation(store: &dyn Store) {
    let (_, user_id) = org_with_user(store).await;
    let phone = store
        .register_device(user_id, "Tess's phone")
        .await
        .unwrap();
    assert_eq!(phone.user_id, user_id);
    assert!(!phone.revoked);
    assert_eq!(store.device(phone.id).await.unwrap(), Some(phone.clone()));

    assert!(store.revoke_device(phone.id).await.unwrap());
    let revoked = store.device(phone.id).await.unwrap().unwrap();
    assert!(revoked.revoked);
    assert_eq!(revoked.name, "Tess's phone");

    assert!(!store.revoke_device(Uuid::now_v7()).await.unwrap());
    assert_eq!(store.device(Uuid::now_v7()).await.unwrap(), None);
    let err = store
        .register_device(Uuid::now_v7(), "stray")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "device of an unknown user: {err:?}"
    );
}

async fn tokens(store: &dyn Store) {
    let (_, user_id) = org_with_user(store).await;
    let user = store.user(user_id).await.unwrap().unwrap();
    let phone = store.register_device(user_id, "phone").await.unwrap();
    let device_token = TokenRecord {
        hash: "a".repeat(64),
        kind: TokenKind::Access,
        user_id,
        device_id: Some(phone.id),
        expires_at: now_micros() + Duration::minutes(15),
    };
    let browser_token = TokenRecord {
        hash: "b".repeat(64),
        kind: TokenKind::Refresh,
        user_id,
        device_id: None,
        expires_at: now_micros() + Duration::days(30),
    };
    store.insert_token(&device_token).await.unwrap();
    store.insert_token(&browser_token).await.unwrap();

    let info = store.token(&device_token.hash).await.unwrap().unwrap();
    assert_eq!(info.token, device_token);
    assert_eq!(info.user, user);
    assert!(!info.device_revoked);
    let info = store.token(&browser_token.hash).await.unwrap().unwrap();
    assert_eq!(info.token, browser_token);
    assert!(!info.device_revoked);
    assert_eq!(store.token("unknown").await.unwrap(), None);

    store.revoke_device(phone.id).await.unwrap();
    assert!(
        store
            .token(&device_token.hash)
            .await
            .unwrap()
            .unwrap()
            .device_revoked
    );
    assert!(
        !store
            .token(&browser_token.hash)
            .await
            .unwrap()
            .unwrap()
            .device_revoked
    );

    let err = store.insert_token(&device_token).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(_)),
        "same token hash twice: {err:?}"
    );
    let stray = TokenRecord {
        hash: "c".repeat(64),
        user_id: Uuid::now_v7(),
        device_id: None,
        ..browser_token.clone()
    };
    let err = store.insert_token(&stray).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "token of an unknown user: {err:?}"
    );

    assert!(store.delete_token(&device_token.hash).await.unwrap());
    assert_eq!(store.token(&device_token.hash).await.unwrap(), None);
    assert!(
        !store
            .delete_token(&device_token.hash)
            .await
            .expect("deleting a missing token is fine"),
        "a second delete deletes nothing"
    );
    assert!(store.token(&browser_token.hash).await.unwrap().is_some());
}

/// Refresh-token rotation relies on this: of many concurrent deletes of one token, exactly one
/// reports that it deleted it.
async fn concurrent_token_deletes(store: &dyn Store) {
    let (_, user_id) = org_with_user(store).await;
    let token = TokenRecord {
        hash: "contested".into(),
        kind: TokenKind::Refresh,
        user_id,
        device_id: None,
        expires_at: now_micros() + Duration::days(1),
    };
    store.insert_token(&token).await.unwrap();
    let deletes = (0..20).map(|_| store.delete_token(&token.hash));
    let won: Vec<bool> = futures_util::future::join_all(deletes)
        .await
        .into_iter()
        .map(|r| r.expect("delete"))
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
}

/// The caller's mistakes come back as caller errors, never as retryable failures; text a backend
/// cannot store (NUL on Postgres) is `Invalid`, not a database failure.
/// Of 20 concurrent uses of one refresh token exactly one rotates it; the others, and later uses,
/// see it reused, with its device and when it was used.
async fn refresh_token_use_is_single(store: &dyn Store) {
    let (_, user_id) = org_with_user(store).await;
    let phone = store.register_device(user_id, "phone").await.unwrap();
    let token = TokenRecord {
        hash: "refresh-once".into(),
        kind: TokenKind::Refresh,
        user_id,
        device_id: Some(phone.id),
        expires_at: now_micros() + Duration::days(1),
    };
    store.insert_token(&token).await.unwrap();
    let access = TokenRecord {
        hash: "access".into(),
        kind: TokenKind::Access,
        ..token.clone()
    };
    store.insert_token(&access).await.unwrap();
    let at = now_micros();
    let uses = (0..20).map(|_| store.use_refresh_token(&token.hash, at));
    let results: Vec<Rotation> = futures_util::future::join_all(uses)
        .await
        .into_iter()
        .map(|r| r.expect("use"))
        .collect();
    assert_eq!(
        results.iter().filter(|r| **r == Rotation::Rotated).count(),
        1,
        "{results:?}"
    );
    let reused = Rotation::Reused {
        device_id: Some(phone.id),
        used_at: at,
    };
    assert_eq!(results.iter().filter(|r| **r == reused).count(), 19);
    assert_eq!(
        store.use_refresh_token(&token.hash, at).await.unwrap(),
        reused
    );
    assert_eq!(
        store.use_refresh_token("nothing", at).await.unwrap(),
        Rotation::Unknown
    );
    assert_eq!(
        store.use_refresh_token(&access.hash, at).await.unwrap(),
        Rotation::Unknown,
        "access tokens are not rotated"
    );
}

async fn errors_are_classified(store: &dyn Store) {
    let (org_id, user_id) = org_with_user(store).await;
    let err = store
        .create_user(org_id, "tess", Role::Technician, "h")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.is_caller_error() && !err.is_retryable());
    let err = store
        .assign(Uuid::now_v7(), Uuid::now_v7())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert!(err.is_caller_error() && !err.is_retryable());

    match store.user_by_name("nul\0name").await {
        Ok(found) => assert_eq!(found, None, "a backend that stores NUL finds nobody"),
        Err(err) => {
            assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
            assert!(err.is_caller_error() && !err.is_retryable());
        }
    }
    match store.register_device(user_id, "phone\0").await {
        Ok(_) => {}
        Err(err) => {
            assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
            assert!(err.is_caller_error() && !err.is_retryable());
        }
    }
}

/// A database that cannot be reached is a failure worth retrying, and keeps its cause.
#[tokio::test]
async fn unreachable_postgres_is_retryable_and_keeps_its_cause() {
    let err = match PgStore::connect("postgres://postgres@127.0.0.1:1/nowhere").await {
        Ok(_) => panic!("nothing listens on port 1"),
        Err(err) => err,
    };
    assert!(err.is_retryable(), "{err:?}");
    assert!(!err.is_caller_error());
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
}

async fn document_registry(store: &dyn Store) {
    let (org_id, _) = org_with_user(store).await;
    let other_org = store.create_org("Other Org").await.unwrap().id;
    let job_id = Uuid::now_v7();
    let job = DocMeta {
        id: job_id,
        org_id,
        kind: "job".into(),
        job_id,
    };
    let checklist = DocMeta {
        id: Uuid::now_v7(),
        org_id,
        kind: "checklist".into(),
        job_id: job.id,
    };
    let other_job = job_document(store, org_id).await;
    let foreign_job = job_document(store, other_org).await;

    store.create_document(&job).await.unwrap();
    store.create_document(&checklist).await.unwrap();
    store
        .create_document(&checklist)
        .await
        .expect("registering again is a no-op");

    assert_eq!(store.document(job.id).await.unwrap(), Some(job.clone()));
    assert_eq!(
        store.document(checklist.id).await.unwrap(),
        Some(checklist.clone())
    );
    assert_eq!(store.document(Uuid::now_v7()).await.unwrap(), None);

    let mut docs = store.job_documents(job.id).await.unwrap();
    docs.sort_by_key(|doc| doc.id);
    let mut expected = vec![job.clone(), checklist.clone()];
    expected.sort_by_key(|doc| doc.id);
    assert_eq!(docs, expected);
    assert_eq!(store.job_documents(Uuid::now_v7()).await.unwrap(), vec![]);

    assert_eq!(
        sorted(store.org_jobs(org_id).await.unwrap()),
        sorted(vec![job.id, other_job])
    );
    assert_eq!(store.org_jobs(other_org).await.unwrap(), vec![foreign_job]);

    let stray = DocMeta {
        id: Uuid::now_v7(),
        org_id: Uuid::now_v7(),
        kind: "job".into(),
        job_id: Uuid::now_v7(),
    };
    let err = store.create_document(&stray).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "document of an unknown org: {err:?}"
    );
}

async fn append_is_idempotent_by_hash(store: &dyn Store) {
    let (org_id, _) = org_with_user(store).await;
    let doc = job_document(store, org_id).await;

    assert_eq!(
        store.append_changes(doc, &[]).await.unwrap(),
        0,
        "empty log"
    );
    let first = store
        .append_changes(doc, &[change("a"), change("b")])
        .await
        .unwrap();
    assert!(first > 0);
    // A retried upload that overlaps the first one adds only what is new.
    let second = store
        .append_changes(doc, &[change("b"), change("c")])
        .await
        .unwrap();
    assert!(second > first);
    let again = store
        .append_changes(doc, &[change("a"), change("b"), change("c")])
        .await
        .unwrap();
    assert_eq!(again, second, "an upload of known changes changes nothing");
    assert_eq!(store.append_changes(doc, &[]).await.unwrap(), second);
    // A hash repeated within one upload is stored once.
    let third = store
        .append_changes(doc, &[change("d"), change("d")])
        .await
        .unwrap();

    assert_eq!(
        store.load(doc).await.unwrap(),
        StoredDoc {
            snapshot: None,
            changes: bytes(&["a", "b", "c", "d"]),
            last_seq: third
        }
    );

    // Hashes are per document: another document may hold the same change.
    let other = job_document(store, org_id).await;
    let other_last = store.append_changes(other, &[change("a")]).await.unwrap();
    assert!(
        other_last > third,
        "sequence numbers are global and only grow"
    );
    assert_eq!(store.load(other).await.unwrap().changes, bytes(&["a"]));
}

/// Overlapping uploads of one document at the same time (a device retrying while its first
/// upload is still in flight): every change is stored once, and readers agree on one order.
async fn concurrent_appends(store: &dyn Store) {
    let (org_id, _) = org_with_user(store).await;
    let doc = job_document(store, org_id).await;
    let names: Vec<String> = (0..20).map(|i| format!("{i:02}")).collect();
    let batch = |from: usize, to: usize| {
        names[from..to]
            .iter()
            .map(|n| change(n))
            .collect::<Vec<_>>()
    };
    let (first, second, third) = (batch(0, 12), batch(4, 16), batch(8, 20));
    let (a, b, c) = tokio::join!(
        store.append_changes(doc, &first),
        store.append_changes(doc, &second),
        store.append_changes(doc, &third),
    );
    let last = [a.unwrap(), b.unwrap(), c.unwrap()]
        .into_iter()
        .max()
        .unwrap();

    let loaded = store.load(doc).await.unwrap();
    assert_eq!(loaded.last_seq, last);
    assert_eq!(store.changes_since(doc, 0).await.unwrap(), loaded);
    let mut stored = loaded.changes;
    stored.sort();
    let mut expected: Vec<Vec<u8>> = names.iter().map(|n| change(n).bytes).collect();
    expected.sort();
    assert_eq!(stored, expected);
}

/// A group commit: several documents' appends (with audit rows) in one transaction, each answered
/// with its own document's sequence number; one bad append and none of them is stored.
async fn batch_appends_commit_together(store: &dyn Store) {
    let (org_id, user_id) = org_with_user(store).await;
    let a = job_document(store, org_id).await;
    let b = job_document(store, org_id).await;
    let device = store.register_device(user_id, "tablet").await.unwrap();
    assert_eq!(
        store.append_batch(&[], None).await.unwrap(),
        Vec::<i64>::new()
    );
    let audit = AuditRecord {
        id: Uuid::now_v7(),
        org_id,
        job_id: b,
        doc_id: Some(b),
        actor_user: Some(user_id),
        actor_device: None,
        action: "repair".into(),
        reasons: vec!["status: not a status".into()],
        before: None,
        after: None,
        at: now_micros(),
        flagged: true,
    };
    let seqs = store
        .append_batch(
            &[
                Append {
                    doc_id: a,
                    changes: vec![change("a1"), change("a2")],
                    audit: vec![],
                    sync_state: None,
                },
                Append {
                    doc_id: b,
                    changes: vec![change("b1")],
                    audit: vec![audit.clone()],
                    sync_state: Some((device.id, b"state of b".to_vec())),
                },
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(seqs.len(), 2);
    assert_eq!(store.load(a).await.unwrap().last_seq, seqs[0]);
    assert_eq!(store.load(b).await.unwrap().last_seq, seqs[1]);
    assert_eq!(store.load(a).await.unwrap().changes, bytes(&["a1", "a2"]));
    assert_eq!(store.job_audit(b).await.unwrap(), vec![audit]);
    assert_eq!(
        store.sync_state(device.id, b).await.unwrap().as_deref(),
        Some(&b"state of b"[..]),
        "the sender's sync state is saved in the same commit"
    );

    // An unknown document fails the whole batch: the good append beside it is not stored.
    let err = store
        .append_batch(
            &[
                Append {
                    doc_id: a,
                    changes: vec![change("a3")],
                    audit: vec![],
                    sync_state: None,
                },
                Append {
                    doc_id: Uuid::now_v7(),
                    changes: vec![change("x")],
                    audit: vec![],
                    sync_state: None,
                },
            ],
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.load(a).await.unwrap().changes, bytes(&["a1", "a2"]));
    assert_eq!(store.load(a).await.unwrap().last_seq, seqs[0]);
}

async fn unknown_document_is_not_found(store: &dyn Store) {
    let unknown = Uuid::now_v7();
    let is_not_found = |result: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(result, Err(StoreError::NotFound(_))),
            "{what}: {result:?}"
        );
    };
    is_not_found(
        store
            .append_changes(unknown, &[change("a")])
            .await
            .map(drop),
        "append",
    );
    is_not_found(
        store.append_changes(unknown, &[]).await.map(drop),
        "empty append",
    );
    is_not_found(store.load(unknown).await.map(drop), "load");
    is_not_found(
        store.changes_since(unknown, 0).await.map(drop),
        "changes_since",
    );
    is_not_found(
        store.save_snapshot(unknown, b"snapshot", 1).await,
        "save_snapshot",
    );
}

async fn snapshot_compacts_the_log(store: &dyn Store) {
    let (org_id, _) = org_with_user(store).await;
    let doc = job_document(store, org_id).await;
    let upto = store
        .append_changes(doc, &[change("a"), change("b")])
        .await
        .unwrap();
    let last = store.append_changes(doc, &[change("c")]).await.unwrap();

    store
        .save_snapshot(doc, b"snapshot-ab", upto)
        .await
        .unwrap();
    let expected = StoredDoc {
        snapshot: Some(b"snapshot-ab".to_vec()),
        changes: bytes(&["c"]),
        last_seq: last,
    };
    assert_eq!(store.load(doc).await.unwrap(), expected);

    // The compacted changes' hashes still count: re-uploading them is a no-op.
    assert_eq!(
        store
            .append_changes(doc, &[change("a"), change("b")])
            .await
            .unwrap(),
        last
    );
    assert_eq!(store.load(doc).await.unwrap(), expected);

    let newest = store
        .append_changes(doc, &[change("b"), change("d")])
        .await
        .unwrap();
    assert_eq!(
        store.load(doc).await.unwrap(),
        StoredDoc {
            snapshot: Some(b"snapshot-ab".to_vec()),
            changes: bytes(&["c", "d"]),
            last_seq: newest
        }
    );

    // An older snapshot arriving late must not replace a newer one.
    store
        .save_snapshot(doc, b"snapshot-abcd", newest)
        .await
        .unwrap();
    store
        .save_snapshot(doc, b"snapshot-ab", upto)
        .await
        .unwrap();
    assert_eq!(
        store.load(doc).await.unwrap(),
        StoredDoc {
            snapshot: Some(b"snapshot-abcd".to_vec()),
            changes: vec![],
            last_seq: newest
        }
    );

    // A snapshot claiming more than the log holds covers the log, not changes appended later.
    let doc2 = job_document(store, org_id).await;
    store.append_changes(doc2, &[change("a")]).await.unwrap();
    store
        .save_snapshot(doc2, b"snapshot-a", i64::MAX)
        .await
        .unwrap();
    let after = store.append_changes(doc2, &[change("b")]).await.unwrap();
    assert_eq!(
        store.load(doc2).await.unwrap(),
        StoredDoc {
            snapshot: Some(b"snapshot-a".to_vec()),
            changes: bytes(&["b"]),
            last_seq: after
        }
    );
}

async fn changes_since(store: &dyn Store) {
    let (org_id, _) = org_with_user(store).await;
    let doc = job_document(store, org_id).await;
    assert_eq!(
        store.changes_since(doc, 0).await.unwrap(),
        StoredDoc::default()
    );

    let s1 = store.append_changes(doc, &[change("a")]).await.unwrap();
    let s2 = store.append_changes(doc, &[change("b")]).await.unwrap();
    let s3 = store.append_changes(doc, &[change("c")]).await.unwrap();

    let since = |seq| store.changes_since(doc, seq);
    assert_eq!(
        since(0).await.unwrap(),
        StoredDoc {
            snapshot: None,
            changes: bytes(&["a", "b", "c"]),
            last_seq: s3
        }
    );
    assert_eq!(
        since(s1).await.unwrap(),
        StoredDoc {
            snapshot: None,
            changes: bytes(&["b", "c"]),
            last_seq: s3
        }
    );
    assert_eq!(
        since(s3).await.unwrap(),
        StoredDoc {
            snapshot: None,
            changes: vec![],
            last_seq: s3
        }
    );

    store.save_snapshot(doc, b"snapshot-ab", s2).await.unwrap();
    let with_snapshot = StoredDoc {
        snapshot: Some(b"snapshot-ab".to_vec()),
        changes: bytes(&["c"]),
        last_seq: s3,
    };
    // The caller needs a compacted change, so the snapshot comes along ...
    assert_eq!(since(0).await.unwrap(), with_snapshot);
    assert_eq!(since(s1).await.unwrap(), with_snapshot);
    // ... and not when everything it needs still has its bytes.
    assert_eq!(
        since(s2).await.unwrap(),
        StoredDoc {
            snapshot: None,
            changes: bytes(&["c"]),
            last_seq: s3
        }
    );
    assert_eq!(
        since(s3).await.unwrap(),
        StoredDoc {
            snapshot: None,
            changes: vec![],
            last_seq: s3
        }
    );
}

async fn sync_states(store: &dyn Store) {
    let (org_id, user_id) = org_with_user(store).await;
    let phone = store.register_device(user_id, "phone").await.unwrap().id;
    let tablet = store.register_device(user_id, "tablet").await.unwrap().id;
    let doc = job_document(store, org_id).await;

    assert_eq!(store.sync_state(phone, doc).await.unwrap(), None);
    store.put_sync_state(phone, doc, b"state-1").await.unwrap();
    assert_eq!(
        store.sync_state(phone, doc).await.unwrap(),
        Some(b"state-1".to_vec())
    );
    store.put_sync_state(phone, doc, b"state-2").await.unwrap();
    assert_eq!(
        store.sync_state(phone, doc).await.unwrap(),
        Some(b"state-2".to_vec())
    );
    assert_eq!(
        store.sync_state(tablet, doc).await.unwrap(),
        None,
        "states are per device"
    );

    let err = store
        .put_sync_state(Uuid::now_v7(), doc, b"state")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "state of an unknown device: {err:?}"
    );
    let err = store
        .put_sync_state(phone, Uuid::now_v7(), b"state")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "state of an unknown document: {err:?}"
    );
}

async fn sync_states_in_one_batch(store: &dyn Store) {
    let (org_id, user_id) = org_with_user(store).await;
    let phone = store.register_device(user_id, "phone").await.unwrap().id;
    let tablet = store.register_device(user_id, "tablet").await.unwrap().id;
    let doc1 = job_document(store, org_id).await;
    let doc2 = job_document(store, org_id).await;
    let doc3 = job_document(store, org_id).await;

    store
        .put_sync_states(phone, &[])
        .await
        .expect("an empty batch is fine");
    assert!(store.sync_state_docs(phone).await.unwrap().is_empty());

    store
        .put_sync_states(phone, &[(doc1, b"1a".to_vec()), (doc2, b"2a".to_vec())])
        .await
        .unwrap();
    assert_eq!(
        store.sync_state(phone, doc1).await.unwrap(),
        Some(b"1a".to_vec())
    );
    assert_eq!(
        store.sync_state(phone, doc2).await.unwrap(),
        Some(b"2a".to_vec())
    );
    assert_eq!(
        store.sync_state_docs(phone).await.unwrap(),
        sorted(vec![doc1, doc2])
    );
    assert!(
        store.sync_state_docs(tablet).await.unwrap().is_empty(),
        "states are per device"
    );

    // Replaces what is there and adds what is not, as `put_sync_state` would one by one.
    store
        .put_sync_states(phone, &[(doc2, b"2b".to_vec()), (doc3, b"3a".to_vec())])
        .await
        .unwrap();
    assert_eq!(
        store.sync_state(phone, doc1).await.unwrap(),
        Some(b"1a".to_vec()),
        "a state not in the batch stays"
    );
    assert_eq!(
        store.sync_state(phone, doc2).await.unwrap(),
        Some(b"2b".to_vec())
    );
    assert_eq!(
        store.sync_state(phone, doc3).await.unwrap(),
        Some(b"3a".to_vec())
    );

    // All or nothing: an unknown document late in the batch leaves every state as it was.
    let err = store
        .put_sync_states(
            phone,
            &[
                (doc1, b"1c".to_vec()),
                (doc2, b"2c".to_vec()),
                (Uuid::now_v7(), b"x".to_vec()),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "a batch with an unknown document: {err:?}"
    );
    assert_eq!(
        store.sync_state(phone, doc1).await.unwrap(),
        Some(b"1a".to_vec()),
        "the failed batch wrote nothing"
    );
    assert_eq!(
        store.sync_state(phone, doc2).await.unwrap(),
        Some(b"2b".to_vec()),
        "the failed batch wrote nothing"
    );

    let err = store
        .put_sync_states(Uuid::now_v7(), &[(doc1, b"x".to_vec())])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "a batch of an unknown device: {err:?}"
    );

    // A device's first sync of a week's work: 200 documents in one call.
    let mut docs = Vec::new();
    for _ in 0..200 {
        docs.push(job_document(store, org_id).await);
    }
    let batch: Vec<(Uuid, Vec<u8>)> = docs.iter().map(|d| (*d, d.as_bytes().to_vec())).collect();
    store.put_sync_states(tablet, &batch).await.unwrap();
    assert_eq!(
        store.sync_state_docs(tablet).await.unwrap(),
        sorted(docs.clone())
    );
    for d in &docs {
        assert_eq!(
            store.sync_state(tablet, *d).await.unwrap(),
            Some(d.as_bytes().to_vec())
        );
    }
}

async fn sync_state_docs_and_deletion(store: &dyn Store) {
    let (org_id, user_id) = org_with_user(store).await;
    let phone = store.register_device(user_id, "phone").await.unwrap().id;
    let tablet = store.register_device(user_id, "tablet").await.unwrap().id;
    let doc1 = job_document(store, org_id).await;
    let doc2 = job_document(store, org_id).await;
    let _never_sent = job_document(store, org_id).await;

    assert!(store.sync_state_docs(phone).await.unwrap().is_empty());
    store.put_sync_state(phone, doc2, b"state-2").await.unwrap();
    store.put_sync_state(phone, doc1, b"state-1").await.unwrap();
    store
        .put_sync_state(tablet, doc1, b"tablet-1")
        .await
        .unwrap();
    assert_eq!(
        store.sync_state_docs(phone).await.unwrap(),
        sorted(vec![doc1, doc2]),
        "ordered by document id"
    );
    assert_eq!(store.sync_state_docs(tablet).await.unwrap(), vec![doc1]);
    assert!(
        store
            .sync_state_docs(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );

    store.delete_sync_state(phone, doc1).await.unwrap();
    assert_eq!(store.sync_state(phone, doc1).await.unwrap(), None);
    assert_eq!(store.sync_state_docs(phone).await.unwrap(), vec![doc2]);
    assert_eq!(
        store.sync_state(tablet, doc1).await.unwrap(),
        Some(b"tablet-1".to_vec()),
        "another device's state stays"
    );
    store
        .delete_sync_state(phone, doc1)
        .await
        .expect("deleting a missing state is fine");
    store
        .delete_sync_state(Uuid::now_v7(), Uuid::now_v7())
        .await
        .expect("deleting for an unknown device and document is fine");

    // A deleted state can be stored again (the document comes back to the device).
    store
        .put_sync_state(phone, doc1, b"state-1b")
        .await
        .unwrap();
    assert_eq!(
        store.sync_state_docs(phone).await.unwrap(),
        sorted(vec![doc1, doc2])
    );
}

/// Two orgs with jobs, documents and assignments, for the document-set queries.
struct DocumentSets {
    org: Uuid,
    other_org: Uuid,
    tess: Uuid,
    theo: Uuid,
    /// Nobody's assigned anything.
    idle: Uuid,
    /// Assigned to tess: the job, its checklist and photo.
    job1: Vec<DocMeta>,
    /// Assigned to tess and theo: the job and its parts list.
    job2: Vec<DocMeta>,
    /// Assigned to nobody.
    job3: Vec<DocMeta>,
    /// Every document of the other org: its own job, and a stray document that claims job1.
    foreign: Vec<DocMeta>,
}

async fn document_sets(store: &dyn Store) -> DocumentSets {
    let (org, tess) = org_with_user(store).await;
    let new_user = |name: &'static str| async move {
        store
            .create_user(org, name, Role::Technician, "hash")
            .await
            .unwrap()
            .id
    };
    let theo = new_user("theo").await;
    let idle = new_user("ida").await;
    let other_org = store.create_org("Other Org").await.unwrap().id;

    let job = |kinds: &'static [&'static str]| async move {
        let id = job_document(store, org).await;
        let mut docs = vec![store.document(id).await.unwrap().unwrap()];
        for kind in kinds {
            docs.push(document_of(store, org, kind, id).await);
        }
        docs
    };
    let job1 = job(&["checklist", "photo"]).await;
    let job2 = job(&["parts"]).await;
    let job3 = job(&["checklist"]).await;
    let foreign_job = job_document(store, other_org).await;
    let foreign = vec![
        store.document(foreign_job).await.unwrap().unwrap(),
        document_of(store, other_org, "checklist", job1[0].id).await,
    ];

    store.assign(job1[0].id, tess).await.unwrap();
    store.assign(job2[0].id, tess).await.unwrap();
    store.assign(job2[0].id, theo).await.unwrap();
    // A job whose documents have not reached the server yet contributes nothing.
    store.assign(Uuid::now_v7(), tess).await.unwrap();

    DocumentSets {
        org,
        other_org,
        tess,
        theo,
        idle,
        job1,
        job2,
        job3,
        foreign,
    }
}

async fn user_documents(store: &dyn Store) {
    let sets = document_sets(store).await;
    assert_eq!(
        store.user_documents(sets.tess).await.unwrap(),
        by_job([sets.job1.clone(), sets.job2.clone()].concat()),
        "the other org's document under job1's id is not tess's"
    );
    assert_eq!(
        store.user_documents(sets.theo).await.unwrap(),
        by_job(sets.job2.clone())
    );
    assert_eq!(store.user_documents(sets.idle).await.unwrap(), vec![]);
    assert_eq!(store.user_documents(Uuid::now_v7()).await.unwrap(), vec![]);

    // The set follows assignments and registrations.
    store.unassign(sets.job1[0].id, sets.tess).await.unwrap();
    store.assign(sets.job3[0].id, sets.tess).await.unwrap();
    let late = document_of(store, sets.org, "photo", sets.job2[0].id).await;
    assert_eq!(
        store.user_documents(sets.tess).await.unwrap(),
        by_job([sets.job2.clone(), sets.job3.clone(), vec![late]].concat())
    );
}

async fn org_documents(store: &dyn Store) {
    let sets = document_sets(store).await;
    assert_eq!(
        store.org_documents(sets.org).await.unwrap(),
        by_job([sets.job1, sets.job2, sets.job3].concat()),
        "every kind, assigned or not"
    );
    assert_eq!(
        store.org_documents(sets.other_org).await.unwrap(),
        by_job(sets.foreign)
    );
    assert_eq!(store.org_documents(Uuid::now_v7()).await.unwrap(), vec![]);
}

async fn ping(store: &dyn Store) {
    store.ping().await.expect("ping a working store");
}

/// A notice published by one node reaches every subscription, on every node, in order. A
/// single-node store has nothing to subscribe to, and publishing to it is a no-op.
async fn change_notices(nodes: TwoNodes<'_>) {
    use tokio::time::timeout;
    const WAIT: std::time::Duration = std::time::Duration::from_secs(5);
    let (node_a, node_b) = (Uuid::now_v7(), Uuid::now_v7());
    let notice = |seq, node| ChangeNotice {
        what: Notified::Doc {
            doc: Uuid::now_v7(),
            seq,
        },
        node,
    };

    let Some(mut on_a) = nodes.a.subscribe_changes().await.unwrap() else {
        assert!(!nodes.multi_node, "a multi-node store must offer notices");
        assert!(nodes.b.subscribe_changes().await.unwrap().is_none());
        nodes.a.publish_change(notice(1, node_a)).await.unwrap();
        nodes.b.publish_change(notice(2, node_b)).await.unwrap();
        return;
    };
    assert!(nodes.multi_node, "a single-node store offers no notices");
    let mut on_b = nodes
        .b
        .subscribe_changes()
        .await
        .unwrap()
        .expect("every node can subscribe");

    // No sleeps: a subscription listens before subscribe_changes returns.
    let first = notice(1, node_b);
    let second = notice(i64::MAX, node_b);
    nodes.b.publish_change(first).await.unwrap();
    nodes.b.publish_change(second).await.unwrap();
    for expected in [first, second] {
        let received = timeout(WAIT, on_a.recv()).await.expect("notice on time");
        assert_eq!(received, Some(expected), "node a hears node b");
        let received = timeout(WAIT, on_b.recv()).await.expect("notice on time");
        assert_eq!(received, Some(expected), "node b hears itself");
    }

    let from_a = notice(3, node_a);
    nodes.a.publish_change(from_a).await.unwrap();
    assert_eq!(
        timeout(WAIT, on_b.recv()).await.expect("notice on time"),
        Some(from_a)
    );
    assert_eq!(
        timeout(WAIT, on_a.recv()).await.expect("notice on time"),
        Some(from_a)
    );

    // Dropping a subscription does not disturb publishing or the other subscription.
    drop(on_a);
    let last = notice(4, node_a);
    nodes.a.publish_change(last).await.unwrap();
    assert_eq!(
        timeout(WAIT, on_b.recv()).await.expect("notice on time"),
        Some(last)
    );
    assert!(on_b.try_recv().is_err(), "nothing else was published");
}

/// A batch appended on behalf of a node tells every node, with the commit itself, which sequence
/// number each of its documents reached; a batch without a node, or one that fails, tells
/// nobody. A single-node store appends the same and has nobody to tell.
async fn commits_announce_their_documents(nodes: TwoNodes<'_>) {
    use tokio::time::timeout;
    const WAIT: std::time::Duration = std::time::Duration::from_secs(5);
    let node_a = Uuid::now_v7();
    let (org_id, _) = org_with_user(nodes.a).await;
    let (x, y) = (
        job_document(nodes.a, org_id).await,
        job_document(nodes.a, org_id).await,
    );
    let append = |doc_id, hash: &str| Append {
        doc_id,
        changes: vec![change(hash)],
        audit: vec![],
        sync_state: None,
    };
    let announced = |doc, seq| ChangeNotice {
        what: Notified::Doc { doc, seq },
        node: node_a,
    };

    let subscription = nodes.b.subscribe_changes().await.unwrap();
    assert_eq!(subscription.is_some(), nodes.multi_node);
    let seqs = nodes
        .a
        .append_batch(
            &[append(x, "x1"), append(y, "y1"), append(x, "x2")],
            Some(node_a),
        )
        .await
        .unwrap();
    assert_eq!(nodes.b.load(x).await.unwrap().last_seq, seqs[2]);
    let Some(mut on_b) = subscription else {
        return;
    };
    let mut heard = Vec::new();
    for _ in 0..2 {
        let notice = timeout(WAIT, on_b.recv()).await.expect("notice on time");
        heard.push(notice.expect("subscription open"));
    }
    // One notice per document (in either order), with the last sequence number it reached.
    assert!(heard.contains(&announced(x, seqs[2])), "{heard:?}");
    assert!(heard.contains(&announced(y, seqs[1])), "{heard:?}");

    // Not on behalf of a node, or failed: nothing is heard.
    nodes
        .a
        .append_batch(&[append(y, "y2")], None)
        .await
        .unwrap();
    let failed = nodes
        .a
        .append_batch(
            &[append(x, "x3"), append(Uuid::now_v7(), "lost")],
            Some(node_a),
        )
        .await;
    assert!(matches!(failed, Err(StoreError::NotFound(_))), "{failed:?}");
    let seqs = nodes
        .a
        .append_batch(&[append(y, "y3")], Some(node_a))
        .await
        .unwrap();
    assert_eq!(
        timeout(WAIT, on_b.recv()).await.expect("notice on time"),
        Some(announced(y, seqs[0])),
        "the next notice is the next announced commit's"
    );
    assert!(on_b.try_recv().is_err(), "nothing else was announced");
}

async fn assignments(store: &dyn Store) {
    let (org_id, tess) = org_with_user(store).await;
    let theo = store
        .create_user(org_id, "theo", Role::Technician, "hash")
        .await
        .unwrap()
        .id;
    let job1 = job_document(store, org_id).await;
    let job2 = job_document(store, org_id).await;

    assert!(store.assign(job1, tess).await.unwrap());
    assert!(
        !store.assign(job1, tess).await.unwrap(),
        "assigning twice reports false"
    );
    assert!(store.assign(job1, theo).await.unwrap());
    assert!(store.assign(job2, tess).await.unwrap());

    assert_eq!(
        sorted(store.assigned_jobs(tess).await.unwrap()),
        sorted(vec![job1, job2])
    );
    assert_eq!(store.assigned_jobs(theo).await.unwrap(), vec![job1]);
    assert_eq!(
        sorted(store.job_assignees(job1).await.unwrap()),
        sorted(vec![tess, theo])
    );
    assert_eq!(store.job_assignees(job2).await.unwrap(), vec![tess]);
    assert_eq!(
        sorted(store.org_jobs(org_id).await.unwrap()),
        sorted(vec![job1, job2])
    );

    assert!(store.unassign(job1, theo).await.unwrap());
    assert!(
        !store.unassign(job1, theo).await.unwrap(),
        "unassigning twice reports false"
    );
    assert!(!store.unassign(Uuid::now_v7(), tess).await.unwrap());
    assert!(store.assigned_jobs(theo).await.unwrap().is_empty());
    assert_eq!(store.job_assignees(job1).await.unwrap(), vec![tess]);

    let err = store.assign(job1, Uuid::now_v7()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "assigning an unknown user: {err:?}"
    );
}

/// Real Automerge changes through append, compaction and load: the document rebuilt from what the
/// store returns equals the original.
async fn automerge_round_trip(store: &dyn Store) {
    fn records(changes: &[automerge::Change]) -> Vec<ChangeRecord> {
        changes
            .iter()
            .map(|c| ChangeRecord {
                hash: c.hash().to_string(),
                bytes: c.raw_bytes().to_vec(),
            })
            .collect()
    }
    fn rebuild(stored: &StoredDoc) -> AutoCommit {
        let mut doc = match &stored.snapshot {
            Some(snapshot) => AutoCommit::load(snapshot).expect("snapshot loads"),
            None => AutoCommit::new(),
        };
        for change in &stored.changes {
            doc.load_incremental(change).expect("change applies");
        }
        doc
    }
    fn heads(doc: &mut AutoCommit) -> Vec<ChangeHash> {
        let mut heads = doc.get_heads();
        heads.sort();
        heads
    }

    let (org_id, _) = org_with_user(store).await;
    let doc_id = job_document(store, org_id).await;

    let mut doc = AutoCommit::new();
    doc.put(ROOT, "title", "Replace boiler valve").unwrap();
    doc.commit();
    doc.put(ROOT, "status", "scheduled").unwrap();
    doc.commit();
    let early = doc.get_changes(&[]);
    let upto = store
        .append_changes(doc_id, &records(&early))
        .await
        .unwrap();
    let snapshot = doc.save();
    let snapshot_heads = doc.get_heads();

    doc.put(ROOT, "status", "in_progress").unwrap();
    doc.commit();
    doc.put(ROOT, "notes", "valve seized, replaced").unwrap();
    doc.commit();
    let late = doc.get_changes(&snapshot_heads);
    assert_eq!(late.len(), 2);
    let last = store.append_changes(doc_id, &records(&late)).await.unwrap();

    // Before compaction the log alone rebuilds the document.
    let mut rebuilt = rebuild(&store.load(doc_id).await.unwrap());
    assert_eq!(heads(&mut rebuilt), heads(&mut doc));
    assert_eq!(
        rebuilt.hydrate(ROOT, None).unwrap(),
        doc.hydrate(ROOT, None).unwrap()
    );

    store.save_snapshot(doc_id, &snapshot, upto).await.unwrap();
    let stored = store.load(doc_id).await.unwrap();
    assert_eq!(stored.snapshot.as_deref(), Some(&snapshot[..]));
    assert_eq!(
        stored.changes.len(),
        2,
        "only the changes after the snapshot"
    );
    assert_eq!(stored.last_seq, last);
    let mut rebuilt = rebuild(&stored);
    assert_eq!(heads(&mut rebuilt), heads(&mut doc));
    assert_eq!(
        rebuilt.hydrate(ROOT, None).unwrap(),
        doc.hydrate(ROOT, None).unwrap()
    );

    // Re-uploading every change, compacted ones included, is a no-op.
    let everything = doc.get_changes(&[]);
    assert_eq!(
        store
            .append_changes(doc_id, &records(&everything))
            .await
            .unwrap(),
        last
    );
    assert_eq!(store.load(doc_id).await.unwrap(), stored);
}
