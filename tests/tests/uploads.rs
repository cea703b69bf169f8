//! Photo uploads over real HTTP (tus 1.0.0 at `/api/v1/uploads`) against both blob stores: the
//! local folder and S3 (a single-node Garage on loopback, `fieldsync_test_support::Garage`).
//! Every test runs once per store (`local_*`, `garage_*`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use fieldsync_e2e::jpeg_with_exif as jpeg;
use fieldsync_e2e::padded_jpeg;
use fieldsync_e2e::{Backend, ServerHome, Team, TestServer, access_token};
use fieldsync_test_support::Garage;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use sync_server::blobs;
use sync_server::store::User;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
enum Blobs {
    Local,
    Garage,
}

/// A server on SQLite with the chosen blob store, a team of two technicians (ana, ben) and a
/// job assigned to ana.
struct Env {
    home: ServerHome,
    server: TestServer,
    team: Team,
    job: Uuid,
    ana: String,
}

impl Env {
    async fn new(blobs: Blobs) -> Env {
        let mut home = ServerHome::new(Backend::Sqlite).await;
        if let Blobs::Garage = blobs {
            let g = tokio::task::spawn_blocking(Garage::shared).await.unwrap();
            home.config.s3 = Some(g.s3_config());
        }
        let server = TestServer::start(&home).await;
        let team = Team::create(server.store(), &["ana", "ben"]).await;
        let ana_user = team.techs[0].clone();
        let job = team.job(&server, "Boiler", "general", &[&ana_user]).await;
        let ana = token(&server, &ana_user).await;
        Env {
            home,
            server,
            team,
            job,
            ana,
        }
    }

    fn ana(&self) -> &User {
        &self.team.techs[0]
    }

    /// A photo document on `job` that references `bytes`.
    async fn photo(&self, job: Uuid, bytes: &[u8]) -> Uuid {
        photo_doc(&self.server, self.team.org.id, job, bytes).await
    }

    async fn restart(&mut self) {
        let old = std::mem::replace(&mut self.server, TestServer::start(&self.home).await);
        old.crash();
    }

    fn addr(&self) -> String {
        self.server.url.trim_start_matches("http://").to_string()
    }
}

async fn token(server: &TestServer, user: &User) -> String {
    let device = server
        .store()
        .register_device(user.id, "camera")
        .await
        .unwrap();
    access_token(server.store(), user, Some(device.id)).await
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn photo_doc(server: &TestServer, org: Uuid, job: Uuid, bytes: &[u8]) -> Uuid {
    fieldsync_test_support::photo_document(&server.app, org, job, bytes).await
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header claims 100000×100000 pixels (40 GB of RGBA), with a few bytes of data.
fn png_bomb() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunk = |out: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend(data);
        out.extend(&c);
        out.extend(crc32(&c).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn code(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// One HTTP/1.1 request on its own connection. With `cut_after`, only that many body bytes are
/// sent (the headers announce them all) and the connection is dropped: no response.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    cut_after: Option<usize>,
) -> Option<Resp> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    if let Some(n) = cut_after {
        s.write_all(&body[..n]).await.unwrap();
        s.flush().await.unwrap();
        drop(s);
        return None;
    }
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Some(Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

fn auth(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

fn tus() -> (&'static str, String) {
    ("Tus-Resumable", "1.0.0".into())
}

fn octets() -> (&'static str, String) {
    ("Content-Type", "application/offset+octet-stream".into())
}

fn meta(doc: Uuid, sha: &str) -> (&'static str, String) {
    (
        "Upload-Metadata",
        format!(
            "doc {},sha256 {}",
            B64.encode(doc.to_string()),
            B64.encode(sha)
        ),
    )
}

fn checksum(bytes: &[u8]) -> (&'static str, String) {
    (
        "Upload-Checksum",
        format!("sha256 {}", B64.encode(Sha256::digest(bytes))),
    )
}

/// POST without bytes; returns the upload's path.
async fn create(env: &Env, token: &str, doc: Uuid, bytes: &[u8]) -> Resp {
    http(
        &env.addr(),
        "POST",
        "/api/v1/uploads",
        &[
            auth(token),
            tus(),
            ("Upload-Length", bytes.len().to_string()),
            meta(doc, &sha_hex(bytes)),
        ],
        &[],
        None,
    )
    .await
    .unwrap()
}

async fn patch(env: &Env, token: &str, location: &str, offset: u64, chunk: &[u8]) -> Resp {
    http(
        &env.addr(),
        "PATCH",
        location,
        &[
            auth(token),
            tus(),
            octets(),
            ("Upload-Offset", offset.to_string()),
            checksum(chunk),
        ],
        chunk,
        None,
    )
    .await
    .unwrap()
}

async fn head(env: &Env, token: &str, location: &str) -> Resp {
    http(
        &env.addr(),
        "HEAD",
        location,
        &[auth(token), tus()],
        &[],
        None,
    )
    .await
    .unwrap()
}

async fn get(env: &Env, token: &str, path: &str) -> Resp {
    http(&env.addr(), "GET", path, &[auth(token)], &[], None)
        .await
        .unwrap()
}

/// The stored original's bytes, read from the server's blob store.
async fn stored(env: &Env, bytes: &[u8]) -> Option<Vec<u8>> {
    env.server
        .app
        .blobs
        .get(&blobs::original_key(env.team.org.id, &sha_hex(bytes)))
        .await
        .ok()
}

/// The photo's record once its thumbnails are made (they are made off the request path).
async fn photo_with_thumbnails(env: &Env, photo: Uuid) -> serde_json::Value {
    for _ in 0..300 {
        let r = get(env, &env.ana, &format!("/api/v1/photos/{photo}")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        if j["thumbnails"].as_object().is_some_and(|t| t.len() == 2) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("thumbnails were not made in 30 s");
}

/// Fetch a URL from GET /api/v1/photos: a server route (with the token) or a presigned URL.
async fn fetch(env: &Env, url: &str) -> Vec<u8> {
    let r = if let Some(rest) = url.strip_prefix("http://") {
        let (addr, path) = rest.split_at(rest.find('/').unwrap());
        http(addr, "GET", path, &[], &[], None).await.unwrap()
    } else {
        get(env, &env.ana, url).await
    };
    assert_eq!(
        r.status,
        200,
        "GET {url}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.body
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Blobs::Local).await })*
        }
        mod garage {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Blobs::Garage).await })*
        }
    };
}

