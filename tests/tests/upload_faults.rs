//! Uploads cut at random points and finished: the real server binary, the real device program
//! (`mobile-shell sync --once`), a proxy between them that counts the bytes the device sends. Each
//! of the first rounds cuts the pass at a random byte count in one of three ways, drawn from a
//! seed (printed; `SEED=` replays it): the network drops (the proxy cuts every connection), the
//! device process is killed (SIGKILL), or the server is killed and started again. Then passes run
//! until the queue is empty. Afterwards every stored original hashes to its photo's sha256, and
//! the device sent no more than the photos' bytes plus one chunk per cut (plus request headers
//! and the small sync exchanges).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fieldsync_test_support::{ServerProcess, workspace_bin};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Per pass: request and reply headers of its tus requests, its hello and sync exchange.
const PASS_OVERHEAD: u64 = 24 * 1024;

/// A TCP proxy on a port of its own to a target that can change (a restarted server listens on a
/// new port); counts the bytes going to the target; `cut` drops every open connection.
struct Proxy {
    url: String,
    target: Arc<std::sync::Mutex<String>>,
    up: Arc<AtomicU64>,
    cuts: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = Arc::new(std::sync::Mutex::new(addr_of(target)));
        let up = Arc::new(AtomicU64::new(0));
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let (t, u, c) = (target.clone(), up.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let to = t.lock().unwrap().clone();
                let (up, mut cut) = (u.clone(), c.subscribe());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&to).await else {
                        return;
                    };
                    let (mut ci, mut co) = inbound.into_split();
                    let (mut si, mut so) = outbound.into_split();
                    let upstream = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match ci.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            up.fetch_add(n as u64, Ordering::SeqCst);
                            if so.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = so.shutdown().await;
                    };
                    let downstream = async {
                        let _ = tokio::io::copy(&mut si, &mut co).await;
                        let _ = co.shutdown().await;
                    };
                    tokio::select! {
                        _ = async { tokio::join!(upstream, downstream) } => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            url,
            target,
            up,
            cuts,
        }
    }

    fn up(&self) -> u64 {
        self.up.load(Ordering::SeqCst)
    }

    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }

    fn retarget(&self, url: &str) {
        *self.target.lock().unwrap() = addr_of(url);
    }
}

fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

fn shell(dir: &std::path::Path, chunk_kb: u64) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(workspace_bin("mobile-shell"));
    cmd.arg("--data-dir")
        .arg(dir)
        .env("FIELDSYNC_UPLOAD_CHUNK_KB", chunk_kb.to_string())
        .kill_on_drop(true);
    cmd
}

async fn shell_json(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = shell(dir, 1024)
        .args(args)
        .arg("--json")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    NetworkDrop,
    DeviceKilled,
    ServerRestarted,
}

/// The local blob store: three photos of a few hundred KiB in 64 KiB chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_the_local_store_cut_at_random_points_finish_whole() {
    cut_at_random_points(None, 64, |rng| {
        let (w, h) = (rng.random_range(300..520), rng.random_range(240..400));
        fieldsync_e2e::noisy_jpeg(rng, w, h)
    })
    .await;
}

/// S3 (Garage): three photos of 11 to 16 MiB in 6 MiB chunks, so every request streams into a
/// part, parts go ahead from the file after cuts, and restarts go on from the recorded parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_s3_cut_at_random_points_finish_whole() {
    let garage = tokio::task::spawn_blocking(fieldsync_test_support::Garage::shared)
        .await
        .unwrap();
    cut_at_random_points(Some(garage), 6 * 1024, |rng| {
        fieldsync_e2e::padded_jpeg(rng.random_range(11..=16), rng.random())
    })
    .await;
}

