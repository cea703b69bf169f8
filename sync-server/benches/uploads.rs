//! Photo upload figures (BENCHMARKS.md, "Photos"):
//!
//!     SQLX_OFFLINE=true cargo bench -p sync-server --bench uploads
//!
//! - thumbnails (320 and 1280 px) of a 12-megapixel JPEG: time, and how much the process's peak
//!   RSS grew (measured first, in a fresh process);
//! - 8 MB and 50 MB photos uploaded with tus (8 MiB chunks, sha256 per chunk) through the server
//!   to Garage, against a plain S3 PUT of the same bytes to the same Garage in the same run, and
//!   through the server to the local blob store: the median of three rounds, each timed after the
//!   previous upload's thumbnails are made (so that work does not share the cores with it);
//! - a PATCH cut at 50 %: the bytes the device must send again after asking `HEAD`.
//!
//! The server runs in this process on port 0 with the embedded SQLite store; Garage is the
//! test-support single node (started when not running; `cargo install garage --locked` first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use sync_server::blobs::BlobStore;
use sync_server::config::UploadConfig;
use sync_server::store::Role;
use sync_server::{AppState, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const CHUNK: usize = 8 << 20;
/// Timed rounds per photo size; the median is printed.
const ROUNDS: usize = 3;

fn vm_hwm() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// A JPEG of noise (photos do not compress much either) of about `w`×`h`.
fn jpeg(w: u32, h: u32, quality: u8, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n: u8 = rng.random_range(0..48);
        image::Rgb([
            ((x / 7) as u8).wrapping_add(n),
            ((y / 5) as u8).wrapping_add(n),
            ((x + y) as u8).wrapping_add(n),
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&img)
        .expect("encode");
    out
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// One HTTP/1.1 exchange on `conn`, kept open for the next one as a tus client's HTTP agent
/// does (a new connection when there is none, or the server closed it): (status, headers
/// lower-cased, body).
async fn http(
    conn: &mut Option<TcpStream>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut s = match conn.take() {
        Some(s) => s,
        None => {
            let s = TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).ok();
            s
        }
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(body).await.expect("write body");
    // The answer's head, then as many body bytes as it announces.
    let mut buf = Vec::new();
    let mut read = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut read).await.expect("read");
        assert!(n > 0, "the server closed the connection before answering");
        buf.extend_from_slice(&read[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // The answer to a HEAD has no body, whatever its Content-Length says.
    let len: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .filter(|_| method != "HEAD")
        .unwrap_or(0);
    let mut rest = buf.split_off(end + 4);
    while rest.len() < len {
        let n = s.read(&mut read).await.expect("read the body");
        assert!(n > 0, "the server closed the connection in its answer");
        rest.extend_from_slice(&read[..n]);
    }
    if header(&headers, "connection").as_deref() != Some("close") {
        *conn = Some(s);
    }
    (status, headers, String::from_utf8_lossy(&rest).into_owned())
}

fn header(h: &[(String, String)], name: &str) -> Option<String> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// A server with one technician, a job and, per photo, a photo document naming its sha256.
struct Bench {
    addr: String,
    /// The client's connection, kept open between requests.
    conn: tokio::sync::Mutex<Option<TcpStream>>,
    app: Arc<AppState>,
    token: String,
    org: Uuid,
    job: Uuid,
    _task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start(s3: Option<sync_server::config::S3Config>) -> Bench {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::embedded(dir.path());
        config.s3 = s3;
        let store = sync_server::open_store(&config).await.expect("store");
        let app = AppState::new(config, store);
        let org = app.store.create_org("bench uploads").await.expect("org");
        let user = app
            .store
            .create_user(org.id, "tess", Role::Technician, "unused")
            .await
            .expect("user");
        let device = app
            .store
            .register_device(user.id, "camera")
            .await
            .expect("device");
        let ttl = chrono::Duration::hours(2);
        let token = sync_server::auth::issue(
            app.store.as_ref(),
            &user,
            Some(device.id),
            chrono::Utc::now(),
            ttl,
            ttl,
        )
        .await
        .expect("token")
        .access_token;
        let tpl = schemas::template::find("general").expect("template");
        let new = schemas::job::NewJob {
            title: "Uploads".into(),
            assignees: vec![user.name.clone()],
            ..Default::default()
        };
        let dispatcher = app
            .store
            .create_user(org.id, "dana", Role::Dispatcher, "unused")
            .await
            .expect("dispatcher");
        let job = sync_server::jobs::create_job_documents(
            &app,
            &sync_server::jobs::Actor::from(&dispatcher),
            &new,
            &tpl,
        )
        .await
        .expect("job");
        app.store.assign(job, user.id).await.expect("assign");
        let (addr, task) = fieldsync_test_support::serve_in_process(app.clone()).await;
        Bench {
            addr: addr.to_string(),
            conn: tokio::sync::Mutex::new(None),
            app,
            token,
            org: org.id,
            job,
            _task: task,
            _dir: dir,
        }
    }

    async fn photo_doc(&self, bytes: &[u8]) -> Uuid {
        fieldsync_test_support::photo_document(&self.app, self.org, self.job, bytes).await
    }

    fn auth(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Authorization", format!("Bearer {}", self.token)),
            ("Tus-Resumable", "1.0.0".into()),
        ]
    }

    /// Create the upload of `len` bytes hashing to `sha` (hex); its path.
    async fn create(&self, doc: Uuid, sha: &str, len: usize) -> String {
        let mut h = self.auth();
        h.push(("Upload-Length", len.to_string()));
        h.push((
            "Upload-Metadata",
            format!(
                "doc {},sha256 {}",
                B64.encode(doc.to_string()),
                B64.encode(sha)
            ),
        ));
        let mut conn = self.conn.lock().await;
        let (status, headers, body) =
            http(&mut conn, &self.addr, "POST", "/api/v1/uploads", &h, &[]).await;
        assert_eq!(status, 201, "create: {body}");
        header(&headers, "location").expect("Location")
    }

    /// Wait until the thumbnails of `bytes` are made: the next upload is then timed without
    /// the previous one's thumbnail work on the same two cores.
    async fn thumbnails_done(&self, bytes: &[u8]) {
        let sha = hex::encode(Sha256::digest(bytes));
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(p)) = self.app.store.photo(self.org, &sha).await
                && p.thumbnails.len() == sync_server::blobs::THUMB_SIZES.len()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no thumbnails in 60 s");
    }

    /// Upload `bytes` whole in 8 MiB chunks; the time from creation to the last answer (the
    /// server has verified and stored the original by then). The photo's sha256 is known before
    /// the clock starts, as on the device (its photo document names it); each chunk's checksum is
    /// computed while the previous chunk is on its way, as a client that streams would (a chunk
    /// that is the whole photo has the photo's). Requests go on one kept-alive connection.
    async fn upload(&self, bytes: &[u8]) -> Duration {
        let doc = self.photo_doc(bytes).await;
        let digest = Sha256::digest(bytes);
        let sha = hex::encode(digest);
        let t = Instant::now();
        let path = self.create(doc, &sha, bytes.len()).await;
        let checksum = |chunk: &[u8]| format!("sha256 {}", B64.encode(Sha256::digest(chunk)));
        let mut offset = 0;
        let mut next_sum = if bytes.len() <= CHUNK {
            format!("sha256 {}", B64.encode(digest))
        } else {
            checksum(&bytes[..CHUNK])
        };
        while offset < bytes.len() {
            let end = (offset + CHUNK).min(bytes.len());
            let chunk = &bytes[offset..end];
            let mut h = self.auth();
            h.push(("Upload-Offset", offset.to_string()));
            h.push(("Content-Type", "application/offset+octet-stream".into()));
            h.push(("Upload-Checksum", next_sum.clone()));
            let following = bytes[end..(end + CHUNK).min(bytes.len())].to_vec();
            let mut conn = self.conn.lock().await;
            let (sent, sum) = tokio::join!(
                http(&mut conn, &self.addr, "PATCH", &path, &h, chunk),
                tokio::task::spawn_blocking(move || checksum(&following))
            );
            let (status, headers, body) = sent;
            next_sum = sum.expect("checksum task");
            assert_eq!(status, 204, "patch at {offset}: {body}");
            offset = header(&headers, "upload-offset")
                .and_then(|o| o.parse().ok())
                .expect("Upload-Offset");
        }
        t.elapsed()
    }

    /// Send half of `bytes` in a PATCH announcing all of them, then drop the connection; the
    /// server's offset afterwards.
    async fn cut_at_half(&self, bytes: &[u8]) -> (usize, u64) {
        let doc = self.photo_doc(bytes).await;
        let path = self
            .create(doc, &hex::encode(Sha256::digest(bytes)), bytes.len())
            .await;
        let half = bytes.len() / 2;
        {
            let mut s = TcpStream::connect(&self.addr).await.expect("connect");
            let mut head = format!(
                "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n",
                self.addr,
                bytes.len()
            );
            for (k, v) in self.auth() {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            s.write_all(head.as_bytes()).await.expect("head");
            if let Err(e) = s.write_all(&bytes[..half]).await {
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer).await;
                panic!("the server stopped reading the PATCH: {e}: {answer}");
            }
            s.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, headers, body) = http(
            &mut *self.conn.lock().await,
            &self.addr,
            "HEAD",
            &path,
            &self.auth(),
            &[],
        )
        .await;
        assert!(status == 200 || status == 204, "head: {status} {body}");
        let offset = header(&headers, "upload-offset")
            .and_then(|o| o.parse().ok())
            .expect("Upload-Offset");
        (half, offset)
    }
}

/// In a child process of this bench (so the peak is the thumbnails' own): read the JPEG at
/// `path`, make the thumbnails three times, print the median time and the peak RSS added.
fn thumbnails_child(path: &str) {
    let twelve_mp = std::fs::read(path).expect("read the JPEG");
    let before = vm_hwm();
    let c = UploadConfig::default();
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let thumbs = sync_server::uploads::image::thumbnails(
            &twelve_mp,
            &sync_server::blobs::THUMB_SIZES,
            &c,
        )
        .expect("thumbnails");
        times.push(t.elapsed());
        assert_eq!(thumbs.len(), 2);
    }
    times.sort();
    println!(
        "thumbnails of a 12 MP JPEG ({:.1} MB) to 320 and 1280 px: median {:.0} ms (of 3), peak RSS +{:.0} MiB",
        twelve_mp.len() as f64 / 1e6,
        times[1].as_secs_f64() * 1e3,
        (vm_hwm().saturating_sub(before)) as f64 / (1 << 20) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--thumbnails-child") {
        thumbnails_child(&args[i + 1]);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("12mp.jpg");
    std::fs::write(&path, jpeg(4000, 3000, 90, 12)).expect("write the JPEG");
    let status = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .arg("--thumbnails-child")
        .arg(&path)
        .status()
        .expect("run the thumbnails child");
    assert!(status.success());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // About 8 MB and 50 MB of JPEG.
    let photos = [
        ("8 MB", jpeg(2700, 2000, 97, 8)),
        ("50 MB", jpeg(6300, 4700, 98, 50)),
    ];
    let garage = fieldsync_test_support::Garage::shared();
    rt.block_on(async {
        let via_garage = Bench::start(Some(garage.s3_config())).await;
        let local = Bench::start(None).await;
        let s3 = sync_server::blobs::s3::S3Blobs::new(&garage.s3_config());
        for (label, photo) in &photos {
            // Three rounds, each with bytes of its own (a blob the org holds is complete at
            // once): a comment segment with the round's number right after the JPEG's start.
            let mut rounds = Vec::new();
            for round in 0..ROUNDS {
                let mut bytes = photo[..2].to_vec();
                let tag = format!("fieldsync bench round {round} {}", Uuid::now_v7());
                bytes.extend([0xFF, 0xFE]);
                bytes.extend(((tag.len() + 2) as u16).to_be_bytes());
                bytes.extend(tag.as_bytes());
                bytes.extend(&photo[2..]);
                let through = via_garage.upload(&bytes).await;
                via_garage.thumbnails_done(&bytes).await;
                let key = format!("bench/{}", Uuid::now_v7());
                let t = Instant::now();
                s3.put_bytes(&key, bytes.clone(), "image/jpeg")
                    .await
                    .expect("plain PUT");
                let plain = t.elapsed();
                let _ = s3.delete(&key).await;
                let to_local = local.upload(&bytes).await;
                local.thumbnails_done(&bytes).await;
                rounds.push((through, plain, to_local));
            }
            let median = |f: fn(&(Duration, Duration, Duration)) -> Duration| {
                let mut v: Vec<Duration> = rounds.iter().map(f).collect();
                v.sort();
                v[v.len() / 2]
            };
            let (through, plain, to_local) = (median(|r| r.0), median(|r| r.1), median(|r| r.2));
            let ratio = plain.as_secs_f64() / through.as_secs_f64();
            println!(
                "upload {label} ({:.1} MB, median of {ROUNDS}): through the server to Garage {:.0} MB/s ({:.3} s), plain S3 PUT {:.0} MB/s ({:.3} s): {:.0} % of it — goal ≥ 80 %: {}; to the local store {:.0} MB/s",
                photo.len() as f64 / 1e6,
                mb_per_s(photo.len(), through),
                through.as_secs_f64(),
                mb_per_s(photo.len(), plain),
                plain.as_secs_f64(),
                ratio * 100.0,
                if ratio >= 0.8 { "MET" } else { "NOT MET" },
                mb_per_s(photo.len(), to_local),
            );
        }
        // A photo the server does not hold yet (one it holds is complete at creation).
        let fresh = jpeg(2700, 2000, 97, 9);
        let (sent, kept) = local.cut_at_half(&fresh).await;
        let again = sent as u64 - kept.min(sent as u64);
        println!(
            "cut at 50 % of {:.1} MB (one PATCH, no checksum): {sent} bytes sent, the server kept {kept}; to send again {again} bytes — goal < one chunk ({CHUNK}): {}",
            fresh.len() as f64 / 1e6,
            if (again as usize) < CHUNK { "MET" } else { "NOT MET" }
        );
    });
}
