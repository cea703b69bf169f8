//! The technician's app (`mobile-shell serve`) against the real server binary:
//!
//! - in headless Chromium at 390×844 (`tests/js/app.mjs`), the sign-in on the page (a wrong
//!   password said, then the job list), the whole technician flow with the server stopped (status, notes across a reload, time, checklist of every kind, parts from the
//!   van's catalog, photos, the customer's signature), then the server started again on the same
//!   address under the open page: the app syncs by itself (the bar changes without moving the
//!   layout), the back office's review reaches the open job screen, and the dispatcher's API
//!   shows all of it, photos stored and the signature's summary hash matching;
//! - its local API from outside: refusals with clear errors, a second shell on the same data dir
//!   refused, and a job the dispatcher unassigns leaving the device only after its edit reached
//!   the server, with a notice for the technician.
//!
//! Screenshots go to `$APP_ARTIFACTS` (default `target/app-screens`), not committed.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fieldsync_e2e::{api_blocking, http_login};
use fieldsync_test_support::{ServerProcess, workspace_bin};
use serde_json::{Value, json};

/// The real server with a technician `ana` and a dispatcher `dana`, the catalog and ana's van
/// stocked; returns the server, its data dir and dana's token.
fn server_with_team() -> (ServerProcess, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let env = [("FIELDSYNC_DATA_DIR", dir.path().to_str().unwrap())];
    fieldsync_e2e::add_user(&env, "acme", "ana", "technician");
    fieldsync_e2e::add_user(&env, "acme", "dana", "dispatcher");
    fieldsync_e2e::add_user(&env, "acme", "olga", "back_office");
    let server = ServerProcess::spawn(&env);
    let dana = http_login(&server.url, "dana");
    let ok = |(status, body): (u16, Value)| {
        assert!(status < 300, "{status} {body}");
        body
    };
    for (sku, name, price) in [
        ("IGN-100", "Hot surface igniter", 4500),
        ("FLT-1625", "Furnace filter 16x25", 1299),
    ] {
        ok(api_blocking(
            "POST",
            &format!("{}/api/v1/catalog", server.url),
            Some(&dana),
            Some(json!({"sku": sku, "name": name, "unit": "ea",
                        "unit_price_cents": price, "unit_cost_cents": price / 2})),
        ));
    }
    let van = ok(api_blocking(
        "POST",
        &format!("{}/api/v1/stock/locations", server.url),
        Some(&dana),
        Some(json!({"code": "VAN-ANA", "name": "Ana's van", "kind": "van", "technician": "ana"})),
    ));
    ok(api_blocking(
        "POST",
        &format!("{}/api/v1/stock/receipts", server.url),
        Some(&dana),
        Some(json!({"location_id": van["id"], "sku": "IGN-100", "qty": 6})),
    ));
    (server, dir, dana)
}

fn create_job(url: &str, dana: &str, title: &str, template: &str) -> String {
    let (status, job) = api_blocking(
        "POST",
        &format!("{url}/api/v1/jobs"),
        Some(dana),
        Some(
            json!({"title": title, "template": template, "assignees": ["ana"],
                    "customer": {"name": "Northwind Offices", "phone": "+44 20 7946 0000"},
                    "site": {"name": "Rooftop", "address": "12 Harbour St"}}),
        ),
    );
    assert_eq!(status, 201, "{job}");
    job["id"].as_str().unwrap().to_string()
}

/// `mobile-shell serve` on port 0; its URL as printed. Killed when dropped.
struct Shell {
    child: Child,
    url: String,
}

