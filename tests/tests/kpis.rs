//! `GET /api/v1/kpis` on both stores: jobs made by the dispatcher and worked on technicians'
//! devices (with a clock the test sets, so every figure is known exactly), projected into the
//! relational rows, then each KPI checked; the refusals (400 naming the parameter, 403 for a
//! technician), and another org seeing none of it.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use client_core::{Options, Replica};
use fieldsync_e2e::ApiClient as Client;
use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer};
use schemas::JobStatus;
use schemas::parts::NewPartLine;
use serde_json::{Value, json};
use sync_server::store::User;
use uuid::Uuid;

type Clock = Arc<Mutex<DateTime<Utc>>>;

/// A technician's device whose replica reads its time from `clock`.
async fn device(server: &TestServer, user: &User, clock: &Clock) -> Device {
    let mut d = Device::new(server.store(), user).await;
    let c = clock.clone();
    d.replica = Replica::open_with(
        d.dir.path(),
        Options {
            clock: Some(Arc::new(move || *c.lock().unwrap())),
            ..Default::default()
        },
    )
    .unwrap();
    d.replica.set_user(&user.name).unwrap();
    d.settle(server).await;
    d
}

/// Fill the general checklist's required items and add `parts` (SKU, qty) at `at`.
fn work(d: &mut Device, clock: &Clock, job: Uuid, at: DateTime<Utc>, parts: &[(&str, f64)]) {
    *clock.lock().unwrap() = at;
    d.replica
        .set_check_str(job, "arrived_on_site", "pass")
        .unwrap();
    d.replica
        .set_check_str(job, "work_performed", "replaced the belt")
        .unwrap();
    for (sku, qty) in parts {
        d.replica
            .add_part(
                job,
                NewPartLine {
                    sku: (*sku).into(),
                    description: format!("{sku} part"),
                    qty: *qty,
                    unit: Some("ea".into()),
                    source: None,
                },
            )
            .unwrap();
    }
}

/// Move `job` through `steps` of (time, status).
fn statuses(d: &mut Device, clock: &Clock, job: Uuid, steps: &[(DateTime<Utc>, JobStatus)]) {
    for (at, to) in steps {
        *clock.lock().unwrap() = *at;
        d.replica.set_status(job, *to).unwrap();
    }
}

