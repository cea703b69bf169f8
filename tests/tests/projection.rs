//! The relational projection, end to end on both stores: technicians work offline on shared
//! jobs (parts from their vans and the warehouse, quantities changed and lines removed on two
//! devices at once, checklist answers, statuses) and reconnect in a seeded random order while
//! the server is crashed now and then, sometimes with the projection switched off so changes
//! reach the log and not the rows. Afterwards:
//! - the rows agree with the documents, and stock on hand is exactly what was received minus
//!   what the final parts lines take (a line moves stock once, whatever happened);
//! - rebuilding every row from the log alone gives the same rows;
//! - projecting every document again changes nothing;
//! - `GET /api/v1/jobs`, `/technicians` and `/stock` answer from those rows.

use std::collections::BTreeMap;
use std::time::Duration;

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token, api};
use rand::{Rng, SeedableRng};
use schemas::JobStatus;
use schemas::parts::NewPartLine;
use sync_server::store::Store;
use sync_server::store::records::{CatalogItem, StockLocation};
use uuid::Uuid;

const SKUS: [&str; 3] = ["FILTER-20X25", "BELT-A42", "CAP-35-5UF"];
const RECEIVED: f64 = 100.0;

/// The stock locations of a team: a warehouse `WH1` and a van per technician, each holding
/// `RECEIVED` of every SKU, and the SKUs in the catalog with prices.
async fn stock_up(store: &dyn Store, team: &Team) -> BTreeMap<String, Uuid> {
    let records = store.records();
    let org = team.org.id;
    let mut locations = BTreeMap::new();
    let mut add = |code: String, kind: &str, tech: Option<Uuid>| {
        let l = StockLocation {
            id: Uuid::now_v7(),
            org_id: org,
            code: code.clone(),
            name: format!("{code} stock"),
            kind: kind.into(),
            technician_id: tech,
        };
        locations.insert(code, l.id);
        l
    };
    let mut all = vec![add("WH1".into(), "warehouse", None)];
    for t in &team.techs {
        all.push(add(format!("VAN-{}", t.name), "van", Some(t.id)));
    }
    for l in &all {
        records.create_location(l).await.unwrap();
        for sku in SKUS {
            records
                .receive_stock(org, l.id, sku, RECEIVED, chrono::Utc::now())
                .await
                .unwrap();
        }
    }
    for (i, sku) in SKUS.iter().enumerate() {
        records
            .put_catalog_item(&CatalogItem {
                id: Uuid::now_v7(),
                org_id: org,
                sku: (*sku).into(),
                name: format!("Part {sku}"),
                unit: Some("ea".into()),
                unit_price_cents: 1_000 * (i as i64 + 1),
                unit_cost_cents: 400 * (i as i64 + 1),
            })
            .await
            .unwrap();
    }
    locations
}

/// One offline action of a technician on one of `jobs`, picked by `rng`.
fn act(rng: &mut impl Rng, d: &mut Device, jobs: &[Uuid]) {
    let job = jobs[rng.random_range(0..jobs.len())];
    let lines: Vec<String> = d
        .replica
        .job(job)
        .unwrap()
        .parts
        .into_iter()
        .map(|l| l.id)
        .collect();
    match rng.random_range(0..10) {
        0..=3 => {
            let source = rng.random_bool(0.3).then(|| "WH1".to_string());
            d.replica
                .add_part(
                    job,
                    NewPartLine {
                        sku: SKUS[rng.random_range(0..SKUS.len())].into(),
                        description: "used on the job".into(),
                        qty: rng.random_range(1..=8) as f64 / 2.0,
                        unit: Some("ea".into()),
                        source,
                    },
                )
                .unwrap();
        }
        4..=5 if !lines.is_empty() => {
            let line = &lines[rng.random_range(0..lines.len())];
            d.replica
                .set_part_qty(job, line, rng.random_range(0..=6) as f64)
                .unwrap();
        }
        6 if !lines.is_empty() => {
            let line = &lines[rng.random_range(0..lines.len())];
            d.replica.remove_part(job, line).unwrap();
        }
        7 => {
            let v = ["pass", "fail"][rng.random_range(0..2)];
            d.replica.set_check_str(job, "arrived_on_site", v).unwrap();
        }
        8 => {
            let text = format!("step {}", rng.random_range(0..1000));
            d.replica
                .set_check_str(job, "work_performed", &text)
                .unwrap();
        }
        _ => {
            // Not every status follows from every other: a refused move is simply not made.
            let to = [JobStatus::EnRoute, JobStatus::InProgress, JobStatus::OnHold]
                [rng.random_range(0..3)];
            let _ = d.replica.set_status(job, to);
        }
    }
}