impl Shell {
    fn start(data_dir: &Path) -> Shell {
        let mut child = Command::new(workspace_bin("mobile-shell"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("serve printed its address").unwrap();
        let url = first
            .strip_prefix("serving the app at ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim_end_matches('/')
            .to_string();
        std::thread::spawn(move || for _ in lines {});
        Shell { child, url }
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        api_blocking(method, &format!("{}{path}", self.url), None, body)
    }

    fn state(&self) -> Value {
        self.api("GET", "/api/state", None).1
    }

    /// Wait (up to `limit`) until `ok` holds of the state.
    fn wait_state(&self, what: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.state();
            if ok(&s) {
                return s;
            }
            assert!(start.elapsed() < limit, "{what}: still {s} after {limit:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sign_in(shell: &Shell, server: &str) {
    let (status, body) = shell.api(
        "POST",
        "/api/login",
        Some(json!({"server": server, "user": "ana", "password": "wrong"})),
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["message"], "wrong user name or password");
    let (status, body) = shell.api(
        "POST",
        "/api/login",
        Some(json!({"server": server, "user": "ana", "password": fieldsync_e2e::PASSWORD})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signed_in"], true);
}

/// Run `tests/js/app.mjs` in `phase`; its stdout's last line is JSON with `ok: true`. Every line
/// it prints goes to `on_line` as it comes (the online phase says `READY` with the page open
/// offline, for the server to be started, and `SYNCED` for the back office to review).
fn browser_phase(phase: &str, env: &[(&str, &str)], mut on_line: impl FnMut(&str)) -> Value {
    let (script, chromium) = fieldsync_e2e::browser_test("app.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .env("PHASE", phase)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("node runs (Node.js is needed for the browser tests)");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        on_line(&line);
        printed.push(line);
    }
    let out = child.wait_with_output().unwrap();
    let stdout = printed.join("\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the {phase} phase failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("null");
    let v: Value = serde_json::from_str(last).unwrap_or(Value::Null);
    assert_eq!(v["ok"], true, "{stdout}\n{stderr}");
    v
}

fn artifacts() -> String {
    std::env::var("APP_ARTIFACTS").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/app-screens")
            .to_string_lossy()
            .into_owned()
    })
}

#[test]
fn the_whole_flow_offline_in_a_real_browser_then_synced_by_itself() {
    let (mut server, server_dir, dana) = server_with_team();
    let job = create_job(
        &server.url,
        &dana,
        "Rooftop unit seasonal service",
        "hvac_maintenance",
    );
    let device = tempfile::tempdir().unwrap();
    let shell = Shell::start(device.path());
    // Signed in once, on the page.
    let screens = artifacts();
    std::fs::create_dir_all(&screens).unwrap();
    browser_phase(
        "signin",
        &[
            ("APP_URL", shell.url.as_str()),
            ("SERVER_URL", server.url.as_str()),
            ("USER_NAME", "ana"),
            ("PASSWORD", fieldsync_e2e::PASSWORD),
            ("ARTIFACTS", screens.as_str()),
        ],
        |_| {},
    );
    shell.wait_state("online with the job", Duration::from_secs(30), |s| {
        s["online"] == true && s["pending_changes"] == 0
    });
    // The job, the templates and the van's catalog arrived without being asked for.
    let start = Instant::now();
    loop {
        let (_, jobs) = shell.api("GET", "/api/jobs?filter=all", None);
        let (_, parts) = shell.api("GET", "/api/catalog?q=igniter", None);
        if jobs
            .as_array()
            .is_some_and(|j| j.iter().any(|j| j["id"] == job.as_str()))
            && parts[0]["on_hand"] == 6.0
        {
            assert_eq!(parts[0]["sku"], "IGN-100");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{jobs} {parts}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The server goes away; the app says so.
    let port = server.addr.port();
    server.kill_dash_nine();
    shell.wait_state("offline", Duration::from_secs(10), |s| s["online"] == false);

    let photo = device.path().join("nameplate.jpg");
    std::fs::write(&photo, fieldsync_e2e::jpeg_with_exif(640, 480)).unwrap();
    let env = [
        ("APP_URL", shell.url.as_str()),
        ("JOB_ID", job.as_str()),
        ("PHOTO_PATH", photo.to_str().unwrap()),
        ("PART_SKU", "IGN-100"),
        ("SIGNER", "Dana Customer"),
        ("ARTIFACTS", screens.as_str()),
    ];
    browser_phase("offline", &env, |_| {});

    // All of it is on the device, waiting.
    let (_, view) = shell.api("GET", &format!("/api/jobs/{job}"), None);
    assert_eq!(view["status"], "in_progress", "{view}");
    assert_eq!(view["signoff"]["signer_name"], "Dana Customer");
    assert_eq!(view["locked"], true);
    assert!(view["unsynced"].as_u64().unwrap() > 0);
    let waiting = shell.state();
    assert!(
        waiting["pending_changes"].as_u64().unwrap() > 0,
        "{waiting}"
    );
    // The photo (taken twice: one blob) and the signature.
    assert_eq!(waiting["uploads"]["waiting"], 2, "{waiting}");

    // The server comes back on the same address once the page is open; nobody touches the app.
    let mut restarted: Option<ServerProcess> = None;
    browser_phase("online", &env, |line| match line {
        "READY" => {
            let mut cmd = Command::new(fieldsync_test_support::sync_server_bin());
            cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .env_remove("DATABASE_URL")
                .env("RUST_LOG", "warn")
                .env("FIELDSYNC_DATA_DIR", server_dir.path());
            restarted = Some(ServerProcess::start(cmd));
        }
        // The back office rejects the photos, saying why; the technician's open job shows it.
        "SYNCED" => {
            let url = &restarted.as_ref().expect("started on READY").url;
            let office = http_login(url, "olga");
            let (_, seen) = api_blocking(
                "GET",
                &format!("{url}/api/v1/jobs/{job}"),
                Some(&dana),
                None,
            );
            for p in seen["photos"].as_array().unwrap() {
                let (status, body) = api_blocking(
                    "POST",
                    &format!("{url}/api/v1/photos/{}/review", p["id"].as_str().unwrap()),
                    Some(&office),
                    Some(json!({"state": "rejected", "note": "nameplate blurred, please retake"})),
                );
                assert_eq!(status, 200, "review: {body}");
            }
        }
        _ => {}
    });
    let server = restarted.expect("the online phase got the page ready");
    shell.wait_state("all sent", Duration::from_secs(60), |s| {
        s["online"] == true && s["pending_changes"] == 0 && s["uploads"]["waiting"] == 0
    });
    let (_, view) = shell.api("GET", &format!("/api/jobs/{job}"), None);
    for (sha, u) in view["uploads"].as_object().unwrap() {
        assert_eq!(u["state"], "done", "upload {sha}: {u}");
    }

    // The dispatcher sees everything the technician did offline.
    let (status, seen) = api_blocking(
        "GET",
        &format!("{}/api/v1/jobs/{job}", server.url),
        Some(&dana),
        None,
    );
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["status"], "in_progress", "{seen}");
    let history: Vec<&str> = seen["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert!(
        history.ends_with(&["en_route", "in_progress"]),
        "{history:?}"
    );
    assert!(!seen["notes"].as_str().unwrap().is_empty(), "notes: {seen}");
    assert!(
        seen["time_entries"][0]["stopped_at"].is_string(),
        "a stopped time entry: {seen}"
    );
    for item in seen["checklist"]["items"].as_array().unwrap() {
        assert!(!item["value"].is_null(), "every item answered: {item}");
    }
    let parts = seen["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "one line left: {parts:?}");
    assert_eq!(
        (parts[0]["sku"].as_str(), parts[0]["qty"].as_f64()),
        (Some("IGN-100"), Some(3.0))
    );
    let photos = seen["photos"].as_array().unwrap();
    assert_eq!(
        photos.len(),
        2,
        "the nameplate and a general photo: {photos:?}"
    );
    for p in photos {
        let (status, record) = api_blocking(
            "GET",
            &format!("{}/api/v1/photos/{}", server.url, p["id"].as_str().unwrap()),
            Some(&dana),
            None,
        );
        assert_eq!(status, 200, "{record}");
        assert_eq!(record["uploaded"], true, "{record}");
    }
    // The signature's summary is the checklist and parts the server holds.
    let view: schemas::view::JobView = serde_json::from_value(seen.clone()).unwrap();
    assert_eq!(view.signoff_matches(), Some(true), "{seen}");
    assert_eq!(view.signoff.as_ref().unwrap().signer_name, "Dana Customer");
    let (status, _) = api_blocking(
        "GET",
        &format!(
            "{}/api/v1/photos/{}",
            server.url,
            photos[0]["id"].as_str().unwrap()
        ),
        Some(&dana),
        None,
    );
    assert_eq!(status, 200);
    drop(shell);
}

#[test]
fn the_local_api_refuses_clearly_and_an_unassigned_job_leaves_after_its_edits() {
    let (server, _server_dir, dana) = server_with_team();
    let job = create_job(&server.url, &dana, "Boiler service", "hvac_maintenance");
    let device = tempfile::tempdir().unwrap();
    let shell = Shell::start(device.path());

    // Not signed in yet: said, and sign-in input is checked before any network.
    let s = shell.state();
    assert_eq!(
        (s["signed_in"].clone(), s["online"].clone()),
        (json!(false), json!(false))
    );
    let (status, body) = shell.api(
        "POST",
        "/api/login",
        Some(json!({"server": "ftp://x", "user": "ana", "password": "p"})),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = shell.api(
        "POST",
        "/api/login",
        Some(json!({"server": "http://127.0.0.1:9", "user": "ana", "password": "p"})),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("offline")),
        "{body}"
    );
    sign_in(&shell, &server.url);

    // A second shell on the same data dir is refused, naming the first.
    let second = Command::new(workspace_bin("mobile-shell"))
        .arg("--data-dir")
        .arg(device.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("another `mobile-shell serve` is already running")
            && said.contains(&shell.child.id().to_string()),
        "{said}"
    );

    let start = Instant::now();
    while shell.api("GET", &format!("/api/jobs/{job}"), None).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the job never arrived"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let at = |p: &str| format!("/api/jobs/{job}{p}");
    let code = |(status, body): (u16, Value)| {
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_string(),
            body,
        )
    };

    // Refusals, each with a code and a sentence, and nothing changed.
    let (s, c, b) = code(shell.api("GET", "/api/jobs/not-a-job", None));
    assert_eq!((s, c.as_str()), (404, "not-found"), "{b}");
    let (s, c, b) = code(shell.api("POST", &at("/status"), Some(json!({"status": "completed"}))));
    assert_eq!((s, c.as_str()), (409, "invalid-transition"), "{b}");
    let (s, c, b) = code(shell.api("POST", &at("/status"), Some(json!({"status": "flying"}))));
    assert_eq!((s, c.as_str()), (400, "invalid-value"), "{b}");
    let (s, c, b) = code(shell.api(
        "PUT",
        &at("/checklist/refrigerant_pressure"),
        Some(json!({"value": "900"})),
    ));
    assert_eq!((s, c.as_str()), (400, "invalid-value"), "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("600"),
        "{b}"
    );
    let (s, c, b) = code(shell.api(
        "PUT",
        &at("/checklist/nope"),
        Some(json!({"value": "pass"})),
    ));
    assert_eq!((s, c.as_str()), (400, "invalid-value"), "{b}");
    let (s, c, b) = code(shell.api(
        "POST",
        &at("/parts"),
        Some(json!({"sku": "IGN-100", "qty": -1})),
    ));
    assert_eq!((s, c.as_str()), (400, "invalid-value"), "{b}");
    let (s, c, b) = code(shell.api("POST", &at("/parts"), Some(json!({"sku": 5}))));
    assert_eq!((s, c.as_str()), (400, "bad-request"), "{b}");
    let (s, c, b) = code(shell.api("GET", "/api/nothing-here", None));
    assert_eq!((s, c.as_str()), (404, "not-found"), "{b}");
    // Not an image: refused, and no photo joins the job.
    let not_image = fieldsync_e2e::http_json(
        "POST",
        &format!("{}{}", shell.url, at("/photos?item=nameplate_photo")),
        None,
        &[],
        Some(json!({"this is": "not a picture"})),
    );
    assert_eq!(
        (not_image.0, not_image.2["error"]["code"].as_str()),
        (400, Some("not-an-image")),
        "{:?}",
        not_image.2
    );
    // Signing with required items missing lists exactly those.
    shell.api(
        "POST",
        &at("/status"),
        Some(json!({"status": "in_progress"})),
    );
    let (_, summary) = shell.api("GET", &at("/summary"), None);
    let missing: Vec<&str> = summary["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        [
            "Power isolated and locked out",
            "Air filter replaced",
            "Condenser coil condition",
            "Suction line pressure",
            "Photo of the unit's nameplate"
        ]
    );
    let png = base64_png();
    let (s, c, b) = code(shell.api(
        "POST",
        &at("/signoff"),
        Some(json!({"name": "Dana", "signature_png": png})),
    ));
    assert_eq!((s, c.as_str()), (409, "checklist-incomplete"), "{b}");
    assert_eq!(b["error"]["missing"], summary["missing"]);
    let (s, c, b) = code(shell.api(
        "POST",
        &at("/signoff"),
        Some(json!({"name": "Dana", "signature_png": "%%%"})),
    ));
    assert_eq!((s, c.as_str()), (400, "invalid-value"), "{b}");
    let (_, view) = shell.api("GET", &at(""), None);
    assert!(
        view["parts"].as_array().unwrap().is_empty()
            && view["photos"].as_array().unwrap().is_empty(),
        "{view}"
    );
    assert!(view["signoff"].is_null());

    // An edit, then the dispatcher takes the job away: it leaves the device only once the edit
    // is on the server, and the technician is told.
    shell.api(
        "PUT",
        &at("/notes"),
        Some(json!({"notes": "gas valve sticks; ordered a new one"})),
    );
    let (s, _) = api_blocking(
        "POST",
        &format!("{}/api/v1/jobs/{job}/unassign", server.url),
        Some(&dana),
        Some(json!({"user": "ana"})),
    );
    assert!(s < 300, "unassign: {s}");
    let told = shell.wait_state("told of the unassigned job", Duration::from_secs(30), |s| {
        s["notices"].as_array().is_some_and(|n| !n.is_empty())
    });
    let notice = &told["notices"][0];
    assert!(
        notice["text"].as_str().unwrap().contains("Boiler service"),
        "{notice}"
    );
    assert_eq!(
        shell.api("GET", &at(""), None).0,
        404,
        "the job left the device"
    );
    let (_, seen) = api_blocking(
        "GET",
        &format!("{}/api/v1/jobs/{job}", server.url),
        Some(&dana),
        None,
    );
    assert_eq!(
        seen["notes"], "gas valve sticks; ordered a new one",
        "{seen}"
    );
    let (s, _) = shell.api(
        "POST",
        &format!("/api/notices/{}/dismiss", notice["id"]),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(shell.state()["notices"], json!([]));
    let (s, _) = shell.api("POST", "/api/notices/999999/dismiss", None);
    assert_eq!(s, 404);
}

/// A small PNG, base64, as the page's canvas would send it.
fn base64_png() -> String {
    use base64::Engine;
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(60, 20, |x, y| {
        image::Rgb(if (x + y) % 7 == 0 {
            [0, 0, 0]
        } else {
            [255; 3]
        })
    })
    .write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    let _ = std::io::stdout().flush();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
