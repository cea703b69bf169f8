//! The projection on Postgres with several nodes, and the org boundary of the relational rows.
//!
//! - Two nodes on one database project concurrently: every change is projected by exactly one
//!   of them (their counts of projected changes add up to the log), and job numbers taken for
//!   jobs created on both at once are unique and gapless.
//! - Row-level security: a tenant query made for org A sees none of org B's rows in any
//!   tenant table (and with no org set, no rows at all), and every list endpoint answers a
//!   dispatcher of A without a trace of B.

use std::time::Duration;

use fieldsync_e2e::{Backend, ServerHome, Team, TestServer, access_token, api};
use sqlx::Connection;
use sync_server::config::Database;
use uuid::Uuid;

fn pg_url(home: &ServerHome) -> String {
    match &home.config.database {
        Database::Postgres(url) => url.clone(),
        other => panic!("not Postgres: {other:?}"),
    }
}

async fn create_jobs(url: String, token: String, prefix: &'static str, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = api(
            "POST",
            format!("{url}/api/v1/jobs"),
            Some(token.clone()),
            Some(serde_json::json!({"title": format!("{prefix} {i}")})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().parse().unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_project_each_change_once_and_number_jobs_without_gaps() {
    let mut home = ServerHome::new(Backend::Postgres).await;
    // Both nodes look at the log often, so they really do race for the same changes.
    home.config.projection_interval = Duration::from_millis(10);
    home.config.projection_batch = 5;
    let one = TestServer::start(&home).await;
    let two = TestServer::start(&home).await;
    let team = Team::create(one.store(), &["ana"]).await;
    let token = access_token(one.store(), &team.dispatcher, None).await;
    let (a, b) = tokio::join!(
        create_jobs(one.url.clone(), token.clone(), "north", 15),
        create_jobs(two.url.clone(), token.clone(), "south", 15),
    );
    fieldsync_e2e::projection_caught_up(one.store()).await;
    // Let a node that lost a race settle before its count is read.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut db = sqlx::PgConnection::connect(&pg_url(&home)).await.unwrap();
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM changes")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let projected =
        one.app.metrics.projected_changes.get() + two.app.metrics.projected_changes.get();
    assert_eq!(
        projected as i64, changes,
        "each change projected by exactly one node"
    );
    assert!(
        one.app.metrics.projected_changes.get() > 0 || two.app.metrics.projected_changes.get() > 0
    );

    let mut numbers: Vec<i64> = sqlx::query_scalar("SELECT number FROM jobs WHERE org_id = $1")
        .bind(team.org.id)
        .fetch_all(&mut db)
        .await
        .unwrap();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=30).collect::<Vec<i64>>());
    let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id = ANY($1)")
        .bind([a, b].concat())
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(listed, 30);
}

/// Every table under row-level security, as migrations 0007, 0008 and 0009 list them.
const TENANT_TABLES: &[&str] = &[
    "users",
    "documents",
    "audit_log",
    "photos",
    "customers",
    "sites",
    "assets",
    "technicians",
    "skills",
    "technician_skills",
    "technician_time_blocks",
    "parts_catalog",
    "stock_locations",
    "stock_levels",
    "stock_movements",
    "jobs",
    "job_status_history",
    "job_checklists",
    "checklist_responses",
    "job_parts",
    "job_photos",
    "signatures",
    "checklist_templates",
    "presence",
    "pm_templates",
    "pm_schedules",
    "pm_occurrences",
];

/// Counts of (org A's rows, other orgs' rows) per table, as a tenant of `org` (or of none).
async fn tenant_counts(url: &str, org: Option<Uuid>, other: Uuid) -> Vec<(String, i64, i64)> {
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE fieldsync_tenant")
        .execute(&mut *tx)
        .await
        .unwrap();
    if let Some(org) = org {
        sqlx::query("SELECT set_config('fieldsync.org_id', $1, true)")
            .bind(org.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let mut out = Vec::new();
    for t in TENANT_TABLES {
        // Deliberately no org filter of our own: only the policy stands between the orgs.
        let all: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let foreign: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {t} WHERE org_id = $1"
        )))
        .bind(other)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        out.push((t.to_string(), all, foreign));
    }
    // Assignments carry no org: a tenant sees those of its org's users only.
    let assignments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM assignments s JOIN users u ON u.id = s.user_id")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    out.push(("assignments".into(), assignments, 0));
    tx.rollback().await.unwrap();
    out
}

