//! Concurrent edits made visible: two technicians on one job answer the same checklist item
//! differently while offline, and reconnect in a seeded random order. Every
//! replica converges on one value, and the other is not lost without a trace: the job carries a
//! flagged `conflict` entry naming the field and both values. On both stores.

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token, api};
use rand::{Rng, SeedableRng};
use schemas::JobStatus;

/// A server, a job for ana and ben, and their devices, synced.
struct Setup {
    _home: ServerHome,
    server: TestServer,
    team: Team,
    job: uuid::Uuid,
    ana: Device,
    ben: Device,
}

impl Setup {
    async fn new(backend: Backend, title: &str) -> Setup {
        let home = ServerHome::new(backend).await;
        let server = TestServer::start(&home).await;
        let team = Team::create(server.store(), &["ana", "ben"]).await;
        let (ana_user, ben_user) = (team.techs[0].clone(), team.techs[1].clone());
        let job = team
            .job(&server, title, "general", &[&ana_user, &ben_user])
            .await;
        let mut ana = Device::new(server.store(), &ana_user).await;
        let mut ben = Device::new(server.store(), &ben_user).await;
        ana.settle(&server).await;
        ben.settle(&server).await;
        Setup {
            _home: home,
            server,
            team,
            job,
            ana,
            ben,
        }
    }
}

async fn concurrent_values_are_flagged(backend: Backend) {
    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let Setup {
        _home,
        server,
        team,
        job,
        mut ana,
        mut ben,
    } = Setup::new(backend, "Rooftop unit").await;

    // Offline, each answers the same item differently; ana also moves the job along.
    ana.replica.set_status(job, JobStatus::EnRoute).unwrap();
    ana.replica
        .set_check_str(job, "arrived_on_site", "pass")
        .unwrap();
    ben.replica
        .set_check_str(job, "arrived_on_site", "fail")
        .unwrap();
    ben.replica
        .set_check_str(job, "work_performed", "replaced the belt")
        .unwrap();
    let mut devices = [&mut ana, &mut ben];
    if rng.random_bool(0.5) {
        devices.swap(0, 1);
    }
    for d in devices.iter_mut() {
        d.settle(&server).await;
    }
    for d in devices.iter_mut() {
        d.settle(&server).await;
    }
    fieldsync_e2e::assert_device_matches_server(&mut ana, &server).await;
    fieldsync_e2e::assert_device_matches_server(&mut ben, &server).await;
    let item = |d: &mut Device| {
        d.replica
            .job(job)
            .unwrap()
            .checklist
            .items
            .into_iter()
            .find(|i| i.id == "arrived_on_site")
            .unwrap()
            .value
    };
    assert_eq!(item(&mut ana), item(&mut ben), "SEED={seed}");

    // The dispatcher sees the conflict on the job: the field, the shown value and the other.
    let dispatcher = access_token(server.store(), &team.dispatcher, None).await;
    let (status, body) = api(
        "GET",
        format!("{}/api/v1/jobs/{job}", server.url),
        Some(dispatcher.clone()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let conflicts: Vec<&serde_json::Value> = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "conflict")
        .collect();
    assert_eq!(conflicts.len(), 1, "{body} (SEED={seed})");
    let reason = conflicts[0]["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("items[arrived_on_site].value")
            && reason.contains("\"pass\"")
            && reason.contains("\"fail\""),
        "{reason}"
    );
    // Fields set by one writer only are no conflict.
    assert!(
        !body["flags"].to_string().contains("work_performed"),
        "{body}"
    );

    // The flag stays until a dispatcher resolves it; then it leaves the job and the list,
    // and the audit log keeps both rows.
    let flag = conflicts[0]["id"].as_str().unwrap().to_string();
    let resolve = |token: String, flag: String, note: &str| {
        api(
            "POST",
            format!("{}/api/v1/jobs/{job}/flags/{flag}/resolve", server.url),
            Some(token),
            Some(serde_json::json!({ "note": note })),
        )
    };
    let tech = access_token(server.store(), &team.techs[0], None).await;
    let (status, e) = resolve(tech, flag.clone(), "mine").await;
    assert_eq!(status, 403, "{e}");
    let (status, e) = resolve(dispatcher.clone(), uuid::Uuid::now_v7().to_string(), "").await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = resolve(dispatcher.clone(), flag.clone(), "checked on site: pass").await;
    assert_eq!(status, 200, "{e}");
    let (status, e) = resolve(dispatcher.clone(), flag.clone(), "again").await;
    assert_eq!(status, 409, "{e}");
    let (_, body) = api(
        "GET",
        format!("{}/api/v1/jobs/{job}", server.url),
        Some(dispatcher.clone()),
        None,
    )
    .await;
    assert!(!body["flags"].to_string().contains(&flag), "{body}");
    let audit = server.store().job_audit(job).await.unwrap();
    assert!(
        audit.iter().any(|a| a.id.to_string() == flag),
        "the flag's row stays"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "resolved" && a.reasons[0].contains("checked on site")),
        "{audit:?}"
    );
    fieldsync_e2e::projection_caught_up(server.store()).await;
    let (_, list) = api(
        "GET",
        format!("{}/api/v1/jobs?flagged=true", server.url),
        Some(dispatcher),
        None,
    )
    .await;
    assert_eq!(
        body["flags"],
        serde_json::json!([]),
        "the only flag was resolved"
    );
    assert!(
        !list["items"].to_string().contains(&job.to_string()),
        "no longer listed as flagged: {list}"
    );
}