/// On-hand per (location, SKU) that the final documents imply: received, minus every line's
/// quantity at the location it takes from (its `source`, else its author's van).
async fn expected_stock(
    store: &dyn Store,
    jobs: &[Uuid],
    locations: &BTreeMap<String, Uuid>,
) -> BTreeMap<(Uuid, String), f64> {
    let mut want = BTreeMap::new();
    for id in locations.values() {
        for sku in SKUS {
            want.insert((*id, sku.to_string()), RECEIVED);
        }
    }
    for job in jobs {
        for meta in store.job_documents(*job).await.unwrap() {
            if meta.kind != "parts" {
                continue;
            }
            let stored = store.load(meta.id).await.unwrap();
            let doc =
                schemas::read_json(&sync_server::sync::docs::build_doc(meta.id, &stored).unwrap());
            for line in doc["lines"].as_object().unwrap().values() {
                let code = match line["source"].as_str() {
                    Some(code) => code.to_string(),
                    None => format!("VAN-{}", line["by"].as_str().unwrap()),
                };
                let at = (locations[&code], line["sku"].as_str().unwrap().to_string());
                *want.get_mut(&at).unwrap() -= line["qty"].as_f64().unwrap();
            }
        }
    }
    want
}

/// Stock on hand as the rows hold it, per (location, SKU).
async fn stock_rows(store: &dyn Store, org: Uuid) -> BTreeMap<(Uuid, String), f64> {
    store
        .records()
        .stock(org, None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| ((s.location_id, s.sku), s.on_hand))
        .collect()
}

fn assert_stock(
    got: &BTreeMap<(Uuid, String), f64>,
    want: &BTreeMap<(Uuid, String), f64>,
    seed: u64,
) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (k, v) in want {
        assert!(
            (got[k] - v).abs() < 1e-9,
            "{k:?}: {} != {v} (SEED={seed})",
            got[k]
        );
    }
}