async fn kpis(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "bob"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let (ana, bob) = (&team.techs[0], &team.techs[1]);
    let d = Client::new(&server, &team.dispatcher).await;
    let stranger = Client::new(&server, &other.dispatcher).await;
    let tech = Client::new(&server, ana).await;

    for (sku, cost) in [("BELT-A42", 150), ("MOTOR-7", 600)] {
        let (s, e) = d
            .call(
                "POST",
                "/api/v1/catalog",
                Some(json!({"sku": sku, "name": sku, "unit_price_cents": 2 * cost, "unit_cost_cents": cost})),
            )
            .await;
        assert_eq!(s, 200, "{e}");
    }

    // Two days a few days back, and a clock the devices read.
    let day0 = Utc::now().date_naive() - Duration::days(3);
    let day1 = day0.succ_opt().unwrap();
    let h = |day: NaiveDate, hour: i64| {
        day.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::hours(hour)
    };
    let clock: Clock = Arc::new(Mutex::new(h(day0, 8)));

    let j1 = team
        .job(&server, "Fixed first time", "general", &[ana])
        .await;
    let j2 = team
        .job(&server, "Waited for a part", "general", &[ana])
        .await;
    let j3 = team.job(&server, "Needs a return", "general", &[bob]).await;
    let open = team.job(&server, "Still open", "general", &[ana]).await;
    let mut da = device(&server, ana, &clock).await;
    let mut db = device(&server, bob, &clock).await;

    // j1 (ana, day 0): 2 h, 2 × 150 of parts, fixed first time.
    work(&mut da, &clock, j1, h(day0, 9), &[("BELT-A42", 2.0)]);
    statuses(
        &mut da,
        &clock,
        j1,
        &[
            (h(day0, 9), JobStatus::InProgress),
            (h(day0, 11), JobStatus::Completed),
        ],
    );
    // j2 (ana, day 1): on hold for an hour, 4 h from the first start, 1 × 600 of parts.
    work(&mut da, &clock, j2, h(day1, 12), &[("MOTOR-7", 1.0)]);
    statuses(
        &mut da,
        &clock,
        j2,
        &[
            (h(day1, 12), JobStatus::InProgress),
            (h(day1, 13), JobStatus::OnHold),
            (h(day1, 14), JobStatus::InProgress),
            (h(day1, 16), JobStatus::Completed),
        ],
    );
    // Started, never completed: counts nowhere.
    statuses(
        &mut da,
        &clock,
        open,
        &[(h(day1, 17), JobStatus::InProgress)],
    );
    // j3 (bob, day 1): 3 h, no parts, and a follow-up job.
    work(&mut db, &clock, j3, h(day1, 8), &[]);
    statuses(
        &mut db,
        &clock,
        j3,
        &[
            (h(day1, 8), JobStatus::InProgress),
            (h(day1, 11), JobStatus::Completed),
        ],
    );
    *clock.lock().unwrap() = h(day1, 12);
    db.replica
        .create_follow_up(j3, "Return visit", None)
        .unwrap();
    da.settle(&server).await;
    db.settle(&server).await;
    fieldsync_e2e::projection_caught_up(server.store()).await;

    let k = read_kpis(&d, day0, day1).await;
    assert_eq!(k["from"], day0.to_string(), "{k}");
    assert_eq!(k["to"], day1.to_string(), "{k}");
    assert_eq!(k["jobs_completed"], 3, "{k}");
    assert_eq!(k["first_time_fix_rate"], 1.0 / 3.0, "{k}");
    assert_eq!(k["mean_time_to_complete_hours"], 3.0, "{k}");
    assert_eq!(k["sla_compliance"], Value::Null, "{k}");
    assert_eq!(k["sla_note"], "no SLA policies", "{k}");
    assert_eq!(k["parts_cost_per_job_cents"], 300, "{k}");
    assert_eq!(
        k["jobs_per_technician_per_day"],
        json!([
            {"technician": ana.name, "days_worked": 2, "jobs": 2, "per_day": 1.0},
            {"technician": bob.name, "days_worked": 1, "jobs": 1, "per_day": 1.0},
        ]),
        "{k}"
    );

    // Day 1 alone: j2 and j3.
    let k = read_kpis(&d, day1, day1).await;
    assert_eq!(k["jobs_completed"], 2, "{k}");
    assert_eq!(k["first_time_fix_rate"], 0.0, "{k}");
    assert_eq!(k["mean_time_to_complete_hours"], 3.5, "{k}");
    assert_eq!(k["parts_cost_per_job_cents"], 300, "{k}");
    assert_eq!(
        k["jobs_per_technician_per_day"],
        json!([
            {"technician": ana.name, "days_worked": 1, "jobs": 1, "per_day": 1.0},
            {"technician": bob.name, "days_worked": 1, "jobs": 1, "per_day": 1.0},
        ]),
        "{k}"
    );

    // Nothing completed: nulls, not zeros.
    let before = day0 - Duration::days(30);
    let k = read_kpis(&d, before, before).await;
    assert_eq!(k["jobs_completed"], 0, "{k}");
    for field in [
        "first_time_fix_rate",
        "mean_time_to_complete_hours",
        "parts_cost_per_job_cents",
    ] {
        assert_eq!(k[field], Value::Null, "{field}: {k}");
    }
    assert_eq!(k["jobs_per_technician_per_day"], json!([]), "{k}");

    // Another org sees none of it.
    let k = read_kpis(&stranger, day0, day1).await;
    assert_eq!(k["jobs_completed"], 0, "{k}");
    assert_eq!(k["jobs_per_technician_per_day"], json!([]), "{k}");
    assert_eq!(k["parts_cost_per_job_cents"], Value::Null, "{k}");

    // Refusals.
    for (query, field) in [
        ("to=2026-01-31", "from"),
        ("from=2026-1-x&to=2026-01-31", "from"),
        ("from=2026-01-01", "to"),
        ("from=2026-01-01&to=2026-02-30", "to"),
        ("from=2026-02-01&to=2026-01-31", "to"),
        ("from=2024-01-01&to=2025-06-30", "to"),
        ("from=2026-01-01&to=2026-01-31&tech=ana", "tech"),
    ] {
        let (s, e) = d.call("GET", &format!("/api/v1/kpis?{query}"), None).await;
        assert_eq!(s, 400, "{query}: {e}");
        assert!(
            e["message"].as_str().unwrap().starts_with(field),
            "{query}: {e}"
        );
    }
    let (s, e) = tech
        .call("GET", "/api/v1/kpis?from=2026-01-01&to=2026-01-31", None)
        .await;
    assert_eq!(s, 403, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_on_sqlite() {
    kpis(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_on_postgres() {
    kpis(Backend::Postgres).await;
}

/// The KPIs `client` reads for `from..=to`, which must be answered.
async fn read_kpis(client: &Client, from: NaiveDate, to: NaiveDate) -> Value {
    let (s, k) = client
        .call("GET", &format!("/api/v1/kpis?from={from}&to={to}"), None)
        .await;
    assert_eq!(s, 200, "{k}");
    k
}