/// Two technicians move the job's status apart while offline (ana to en route, ben on to in
/// progress): the status converges on one, and the merged history, where each appended its own
/// entries, ends on an entry leading to that status (the server adds it) on every replica.
async fn concurrent_statuses_leave_a_history_that_ends_at_the_status(backend: Backend) {
    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let Setup {
        _home,
        server,
        team,
        job,
        mut ana,
        mut ben,
    } = Setup::new(backend, "Chiller").await;
    ana.replica.set_status(job, JobStatus::EnRoute).unwrap();
    ben.replica.set_status(job, JobStatus::EnRoute).unwrap();
    ben.replica.set_status(job, JobStatus::InProgress).unwrap();
    let mut devices = [&mut ana, &mut ben];
    if rng.random_bool(0.5) {
        devices.swap(0, 1);
    }
    for _ in 0..2 {
        for d in devices.iter_mut() {
            d.settle(&server).await;
        }
    }
    for d in [&mut ana, &mut ben] {
        fieldsync_e2e::assert_device_matches_server(d, &server).await;
        let view = d.replica.job(job).unwrap();
        let last = view.status_history.last().unwrap();
        assert_eq!(
            last.to, view.status,
            "{:?} (SEED={seed})",
            view.status_history
        );
    }
    let dispatcher = access_token(server.store(), &team.dispatcher, None).await;
    let (_, body) = api(
        "GET",
        format!("{}/api/v1/jobs/{job}", server.url),
        Some(dispatcher),
        None,
    )
    .await;
    let flags = body["flags"].to_string();
    assert!(
        flags.contains("conflict") && flags.contains("status:"),
        "{body} (SEED={seed})"
    );
}

/// Two technicians add a note to the same job while offline (one of them twice, one note
/// without its final line break): after both reconnect, in a seeded order, every note is on a
/// line of its own on every replica, none glued to another.
async fn concurrent_notes_stay_separate_lines(backend: Backend) {
    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let Setup {
        _home,
        server,
        job,
        mut ana,
        mut ben,
        ..
    } = Setup::new(backend, "Boiler").await;
    ana.replica.append_note(job, "Gate code 4711").unwrap();
    ana.settle(&server).await;
    ben.settle(&server).await;
    ana.replica.append_note(job, "Dog in the yard").unwrap();
    ben.replica
        .append_note(job, "Customer prefers mornings")
        .unwrap();
    ben.replica.append_note(job, "Parts on order\n").unwrap();
    let mut devices = [&mut ana, &mut ben];
    if rng.random_bool(0.5) {
        devices.swap(0, 1);
    }
    for _ in 0..2 {
        for d in devices.iter_mut() {
            d.settle(&server).await;
        }
    }
    for d in [&mut ana, &mut ben] {
        fieldsync_e2e::assert_device_matches_server(d, &server).await;
        let notes = d.replica.job(job).unwrap().notes;
        let mut lines: Vec<&str> = notes.lines().collect();
        assert_eq!(lines[0], "Gate code 4711", "{notes:?} (SEED={seed})");
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "Customer prefers mornings",
                "Dog in the yard",
                "Gate code 4711",
                "Parts on order"
            ],
            "{notes:?} (SEED={seed})"
        );
        assert!(notes.ends_with('\n'), "{notes:?}");
    }
    assert!(
        ana.replica.append_note(job, "  ").is_err(),
        "an empty note is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_notes_stay_separate_lines_on_sqlite() {
    concurrent_notes_stay_separate_lines(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_notes_stay_separate_lines_on_postgres() {
    concurrent_notes_stay_separate_lines(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_statuses_leave_a_history_that_ends_at_the_status_on_sqlite() {
    concurrent_statuses_leave_a_history_that_ends_at_the_status(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_statuses_leave_a_history_that_ends_at_the_status_on_postgres() {
    concurrent_statuses_leave_a_history_that_ends_at_the_status(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_values_are_flagged_on_sqlite() {
    concurrent_values_are_flagged(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_values_are_flagged_on_postgres() {
    concurrent_values_are_flagged(Backend::Postgres).await;
}