async fn rows_follow_the_log(backend: Backend) {
    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut home = ServerHome::new(backend).await;
    let mut server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let locations = stock_up(server.store(), &team).await;
    let techs: Vec<&sync_server::store::User> = team.techs.iter().collect();
    let mut jobs = Vec::new();
    for title in ["Rooftop unit", "Walk-in cooler", "Boiler service"] {
        jobs.push(team.job(&server, title, "general", &techs).await);
    }
    let mut devices = Vec::new();
    for t in &team.techs {
        let mut d = Device::new(server.store(), t).await;
        d.settle(&server).await;
        devices.push(d);
    }

    for round in 0..6 {
        for d in devices.iter_mut() {
            for _ in 0..rng.random_range(1..6) {
                act(&mut rng, d, &jobs);
            }
        }
        // Now and then the server crashes, and comes back with the projection switched off
        // for a round: those changes reach the log but not the rows until a later start.
        if rng.random_bool(0.4) {
            server.crash();
            home.config.projection = rng.random_bool(0.5);
            server = TestServer::start(&home).await;
        }
        let first = rng.random_range(0..devices.len());
        devices.swap(0, first);
        for d in devices.iter_mut() {
            d.settle(&server).await;
        }
        eprintln!("round {round}: projection {}", home.config.projection);
    }
    if !home.config.projection {
        server.crash();
        home.config.projection = true;
        server = TestServer::start(&home).await;
    }
    for d in devices.iter_mut() {
        d.settle(&server).await;
    }
    fieldsync_e2e::projection_caught_up(server.store()).await;
    let store = server.store();
    let org = team.org.id;

    // Stock: exactly what the final lines take, per location and SKU, also through the API.
    let want = expected_stock(store, &jobs, &locations).await;
    assert_stock(&stock_rows(store, org).await, &want, seed);
    let dispatcher = access_token(store, &team.dispatcher, None).await;
    let (status, body) = api(
        "GET",
        format!("{}/api/v1/stock", server.url),
        Some(dispatcher.clone()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut got = BTreeMap::new();
    for s in body.as_array().unwrap() {
        let id: Uuid = s["location_id"].as_str().unwrap().parse().unwrap();
        got.insert(
            (id, s["sku"].as_str().unwrap().to_string()),
            s["on_hand"].as_f64().unwrap(),
        );
    }
    assert_stock(&got, &want, seed);

    // The job list: one row per job, matching the documents.
    let (status, body) = api(
        "GET",
        format!("{}/api/v1/jobs", server.url),
        Some(dispatcher.clone()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), jobs.len(), "{body}");
    let mut numbers: Vec<&str> = items
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, ["WO-000001", "WO-000002", "WO-000003"]);
    for item in items {
        let id: Uuid = item["id"].as_str().unwrap().parse().unwrap();
        let view = devices[0].replica.job(id).unwrap();
        assert_eq!(item["status"], view.status.as_str(), "SEED={seed}");
        assert_eq!(item["parts"], view.parts.len(), "SEED={seed}");
        let done = view
            .checklist
            .items
            .iter()
            .filter(|i| i.value.is_some())
            .count();
        assert_eq!(item["checklist"]["done"], done, "SEED={seed}");
    }

    // Projecting every document again changes nothing; a rebuild from the log gives the same.
    let live = store.records().projection_digest(org).await.unwrap();
    assert!(
        live.iter().any(|l| l.starts_with("job_stock|")),
        "no stock moved"
    );
    let p = store.records().projection_position().await.unwrap();
    let mut all = Vec::new();
    for job in &jobs {
        for meta in server.job_docs(*job).await {
            let stored = store.load(meta.id).await.unwrap();
            let doc = sync_server::sync::docs::build_doc(meta.id, &stored).unwrap();
            let kind = schemas::DocKind::parse(&meta.kind).unwrap();
            all.push(sync_server::projection::rows::rows_of(kind, org, &doc).unwrap());
        }
    }
    assert!(
        store
            .records()
            .project(p.projected, p.projected, &all, chrono::Utc::now())
            .await
            .unwrap()
    );
    assert_eq!(
        store.records().projection_digest(org).await.unwrap(),
        live,
        "projected twice (SEED={seed})"
    );
    server.crash();
    let store = sync_server::open_store(&home.config).await.unwrap();
    let metrics = sync_server::metrics::Metrics::default();
    sync_server::projection::rebuild(&*store, 7, &metrics)
        .await
        .unwrap();
    let rebuilt = store.records().projection_digest(org).await.unwrap();
    assert_eq!(rebuilt, live, "rebuilt from the log (SEED={seed})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_follow_the_log_on_sqlite() {
    rows_follow_the_log(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_follow_the_log_on_postgres() {
    rows_follow_the_log(Backend::Postgres).await;
}

/// The real server process, killed with SIGKILL at random moments while it commits and projects
/// (one change per projection transaction, so kills land in the middle of catching up), and
/// sometimes restarted with the projection off. Nothing committed is lost from the rows and
/// nothing is counted twice: stock is exact and the rows equal a rebuild from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_projects_what_it_committed_exactly_once() {
    use fieldsync_test_support::ServerProcess;
    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let home = ServerHome::new(Backend::Sqlite).await;
    let data_dir = home.config.data_dir.to_str().unwrap().to_string();
    let store = sync_server::open_store(&home.config).await.unwrap();
    let team = Team::create(&*store, &["ana", "ben"]).await;
    let locations = stock_up(&*store, &team).await;
    let spawn = |projection: bool| {
        ServerProcess::spawn(&[
            ("FIELDSYNC_DATA_DIR", data_dir.as_str()),
            (
                "FIELDSYNC_PROJECTION",
                if projection { "true" } else { "false" },
            ),
            ("FIELDSYNC_PROJECTION_BATCH", "1"),
        ])
    };
    let mut server = spawn(true);
    let dispatcher = access_token(&*store, &team.dispatcher, None).await;
    let names: Vec<String> = team.techs.iter().map(|t| t.name.clone()).collect();
    let mut jobs = Vec::new();
    for title in ["Rooftop unit", "Walk-in cooler"] {
        let (status, body) = api(
            "POST",
            format!("{}/api/v1/jobs", server.url),
            Some(dispatcher.clone()),
            Some(serde_json::json!({"title": title, "assignees": names})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        jobs.push(body["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let mut devices = Vec::new();
    for t in &team.techs {
        let mut d = Device::new(&*store, t).await;
        d.settle_to(&server.url).await;
        devices.push(d);
    }
    for round in 0..5 {
        for d in devices.iter_mut() {
            for _ in 0..rng.random_range(2..8) {
                act(&mut rng, d, &jobs);
            }
            d.settle_to(&server.url).await;
        }
        // The kill lands while the projection works through what was just committed.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
        server.kill_dash_nine();
        let projection = rng.random_bool(0.6);
        eprintln!("round {round}: killed; projection {projection}");
        server = spawn(projection);
    }
    server.kill_dash_nine();
    server = spawn(true);
    for d in devices.iter_mut() {
        d.settle_to(&server.url).await;
    }
    fieldsync_e2e::projection_caught_up(&*store).await;
    let org = team.org.id;
    let want = expected_stock(&*store, &jobs, &locations).await;
    assert_stock(&stock_rows(&*store, org).await, &want, seed);
    let live = store.records().projection_digest(org).await.unwrap();
    server.kill_dash_nine();
    let metrics = sync_server::metrics::Metrics::default();
    sync_server::projection::rebuild(&*store, 50, &metrics)
        .await
        .unwrap();
    assert_eq!(
        store.records().projection_digest(org).await.unwrap(),
        live,
        "rebuilt from the log (SEED={seed})"
    );
}

/// Commits right behind each other share a projection step: once woken, the projection waits
/// `projection_coalesce` for them. Each job made here is several commits (its documents), all
/// within the wait, so they take one step (at most one more if the timer's tick lands between),
/// where a step per wake would take one per commit. Without the wait, the rows still follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_right_behind_each_other_share_a_projection_step() {
    for (coalesce, most_steps) in [
        (Duration::from_millis(1_500), Some(2)),
        (Duration::ZERO, None),
    ] {
        let mut home = ServerHome::new(Backend::Sqlite).await;
        home.config.projection_coalesce = coalesce;
        // No tick while the jobs are made (the wait alone must gather them).
        home.config.projection_interval = Duration::from_secs(30);
        let server = TestServer::start(&home).await;
        let team = Team::create(server.store(), &["ana"]).await;
        fieldsync_e2e::projection_caught_up(server.store()).await;
        let steps_before = server.app.metrics.projection_steps.get();
        let commits_before = server
            .store()
            .records()
            .projection_position()
            .await
            .unwrap();
        let mut jobs = Vec::new();
        for i in 0..4 {
            jobs.push(
                team.job(&server, &format!("Boiler {i}"), "hvac_maintenance", &[])
                    .await,
            );
        }
        fieldsync_e2e::projection_caught_up(server.store()).await;
        let position = server
            .store()
            .records()
            .projection_position()
            .await
            .unwrap();
        let commits = position.log_end - commits_before.log_end;
        let steps = server.app.metrics.projection_steps.get() - steps_before;
        assert!(commits >= 8, "every job is several commits ({commits})");
        if let Some(most) = most_steps {
            assert!(steps <= most, "{commits} commits took {steps} steps");
        }
        let filter = sync_server::store::records::JobFilter {
            limit: 100,
            ..Default::default()
        };
        let rows = server
            .store()
            .records()
            .list_jobs(team.org.id, &filter)
            .await
            .unwrap();
        for job in &jobs {
            assert!(rows.iter().any(|r| r.id == *job), "job {job} has its row");
        }
    }
}