on_both_stores!(
    signature_upload_for_a_job,
    blob_store_round_trip,
    complete_upload_and_photo_record,
    cut_upload_resumes_from_head_after_restart,
    same_photo_on_two_jobs_is_stored_once,
    unauthorized_uploads_are_refused,
    wrong_checksum_is_refused_and_dropped,
    bad_images_are_refused_and_leave_nothing,
    an_interrupted_finish_completes_before_head_reports_the_end,
    a_large_upload_goes_ahead_in_parts_survives_a_restart_and_is_dropped_when_refused,
    a_request_carrying_the_whole_upload_shows_nothing_until_checked,
);

/// The upload's files in the server's data dir: `(parts file present, parts recorded)`.
fn parts_file(env: &Env, location: &str) -> (bool, usize) {
    let id = location.rsplit('/').next().unwrap();
    let path = env
        .home
        .config
        .data_dir
        .join(format!("uploads/{id}.parts.json"));
    match std::fs::read(&path) {
        Ok(b) => {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            (true, v["parts"].as_array().unwrap().len())
        }
        Err(_) => (false, 0),
    }
}

/// 20 MiB in 8 MiB PATCHes. On S3 each request's body goes into a part as it arrives (seen in
/// the parts file when the request is answered); the server restarts in the middle and goes on from
/// the parts it recorded; the object appears only at the end, whole. A second upload, whose last
/// chunk hashes wrong against the document, is refused with its parts dropped and nothing stored.
async fn a_large_upload_goes_ahead_in_parts_survives_a_restart_and_is_dropped_when_refused(
    blobs: Blobs,
) {
    const CHUNK: usize = 8 << 20;
    let mut env = Env::new(blobs).await;
    let bytes = padded_jpeg(20, 1);
    let photo = env.photo(env.job, &bytes).await;
    let r = create(&env, &env.ana, photo, &bytes).await;
    let location = r.header("location").unwrap().to_string();
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        let offset = (i * CHUNK) as u64;
        let r = patch(&env, &env.ana, &location, offset, chunk).await;
        assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
        if i == 0 && matches!(blobs, Blobs::Garage) {
            // The first request's body went into its part as it arrived: recorded once the
            // part is stored (the request is answered once its bytes are synced).
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while parts_file(&env, &location) != (true, 1) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the part was not recorded"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if i == 1 {
            if let Blobs::Garage = blobs {
                // The first 16 MiB go ahead as two parts (waited for: it is a background task).
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while parts_file(&env, &location) != (true, 2) {
                    assert!(std::time::Instant::now() < deadline, "no parts sent ahead");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            } else {
                assert_eq!(parts_file(&env, &location), (false, 0));
            }
            assert!(stored(&env, &bytes).await.is_none(), "nothing visible yet");
            env.restart().await;
            let h = head(&env, &env.ana, &location).await;
            assert_eq!(
                h.header("upload-offset"),
                Some((2 * CHUNK).to_string().as_str())
            );
        }
    }
    assert_eq!(stored(&env, &bytes).await.as_deref(), Some(&bytes[..]));
    assert_eq!(parts_file(&env, &location), (false, 0));
    let record = get(&env, &env.ana, &format!("/api/v1/photos/{photo}"))
        .await
        .json();
    assert_eq!(record["uploaded"], true, "{record}");

    // Refused at the end: the document names other bytes than the ones sent.
    let other = padded_jpeg(20, 2);
    let named = padded_jpeg(20, 3);
    let photo = env.photo(env.job, &named).await;
    let r = create(&env, &env.ana, photo, &named).await;
    let location = r.header("location").unwrap().to_string();
    let mut last = None;
    for (i, chunk) in other.chunks(CHUNK).enumerate() {
        last = Some(patch(&env, &env.ana, &location, (i * CHUNK) as u64, chunk).await);
    }
    let r = last.unwrap();
    assert_eq!((r.status, r.code().as_str()), (422, "sha256-mismatch"));
    assert_eq!(parts_file(&env, &location), (false, 0));
    assert!(stored(&env, &named).await.is_none());
    assert!(stored(&env, &other).await.is_none());
}

