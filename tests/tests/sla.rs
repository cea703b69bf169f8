//! SLA timers end to end, on both stores: policies over HTTP (every refusal a 4xx naming the
//! field, technicians refused, a second POST for the same job type and priority replacing the
//! first, other orgs out of reach); the watcher recording each breach and approaching one once
//! and sending it to a webhook (a tiny HTTP server in the test, which fails its first answers so
//! the sender retries); acknowledging stopping the acknowledge clock; a job on hold pausing the
//! resolve clock; the flag in `GET /api/v1/jobs/{id}` and `/api/v1/sla/jobs`; `/metrics`; the
//! KPIs' SLA compliance. On Postgres, two real server processes watching one database, one of
//! them killed with SIGKILL and restarted, record and deliver each event once.
//!
//! Policies are given in seconds here (`acknowledge_within_seconds`), which the API accepts
//! beside minutes, so a breach takes a second or two and not five minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fieldsync_e2e::ApiClient as Client;
use fieldsync_e2e::{Backend, ServerHome, Team, TestServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// A webhook receiver on loopback: it records every body it is sent, and answers the first
/// `fail_first` requests with 500, the rest with 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    /// `(body, answered 200)`, in arrival order.
    got: Arc<Mutex<Vec<(Value, bool)>>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hooks/sla?token=t0p",
            listener.local_addr().unwrap()
        );
        let got: Arc<Mutex<Vec<(Value, bool)>>> = Arc::default();
        let seen = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut sock).await else {
                        return;
                    };
                    let ok = {
                        let mut seen = seen.lock().unwrap();
                        let ok = seen.len() >= fail_first;
                        seen.push((body, ok));
                        ok
                    };
                    let status = if ok {
                        "200 OK"
                    } else {
                        "500 Internal Server Error"
                    };
                    let _ = sock
                        .write_all(
                            format!(
                                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        )
                        .await;
                });
            }
        });
        Receiver { url, got }
    }

    /// The bodies answered 200.
    fn delivered(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(b, _)| b.clone())
            .collect()
    }

    fn attempts(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

/// One HTTP/1.1 request's JSON body (the sender POSTs with a content length).
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    assert!(head.starts_with("post /hooks/sla?token=t0p "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())?;
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    serde_json::from_slice(&buf[head_end..head_end + len]).ok()
}

async fn metrics(url: &str) -> String {
    let url = format!("{url}/metrics");
    tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap()
}

/// The value of a metric line that starts with `name` (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Poll (at most `secs`) until `done` holds of `f()`'s value.
async fn wait_until<T, F, Fut>(secs: u64, what: &str, mut f: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = f().await;
        if done(&v) {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}: {v:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn new_job(d: &Client, title: &str, priority: &str) -> String {
    let v = d
        .ok(
            "POST",
            "/api/v1/jobs",
            json!({"title": title, "template": "general", "priority": priority}),
            201,
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

async fn set_status(d: &Client, job: &str, status: &str) {
    d.ok(
        "PATCH",
        &format!("/api/v1/jobs/{job}"),
        json!({"status": status}),
        200,
    )
    .await;
}

/// The job's SLA as `GET /api/v1/jobs/{id}` shows it.
async fn job_sla(d: &Client, job: &str) -> Value {
    let (s, v) = d.call("GET", &format!("/api/v1/jobs/{job}"), None).await;
    assert_eq!(s, 200, "{v}");
    v["sla"].clone()
}

fn has_event(sla: &Value, kind: &str, level: &str) -> bool {
    sla["events"]
        .as_array()
        .is_some_and(|es| es.iter().any(|e| e["kind"] == kind && e["level"] == level))
}

async fn policies_and_clocks(backend: Backend) {
    let hook = Receiver::start(2).await;
    let mut home = ServerHome::new(backend).await;
    home.config.sla_interval = Duration::from_millis(50);
    home.config.sla_retry_base = Duration::from_millis(50);
    home.config.sla_retry_max = Duration::from_millis(200);
    home.config.sla_webhook_url = Some(sync_server::config::WebhookUrl::parse(&hook.url).unwrap());
    home.config.projection_interval = Duration::from_millis(50);
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let d = Client::new(&server, &team.dispatcher).await;
    let stranger = Client::new(&server, &other.dispatcher).await;
    let tech = Client::new(&server, &team.techs[0]).await;

    // Refusals name the field.
    let good = json!({"job_type": "*", "priority": "*", "acknowledge_within_seconds": 2,
                      "resolve_within_seconds": 5});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    for (body, code, field) in [
        (with("priority", json!("asap")), 400, "priority"),
        (with("job_type", json!("")), 400, "job_type"),
        (with("job_type", json!("no_such_template")), 400, "job_type"),
        (
            without("acknowledge_within_seconds"),
            400,
            "acknowledge_within_minutes",
        ),
        (
            with("resolve_within_minutes", json!(3)),
            400,
            "resolve_within_minutes",
        ),
        (
            with("acknowledge_within_seconds", json!(0)),
            400,
            "acknowledge_within_seconds",
        ),
        (
            with(
                "business_hours",
                json!({"time_zone": "Mars/Olympus", "hours": [
                    {"day": "monday", "open": "08:00", "close": "18:00"}]}),
            ),
            400,
            "business_hours.time_zone",
        ),
        (
            with(
                "business_hours",
                json!({"time_zone": "Europe/London", "hours": [
                    {"day": "monday", "open": "18:00", "close": "08:00"}]}),
            ),
            400,
            "business_hours.hours[0].close",
        ),
        (
            with(
                "business_hours",
                json!({"time_zone": "Europe/London", "hours": []}),
            ),
            400,
            "business_hours.hours",
        ),
        (with("colour", json!("red")), 422, "colour"),
    ] {
        let (s, e) = d
            .call("POST", "/api/v1/sla/policies", Some(body.clone()))
            .await;
        assert_eq!(s, code, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
    let (s, e) = tech
        .call("POST", "/api/v1/sla/policies", Some(good.clone()))
        .await;
    assert_eq!(s, 403, "{e}");
    let (s, e) = tech.call("GET", "/api/v1/sla/policies", None).await;
    assert_eq!(s, 403, "{e}");

    // A business-hours policy for urgent HVAC work, then the catch-all one, set twice: the
    // second replaces the first (same id, new limits).
    let hvac = d
        .ok(
            "POST",
            "/api/v1/sla/policies",
            json!({"job_type": "hvac_maintenance", "priority": "urgent",
                   "acknowledge_within_minutes": 30, "resolve_within_minutes": 240,
                   "business_hours": {"time_zone": "Europe/London", "hours": [
                       {"day": "monday", "open": "08:00", "close": "18:00"},
                       {"day": "tuesday", "open": "08:00", "close": "18:00"}]}}),
            201,
        )
        .await;
    assert_eq!(hvac["acknowledge_within_seconds"], 1800);
    assert_eq!(hvac["business_hours"]["time_zone"], "Europe/London");
    let first = d
        .ok(
            "POST",
            "/api/v1/sla/policies",
            with("resolve_within_seconds", json!(60)),
            201,
        )
        .await;
    let policy = d
        .ok("POST", "/api/v1/sla/policies", good.clone(), 200)
        .await;
    assert_eq!(policy["id"], first["id"]);
    assert_eq!(policy["resolve_within_seconds"], 5);
    assert_eq!(policy["business_hours"], Value::Null);
    let (s, list) = d.call("GET", "/api/v1/sla/policies", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 2), "{list}");
    let (s, list) = stranger.call("GET", "/api/v1/sla/policies", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 0), "{list}");

    // Three jobs: A nobody acknowledges; B acknowledged at once (en route); C started at once
    // and put on hold.
    let a = new_job(&d, "Leak in room 12", "high").await;
    let b = new_job(&d, "No hot water", "medium").await;
    let c = new_job(&d, "Broken window", "low").await;
    set_status(&d, &b, "en_route").await;
    set_status(&d, &c, "in_progress").await;
    set_status(&d, &c, "on_hold").await;

    // A's acknowledge clock runs out after 2 s: flagged in the job, recorded once.
    let sla_a = wait_until(
        15,
        "A's acknowledge breach",
        || job_sla(&d, &a),
        |s| has_event(s, "acknowledge", "breached"),
    )
    .await;
    assert_eq!(sla_a["breached"], true, "{sla_a}");
    assert_eq!(sla_a["acknowledge"]["state"], "breached", "{sla_a}");
    assert_eq!(sla_a["policy_id"], policy["id"]);
    // B was acknowledged within it.
    let sla_b = job_sla(&d, &b).await;
    assert_eq!(sla_b["acknowledge"]["state"], "met", "{sla_b}");
    assert!(sla_b["acknowledge"]["stopped_at"].is_string(), "{sla_b}");

    // The resolve clocks run out after 5 s, but not C's: it is on hold.
    wait_until(
        20,
        "A's and B's resolve breaches",
        || async { (job_sla(&d, &a).await, job_sla(&d, &b).await) },
        |(a, b)| has_event(a, "resolve", "breached") && has_event(b, "resolve", "breached"),
    )
    .await;
    let sla_c = job_sla(&d, &c).await;
    assert_eq!(sla_c["resolve"]["paused"], true, "{sla_c}");
    assert_eq!(sla_c["resolve"]["deadline"], Value::Null, "{sla_c}");
    assert_ne!(sla_c["resolve"]["state"], "breached", "{sla_c}");
    assert!(
        sla_c["resolve"]["elapsed_seconds"].as_i64().unwrap() < 2,
        "{sla_c}"
    );
    assert!(!has_event(&sla_c, "resolve", "breached"), "{sla_c}");
    assert_eq!(sla_c["acknowledge"]["state"], "met", "{sla_c}");

    // The board's list: the breached jobs first, C last; the breached filter leaves C out.
    let (s, list) = d.call("GET", "/api/v1/sla/jobs", None).await;
    assert_eq!(s, 200, "{list}");
    let order: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(order.len(), 3, "{list}");
    assert_eq!(order[2], c, "{list}");
    let (s, list) = d.call("GET", "/api/v1/sla/jobs?breached=true", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 2), "{list}");
    let (s, e) = d.call("GET", "/api/v1/sla/jobs?breached=maybe", None).await;
    assert_eq!(s, 400, "{e}");
    let (s, list) = stranger.call("GET", "/api/v1/sla/jobs", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 0), "{list}");
    let (s, e) = stranger
        .call("GET", &format!("/api/v1/sla/jobs/{a}"), None)
        .await;
    assert_eq!(s, 404, "{e}");

    // The webhook: every recorded event delivered exactly once, after the first two attempts
    // failed and were retried; A's acknowledge breach with what it is about.
    let events: usize = {
        let mut n = 0;
        for j in [&a, &b, &c] {
            n += job_sla(&d, j).await["events"].as_array().unwrap().len();
        }
        n
    };
    let delivered = wait_until(
        15,
        "every event delivered",
        || async { hook.delivered() },
        |got| got.len() >= events,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered_now = hook.delivered();
    assert_eq!(delivered_now.len(), delivered.len(), "nothing sent twice");
    let mut ids: Vec<&str> = delivered_now
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), delivered_now.len(), "{delivered_now:?}");
    assert_eq!(ids.len(), events);
    assert!(hook.attempts() >= events + 2);
    let ack_a = delivered_now
        .iter()
        .find(|b| {
            b["job_id"] == a.as_str() && b["kind"] == "acknowledge" && b["level"] == "breached"
        })
        .expect("A's acknowledge breach was sent");
    assert_eq!(ack_a["event"], "sla.breached");
    assert_eq!(ack_a["title"], "Leak in room 12");
    assert_eq!(ack_a["org_id"], team.org.id.to_string());
    assert!(
        ack_a["number"].as_str().unwrap().starts_with("WO-"),
        "{ack_a}"
    );
    assert!(ack_a["deadline"].is_string(), "{ack_a}");
    assert!(
        !delivered_now
            .iter()
            .any(|e| e["job_id"] == b.as_str() && e["kind"] == "acknowledge"),
        "B was acknowledged in time"
    );
    let sla_a = job_sla(&d, &a).await;
    assert!(
        sla_a["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["delivered_at"].is_string()),
        "{sla_a}"
    );

    // /metrics counts each breach once.
    let m = metrics(&server.url).await;
    assert_eq!(
        metric(&m, "fieldsync_sla_breaches_total{kind=\"acknowledge\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "fieldsync_sla_breaches_total{kind=\"resolve\"}"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "fieldsync_sla_webhook_failures_total"),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "fieldsync_sla_webhook_deliveries_total"),
        events as f64,
        "{m}"
    );

    // KPIs: C resolved in time (its hold did not count), B late: compliance one half.
    set_status(&d, &c, "in_progress").await;
    set_status(&d, &c, "completed").await;
    set_status(&d, &b, "in_progress").await;
    set_status(&d, &b, "completed").await;
    let today = chrono::Utc::now().date_naive();
    let k = wait_until(
        10,
        "the KPIs of two completed jobs",
        || async {
            d.call(
                "GET",
                &format!("/api/v1/kpis?from={today}&to={today}"),
                None,
            )
            .await
        },
        |(_, k)| k["jobs_completed"] == 2,
    )
    .await
    .1;
    assert_eq!(k["sla_compliance"], 0.5, "{k}");
    assert!(k["sla_note"].as_str().unwrap().contains("1 of 2"), "{k}");
    let (_, k) = stranger
        .call(
            "GET",
            &format!("/api/v1/kpis?from={today}&to={today}"),
            None,
        )
        .await;
    assert_eq!(k["sla_compliance"], Value::Null, "{k}");
    assert_eq!(k["sla_note"], "no SLA policies", "{k}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_clocks_sqlite() {
    policies_and_clocks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_clocks_postgres() {
    policies_and_clocks(Backend::Postgres).await;
}

/// Two real server processes on one Postgres database, both watching every 20 ms, one killed
/// with SIGKILL mid-way and started again: each (job, kind, level) is recorded once, counted
/// once across the nodes' `/metrics`, and every event reaches the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_and_a_restart_record_each_breach_once() {
    use fieldsync_test_support::ServerProcess;
    use sync_server::config::Database;

    let hook = Receiver::start(0).await;
    let home = ServerHome::new(Backend::Postgres).await;
    let Database::Postgres(url) = home.config.database.clone() else {
        unreachable!()
    };
    let data_dir = home.config.data_dir.to_str().unwrap().to_string();
    let store = sync_server::open_store(&home.config).await.unwrap();
    let team = Team::create(&*store, &["ana"]).await;
    let token = fieldsync_e2e::access_token(&*store, &team.dispatcher, None).await;
    let spawn = |projection: &str| {
        ServerProcess::spawn(&[
            ("FIELDSYNC_DATA_DIR", data_dir.as_str()),
            ("DATABASE_URL", url.as_str()),
            ("FIELDSYNC_PG_POOL_SIZE", "4"),
            ("FIELDSYNC_SLA_INTERVAL_MS", "20"),
            ("FIELDSYNC_SLA_RETRY_MS", "50"),
            ("FIELDSYNC_SLA_WEBHOOK_URL", hook.url.as_str()),
            ("FIELDSYNC_PROJECTION", projection),
        ])
    };
    let mut one = spawn("true");
    let two = spawn("true");
    let d = Client {
        url: one.url.clone(),
        token: token.clone(),
    };
    d.ok(
        "POST",
        "/api/v1/sla/policies",
        json!({"job_type": "*", "priority": "*", "acknowledge_within_seconds": 1,
               "resolve_within_seconds": 2}),
        201,
    )
    .await;
    let mut jobs = Vec::new();
    for i in 0..6 {
        jobs.push(new_job(&d, &format!("Job {i}"), "high").await);
    }
    // Kill node one while the clocks run out, and start it again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    one.kill_dash_nine();
    let one = spawn("true");
    let d = Client {
        url: two.url.clone(),
        token,
    };
    // Every job: acknowledge and resolve breached (approaching ones only when a run saw them
    // before the breach).
    wait_until(
        30,
        "every breach recorded and delivered",
        || async {
            let mut done = 0;
            for j in &jobs {
                let s = job_sla(&d, j).await;
                let evs = s["events"].as_array().cloned().unwrap_or_default();
                if has_event(&s, "acknowledge", "breached")
                    && has_event(&s, "resolve", "breached")
                    && evs.iter().all(|e| e["delivered_at"].is_string())
                {
                    done += 1;
                }
            }
            done
        },
        |done| *done == jobs.len(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT job_id, kind, level FROM sla_events WHERE org_id = $1")
            .bind(team.org.id)
            .fetch_all(&mut db)
            .await
            .unwrap();
    let breaches = rows.iter().filter(|r| r.2 == "breached").count();
    assert_eq!(breaches, 2 * jobs.len(), "{rows:?}");
    // Each recorded event reached the webhook; a repeat is only possible for an event whose
    // node was killed between the receiver's answer and the row's update (delivery is at least
    // once; the body's id is the same), so at most one here.
    let delivered = hook.delivered();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for b in &delivered {
        *by_id
            .entry(b["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(by_id.len(), rows.len(), "{by_id:?}");
    let repeats: usize = by_id.values().map(|n| n - 1).sum();
    assert!(repeats <= 1, "{by_id:?}");
    // The nodes' metrics: the live nodes' counts plus what the killed one counted before it
    // died add up to each breach once; the live ones never count more than there are.
    let counted: f64 = [metrics(&one.url).await, metrics(&two.url).await]
        .iter()
        .map(|m| {
            metric(m, "fieldsync_sla_breaches_total{kind=\"acknowledge\"}")
                + metric(m, "fieldsync_sla_breaches_total{kind=\"resolve\"}")
        })
        .sum();
    assert!(counted <= breaches as f64, "{counted} > {breaches}");
    drop(one);
    drop(two);
}
