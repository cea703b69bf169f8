//! Harness for the end-to-end tests: a real server in this process on port 0 (its store wrapped in
//! a `FaultyStore`), real device replicas syncing over real sockets, teams and tokens. The
//! per-test Postgres database, the server as a child process and the raw protocol client are in
//! `fieldsync-test-support`.

use std::sync::Arc;
use std::time::Duration;

use client_core::Replica;
use client_core::sync::{SyncError, SyncStats};
use fieldsync_test_support::{FaultyStore, PgDb};
use schemas::job::NewJob;
use sync_server::store::{DocMeta, Org, Role, Store, User};
use sync_server::{AppState, Config};
use uuid::Uuid;

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
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
        // Quiet documents are loaded afresh within moments, not seconds: every test here (the
        // faults, convergence and browser tests with them) syncs against documents swapped for
        // fresh loads between its edits.
        config.doc_settle_after = std::time::Duration::from_millis(20);
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
        let (addr, task) = fieldsync_test_support::serve_in_process(app.clone()).await;
        let url = format!("http://{addr}");
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
        self.sync_to(&server.url).await
    }

    /// One sync with the server at `url` (a server process, say).
    pub async fn sync_to(&mut self, url: &str) -> Result<SyncStats, SyncError> {
        client_core::sync::sync_once(&mut self.replica, url, &self.token, Duration::from_secs(30))
            .await
    }

    /// Sync until a whole exchange moves nothing and nothing is waiting for an ack.
    pub async fn settle(&mut self, server: &TestServer) {
        self.settle_to(&server.url).await
    }

    /// [`Device::settle`] with the server at `url`.
    pub async fn settle_to(&mut self, url: &str) {
        for _ in 0..10 {
            let stats = self.sync_to(url).await.expect("sync");
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

    /// Send every blob waiting in the device's upload queue (64 KiB chunks) to `server`.
    pub async fn upload(&self, server: &TestServer) -> client_core::sync::upload::UploadSummary {
        let (dir, url, token) = (
            self.dir.path().to_path_buf(),
            server.url.clone(),
            self.token.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let r = Replica::open(&dir).unwrap();
            client_core::sync::upload::upload_pending(&r, &url, &token, 64 * 1024, &mut |_| {})
        })
        .await
        .unwrap()
        .expect("upload pass")
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

/// A seed from `SEED` or a fresh one, printed so a failure can be replayed.
pub fn seed() -> u64 {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("SEED={seed}");
    seed
}

/// `sync-server user add` with the test password.
pub fn add_user(env: &[(&str, &str)], org: &str, name: &str, role: &str) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(fieldsync_test_support::sync_server_bin());
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

/// A JPEG of `w`×`h` with an EXIF `DateTimeOriginal` of 2026-11-28 10:30:00 and a GPS position.
pub fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x ^ y) & 0xff) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    // APP1 Exif right after SOI: TIFF (little endian); IFD0 at 8 → Exif IFD at 38
    // (DateTimeOriginal, its text at 56) and GPS IFD at 76 (48°51'24" N, 2°21'0" W at 130, 154).
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32| {
        t.extend(tag.to_le_bytes());
        t.extend(kind.to_le_bytes());
        t.extend(count.to_le_bytes());
        t.extend(value.to_le_bytes());
    };
    let mut tiff: Vec<u8> = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    tiff.extend(2u16.to_le_bytes());
    entry(&mut tiff, 0x8769, 4, 1, 38); // ExifIFDPointer
    entry(&mut tiff, 0x8825, 4, 1, 76); // GPSInfo
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(1u16.to_le_bytes());
    entry(&mut tiff, 0x9003, 2, 20, 56); // DateTimeOriginal
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(b"2026:11:28 10:30:00\0");
    tiff.extend(4u16.to_le_bytes());
    entry(&mut tiff, 1, 2, 2, u32::from(b'N')); // GPSLatitudeRef, inline "N\0"
    entry(&mut tiff, 2, 5, 3, 130); // GPSLatitude
    entry(&mut tiff, 3, 2, 2, u32::from(b'W')); // GPSLongitudeRef
    entry(&mut tiff, 4, 5, 3, 154); // GPSLongitude
    tiff.extend(0u32.to_le_bytes());
    for (n, d) in [(48u32, 1u32), (51, 1), (24, 1), (2, 1), (21, 1), (0, 1)] {
        tiff.extend(n.to_le_bytes());
        tiff.extend(d.to_le_bytes());
    }
    assert_eq!(tiff.len(), 178);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend(b"Exif\0\0");
    app1.extend(tiff);
    let mut with_exif = out[..2].to_vec();
    with_exif.extend(app1);
    with_exif.extend(&out[2..]);
    with_exif
}

/// What [`http_json`] answers: the status, the response headers (names in lower case), the body
/// as JSON (null when it is not JSON).
pub type HttpAnswer = (u16, Vec<(String, String)>, serde_json::Value);