/// A request that carries every byte of an upload (a PATCH from offset 0, or a creation with
/// the whole body) goes to S3 as one PUT while it arrives, its last bytes held back until the
/// upload is checked: a good one is stored whole (its bytes hash to its key); one refused at
/// the end (the document names other bytes, not an image) leaves nothing visible; one cut half
/// way leaves nothing visible and resumes from the server's offset.
async fn a_request_carrying_the_whole_upload_shows_nothing_until_checked(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let no_parts_left = |location: &str| assert_eq!(parts_file(&env, location), (false, 0));

    // Stored whole.
    let bytes = padded_jpeg(9, 5);
    let photo = env.photo(env.job, &bytes).await;
    let location = create(&env, &env.ana, photo, &bytes).await;
    let location = location.header("location").unwrap().to_string();
    let r = patch(&env, &env.ana, &location, 0, &bytes).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("upload-offset"),
        Some(bytes.len().to_string().as_str())
    );
    let kept = stored(&env, &bytes).await.expect("stored");
    assert_eq!(sha_hex(&kept), sha_hex(&bytes));
    no_parts_left(&location);
    let record = get(&env, &env.ana, &format!("/api/v1/photos/{photo}"))
        .await
        .json();
    assert_eq!(record["uploaded"], true, "{record}");

    // The document names other bytes than the ones sent (each request's own checksum holds).
    let named = padded_jpeg(9, 6);
    let other = padded_jpeg(9, 7);
    assert_eq!(named.len(), other.len());
    let photo = env.photo(env.job, &named).await;
    let location = create(&env, &env.ana, photo, &named).await;
    let location = location.header("location").unwrap().to_string();
    let r = patch(&env, &env.ana, &location, 0, &other).await;
    assert_eq!((r.status, r.code().as_str()), (422, "sha256-mismatch"));
    assert_eq!(head(&env, &env.ana, &location).await.status, 404);
    assert!(stored(&env, &named).await.is_none());
    assert!(stored(&env, &other).await.is_none());
    no_parts_left(&location);

    // Not an image: refused by the checks after every byte went to the store but the last.
    let mut not_image = b"%PDF-1.4 ".to_vec();
    not_image.extend(padded_jpeg(6, 8));
    let photo = env.photo(env.job, &not_image).await;
    let location = create(&env, &env.ana, photo, &not_image).await;
    let location = location.header("location").unwrap().to_string();
    let r = patch(&env, &env.ana, &location, 0, &not_image).await;
    assert_eq!((r.status, r.code().as_str()), (422, "not-an-image"));
    assert!(stored(&env, &not_image).await.is_none());
    no_parts_left(&location);

    // Cut half way (no checksum, so the bytes that arrived are kept): nothing visible; the
    // rest then completes it.
    let bytes = padded_jpeg(12, 9);
    let photo = env.photo(env.job, &bytes).await;
    let location = create(&env, &env.ana, photo, &bytes).await;
    let location = location.header("location").unwrap().to_string();
    let sent = http(
        &env.addr(),
        "PATCH",
        &location,
        &[
            auth(&env.ana),
            tus(),
            octets(),
            ("Upload-Offset", "0".into()),
        ],
        &bytes,
        Some(10 << 20),
    )
    .await;
    assert!(sent.is_none());
    let h = head(&env, &env.ana, &location).await;
    let offset: usize = h.header("upload-offset").unwrap().parse().unwrap();
    assert!(offset <= 10 << 20, "{offset}");
    assert!(stored(&env, &bytes).await.is_none(), "nothing visible");
    let r = patch(&env, &env.ana, &location, offset as u64, &bytes[offset..]).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(stored(&env, &bytes).await.as_deref(), Some(&bytes[..]));
    no_parts_left(&location);

    // Creation with the whole body.
    let bytes = padded_jpeg(7, 10);
    let photo = env.photo(env.job, &bytes).await;
    let r = http(
        &env.addr(),
        "POST",
        "/api/v1/uploads",
        &[
            auth(&env.ana),
            tus(),
            octets(),
            ("Upload-Length", bytes.len().to_string()),
            meta(photo, &sha_hex(&bytes)),
        ],
        &bytes,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("upload-offset"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(stored(&env, &bytes).await.as_deref(), Some(&bytes[..]));
    no_parts_left(r.header("location").unwrap());
}

/// Every byte arrived but storing the blob failed half way (the store refused its `photos` row,
/// as when the node stops between the blob and the row): the PATCH fails, and a `HEAD` then
/// finishes the upload before it answers an offset equal to the length, because a client takes
/// that offset to mean the blob is stored.
async fn an_interrupted_finish_completes_before_head_reports_the_end(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let bytes = jpeg(640, 480);
    let photo = env.photo(env.job, &bytes).await;
    let r = create(&env, &env.ana, photo, &bytes).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let location = r.header("location").unwrap().to_string();
    env.server.faults.fail_next(1);
    let r = patch(&env, &env.ana, &location, 0, &bytes).await;
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(env.server.faults.injected(), 1);
    let r = get(&env, &env.ana, &format!("/api/v1/photos/{photo}")).await;
    assert_eq!(r.json()["uploaded"], false);

    let h = head(&env, &env.ana, &location).await;
    assert_eq!(h.status, 200, "{}", String::from_utf8_lossy(&h.body));
    assert_eq!(
        h.header("upload-offset"),
        Some(bytes.len().to_string().as_str())
    );
    let record = get(&env, &env.ana, &format!("/api/v1/photos/{photo}"))
        .await
        .json();
    assert_eq!(record["uploaded"], true, "{record}");
    assert_eq!(stored(&env, &bytes).await.as_deref(), Some(&bytes[..]));
    let doc = env
        .server
        .doc_json(&env.server.store().document(photo).await.unwrap().unwrap())
        .await;
    assert_eq!(doc["upload"], "uploaded");
}

async fn complete_upload_and_photo_record(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let bytes = jpeg(1600, 1200);
    let photo = env.photo(env.job, &bytes).await;

    let opts = http(&env.addr(), "OPTIONS", "/api/v1/uploads", &[], &[], None)
        .await
        .unwrap();
    assert_eq!(opts.status, 204);
    assert_eq!(opts.header("tus-version"), Some("1.0.0"));
    assert_eq!(opts.header("tus-max-size"), Some("100000000"));
    assert_eq!(opts.header("tus-checksum-algorithm"), Some("sha256"));
    assert!(
        opts.header("tus-extension")
            .unwrap()
            .contains("creation-with-upload")
    );

    // Before the bytes arrive the record says so.
    let r = get(&env, &env.ana, &format!("/api/v1/photos/{photo}")).await;
    assert_eq!(r.json()["uploaded"], false);

    // creation-with-upload: everything in the POST.
    let r = http(
        &env.addr(),
        "POST",
        "/api/v1/uploads",
        &[
            auth(&env.ana),
            tus(),
            octets(),
            ("Upload-Length", bytes.len().to_string()),
            meta(photo, &sha_hex(&bytes)),
            checksum(&bytes),
        ],
        &bytes,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("upload-offset"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    let location = r.header("location").unwrap().to_string();
    let h = head(&env, &env.ana, &location).await;
    assert_eq!(
        h.header("upload-offset"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(stored(&env, &bytes).await.as_deref(), Some(&bytes[..]));

    let doc = env.server.store().document(photo).await.unwrap().unwrap();
    assert_eq!(
        env.server.doc_json(&doc).await["upload"],
        "uploaded",
        "the server marks the photo document uploaded"
    );
    let j = photo_with_thumbnails(&env, photo).await;
    assert_eq!(j["sha256"], sha_hex(&bytes));
    assert_eq!(j["size"], bytes.len());
    assert_eq!(j["width"], 1600);
    assert_eq!(j["height"], 1200);
    assert_eq!(j["taken_at"], "2026-11-28T10:30:00Z");
    let (lat, lon) = (
        j["location"]["lat"].as_f64().unwrap(),
        j["location"]["lon"].as_f64().unwrap(),
    );
    assert!(
        (lat - 48.856_67).abs() < 1e-4 && (lon + 2.35).abs() < 1e-4,
        "{j}"
    );
    assert_eq!(j["review"], serde_json::Value::Null);
    assert_eq!(j["uploaded"], true);
    let original = fetch(&env, j["original_url"].as_str().unwrap()).await;
    assert_eq!(
        sha_hex(&original),
        sha_hex(&bytes),
        "the original is stored untouched"
    );
    let small = fetch(&env, j["thumbnails"]["320"].as_str().unwrap()).await;
    let small = image::load_from_memory(&small).unwrap();
    assert_eq!((small.width(), small.height()), (320, 240));
    let large = fetch(&env, j["thumbnails"]["1280"].as_str().unwrap()).await;
    assert_eq!(image::load_from_memory(&large).unwrap().width(), 1280);
    if let Blobs::Garage = blobs {
        assert!(
            j["original_url"]
                .as_str()
                .unwrap()
                .contains("X-Amz-Signature")
        );
    }

    let metrics = String::from_utf8(get(&env, &env.ana, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains(&format!(
            "fieldsync_upload_received_bytes_total {}",
            bytes.len()
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("fieldsync_thumbnail_seconds_count 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fieldsync_uploads_in_progress 0"),
        "{metrics}"
    );

    // Another technician, or one without the job, sees nothing of it.
    let ben = token(&env.server, &env.team.techs[1]).await;
    let r = get(&env, &ben, &format!("/api/v1/photos/{photo}")).await;
    assert_eq!((r.status, r.code().as_str()), (404, "doc-unavailable"));
    let r = get(&env, &ben, &format!("/api/v1/photos/{photo}/original")).await;
    assert_eq!(r.status, 404);
}

async fn cut_upload_resumes_from_head_after_restart(blobs: Blobs) {
    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut env = Env::new(blobs).await;
    let bytes = jpeg(800, 600);
    let photo = env.photo(env.job, &bytes).await;
    let r = create(&env, &env.ana, photo, &bytes).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("upload-offset"), Some("0"));
    assert!(r.header("upload-expires").is_some());
    let location = r.header("location").unwrap().to_string();

    // A PATCH cut at a random point, without a checksum: the bytes that arrived are kept.
    let cut = rng.random_range(1..bytes.len() - 1);
    println!("cutting at byte {cut} of {}", bytes.len());
    http(
        &env.addr(),
        "PATCH",
        &location,
        &[
            auth(&env.ana),
            tus(),
            octets(),
            ("Upload-Offset", "0".into()),
        ],
        &bytes,
        Some(cut),
    )
    .await;
    // Every byte sent before the cut reaches the server and is kept: HEAD (which waits for a
    // PATCH in progress) reaches the cut once the server has read the request.
    let mut offset = 0;
    for _ in 0..200 {
        let h = head(&env, &env.ana, &location).await;
        assert_eq!(h.status, 200);
        offset = h.header("upload-offset").unwrap().parse().unwrap();
        if offset == cut {
            break;
        }
        assert!(
            offset < cut,
            "offset {offset} beyond the cut {cut} (SEED={seed})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(offset, cut, "bytes before the cut were lost (SEED={seed})");

    // The server restarts: the upload is on disk and resumes from the same offset.
    env.restart().await;
    let h = head(&env, &env.ana, &location).await;
    assert_eq!(h.header("upload-offset"), Some(offset.to_string().as_str()));
    assert_eq!(
        h.header("upload-length"),
        Some(bytes.len().to_string().as_str())
    );

    // Resuming from a wrong offset is refused; from HEAD's, it completes.
    let r = patch(
        &env,
        &env.ana,
        &location,
        offset as u64 + 1,
        &bytes[offset + 1..],
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (409, "offset-mismatch"));
    let r = patch(&env, &env.ana, &location, offset as u64, &bytes[offset..]).await;
    assert_eq!(
        r.status,
        204,
        "{} (SEED={seed})",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.header("upload-offset"),
        Some(bytes.len().to_string().as_str())
    );
    let got = stored(&env, &bytes).await.expect("the original is stored");
    assert_eq!(sha_hex(&got), sha_hex(&bytes), "SEED={seed}");
}

async fn same_photo_on_two_jobs_is_stored_once(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let bytes = jpeg(400, 300);
    let second_job = env
        .team
        .job(&env.server, "Second visit", "general", &[env.ana()])
        .await;
    let first = env.photo(env.job, &bytes).await;
    let second = env.photo(second_job, &bytes).await;
    let r = create(&env, &env.ana, first, &bytes).await;
    let location = r.header("location").unwrap().to_string();
    let r = patch(&env, &env.ana, &location, 0, &bytes).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));

    // The second document's upload is complete at once: no byte is sent.
    let r = create(&env, &env.ana, second, &bytes).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("upload-offset"),
        Some(bytes.len().to_string().as_str())
    );
    let h = head(&env, &env.ana, r.header("location").unwrap()).await;
    assert_eq!(
        h.header("upload-offset"),
        Some(bytes.len().to_string().as_str())
    );
    let metrics = String::from_utf8(get(&env, &env.ana, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains(&format!(
            "fieldsync_upload_received_bytes_total {}",
            bytes.len()
        )),
        "{metrics}"
    );
    let one = get(&env, &env.ana, &format!("/api/v1/photos/{first}"))
        .await
        .json();
    let two = get(&env, &env.ana, &format!("/api/v1/photos/{second}"))
        .await
        .json();
    assert_eq!(one["uploaded"], true);
    assert_eq!(two["uploaded"], true);
    let doc = env.server.store().document(second).await.unwrap().unwrap();
    assert_eq!(env.server.doc_json(&doc).await["upload"], "uploaded");
    if let Blobs::Local = blobs {
        let dir = env
            .home
            .config
            .data_dir
            .join("blobs")
            .join(env.team.org.id.to_string());
        let originals = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                !name.to_string_lossy().contains('.')
            })
            .count();
        assert_eq!(originals, 1, "one original for two photo documents");
    }
}

async fn unauthorized_uploads_are_refused(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let bytes = jpeg(64, 48);
    let photo = env.photo(env.job, &bytes).await;
    let headers = |token: Option<String>| {
        let mut h = vec![
            tus(),
            ("Upload-Length", bytes.len().to_string()),
            meta(photo, &sha_hex(&bytes)),
        ];
        if let Some(t) = token {
            h.push(auth(&t));
        }
        h
    };
    let post = |h: Vec<(&'static str, String)>| {
        let addr = env.addr();
        async move {
            http(&addr, "POST", "/api/v1/uploads", &h, &[], None)
                .await
                .unwrap()
        }
    };
    let r = post(headers(None)).await;
    assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"));
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));

    let expired = sync_server::auth::issue(
        env.server.store(),
        env.ana(),
        None,
        chrono::Utc::now() - chrono::Duration::hours(2),
        chrono::Duration::hours(1),
        chrono::Duration::days(1),
    )
    .await
    .unwrap()
    .access_token;
    let r = post(headers(Some(expired))).await;
    assert_eq!(r.status, 401);
    assert!(r.json()["message"].as_str().unwrap().contains("expired"));

    // Ben is not assigned to the job: its photo is outside his document set.
    let ben = token(&env.server, &env.team.techs[1]).await;
    let r = post(headers(Some(ben))).await;
    assert_eq!((r.status, r.code().as_str()), (404, "doc-unavailable"));

    // A sha256 the document does not reference.
    let r = http(
        &env.addr(),
        "POST",
        "/api/v1/uploads",
        &[
            auth(&env.ana),
            tus(),
            ("Upload-Length", "10".into()),
            meta(photo, &sha_hex(b"something else")),
        ],
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.code().as_str()), (403, "blob-not-referenced"));

    // Too large, and no tus version.
    let r = post(vec![
        auth(&env.ana),
        tus(),
        ("Upload-Length", "100000001".into()),
        meta(photo, &sha_hex(&bytes)),
    ])
    .await;
    assert_eq!((r.status, r.code().as_str()), (413, "too-large"));
    let r = post(vec![
        auth(&env.ana),
        ("Upload-Length", bytes.len().to_string()),
        meta(photo, &sha_hex(&bytes)),
    ])
    .await;
    assert_eq!(r.status, 412);

    // Someone else's upload cannot be seen or written.
    let r = create(&env, &env.ana, photo, &bytes).await;
    let location = r.header("location").unwrap().to_string();
    let other = token(&env.server, &env.team.techs[1]).await;
    assert_eq!(head(&env, &other, &location).await.status, 404);
    assert_eq!(patch(&env, &other, &location, 0, &bytes).await.status, 404);
    assert!(stored(&env, &bytes).await.is_none());
}

async fn wrong_checksum_is_refused_and_dropped(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let bytes = jpeg(320, 200);
    let photo = env.photo(env.job, &bytes).await;
    let r = create(&env, &env.ana, photo, &bytes).await;
    let location = r.header("location").unwrap().to_string();
    let half = bytes.len() / 2;
    let r = http(
        &env.addr(),
        "PATCH",
        &location,
        &[
            auth(&env.ana),
            tus(),
            octets(),
            ("Upload-Offset", "0".into()),
            checksum(b"not these bytes"),
        ],
        &bytes[..half],
        None,
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.code().as_str()), (460, "checksum-mismatch"));
    let h = head(&env, &env.ana, &location).await;
    assert_eq!(
        h.header("upload-offset"),
        Some("0"),
        "the bad chunk was dropped"
    );
    // The right bytes then complete it.
    let r = patch(&env, &env.ana, &location, 0, &bytes).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert!(stored(&env, &bytes).await.is_some());
}

async fn bad_images_are_refused_and_leave_nothing(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let good = jpeg(200, 150);
    let signature = {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_fn(300, 100, |x, y| {
            image::Rgb([(x % 251) as u8, (y * 2) as u8, 7])
        })
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
        out.into_inner()
    };
    let mut damaged_png = signature.clone();
    let idat = damaged_png.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut damaged_png[idat + 10..idat + 60] {
        *b ^= 0x5a;
    }
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"%PDF-1.4 this is not an image at all".to_vec(),
            "not-an-image",
        ),
        (good[..good.len() * 6 / 10].to_vec(), "bad-image"),
        (png_bomb(), "image-too-large"),
        (signature[..signature.len() - 20].to_vec(), "bad-image"),
        // Whole (it ends with IEND) but its compressed pixels are damaged: only a full decode,
        // which runs beside storing the original, finds it, and the original is deleted.
        (damaged_png, "bad-image"),
    ];
    for (bytes, code) in cases {
        let photo = env.photo(env.job, &bytes).await;
        let r = create(&env, &env.ana, photo, &bytes).await;
        let location = r.header("location").unwrap().to_string();
        let r = patch(&env, &env.ana, &location, 0, &bytes).await;
        assert_eq!((r.status, r.code().as_str()), (422, code));
        assert!(!r.json()["message"].as_str().unwrap().is_empty());
        assert_eq!(head(&env, &env.ana, &location).await.status, 404);
        assert!(
            stored(&env, &bytes).await.is_none(),
            "{code}: nothing stored"
        );
        let r = get(&env, &env.ana, &format!("/api/v1/photos/{photo}")).await;
        assert_eq!(r.json()["uploaded"], false);
    }
    let left: Vec<_> = std::fs::read_dir(env.home.config.data_dir.join("uploads"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "upload files left behind: {left:?}");
    let metrics = String::from_utf8(get(&env, &env.ana, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains("fieldsync_upload_failures_total{reason=\"image-too-large\"} 1"),
        "{metrics}"
    );
}

/// The blob store itself: a blob above the multipart threshold round-trips, replaces nothing
/// half-written, and is deleted; S3 hands out presigned URLs that work.
async fn blob_store_round_trip(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let store = env.server.app.blobs.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut big = vec![0u8; (sync_server::blobs::s3::PART_BYTES + 1_000_000) as usize];
    rng.fill(&mut big[..]);
    let key = blobs::original_key(env.team.org.id, &sha_hex(&big));
    assert_eq!(store.size(&key).await.unwrap(), None);
    let file = env.home.config.data_dir.join("big.bin");
    std::fs::write(&file, &big).unwrap();
    store
        .put_file(&key, &file, "application/octet-stream")
        .await
        .unwrap();
    assert!(file.exists(), "the source file stays");
    assert_eq!(store.size(&key).await.unwrap(), Some(big.len() as u64));
    assert_eq!(sha_hex(&store.get(&key).await.unwrap()), sha_hex(&big));
    let url = store
        .presigned_get(&key, Duration::from_secs(60))
        .await
        .unwrap();
    match blobs {
        Blobs::Local => assert_eq!(url, None),
        Blobs::Garage => {
            let url = url.unwrap();
            let rest = url.strip_prefix("http://").unwrap();
            let (addr, path) = rest.split_at(rest.find('/').unwrap());
            let r = http(addr, "GET", path, &[], &[], None).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(sha_hex(&r.body), sha_hex(&big));
        }
    }
    store.delete(&key).await.unwrap();
    assert_eq!(store.size(&key).await.unwrap(), None);
    assert!(matches!(
        store.get(&key).await,
        Err(sync_server::blobs::BlobError::NotFound(_))
    ));
    if let Blobs::Local = blobs {
        let dir = env
            .home
            .config
            .data_dir
            .join("blobs")
            .join(env.team.org.id.to_string());
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "no temp file left"
        );
    }
}

