//! The dispatcher's live board in headless Chromium (`tests/js/board.mjs`, playwright-core
//! driving Debian's chromium; both installed by `scripts/test.sh`): an edit made on a
//! technician's device appears on the open board without a reload, and a job rescheduled and
//! reassigned on the board reaches the new technician's device; a job past its SLA shows the
//! breach badge. Also the event stream's refusals.

use std::process::Stdio;
use std::time::Duration;

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token, api};
use schemas::JobStatus;
use schemas::parts::NewPartLine;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_devices_and_assigns_in_a_real_browser() {
    let (script, chromium) = fieldsync_e2e::browser_test("board.mjs");
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let (ana_user, ben_user) = (team.techs[0].clone(), team.techs[1].clone());
    let job = team
        .job(&server, "Rooftop unit", "general", &[&ana_user])
        .await;
    // An SLA policy the assigned job has already missed (acknowledge within a second): its
    // card shows the breach badge (`GET /api/v1/sla/jobs`).
    let now = chrono::Utc::now();
    server
        .store()
        .sla()
        .put_sla_policy(&sync_server::store::sla::SlaPolicy {
            id: uuid::Uuid::now_v7(),
            org_id: team.org.id,
            job_type: "*".into(),
            priority: "*".into(),
            acknowledge_within_seconds: 1,
            resolve_within_seconds: 24 * 3600,
            business_hours: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let mut ana = Device::new(server.store(), &ana_user).await;
    let mut ben = Device::new(server.store(), &ben_user).await;
    ana.settle(&server).await;
    ben.settle(&server).await;
    assert!(
        ben.replica.job(job).is_err(),
        "ben does not hold ana's job yet"
    );

    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .env("FIELDSYNC_URL", &server.url)
        .env("BOARD_USER", &team.dispatcher.name)
        .env("BOARD_PASSWORD", fieldsync_e2e::PASSWORD)
        .env("JOB_ID", job.to_string())
        .env("ANA", &ana_user.name)
        .env("BEN", &ben_user.name)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(path) = std::env::var("BOARD_SCREENSHOT") {
        cmd.env("SCREENSHOT", path);
    }
    let mut child = cmd
        .spawn()
        .expect("node runs (Node.js is needed for the browser tests)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut next_line = async || -> Option<String> {
        let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("the browser test went quiet for 90 s")
            .unwrap();
        if let Some(l) = &line {
            printed.push(l.clone());
        }
        line
    };
    loop {
        match next_line().await.as_deref() {
            Some("READY") => break,
            Some(_) => {}
            None => panic!(
                "the page failed before it was ready: {}",
                fail(&mut child).await
            ),
        }
    }
    // Ana moves the job on and uses a part; a normal sync, nothing special for the board.
    ana.replica.set_status(job, JobStatus::EnRoute).unwrap();
    ana.replica
        .add_part(
            job,
            NewPartLine {
                sku: "BELT-A42".into(),
                description: "belt".into(),
                qty: 1.0,
                unit: Some("ea".into()),
                source: None,
            },
        )
        .unwrap();
    ana.settle(&server).await;
    loop {
        match next_line().await.as_deref() {
            Some("ASSIGNED") => break,
            Some(_) => {}
            None => panic!("the page failed: {}", fail(&mut child).await),
        }
    }
    // The board's reassignment reaches Ben's device, with the new time.
    ben.settle(&server).await;
    let view = ben.replica.job(job).expect("ben's device holds the job");
    assert_eq!(view.assignees, vec![ben_user.name.clone()]);
    let start = view.schedule.expect("rescheduled").start;
    assert_eq!(
        start
            .with_timezone(&chrono::Local)
            .format("%H:%M")
            .to_string(),
        "23:30"
    );
    let mut rest = Vec::new();
    while let Some(l) = next_line().await {
        rest.push(l);
    }
    let status = child.wait().await.unwrap();
    assert!(
        status.success() && rest.iter().any(|l| l == "board page: ok"),
        "the page failed in Chromium: {printed:?} {}",
        fail(&mut child).await
    );
}

async fn fail(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncReadExt;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err).await;
    }
    err
}

/// The event stream is for the org's readers only, and answers with the rows' position first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_refuses_strangers_and_technicians() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let url = format!("{}/api/v1/board/events", server.url);
    let (status, body) = api("GET", url.clone(), None, None).await;
    assert_eq!(status, 401, "{body}");
    let tech = access_token(server.store(), &team.techs[0], None).await;
    let (status, body) = api("GET", url.clone(), Some(tech), None).await;
    assert_eq!(status, 403, "{body}");
    // A dispatcher gets a stream whose first event is `changed`.
    let token = access_token(server.store(), &team.dispatcher, None).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        format!(
            "GET /api/v1/board/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("event: changed") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an event within 5 s")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
}
