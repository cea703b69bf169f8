//! Projection and job-list figures (BENCHMARKS.md, "Dispatch"):
//!
//!     SQLX_OFFLINE=true cargo bench -p sync-server --bench projection
//!
//! On the embedded SQLite store and on Postgres (a scratch database on
//! `FIELDSYNC_TEST_POSTGRES`, default 127.0.0.1:5432):
//! - **projection throughput**: 600 jobs (three documents each) and 6 parts lines added to each
//!   job's parts list one change at a time are written to the log with the projection off; then
//!   the whole log is projected (2,000 changes per transaction), timed: changes per second;
//! - **`GET /api/v1/jobs` at 100,000 jobs**: 100,000 projected job rows over 50 technicians and
//!   a year; one technician's week is asked for 300 times over HTTP on loopback (a fresh
//!   connection each, as a browser tab's first request): p50 and p99.
//!
//! The server runs in this process on port 0.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use schemas::job::NewJob;
use schemas::parts::NewPartLine;
use sync_server::jobs::{Actor, create_job_documents, edit_doc};
use sync_server::projection::rows::{DocRows, JobRow};
use sync_server::store::{DocMeta, Role};
use sync_server::{AppState, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const JOBS: usize = 600;
const LINES_PER_JOB: usize = 6;
const LIST_JOBS: usize = 100_000;
const TECHS: usize = 50;
const LIST_RUNS: usize = 300;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn get(addr: &str, path: &str, token: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).ok();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, buf.len())
}

/// Throughput of projecting a log written with the projection off.
async fn projection_throughput(label: &str, config: Config) {
    let mut config = config;
    config.projection = false;
    let store = sync_server::open_store(&config).await.expect("store");
    let app = AppState::new(config, store.clone());
    let org = store.create_org("bench").await.unwrap();
    let dispatcher = store
        .create_user(org.id, "bench-dispatch", Role::Dispatcher, "x")
        .await
        .unwrap();
    let me = Actor::from(&dispatcher);
    let tpl = schemas::template::find("hvac_maintenance").unwrap();
    let write = Instant::now();
    for i in 0..JOBS {
        let new = NewJob::at_site(
            &format!("Job {i}"),
            &format!("Customer {}", i % 97),
            &format!("Site {}", i % 53),
            Some(Utc::now()),
            schemas::Priority::Medium,
        );
        let job = create_job_documents(&app, &me, &new, &tpl).await.unwrap();
        let parts = store
            .job_documents(job)
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.kind == "parts")
            .unwrap();
        for l in 0..LINES_PER_JOB {
            add_line(&app, &parts, l).await;
        }
    }
    let written = write.elapsed();
    let log_end = store.records().projection_position().await.unwrap().log_end;
    let metrics = sync_server::metrics::Metrics::default();
    let t = Instant::now();
    sync_server::projection::catch_up(&*store, 2_000, &metrics)
        .await
        .unwrap();
    let took = t.elapsed();
    println!(
        "{label}: projected {log_end} changes ({JOBS} jobs, {} documents) in {:.2} s: {:.0} changes/s (the log took {:.1} s to write)",
        JOBS * 3,
        took.as_secs_f64(),
        log_end as f64 / took.as_secs_f64(),
        written.as_secs_f64(),
    );
}

async fn add_line(app: &AppState, parts: &DocMeta, l: usize) {
    let line = NewPartLine {
        sku: format!("SKU-{}", l % 5),
        description: "bench part".into(),
        qty: 1.0 + l as f64,
        unit: Some("ea".into()),
        source: None,
    };
    edit_doc(app, parts, "bench: add a line", |doc| {
        schemas::parts::add_line(doc, &format!("l{l}"), &line, "bench", Utc::now())
            .map_err(Into::into)
    })
    .await
    .unwrap();
}