/// A JSON request over real HTTP that returns any status, with extra request `headers`
/// (blocking: call from `spawn_blocking`): `(status, response headers with lower-case names,
/// body as JSON or null)`.
///
/// A GET whose response breaks off in the body is asked once more, saying so on stderr: seen
/// twice in CI, on the sensor storm test's 10,000-reading GET (`io: Peer disconnected` after a
/// 200), and not yet explained. Anything else that breaks fails the test with its reason.
pub fn http_json(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> HttpAnswer {
    match try_http_json(method, url, token, headers, body.clone()) {
        Ok(answer) => answer,
        Err(e) if method == "GET" => {
            eprintln!("{method} {url}: the response broke off ({e}); asking again");
            try_http_json(method, url, token, headers, body).unwrap_or_else(|e| {
                panic!("{method} {url}: reading the response body failed twice: {e}")
            })
        }
        Err(e) => panic!("{method} {url}: reading the response body failed: {e}"),
    }
}

fn try_http_json(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Result<HttpAnswer, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut res = match body {
        Some(b) => agent
            .run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap(),
            )
            .unwrap(),
        None => agent.run(req.body(()).unwrap()).unwrap(),
    };
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // A body that is not JSON (a page, an image, nothing) reads as null; a body that could not be
    // read at all (the connection broke) fails here with the reason, not later as a null.
    let bytes = res
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()?;
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, headers, json))
}

/// [`http_json`] without extra headers, keeping the status and body.
pub fn api_blocking(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let (status, _, json) = http_json(method, url, token, &[], body);
    (status, json)
}

/// [`api_blocking`] from async code.
pub async fn api(
    method: &str,
    url: String,
    token: Option<String>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let method = method.to_string();
    tokio::task::spawn_blocking(move || api_blocking(&method, &url, token.as_deref(), body))
        .await
        .unwrap()
}

/// A JPEG of about `mb` MiB: a small picture padded with comment segments (decoders skip them),
/// so a large upload costs no encoding time. `seed` varies the padding (and so the hash).
pub fn padded_jpeg(mb: usize, seed: u8) -> Vec<u8> {
    let small = jpeg_with_exif(64, 48);
    let mut out = small[..2].to_vec();
    let segment = 65_533usize;
    for i in 0..(mb << 20) / (segment + 4) {
        out.extend([0xFF, 0xFE]);
        out.extend(((segment + 2) as u16).to_be_bytes());
        out.extend(std::iter::repeat_n(
            seed.wrapping_add(i as u8) & 0x7F,
            segment,
        ));
    }
    out.extend(&small[2..]);
    out
}

/// A JPEG of noise, `w`×`h` pixels: it hardly compresses, so its size is about what its pixels
/// make it.
pub fn noisy_jpeg(rng: &mut impl rand::Rng, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        image::Rgb([rng.random(), rng.random(), rng.random()])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

/// Wait (at most 20 s) until the server's relational rows cover its whole change log.
pub async fn projection_caught_up(store: &dyn Store) {
    for _ in 0..400 {
        let p = store.records().projection_position().await.unwrap();
        if p.projected == p.log_end {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the projection did not catch up: {:?}",
        store.records().projection_position().await
    );
}

/// The browser tests' script `tests/js/<name>` and Debian's Chromium (`$CHROMIUM`, default
/// /usr/bin/chromium), checked to be installed (`scripts/test.sh` installs both).
pub fn browser_test(name: &str) -> (std::path::PathBuf, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("js")
        .join(name);
    assert!(
        script
            .with_file_name("node_modules")
            .join("playwright-core")
            .is_dir(),
        "playwright-core is not installed in tests/js: run scripts/test.sh (npm ci there)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: run scripts/test.sh (apt-get install chromium)"
    );
    (script, chromium)
}

/// A user's client of the HTTP API in tests: the server's URL and the user's own token.
pub struct ApiClient {
    pub url: String,
    pub token: String,
}

impl ApiClient {
    pub async fn new(server: &TestServer, user: &User) -> ApiClient {
        ApiClient {
            url: server.url.clone(),
            token: access_token(server.store(), user, None).await,
        }
    }

    /// `method path` with the user's token: the status and the body as JSON (null if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        api(
            method,
            format!("{}{path}", self.url),
            Some(self.token.clone()),
            body,
        )
        .await
    }

    /// [`ApiClient::call`] that must answer `code`; the body.
    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
        code: u16,
    ) -> serde_json::Value {
        let (s, v) = self.call(method, path, Some(body)).await;
        assert_eq!(s, code, "{method} {path}: {v}");
        v
    }

    /// A customer named `customer`, its site `site` in London and an asset `asset` there, made
    /// through the API; the asset's id.
    pub async fn asset_at(&self, customer: &str, site: &str, asset: &str) -> String {
        let c = self
            .ok(
                "POST",
                "/api/v1/customers",
                serde_json::json!({"name": customer}),
                201,
            )
            .await;
        let site = self
            .ok(
                "POST",
                &format!("/api/v1/customers/{}/sites", c["id"].as_str().unwrap()),
                serde_json::json!({"name": site, "time_zone": "Europe/London"}),
                201,
            )
            .await;
        let a = self
            .ok(
                "POST",
                "/api/v1/assets",
                serde_json::json!({"site_id": site["id"], "name": asset}),
                201,
            )
            .await;
        a["id"].as_str().unwrap().to_string()
    }
}
