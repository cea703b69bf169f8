//! Group commit ([`sync_server::sync::commit::GroupCommit`]) on the embedded store: appends that
//! arrive while a commit runs share the next one, every caller is answered with its own
//! document's sequence number only after that commit, and one caller's bad append fails only
//! that caller.

use std::sync::Arc;
use std::time::Duration;

use fieldsync_test_support::FaultyStore;
use sync_server::metrics::Metrics;
use sync_server::store::sqlite::SqliteStore;
use sync_server::store::{Append, ChangeRecord, DocMeta, Role, Store, StoreError};
use sync_server::sync::commit::GroupCommit;
use uuid::Uuid;

struct Fixture {
    faulty: Arc<FaultyStore>,
    commits: Arc<GroupCommit>,
    org_id: Uuid,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inner = SqliteStore::open(dir.path().join("store.db")).unwrap();
    inner.migrate().await.unwrap();
    let faulty = Arc::new(FaultyStore::new(Arc::new(inner)));
    let org = faulty.create_org("Acme").await.unwrap();
    faulty
        .create_user(org.id, "tess", Role::Technician, "hash")
        .await
        .unwrap();
    let commits = Arc::new(GroupCommit::new(
        faulty.clone(),
        Arc::new(Metrics::default()),
        Uuid::now_v7(),
    ));
    Fixture {
        faulty,
        commits,
        org_id: org.id,
        _dir: dir,
    }
}

async fn new_doc(f: &Fixture) -> Uuid {
    let id = Uuid::now_v7();
    f.faulty
        .create_document(&DocMeta {
            id,
            org_id: f.org_id,
            kind: "job".into(),
            job_id: id,
        })
        .await
        .unwrap();
    id
}

fn append(doc_id: Uuid, name: &str) -> Append {
    Append {
        doc_id,
        changes: vec![ChangeRecord {
            hash: format!("hash-{name}"),
            bytes: name.as_bytes().to_vec(),
        }],
        audit: vec![],
        sync_state: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_waiting_behind_a_commit_share_the_next_one() {
    let f = fixture().await;
    let mut docs = Vec::new();
    for _ in 0..40 {
        docs.push(new_doc(&f).await);
    }
    // The first commit is held at the store; everything after it queues up.
    let hold = f.faulty.hold_appends().await;
    let mut tasks = Vec::new();
    for (i, &doc) in docs.iter().enumerate() {
        let commits = f.commits.clone();
        tasks.push(tokio::spawn(async move {
            commits.append(append(doc, &format!("c{i}"))).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tasks.iter().all(|t| !t.is_finished()),
        "no caller is answered before its commit"
    );
    drop(hold);
    for (task, &doc) in tasks.into_iter().zip(&docs) {
        let seq = task.await.unwrap().unwrap();
        assert_eq!(f.faulty.load(doc).await.unwrap().last_seq, seq);
    }
    let sizes = f.faulty.batch_sizes();
    assert_eq!(sizes.iter().sum::<usize>(), 40, "{sizes:?}");
    assert!(
        sizes.len() < 40 && sizes.iter().max() > Some(&1),
        "appends were committed together: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_append_fails_only_its_caller() {
    let f = fixture().await;
    let good: Vec<Uuid> = vec![new_doc(&f).await, new_doc(&f).await, new_doc(&f).await];
    let hold = f.faulty.hold_appends().await;
    let first = {
        let commits = f.commits.clone();
        let doc = good[0];
        tokio::spawn(async move { commits.append(append(doc, "first")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Queued behind the held commit: two good appends and one for a document nobody registered.
    let unknown = Uuid::now_v7();
    let queued: Vec<_> = [good[1], unknown, good[2]]
        .into_iter()
        .enumerate()
        .map(|(i, doc)| {
            let commits = f.commits.clone();
            tokio::spawn(async move { commits.append(append(doc, &format!("q{i}"))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(hold);
    first.await.unwrap().unwrap();
    let results: Vec<_> = futures_join(queued).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::NotFound(_))),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    for doc in [good[1], good[2]] {
        assert_eq!(f.faulty.load(doc).await.unwrap().changes.len(), 1);
    }
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
