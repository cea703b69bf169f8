//! The device's sync against a real server over real sockets: a one-shot sync that receives
//! documents new to the device settles (instead of running into its time limit).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, assert_device_matches_server};
use schemas::DocKind;

/// Well above what a settle takes; the old code ran into it every time.
const LIMIT: Duration = Duration::from_secs(20);

/// A 4x3 PNG (this crate does not depend on an image encoder).
const PNG: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 4, 0, 0, 0, 3, 8, 2, 0,
    0, 0, 59, 150, 57, 145, 0, 0, 0, 16, 73, 68, 65, 84, 120, 156, 99, 16, 104, 16, 128, 35, 6,
    156, 28, 0, 146, 103, 7, 129, 101, 2, 163, 130, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];

fn png(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("meter.png");
    std::fs::write(&path, PNG).unwrap();
    path
}

async fn sync_once(d: &mut Device, server: &TestServer) -> client_core::sync::SyncStats {
    client_core::sync::sync_once(&mut d.replica, &server.url, &d.token, LIMIT)
        .await
        .expect("a one-shot sync settles")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_settles_when_another_technicians_photo_arrives() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let (ana, ben) = (&team.techs[0], &team.techs[1]);
    let shared = team.job(&server, "Boiler", "general", &[ana, ben]).await;
    let mut a = Device::new(server.store(), ana).await;
    let mut b = Device::new(server.store(), ben).await;
    sync_once(&mut a, &server).await;
    sync_once(&mut b, &server).await;

    let photo = b
        .replica
        .attach_photo(shared, &png(b.dir.path()), None, "meter")
        .unwrap();
    sync_once(&mut b, &server).await;
    assert!(b.replica.unacked().unwrap().is_empty());

    let stats = sync_once(&mut a, &server).await;
    assert!(stats.docs_updated >= 1, "{stats:?}");
    assert_eq!(a.replica.photo(photo.id).unwrap().unwrap().caption, "meter");
    assert_device_matches_server(&mut a, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_settles_when_a_new_job_is_assigned_to_a_device_holding_documents() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana = &team.techs[0];
    team.job(&server, "First", "general", &[ana]).await;
    let mut a = Device::new(server.store(), ana).await;
    sync_once(&mut a, &server).await;
    assert_eq!(a.replica.documents().unwrap().len(), 3);

    let second = team.job(&server, "Second", "general", &[ana]).await;
    sync_once(&mut a, &server).await;
    let docs = a.replica.documents().unwrap();
    assert_eq!(docs.len(), 6);
    assert!(
        docs.iter()
            .any(|d| d.id == second && d.kind == DocKind::Job)
    );
    assert_device_matches_server(&mut a, &server).await;
}

/// A TCP proxy in front of the test server that the test can take down (connections are
/// accepted and dropped at once) and whose forwarded connections it can cut.
struct Proxy {
    url: String,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_string();
        let up = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                conns2.lock().unwrap().push(task);
            }
        });
        Proxy { url, up, conns }
    }

    /// Drop every forwarded connection, as a network outage would.
    fn cut(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_connected_and_synced_starts_the_backoff_over() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana = &team.techs[0];
    team.job(&server, "Roof unit", "general", &[ana]).await;
    let mut a = Device::new(server.store(), ana).await;
    let proxy = Proxy::start(&server.url).await;
    // Signed in through the proxy, as `login` would have left it.
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    a.replica.set_meta("server", &proxy.url).unwrap();
    a.replica.set_meta("access_token", &a.token).unwrap();
    a.replica
        .set_meta("access_expires_at", &expires.to_rfc3339())
        .unwrap();

    // The script, stepped by the loop itself (its sleeps are recorded, not waited): three failed
    // attempts while the server is unreachable, then a session that connects and syncs, then a
    // cut connection, then a last session that ends the loop.
    let delays = Arc::new(Mutex::new(Vec::new()));
    let finish = Arc::new(AtomicBool::new(false));
    let mut cut = false;
    let done = |r: &mut client_core::Replica| {
        if finish.load(Ordering::SeqCst) {
            return true;
        }
        if !cut && r.meta("last_sync_at").unwrap().is_some() {
            cut = true;
            proxy.cut();
        }
        false
    };
    let sleep = |d: Duration| {
        let mut delays = delays.lock().unwrap();
        delays.push(d);
        match delays.len() {
            3 => proxy.up.store(true, Ordering::SeqCst),
            4 => finish.store(true, Ordering::SeqCst),
            _ => {}
        }
        std::future::ready(())
    };
    let mut errors = Vec::new();
    client_core::sync::Reconnect::default()
        .run(
            &mut a.replica,
            done,
            |client_core::sync::LiveEvent::Retrying { error, .. }| errors.push(error.to_string()),
            sleep,
        )
        .await
        .expect("the loop ends when told to");

    let secs = |s: &[u64]| -> Vec<Duration> { s.iter().map(|s| Duration::from_secs(*s)).collect() };
    assert_eq!(
        *delays.lock().unwrap(),
        secs(&[1, 2, 4, 1]),
        "after a synced session the delay starts over ({errors:?})"
    );
    assert_eq!(a.replica.documents().unwrap().len(), 3);
}