/// A customer, site and asset of the org, a PM template, a schedule for the asset and one claimed
/// occurrence, written straight to the store.
async fn pm_rows(store: &dyn sync_server::store::Store, org_id: Uuid) {
    use sync_server::store::{pm, records};
    let now = chrono::Utc::now();
    let customer = records::Customer {
        id: Uuid::now_v7(),
        org_id,
        name: "Northwind".into(),
        phone: None,
        email: None,
        created_at: now,
    };
    store.records().create_customer(&customer).await.unwrap();
    let site = records::Site {
        id: Uuid::now_v7(),
        org_id,
        customer_id: customer.id,
        name: "Plant room".into(),
        address: None,
        time_zone: "Europe/London".into(),
    };
    store.records().create_site(&site).await.unwrap();
    let asset = records::Asset {
        id: Uuid::now_v7(),
        org_id,
        site_id: site.id,
        name: "Boiler".into(),
        make: None,
        model: None,
        serial: None,
        vin: None,
        install_date: None,
    };
    store.records().create_asset(&asset).await.unwrap();
    let template = pm::PmTemplate {
        id: Uuid::now_v7(),
        org_id,
        name: "Boiler service".into(),
        checklist_template: "general".into(),
        estimated_minutes: 60,
        required_skills: vec!["gas".into()],
        created_at: now,
    };
    store.pm().create_pm_template(&template).await.unwrap();
    let schedule = pm::NewPmSchedule {
        id: Uuid::now_v7(),
        org_id,
        asset_id: asset.id,
        template_id: template.id,
        rule: schemas::api::PmRule::DayOfMonth { day: 15 },
        anchor: schemas::api::PmAnchor::Due,
        horizon_days: 0,
        // Far ahead: the scheduler makes nothing of it during the test.
        start_date: chrono::NaiveDate::from_ymd_opt(2100, 1, 15).unwrap(),
        assignee: None,
        created_at: now,
    };
    store.pm().create_pm_schedule(&schedule).await.unwrap();
    let claimed = store
        .pm()
        .claim_pm_occurrence(&pm::PmOccurrence {
            schedule_id: schedule.id,
            due_date: schedule.start_date,
            org_id,
            job_id: Uuid::now_v7(),
            checklist_id: Uuid::now_v7(),
            parts_id: Uuid::now_v7(),
            scheduled_start: now,
            claimed_at: now,
            job_created_at: None,
            completed_at: None,
        })
        .await
        .unwrap();
    assert!(claimed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_for_one_org_never_sees_another() {
    let home = ServerHome::new(Backend::Postgres).await;
    let server = TestServer::start(&home).await;
    let mut teams = Vec::new();
    for _ in 0..2 {
        let team = Team::create(server.store(), &["ana"]).await;
        let tech = team.techs[0].clone();
        team.job(&server, "Rooftop unit", "general", &[&tech]).await;
        let records = server.store().records();
        let van = Uuid::now_v7();
        records
            .create_location(&sync_server::store::records::StockLocation {
                id: van,
                org_id: team.org.id,
                code: "VAN-1".into(),
                name: "Van".into(),
                kind: "van".into(),
                technician_id: Some(tech.id),
            })
            .await
            .unwrap();
        records
            .receive_stock(team.org.id, van, "BELT-A42", 5.0, chrono::Utc::now())
            .await
            .unwrap();
        records
            .put_technician(&sync_server::store::records::Technician {
                user_id: tech.id,
                org_id: team.org.id,
                display_name: "Ana".into(),
                phone: None,
                skills: vec!["hvac".into()],
            })
            .await
            .unwrap();
        let mut template = schemas::template::find("general").unwrap();
        template.name = format!("checks_{}", team.org.id.simple());
        template.version = 1;
        records
            .add_template_version(&sync_server::store::records::StoredTemplate {
                org_id: team.org.id,
                template,
                created_by: team.dispatcher.name.clone(),
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        records
            .put_presence(
                Uuid::now_v7(),
                chrono::Utc::now(),
                &[(tech.id, team.org.id, 1)],
            )
            .await
            .unwrap();
        pm_rows(server.store(), team.org.id).await;
        teams.push(team);
    }
    fieldsync_e2e::projection_caught_up(server.store()).await;
    let (a, b) = (&teams[0], &teams[1]);
    let url = pg_url(&home);

    let seen = tenant_counts(&url, Some(a.org.id), b.org.id).await;
    for (table, all, foreign) in &seen {
        assert_eq!(*foreign, 0, "{table}: org A's tenant sees org B's rows");
        let needs_rows = !matches!(
            table.as_str(),
            "audit_log"
                | "photos"
                | "customers"
                | "sites"
                | "assets"
                | "technician_time_blocks"
                | "parts_catalog"
                | "job_parts"
                | "job_photos"
                | "signatures"
        );
        if needs_rows {
            assert!(
                *all > 0,
                "{table}: org A's tenant sees none of its own rows"
            );
        }
    }
    for (table, all, _) in tenant_counts(&url, None, b.org.id).await {
        assert_eq!(all, 0, "{table}: a tenant query with no org set sees rows");
    }

    // Through the API: org A's dispatcher lists only A, and cannot open B's job.
    let token = access_token(server.store(), &a.dispatcher, None).await;
    let b_job = server.store().org_jobs(b.org.id).await.unwrap()[0];
    for path in [
        "jobs",
        "technicians",
        "stock",
        "review/jobs",
        "templates",
        "pm/templates",
        "pm/schedules",
    ] {
        let (status, body) = api(
            "GET",
            format!("{}/api/v1/{path}", server.url),
            Some(token.clone()),
            None,
        )
        .await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(!text.contains(&b_job.to_string()), "{path}: {text}");
        assert!(!text.contains(&b.techs[0].id.to_string()), "{path}: {text}");
        assert!(!text.contains(&b.techs[0].name), "{path}: {text}");
        assert!(
            !text.contains(&b.org.id.simple().to_string()),
            "{path}: {text}"
        );
    }
    let (status, body) = api(
        "GET",
        format!("{}/api/v1/jobs/{b_job}", server.url),
        Some(token.clone()),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api(
        "GET",
        format!("{}/api/v1/jobs?technician={}", server.url, b.techs[0].name),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