async fn cut_at_random_points(
    s3: Option<fieldsync_test_support::Garage>,
    chunk_kb: u64,
    mut photo_bytes: impl FnMut(&mut rand::rngs::StdRng) -> Vec<u8>,
) {
    let chunk = chunk_kb * 1024;
    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let server_dir = tempfile::tempdir().unwrap();
    let mut env = vec![(
        "FIELDSYNC_DATA_DIR".to_string(),
        server_dir.path().to_str().unwrap().to_string(),
    )];
    if let Some(g) = &s3 {
        for (k, v) in [
            ("FIELDSYNC_S3_ENDPOINT", &g.endpoint),
            ("FIELDSYNC_S3_BUCKET", &g.bucket),
            ("FIELDSYNC_S3_REGION", &g.region),
            ("FIELDSYNC_S3_ACCESS_KEY_ID", &g.key_id),
            ("FIELDSYNC_S3_SECRET_ACCESS_KEY", &g.secret),
        ] {
            env.push((k.to_string(), v.clone()));
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let env = env.as_slice();
    fieldsync_e2e::add_user(env, "acme", "ana", "technician");
    fieldsync_e2e::add_user(env, "acme", "dana", "dispatcher");
    let mut server = ServerProcess::spawn(env);
    let proxy = Proxy::start(&server.url).await;
    let url = server.url.clone();
    let job = tokio::task::spawn_blocking(move || {
        let bearer = format!("Bearer {}", fieldsync_e2e::http_login(&url, "dana"));
        let job: serde_json::Value = ureq::post(format!("{url}/api/v1/jobs"))
            .header("authorization", &bearer)
            .send_json(serde_json::json!({"title": "Chiller", "assignees": ["ana"]}))
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        job["id"].as_str().unwrap().to_string()
    })
    .await
    .unwrap();

    // The device signs in through the proxy, syncs, and takes three photos.
    let device = tempfile::tempdir().unwrap();
    let mut login = shell(device.path(), chunk_kb)
        .args([
            "login",
            "--server",
            &proxy.url,
            "--user",
            "ana",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = login.stdin.take().unwrap();
    stdin
        .write_all(fieldsync_e2e::PASSWORD.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    assert!(login.wait().await.unwrap().success());
    shell_json(device.path(), &["sync", "--once"]).await;
    let mut photos = Vec::new();
    for n in 0..3 {
        let bytes = photo_bytes(&mut rng);
        let file = device.path().join(format!("IMG_{n}.jpg"));
        std::fs::write(&file, &bytes).unwrap();
        let photo = shell_json(
            device.path(),
            &["photo", "add", &job, file.to_str().unwrap()],
        )
        .await;
        let id = photo["id"].as_str().unwrap().to_string();
        photos.push((id, hex::encode(Sha256::digest(&bytes)), bytes.len() as u64));
    }
    let total: u64 = photos.iter().map(|p| p.2).sum();
    println!(
        "photos: {:?}",
        photos.iter().map(|p| p.2).collect::<Vec<_>>()
    );

    let before = proxy.up();
    let (mut cuts, mut passes) = (0u64, 0u64);
    let mut finished = false;
    for round in 0..20 {
        let fault = (round < 5).then(|| match rng.random_range(0..3) {
            0 => Fault::NetworkDrop,
            1 => Fault::DeviceKilled,
            _ => Fault::ServerRestarted,
        });
        // Within what is left to send (roughly: what went through so far includes overhead), so
        // that most cuts land mid-upload.
        let left = total.saturating_sub(proxy.up() - before).max(chunk);
        let at = rng.random_range(1..left * 2 / 3);
        let start = proxy.up();
        passes += 1;
        let mut child = shell(device.path(), chunk_kb)
            .args(["sync", "--once", "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut exited = None;
        if let Some(fault) = fault {
            let deadline = Instant::now() + Duration::from_secs(60);
            while proxy.up() - start < at {
                if let Some(status) = child.try_wait().unwrap() {
                    exited = Some(status);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: no progress (SEED={seed})"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if exited.is_none() {
                cuts += 1;
                println!(
                    "round {round}: {fault:?} after {} bytes",
                    proxy.up() - start
                );
                match fault {
                    Fault::NetworkDrop => proxy.cut(),
                    Fault::DeviceKilled => child.start_kill().unwrap(),
                    Fault::ServerRestarted => {
                        server.kill_dash_nine();
                        proxy.cut();
                        server = ServerProcess::spawn(env);
                        proxy.retarget(&server.url);
                    }
                }
            }
        }
        let status = match exited {
            Some(s) => s,
            None => tokio::time::timeout(Duration::from_secs(60), child.wait())
                .await
                .unwrap_or_else(|_| panic!("round {round}: the pass hung (SEED={seed})"))
                .unwrap(),
        };
        let waiting = shell_json(device.path(), &["status"]).await["uploads"]
            .as_array()
            .unwrap()
            .len();
        if status.success() && waiting == 0 {
            finished = true;
            break;
        }
    }
    assert!(
        finished,
        "the uploads did not finish in 20 passes (SEED={seed})"
    );

    // Every original is stored whole.
    let url = server.url.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let bearer = format!("Bearer {}", fieldsync_e2e::http_login(&url, "ana"));
        photos
            .iter()
            .map(|(id, sha, _)| {
                let (status, record) = fieldsync_e2e::api_blocking(
                    "GET",
                    &format!("{url}/api/v1/photos/{id}"),
                    Some(bearer.trim_start_matches("Bearer ")),
                    None,
                );
                assert_eq!(
                    (status, &record["uploaded"]),
                    (200, &serde_json::json!(true)),
                    "photo {id}: {record} (SEED={seed})"
                );
                // A server route (with the token), or a presigned S3 URL (as it is).
                let at = record["original_url"].as_str().unwrap();
                let request = if at.starts_with("http") {
                    ureq::get(at)
                } else {
                    ureq::get(format!("{url}{at}")).header("authorization", &bearer)
                };
                let original = request
                    .call()
                    .unwrap()
                    .body_mut()
                    .with_config()
                    .limit(64 << 20)
                    .read_to_vec()
                    .unwrap();
                (hex::encode(Sha256::digest(&original)), sha.clone())
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (got, want) in stored {
        assert_eq!(got, want, "a stored original differs (SEED={seed})");
    }

    // Nothing sent twice beyond a chunk per cut.
    let sent = proxy.up() - before;
    let bound = total + cuts * chunk + passes * PASS_OVERHEAD;
    println!(
        "sent {sent} bytes for {total} bytes of photos in {passes} passes with {cuts} cuts (bound {bound})"
    );
    assert!(
        sent <= bound,
        "sent {sent} bytes: more than {total} + {cuts} chunks + overhead ({bound}) (SEED={seed})"
    );
}
