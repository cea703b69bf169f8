//! Preventive maintenance end to end, on both stores: PM templates and schedules over HTTP (every
//! refusal a 4xx naming the field, other orgs' assets out of reach, technicians refused), the
//! scheduler making exactly one job per (schedule, due date) — assigned, in `GET /api/v1/jobs`,
//! nothing more after a restart — a claim left without its job (a node killed in between)
//! finished with the claimed ids, completing the job advancing the schedule; on Postgres two
//! nodes running the scheduler at once making each occurrence once, and the real server process
//! killed with SIGKILL mid-run and restarted leaving one whole job per (schedule, due date).

use std::time::Duration;

use chrono::{Months, NaiveDate, Utc};
use fieldsync_e2e::ApiClient as Client;
use fieldsync_e2e::{Backend, ServerHome, Team, TestServer};
use serde_json::{Value, json};
use sync_server::config::Database;
use sync_server::store::DocMeta;
use sync_server::store::pm::PmOccurrence;
use uuid::Uuid;

/// A customer, its site "Plant room" and an asset "Boiler 2" there; returns the asset's id.
async fn asset(d: &Client, name: &str) -> String {
    d.asset_at(name, "Plant room", "Boiler 2").await
}

/// Poll `GET /api/v1/pm/schedules/{id}` (at most 20 s) until `done` holds.
async fn wait_for(d: &Client, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let (s, v) = d
            .call("GET", &format!("/api/v1/pm/schedules/{id}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn created(v: &Value) -> usize {
    v["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["job_created"] == json!(true))
        .count()
}

fn london_today() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Europe::London)
        .date_naive()
}

async fn schedules_make_one_job_per_due_date(backend: Backend) {
    let mut home = ServerHome::new(backend).await;
    home.config.pm_interval = Duration::from_millis(50);
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let d = Client::new(&server, &team.dispatcher).await;
    let stranger = Client::new(&server, &other.dispatcher).await;
    let tech = Client::new(&server, &team.techs[0]).await;
    let asset_id = asset(&d, "Northwind").await;
    let foreign_asset = asset(&stranger, "Contoso").await;

    // Templates: refusals name the field; technicians may not write.
    for (body, code, field) in [
        (
            json!({"name": "", "checklist_template": "general", "estimated_minutes": 60}),
            400,
            "name",
        ),
        (
            json!({"name": "Boiler", "checklist_template": "nope", "estimated_minutes": 60}),
            400,
            "checklist_template",
        ),
        (
            json!({"name": "Boiler", "checklist_template": "general", "estimated_minutes": 0}),
            400,
            "estimated_minutes",
        ),
        (
            json!({"name": "Boiler", "checklist_template": "general", "estimated_minutes": 60,
                   "colour": "red"}),
            422,
            "colour",
        ),
    ] {
        let (s, e) = d
            .call("POST", "/api/v1/pm/templates", Some(body.clone()))
            .await;
        assert_eq!(s, code, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
    let good = json!({"name": "Boiler service", "checklist_template": "hvac_maintenance",
                      "estimated_minutes": 90, "required_skills": ["gas", "hvac"]});
    let (s, e) = tech
        .call("POST", "/api/v1/pm/templates", Some(good.clone()))
        .await;
    assert_eq!(s, 403, "{e}");
    let template = d
        .ok("POST", "/api/v1/pm/templates", good.clone(), 201)
        .await;
    let (s, e) = d.call("POST", "/api/v1/pm/templates", Some(good)).await;
    assert_eq!(s, 409, "{e}");
    let (s, list) = d.call("GET", "/api/v1/pm/templates", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1), "{list}");
    let (s, list) = stranger.call("GET", "/api/v1/pm/templates", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 0), "{list}");
    let template_id = template["id"].as_str().unwrap().to_string();

    // Schedules: refusals.
    let schedule = |asset: &str, rule: Value| {
        json!({"asset_id": asset, "template_id": template_id, "rule": rule,
               "anchor": "completion", "horizon_days": 7, "assignee": team.techs[0].name})
    };
    let monthly = json!({"kind": "every", "n": 1, "unit": "months"});
    for (body, code, field) in [
        (schedule(&foreign_asset, monthly.clone()), 400, "asset_id"),
        (
            schedule(&asset_id, json!({"kind": "every", "n": 0, "unit": "days"})),
            400,
            "rule.n",
        ),
        (
            schedule(&asset_id, json!({"kind": "day_of_month", "day": 32})),
            400,
            "rule.day",
        ),
        (
            schedule(&asset_id, json!({"kind": "fortnightly"})),
            422,
            "fortnightly",
        ),
        (
            json!({"asset_id": asset_id, "template_id": template_id, "rule": monthly,
                   "assignee": other.techs[0].name}),
            400,
            "assignee",
        ),
        (
            json!({"asset_id": asset_id, "template_id": Uuid::now_v7(), "rule": monthly}),
            400,
            "template_id",
        ),
        (
            json!({"asset_id": asset_id, "template_id": template_id, "rule": monthly,
                   "horizon_days": 400}),
            400,
            "horizon_days",
        ),
    ] {
        let (s, e) = d
            .call("POST", "/api/v1/pm/schedules", Some(body.clone()))
            .await;
        assert_eq!(s, code, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(field),
            "{body}: {e}"
        );
    }
    let (s, e) = tech
        .call(
            "POST",
            "/api/v1/pm/schedules",
            Some(schedule(&asset_id, monthly.clone())),
        )
        .await;
    assert_eq!(s, 403, "{e}");
    let (s, e) = tech.call("GET", "/api/v1/pm/schedules", None).await;
    assert_eq!(s, 403, "{e}");

    // Monthly from today (the site's today), anchored on completion: due now, so the scheduler
    // makes its job at once, assigned to ana.
    let made = d
        .ok(
            "POST",
            "/api/v1/pm/schedules",
            schedule(&asset_id, monthly),
            201,
        )
        .await;
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["time_zone"], "Europe/London");
    let v = wait_for(&d, &id, "the first occurrence's job", |v| created(v) == 1).await;
    let today = london_today();
    let occurrence = &v["occurrences"][0];
    assert_eq!(occurrence["due_date"], json!(today), "{v}");
    assert_eq!(v["next_due_date"], Value::Null, "waits for completion: {v}");
    let job_id = occurrence["job_id"].as_str().unwrap().to_string();
    // 08:00 in London that day.
    let start: chrono::DateTime<Utc> = occurrence["scheduled_start"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let local = start.with_timezone(&chrono_tz::Europe::London);
    assert_eq!(
        local.format("%Y-%m-%d %H:%M").to_string(),
        format!("{today} 08:00")
    );
    let (s, list) = stranger
        .call("GET", &format!("/api/v1/pm/schedules/{id}"), None)
        .await;
    assert_eq!(s, 404, "{list}");

    // Exactly one job, assigned to ana, in the job list.
    fieldsync_e2e::projection_caught_up(server.store()).await;
    let jobs = pm_jobs(&d).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["id"], json!(job_id));
    assert_eq!(jobs[0]["assignees"], json!([team.techs[0].name]));
    assert_eq!(jobs[0]["template"], json!("hvac_maintenance"));
    let assigned = server
        .store()
        .assigned_jobs(team.techs[0].id)
        .await
        .unwrap();
    assert_eq!(assigned, vec![job_id.parse::<Uuid>().unwrap()]);

    // More runs, then a restart: nothing new.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.crash();
    let server = TestServer::start(&home).await;
    let d = Client::new(&server, &team.dispatcher).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let v = wait_for(&d, &id, "the schedule", |_| true).await;
    assert_eq!(v["occurrences"].as_array().unwrap().len(), 1, "{v}");
    fieldsync_e2e::projection_caught_up(server.store()).await;
    assert_eq!(pm_jobs(&d).await.len(), 1);

    // Completing the job advances the schedule: a month after the completion (local day), and
    // that occurrence is beyond the 7-day horizon, so no job yet.
    let (s, e) = d
        .call(
            "PATCH",
            &format!("/api/v1/jobs/{job_id}"),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    // The schedule and its occurrences are read one after the other: the completion may land
    // between the two reads, so wait until both show it.
    let v = wait_for(&d, &id, "the completion", |v| {
        !v["next_due_date"].is_null() && v["last_completed_at"].is_string()
    })
    .await;
    let done_day = london_today();
    assert_eq!(
        v["next_due_date"],
        json!(done_day.checked_add_months(Months::new(1)).unwrap()),
        "{v}"
    );
    assert!(v["last_completed_at"].is_string(), "{v}");
    assert!(v["occurrences"][0]["completed_at"].is_string(), "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = wait_for(&d, &id, "the schedule", |_| true).await;
    assert_eq!(v["occurrences"].as_array().unwrap().len(), 1, "{v}");

    // A claim without its job (its node killed between the two): after the lease another run
    // makes the job, with the claimed ids.
    let far = d
        .ok(
            "POST",
            "/api/v1/pm/schedules",
            json!({"asset_id": asset_id, "template_id": template_id,
                   "rule": {"kind": "day_of_month", "day": 15}, "horizon_days": 0,
                   "start_date": today.checked_add_months(Months::new(6)).unwrap()}),
            201,
        )
        .await;
    let far_id: Uuid = far["id"].as_str().unwrap().parse().unwrap();
    let orphan = PmOccurrence {
        schedule_id: far_id,
        due_date: today,
        org_id: team.org.id,
        job_id: Uuid::now_v7(),
        checklist_id: Uuid::now_v7(),
        parts_id: Uuid::now_v7(),
        scheduled_start: Utc::now(),
        claimed_at: Utc::now() - chrono::Duration::hours(1),
        job_created_at: None,
        completed_at: None,
    };
    // And one killed half way through its job: the job's document registered, nothing in it.
    let half = PmOccurrence {
        due_date: today.pred_opt().unwrap(),
        job_id: Uuid::now_v7(),
        checklist_id: Uuid::now_v7(),
        parts_id: Uuid::now_v7(),
        ..orphan.clone()
    };
    let half_doc = DocMeta {
        id: half.job_id,
        org_id: team.org.id,
        kind: "job".into(),
        job_id: half.job_id,
    };
    for o in [&orphan, &half] {
        assert!(server.store().pm().claim_pm_occurrence(o).await.unwrap());
    }
    server.store().create_document(&half_doc).await.unwrap();
    let v = wait_for(&d, &far_id.to_string(), "the stale claims' jobs", |v| {
        created(v) == 2
    })
    .await;
    assert_eq!(v["occurrences"][0]["job_id"], json!(orphan.job_id), "{v}");
    assert_eq!(v["occurrences"][1]["job_id"], json!(half.job_id), "{v}");
    for o in [&orphan, &half] {
        let (s, job) = d
            .call("GET", &format!("/api/v1/jobs/{}", o.job_id), None)
            .await;
        assert_eq!(s, 200, "{job}");
        assert_eq!(job["title"], json!("Boiler service: Boiler 2"), "{job}");
        let docs = server.store().job_documents(o.job_id).await.unwrap();
        assert_eq!(docs.len(), 3, "{docs:?}");
    }
}

/// The org's jobs made by the scheduler.
async fn pm_jobs(d: &Client) -> Vec<Value> {
    let (s, list) = d.call("GET", "/api/v1/jobs", None).await;
    assert_eq!(s, 200, "{list}");
    list["items"].as_array().unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_make_one_job_per_due_date_sqlite() {
    schedules_make_one_job_per_due_date(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_make_one_job_per_due_date_postgres() {
    schedules_make_one_job_per_due_date(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_make_each_occurrence_once() {
    let mut home = ServerHome::new(Backend::Postgres).await;
    // Both nodes run the scheduler often, so they really do race for the same occurrences.
    home.config.pm_interval = Duration::from_millis(10);
    let one = TestServer::start(&home).await;
    let two = TestServer::start(&home).await;
    let team = Team::create(one.store(), &["ana"]).await;
    let d = Client::new(&one, &team.dispatcher).await;
    let asset_id = asset(&d, "Northwind").await;
    let template = d
        .ok(
            "POST",
            "/api/v1/pm/templates",
            json!({"name": "Daily check", "checklist_template": "general",
                   "estimated_minutes": 15}),
            201,
        )
        .await;
    // Two schedules, each due every day for the next 5 days (6 occurrences), made on both nodes.
    let mut ids = Vec::new();
    for node in [&one, &two] {
        let c = Client::new(node, &team.dispatcher).await;
        let s = c
            .ok(
                "POST",
                "/api/v1/pm/schedules",
                json!({"asset_id": asset_id, "template_id": template["id"],
                       "rule": {"kind": "every", "n": 1, "unit": "days"}, "horizon_days": 5,
                       "assignee": team.techs[0].name}),
                201,
            )
            .await;
        ids.push(s["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        wait_for(&d, id, "six jobs", |v| created(v) == 6).await;
    }
    // Let both nodes run many more times.
    tokio::time::sleep(Duration::from_millis(500)).await;
    fieldsync_e2e::projection_caught_up(one.store()).await;

    let Database::Postgres(url) = &home.config.database else {
        unreachable!()
    };
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    let occurrences: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pm_occurrences WHERE org_id = $1")
            .bind(team.org.id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(occurrences, 12);
    let job_docs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM documents WHERE org_id = $1 AND kind = 'job'")
            .bind(team.org.id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(job_docs, 12, "one job per (schedule, due date)");
    let unmatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pm_occurrences o
         WHERE org_id = $1 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.job_id)",
    )
    .bind(team.org.id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(unmatched, 0, "every occurrence's job is projected");
    let (s, list) = d.call("GET", "/api/v1/jobs?limit=500", None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 12, "{list}");
    // Each node made some (or all) of them; together exactly twelve.
    for id in &ids {
        let v = wait_for(&d, id, "the schedule", |_| true).await;
        let dues: Vec<&Value> = v["occurrences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| &o["due_date"])
            .collect();
        let today = london_today();
        let want: Vec<Value> = (0..6)
            .rev()
            .map(|i| json!(today + chrono::Duration::days(i)))
            .collect();
        assert_eq!(dues, want.iter().collect::<Vec<_>>(), "{v}");
    }
}

/// The real server process killed with SIGKILL at random moments while its scheduler makes a
/// schedule's 41 jobs (one a day for 40 days ahead), and restarted with no claim lease: in the
/// end every (schedule, due date) has exactly one job, whole (its three documents, each with
/// its changes), and the org has no other job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_scheduler_leaves_one_whole_job_per_due_date() {
    use fieldsync_test_support::ServerProcess;
    use rand::{Rng, SeedableRng};
    use sync_server::store::{pm, records};

    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let home = ServerHome::new(Backend::Postgres).await;
    let Database::Postgres(url) = home.config.database.clone() else {
        unreachable!()
    };
    let data_dir = home.config.data_dir.to_str().unwrap().to_string();
    let store = sync_server::open_store(&home.config).await.unwrap();
    let team = Team::create(&*store, &["ana"]).await;
    let org_id = team.org.id;
    let now = Utc::now();
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
        name: "Daily check".into(),
        checklist_template: "general".into(),
        estimated_minutes: 15,
        required_skills: vec![],
        created_at: now,
    };
    store.pm().create_pm_template(&template).await.unwrap();
    let schedule = pm::NewPmSchedule {
        id: Uuid::now_v7(),
        org_id,
        asset_id: asset.id,
        template_id: template.id,
        rule: schemas::api::PmRule::Every {
            n: 1,
            unit: schemas::api::PmUnit::Days,
        },
        anchor: schemas::api::PmAnchor::Due,
        horizon_days: 40,
        start_date: london_today(),
        assignee: Some(team.techs[0].name.clone()),
        created_at: now,
    };
    store.pm().create_pm_schedule(&schedule).await.unwrap();

    let spawn = || {
        ServerProcess::spawn(&[
            ("FIELDSYNC_DATA_DIR", data_dir.as_str()),
            ("DATABASE_URL", url.as_str()),
            ("FIELDSYNC_PM_INTERVAL_MS", "10"),
            ("FIELDSYNC_PM_CLAIM_LEASE_MS", "0"),
        ])
    };
    let mut server = spawn();
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
        server.kill_dash_nine();
        let made = store.pm().pm_occurrences(Some(org_id), None).await.unwrap();
        eprintln!(
            "round {round}: killed with {} claimed, {} made",
            made.len(),
            made.iter().filter(|o| o.job_created_at.is_some()).count()
        );
        server = spawn();
    }
    let mut occurrences = Vec::new();
    for _ in 0..600 {
        occurrences = store.pm().pm_occurrences(Some(org_id), None).await.unwrap();
        if occurrences.len() == 41 && occurrences.iter().all(|o| o.job_created_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(occurrences.len(), 41, "SEED={seed}");
    assert!(
        occurrences.iter().all(|o| o.job_created_at.is_some()),
        "SEED={seed}: {occurrences:?}"
    );
    for o in &occurrences {
        let docs = store.job_documents(o.job_id).await.unwrap();
        assert_eq!(docs.len(), 3, "SEED={seed}: {o:?}");
        for doc in docs {
            let stored = store.load(doc.id).await.unwrap();
            assert!(
                stored.snapshot.is_some() || !stored.changes.is_empty(),
                "SEED={seed}: an empty document {doc:?}"
            );
        }
        assert_eq!(
            store.job_assignees(o.job_id).await.unwrap(),
            vec![team.techs[0].id],
            "SEED={seed}"
        );
    }
    let jobs = store.org_jobs(org_id).await.unwrap();
    assert_eq!(jobs.len(), 41, "SEED={seed}: one job per due date");
    fieldsync_e2e::projection_caught_up(&*store).await;
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(rows, 41, "SEED={seed}");
    server.kill_dash_nine();
}