/// `GET /api/v1/jobs` for one technician's week among `LIST_JOBS` jobs.
async fn list_latency(label: &str, config: Config, assign: impl AsyncAssign) {
    let mut config = config;
    config.projection = false;
    let store = sync_server::open_store(&config).await.expect("store");
    let org = store.create_org("list-bench").await.unwrap();
    let hash = sync_server::auth::hash_password("bench-password");
    let dispatcher = store
        .create_user(org.id, "list-dispatch", Role::Dispatcher, &hash)
        .await
        .unwrap();
    let mut techs = Vec::new();
    for t in 0..TECHS {
        techs.push(
            store
                .create_user(org.id, &format!("tech-{t}"), Role::Technician, &hash)
                .await
                .unwrap(),
        );
    }
    let year = Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap();
    let t = Instant::now();
    let mut pairs = Vec::with_capacity(LIST_JOBS);
    for chunk in 0..LIST_JOBS / 2_000 {
        let mut rows = Vec::with_capacity(2_000);
        for k in 0..2_000 {
            let i = chunk * 2_000 + k;
            let tech = &techs[i % TECHS];
            let start = year + chrono::Duration::minutes((i as i64 * 5_256) % (365 * 24 * 60));
            let id = Uuid::now_v7();
            pairs.push((id, tech.id));
            rows.push(DocRows::Job {
                job: JobRow {
                    id,
                    org_id: org.id,
                    title: format!("Job {i}"),
                    priority: "medium".into(),
                    status: "assigned".into(),
                    scheduled_start: Some(start),
                    scheduled_end: None,
                    sort_at: start,
                    customer_id: None,
                    customer_name: format!("Customer {}", i % 997),
                    site_id: None,
                    site_name: format!("Site {}", i % 499),
                    asset_id: None,
                    asset_name: None,
                    assignees: serde_json::to_string(&[&tech.name]).unwrap(),
                    signed_off: false,
                    follow_up_of: None,
                    created_at: start,
                    created_by: "bench".into(),
                },
                history: vec![],
                signature: None,
            });
        }
        assert!(
            store
                .records()
                .project(0, 0, &rows, Utc::now())
                .await
                .unwrap()
        );
    }
    assign.assign(&pairs).await;
    let loaded = t.elapsed();
    let app = AppState::new(config, store.clone());
    let (addr, _task) = fieldsync_test_support::serve_in_process(app).await;
    let addr = addr.to_string();
    let token = {
        let dev = store.register_device(dispatcher.id, "bench").await.unwrap();
        let raw = format!("fsa_bench{}", Uuid::now_v7().simple());
        store
            .insert_token(&sync_server::store::TokenRecord {
                hash: sync_server::auth::token_hash(&raw),
                kind: sync_server::store::TokenKind::Access,
                user_id: dispatcher.id,
                device_id: Some(dev.id),
                expires_at: Utc::now() + chrono::Duration::hours(1),
            })
            .await
            .unwrap();
        raw
    };
    let mut times = Vec::with_capacity(LIST_RUNS);
    let mut found = 0;
    for r in 0..LIST_RUNS {
        let tech = &techs[r % TECHS];
        let week = year + chrono::Duration::weeks((r % 50) as i64);
        let path = format!(
            "/api/v1/jobs?technician={}&from={}&to={}",
            tech.id,
            week.format("%Y-%m-%dT%H:%M:%SZ"),
            (week + chrono::Duration::weeks(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        );
        let t = Instant::now();
        let (status, bytes) = get(&addr, &path, &token).await;
        times.push(t.elapsed());
        assert_eq!(status, 200);
        found += bytes;
    }
    times.sort();
    println!(
        "{label}: GET /api/v1/jobs, one technician's week of {LIST_JOBS} jobs: p50 {:.2} ms, p99 {:.2} ms ({} runs, {} KiB answered in all; rows loaded in {:.1} s)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        LIST_RUNS,
        found / 1024,
        loaded.as_secs_f64(),
    );
}

/// Bulk assignment rows for the list benchmark (one transaction, not 100,000).
trait AsyncAssign {
    async fn assign(self, pairs: &[(Uuid, Uuid)]);
}

struct SqliteAssign(std::path::PathBuf);

impl AsyncAssign for SqliteAssign {
    async fn assign(self, pairs: &[(Uuid, Uuid)]) {
        let mut conn = rusqlite::Connection::open(&self.0).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let tx = conn.transaction().unwrap();
        for (job, user) in pairs {
            tx.execute(
                "INSERT INTO assignments (job_id, user_id) VALUES (?1, ?2)",
                [job.to_string(), user.to_string()],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
}

struct PgAssign(String);

impl AsyncAssign for PgAssign {
    async fn assign(self, pairs: &[(Uuid, Uuid)]) {
        let pool = sqlx::PgPool::connect(&self.0).await.unwrap();
        let (jobs, users): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO assignments (job_id, user_id) SELECT * FROM UNNEST($1::uuid[], $2::uuid[])",
        )
        .bind(&jobs)
        .bind(&users)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        projection_throughput("sqlite", Config::embedded(dir.path().join("a"))).await;
        let pg = fieldsync_test_support::PgDb::create().await;
        let mut config = Config::embedded(dir.path().join("b"));
        config.database = sync_server::config::Database::Postgres(pg.url.clone());
        projection_throughput("postgres", config).await;

        let config = Config::embedded(dir.path().join("c"));
        let file = dir.path().join("c").join("server.sqlite");
        list_latency("sqlite", config, SqliteAssign(file)).await;
        let pg = fieldsync_test_support::PgDb::create().await;
        let mut config = Config::embedded(dir.path().join("d"));
        config.database = sync_server::config::Database::Postgres(pg.url.clone());
        list_latency("postgres", config, PgAssign(pg.url.clone())).await;
    });
}