/// An S3 store that accepts connections and never answers does not hold up receiving: a
/// request's bytes are kept and answered within a few seconds (its parts are not streamed, and go
/// to the store later), and HEAD reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_store_that_stops_answering_does_not_hold_up_receiving() {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket); // never read, never answered
        }
    });
    let mut env = Env::new(Blobs::Local).await;
    env.home.config.s3 = Some(sync_server::config::S3Config {
        endpoint,
        bucket: "nowhere".into(),
        region: "garage".into(),
        access_key_id: "GK0000".into(),
        secret_access_key: "secret".into(),
    });
    env.restart().await;
    let bytes = padded_jpeg(12, 4);
    let photo = env.photo(env.job, &bytes).await;
    let r = create(&env, &env.ana, photo, &bytes).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let location = r.header("location").unwrap().to_string();
    let chunk = &bytes[..8 << 20];
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        patch(&env, &env.ana, &location, 0, chunk),
    )
    .await
    .expect("the PATCH is answered although the store hangs");
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    println!("answered in {:?}", started.elapsed());
    let h = head(&env, &env.ana, &location).await;
    assert_eq!(
        h.header("upload-offset"),
        Some(chunk.len().to_string().as_str())
    );
}

/// An upload past its `Upload-Expires` is gone, with its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_upload_is_gone() {
    let mut env = Env::new(Blobs::Local).await;
    env.home.config.uploads.expires_after = Duration::from_millis(300);
    env.restart().await;
    let bytes = jpeg(64, 48);
    let photo = env.photo(env.job, &bytes).await;
    let r = create(&env, &env.ana, photo, &bytes).await;
    assert_eq!(r.status, 201);
    let location = r.header("location").unwrap().to_string();
    let r = patch(&env, &env.ana, &location, 0, &bytes[..10]).await;
    assert_eq!(r.status, 204);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(head(&env, &env.ana, &location).await.status, 404);
    assert_eq!(
        patch(&env, &env.ana, &location, 10, &bytes[10..])
            .await
            .status,
        404
    );
    let left = std::fs::read_dir(env.home.config.data_dir.join("uploads"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "an expired upload's files are removed");
}

