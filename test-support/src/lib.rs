//! Test support shared by the end-to-end tests (`tests/`, crate `fieldsync-e2e`), the sync
//! server's integration tests (store conformance, document cache) and its load bench. Not
//! published; nothing in a production crate depends on it.
//!
//! - [`PgDb`]: a fresh Postgres database per test, dropped with the value;
//! - [`ServerProcess`]: the real `sync-server` binary as a child process on port 0, returned once
//!   it listens;
//! - [`serve_in_process`]: a server built from an `AppState` (any store, e.g. a [`FaultyStore`])
//!   on port 0 in this process;
//! - [`raw`]: a bare protocol client that sends what a well-behaved device never would;
//! - [`FaultyStore`]: a `Store` that fails on demand;
//! - [`Garage`]: a single-node Garage (S3) on loopback for the blob store tests, started once.

pub mod faulty;
pub mod garage;
pub mod pg;
pub mod process;
pub mod raw;

use std::net::SocketAddr;
use std::sync::Arc;

use sync_server::AppState;
use tokio::net::TcpListener;

pub use faulty::{FaultyStore, INJECTED_FAULT};
pub use garage::Garage;
pub use pg::{PgDb, postgres_server};
pub use process::{ServerProcess, sync_server_bin, workspace_bin};

/// A server serving `app` on 127.0.0.1, port 0, on the current tokio runtime. Aborting the task
/// stops it at once, like a crash.
pub async fn serve_in_process(app: Arc<AppState>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let task = tokio::spawn(async move {
        let _ = sync_server::serve(app, listener, std::future::pending()).await;
    });
    (addr, task)
}

/// Whether `e` is a fault [`FaultyStore`] injected.
pub fn is_injected(e: &sync_server::store::StoreError) -> bool {
    matches!(e, sync_server::store::StoreError::Unavailable(source) if source.to_string() == INJECTED_FAULT)
}

/// A photo document on job `job` of `org` naming `bytes` (their sha256 and size), made and
/// stored by the server as a device's would arrive: what an upload of those bytes is checked
/// against.
pub async fn photo_document(
    app: &AppState,
    org: uuid::Uuid,
    job: uuid::Uuid,
    bytes: &[u8],
) -> uuid::Uuid {
    use sha2::Digest;
    let id = uuid::Uuid::now_v7();
    let new = schemas::photo::NewPhoto {
        job_id: job,
        checklist_item: None,
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
        size: bytes.len() as u64,
        mime: "image/jpeg".into(),
        width: 1,
        height: 1,
        taken_at: chrono::Utc::now(),
        location: None,
        caption: String::new(),
    };
    let mut doc = schemas::photo::create(&automerge::ActorId::random(), id, &new, "test device")
        .expect("a photo document");
    doc.commit();
    let meta = sync_server::store::DocMeta {
        id,
        org_id: org,
        kind: schemas::DocKind::Photo.as_str().into(),
        job_id: job,
    };
    sync_server::jobs::store_new_document(app, &meta, &mut doc)
        .await
        .expect("store the photo document");
    id
}