fn shell(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(fieldsync_test_support::workspace_bin("mobile-shell"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn shell_ok(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = shell(dir, &[args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Real processes only: the server binary, `mobile-shell sync` running live, one-shot
/// `mobile-shell part add` beside it, then the server killed.
#[test]
fn one_shot_writes_beside_a_live_sync_reach_the_server_and_a_dead_server_is_offline() {
    let (mut server, _server_dir, job, device) = cli_setup("Live job");
    let dir = device.path();

    let mut live =
        std::process::Command::new(fieldsync_test_support::workspace_bin("mobile-shell"))
            .arg("--data-dir")
            .arg(dir)
            .arg("sync")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    for i in 0..10 {
        shell_ok(dir, &["part", "add", &job, &format!("LIVE-{i}"), "1"]);
    }
    // The live sync picks the edits up from the replica and the server acknowledges them.
    let mut waited = 0;
    while !shell_ok(dir, &["pending"]).as_array().unwrap().is_empty() {
        waited += 1;
        assert!(waited < 600, "the live sync never uploaded the edits");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(
        shell_ok(dir, &["job", "show", &job])["parts"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    let url = server.url.clone();
    server.kill_dash_nine();
    let out = shell(dir, &["sync", "--once", "--timeout", "30"]);
    assert_eq!(out.status.code(), Some(1), "a dead server is not bad input");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("offline: cannot reach {url}")),
        "{err}"
    );
}

/// Real processes: a photo added with the CLI waits in `status`, and `sync --once --json` sends
/// the document and then the bytes, with one JSON event per line and the summary last.
#[test]
fn the_cli_queues_a_photo_and_sync_uploads_it_with_events() {
    let (_server, _server_dir, job, device) = cli_setup("Photo job");
    let dir = device.path();

    let file = png(dir);
    let photo = shell_ok(dir, &["photo", "add", &job, file.to_str().unwrap()]);
    let status = shell_ok(dir, &["status"]);
    let waiting = status["uploads"].as_array().unwrap();
    assert_eq!(waiting.len(), 1, "{status}");
    assert_eq!(waiting[0]["sha256"], photo["sha256"]);
    assert_eq!(waiting[0]["state"], "pending");
    let text = String::from_utf8_lossy(&shell(dir, &["status"]).stdout).into_owned();
    assert!(text.contains("1 upload(s) waiting"), "{text}");

    let out = shell(dir, &["sync", "--once", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "done" && l["sha256"] == photo["sha256"]),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap()["uploads"]["done"], 1, "{lines:?}");
    // The setup's sync fetched the org's checklist templates: this one found them current.
    let templates = &lines.last().unwrap()["templates"];
    assert_eq!(templates["changed"], false, "{templates}");
    assert_eq!(
        templates["templates"],
        schemas::template::builtin().len(),
        "{templates}"
    );
    let listed = shell_ok(dir, &["templates"]);
    assert!(
        listed.as_array().unwrap().iter().all(|t| t["version"] == 0),
        "{listed}"
    );
    assert!(
        shell_ok(dir, &["status"])["uploads"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// The real server binary with a technician `ana` and a dispatcher, a job `title` the
/// dispatcher made for ana over the API, and ana's device signed in with the CLI and synced.
fn cli_setup(
    title: &str,
) -> (
    fieldsync_test_support::ServerProcess,
    tempfile::TempDir,
    String,
    tempfile::TempDir,
) {
    use std::io::Write;
    let server_dir = tempfile::tempdir().unwrap();
    let env = [("FIELDSYNC_DATA_DIR", server_dir.path().to_str().unwrap())];
    fieldsync_e2e::add_user(&env, "acme", "ana", "technician");
    fieldsync_e2e::add_user(&env, "acme", "dana", "dispatcher");
    let server = fieldsync_test_support::ServerProcess::spawn(&env);
    let bearer = format!("Bearer {}", fieldsync_e2e::http_login(&server.url, "dana"));
    let job: serde_json::Value = ureq::post(format!("{}/api/v1/jobs", server.url))
        .header("authorization", &bearer)
        .send_json(serde_json::json!({"title": title, "assignees": ["ana"]}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let job = job["id"].as_str().unwrap().to_string();
    let device = tempfile::tempdir().unwrap();
    let mut login =
        std::process::Command::new(fieldsync_test_support::workspace_bin("mobile-shell"))
            .arg("--data-dir")
            .arg(device.path())
            .args([
                "login",
                "--server",
                &server.url,
                "--user",
                "ana",
                "--password-stdin",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
    login
        .stdin
        .take()
        .unwrap()
        .write_all(fieldsync_e2e::PASSWORD.as_bytes())
        .unwrap();
    assert!(login.wait().unwrap().success());
    let first = shell_ok(device.path(), &["sync", "--once"]);
    // The first sync also fetched the org's checklist templates.
    assert_eq!(first["templates"]["changed"], true, "{first}");
    (server, server_dir, job, device)
}
