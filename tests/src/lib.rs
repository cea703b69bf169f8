//! Harness for the end-to-end tests: a real server (in this process on port 0, or as a child
//! process), real device replicas syncing over real sockets, a Postgres database per test.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use client_core::Replica;
use client_core::sync::{SyncError, SyncStats};
use schemas::job::NewJob;
use sync_server::store::faulty::FaultyStore;
use sync_server::store::{DocMeta, Org, Role, Store, User};
use sync_server::{AppState, Config};
use tokio::net::TcpListener;
use uuid::Uuid;

pub mod raw;

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh Postgres database, dropped with the value.
pub struct PgDb {
    pub url: String,
    name: String,
}

fn pg_server() -> String {
    std::env::var("FIELDSYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

impl PgDb {
    pub async fn create() -> PgDb {
        use sqlx::Connection;
        let name = format!("fs_e2e_{}", Uuid::now_v7().simple());
        let mut c = sqlx::PgConnection::connect(&format!("{}/postgres", pg_server()))
            .await
            .expect("connect to Postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create test database");
        PgDb {
            url: format!("{}/{name}", pg_server()),
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) =
                    sqlx::PgConnection::connect(&format!("{}/postgres", pg_server())).await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Where a test server keeps its state, surviving restarts.
pub struct ServerHome {
    pub config: Config,
    _dir: tempfile::TempDir,
    _pg: Option<PgDb>,
}

impl ServerHome {
    pub async fn new(backend: Backend) -> ServerHome {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::embedded(dir.path());
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let db = PgDb::create().await;
                config.database = sync_server::config::Database::Postgres(db.url.clone());
                Some(db)
            }
        };
        ServerHome {
            config,
            _dir: dir,
            _pg: pg,
        }
    }
}

/// A server running in this process. Dropping it (or [`TestServer::crash`]) stops it at once,
/// like a crash: in-flight work is abandoned, committed state stays in the store.
pub struct TestServer {
    pub url: String,
    pub app: Arc<AppState>,
    pub faults: Arc<FaultyStore>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(home: &ServerHome) -> TestServer {
        let store = sync_server::open_store(&home.config)
            .await
            .expect("open store");
        let faults = Arc::new(FaultyStore::new(store));
        let app = AppState::new(home.config.clone(), faults.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let serving = app.clone();
        let task = tokio::spawn(async move {
            let _ = sync_server::serve(serving, listener, std::future::pending()).await;
        });
        TestServer {
            url,
            app,
            faults,
            task,
        }
    }

    /// Stop serving immediately (connections are cut mid-stream).
    pub fn crash(self) {
        self.task.abort();
    }

    pub fn store(&self) -> &dyn Store {
        self.faults.inner().as_ref()
    }

    /// The server's merged state of a document, as JSON.
    pub async fn doc_json(&self, meta: &DocMeta) -> serde_json::Value {
        let sd = self.app.docs.lock(meta).await.expect("load document");
        schemas::read_json(&sd.doc)
    }

    pub async fn job_docs(&self, job: Uuid) -> Vec<DocMeta> {
        self.store().job_documents(job).await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const PASSWORD: &str = "correct horse battery";

/// An org with a dispatcher and technicians, made directly in the store.
pub struct Team {
    pub org: Org,
    pub dispatcher: User,
    pub techs: Vec<User>,
}

impl Team {
    pub async fn create(store: &dyn Store, techs: &[&str]) -> Team {
        let org = store
            .create_org(&format!("org-{}", Uuid::now_v7().simple()))
            .await
            .unwrap();
        let hash = sync_server::auth::hash_password(PASSWORD);
        let dispatcher = store
            .create_user(
                org.id,
                &format!("dispatch-{}", org.id.simple()),
                Role::Dispatcher,
                &hash,
            )
            .await
            .unwrap();
        let mut users = Vec::new();
        for t in techs {
            users.push(
                store
                    .create_user(
                        org.id,
                        &format!("{t}-{}", org.id.simple()),
                        Role::Technician,
                        &hash,
                    )
                    .await
                    .unwrap(),
            );
        }
        Team {
            org,
            dispatcher,
            techs: users,
        }
    }

    /// A job made by the dispatcher on the server and assigned to `techs`.
    pub async fn job(
        &self,
        server: &TestServer,
        title: &str,
        template: &str,
        techs: &[&User],
    ) -> Uuid {
        let new = NewJob {
            title: title.into(),
            assignees: techs.iter().map(|u| u.name.clone()).collect(),
            ..Default::default()
        };
        let tpl = schemas::template::find(template).unwrap();
        let id = sync_server::jobs::create_job_documents(
            &server.app,
            &sync_server::jobs::Actor::from(&self.dispatcher),
            &new,
            &tpl,
        )
        .await
        .unwrap();
        for t in techs {
            server.store().assign(id, t.id).await.unwrap();
        }
        let ids: Vec<Uuid> = techs.iter().map(|u| u.id).collect();
        server.app.hub.sets_changed(&ids, self.org.id);
        id
    }
}

/// An access token for `user` (on `device`, if any), issued straight from the store.
pub async fn access_token(store: &dyn Store, user: &User, device: Option<Uuid>) -> String {
    sync_server::auth::issue(
        store,
        user,
        device,
        chrono::Utc::now(),
        chrono::Duration::hours(1),
        chrono::Duration::days(1),
    )
    .await
    .unwrap()
    .access_token
}

/// A technician's device: a replica on disk and a token for its user.
pub struct Device {
    pub replica: Replica,
    pub token: String,
    pub user: User,
    pub device_id: Uuid,
    pub dir: tempfile::TempDir,
}

impl Device {
    pub async fn new(store: &dyn Store, user: &User) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = Replica::open(dir.path()).unwrap();
        replica.set_user(&user.name).unwrap();
        let device = store.register_device(user.id, "test device").await.unwrap();
        let token = access_token(store, user, Some(device.id)).await;
        Device {
            replica,
            token,
            user: user.clone(),
            device_id: device.id,
            dir,
        }
    }

    pub async fn sync(&mut self, server: &TestServer) -> Result<SyncStats, SyncError> {
        client_core::sync::sync_once(
            &mut self.replica,
            &server.url,
            &self.token,
            Duration::from_secs(30),
        )
        .await
    }

    /// Sync until a whole exchange moves nothing and nothing is waiting for an ack.
    pub async fn settle(&mut self, server: &TestServer) {
        for _ in 0..10 {
            let stats = self.sync(server).await.expect("sync");
            if stats.docs_updated == 0 && self.replica.unacked().unwrap().is_empty() {
                return;
            }
        }
        panic!(
            "device {} did not settle: {} unacked",
            self.user.name,
            self.replica.unacked().unwrap().len()
        );
    }

    /// Every document on the device as `(id, JSON)`.
    pub fn docs_json(&mut self) -> Vec<(Uuid, serde_json::Value)> {
        let docs = self.replica.documents().unwrap();
        docs.iter()
            .map(|d| (d.id, self.replica.document_json(d.id).unwrap()))
            .collect()
    }
}

/// Assert that a device holds exactly the server's state of its documents.
pub async fn assert_device_matches_server(device: &mut Device, server: &TestServer) {
    for (id, json) in device.docs_json() {
        let meta = server
            .store()
            .document(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("server lacks document {id}"));
        assert_eq!(
            json,
            server.doc_json(&meta).await,
            "document {id} ({}) differs on {}",
            meta.kind,
            device.user.name
        );
    }
    let tables = device.replica.query_tables_dump().unwrap();
    device.replica.rebuild_queries().unwrap();
    assert_eq!(
        device.replica.query_tables_dump().unwrap(),
        tables,
        "query tables of {} drifted",
        device.user.name
    );
}

/// The workspace's target directory holding the binaries built for the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test> -> target/debug/<name>
    let dir = exe.parent().and_then(|p| p.parent()).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests through `cargo nextest run --workspace`",
        path.display()
    );
    path
}

/// A seed from `SEED` or a fresh one, printed so a failure can be replayed.
pub fn seed() -> u64 {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("SEED={seed}");
    seed
}

/// A server running as its own process from the real binary, configured by environment
/// variables (`FIELDSYNC_DATA_DIR`, `DATABASE_URL`). Killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub url: String,
}

impl ServerProcess {
    pub fn spawn(env: &[(&str, &str)]) -> ServerProcess {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(bin("sync-server"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.to_string();
            }
        };
        ServerProcess { child, url }
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill_dash_nine(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sync-server user add` with the test password.
pub fn add_user(env: &[(&str, &str)], org: &str, name: &str, role: &str) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(bin("sync-server"));
    cmd.args([
        "user",
        "add",
        "--org",
        org,
        "--name",
        name,
        "--role",
        role,
        "--password-stdin",
    ])
    .env_remove("DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "user add failed");
}

/// Sign in over HTTP and return the access token (blocking: call from `spawn_blocking`).
pub fn http_login(url: &str, name: &str) -> String {
    let reply: serde_json::Value = ureq::post(format!("{url}/api/v1/auth/login"))
        .send_json(serde_json::json!({"name": name, "password": PASSWORD}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    reply["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}