/// A signature PNG is uploaded for the job document whose sign-off references it.
async fn signature_upload_for_a_job(blobs: Blobs) {
    let env = Env::new(blobs).await;
    let sig = image::GrayImage::from_fn(300, 100, |x, y| image::Luma([((x + y) % 256) as u8]));
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(sig)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let meta = env.server.store().document(env.job).await.unwrap().unwrap();
    {
        let mut sd = env.server.app.docs.lock(&meta).await.unwrap();
        let before = sd.doc.get_heads();
        schemas::job::set_signoff(
            &mut sd.doc,
            &schemas::job::Signoff {
                signer_name: "Customer".into(),
                signature_sha256: sha_hex(&png),
                signed_at: chrono::Utc::now(),
                summary_sha256: "00".repeat(32),
                by: env.ana().name.clone(),
            },
        )
        .unwrap();
        sd.doc.commit();
        env.server.app.docs.persist(&mut sd, &before).await.unwrap();
    }
    let r = create(&env, &env.ana, env.job, &png).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let location = r.header("location").unwrap().to_string();
    let r = patch(&env, &env.ana, &location, 0, &png).await;
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(stored(&env, &png).await.as_deref(), Some(&png[..]));
    let row = env
        .server
        .store()
        .photo(env.team.org.id, &sha_hex(&png))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.width, row.height, row.mime.as_str()),
        (300, 100, "image/png")
    );
}
