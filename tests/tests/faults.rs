//! Correctness under faults. A seeded, replayable randomized run: devices edit offline, sync,
//! get cut off mid-exchange, the server restarts (abruptly), its store fails queries and it swaps
//! its documents for fresh loads of themselves (settling); then everything settles and every
//! replica equals the server with no edit missing. And a real `kill -9` of a server process
//! during sync. A failure prints its seed: rerun with `SEED=…`.

use std::collections::BTreeSet;
use std::time::Duration;

use fieldsync_e2e::{
    Backend, Device, ServerHome, Team, TestServer, add_user, assert_device_matches_server,
    http_login, seed,
};
use fieldsync_test_support::ServerProcess;
use rand::{Rng, SeedableRng};
use schemas::JobStatus;
use schemas::parts::NewPartLine;

async fn randomized(backend: Backend) {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let home = ServerHome::new(backend).await;
    let mut server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben", "chloe"]).await;
    let techs: Vec<&sync_server::store::User> = team.techs.iter().collect();
    let shared = team
        .job(&server, "Shared", "hvac_maintenance", &techs)
        .await;
    let mut jobs = vec![vec![shared]; 3];
    for (i, t) in techs.iter().enumerate() {
        jobs[i].push(
            team.job(&server, &format!("Solo {i}"), "general", &[t])
                .await,
        );
    }
    let mut devices = Vec::new();
    for t in &techs {
        let mut d = Device::new(server.store(), t).await;
        d.settle(&server).await;
        devices.push(d);
    }

    let mut skus: Vec<(usize, uuid::Uuid, String)> = Vec::new();
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let (mut restarts, mut faults, mut cuts, mut settled) = (0, 0, 0, 0);
    for step in 0..120 {
        let who = rng.random_range(0..devices.len());
        match rng.random_range(0..100) {
            0..40 => {
                let job = jobs[who][rng.random_range(0..jobs[who].len())];
                let r = &mut devices[who].replica;
                match rng.random_range(0..4) {
                    0 | 1 => {
                        let sku = format!("S{step}");
                        // Refused (and nothing changes) once the job is closed or signed off.
                        if r.add_part(
                            job,
                            NewPartLine {
                                sku: sku.clone(),
                                qty: 1.0,
                                ..Default::default()
                            },
                        )
                        .is_ok()
                        {
                            skus.push((who, job, sku));
                        }
                    }
                    2 => r.set_notes(job, &format!("note {step} by {who}")).unwrap(),
                    _ => {
                        // May be refused by the workflow; then it changes nothing.
                        let _ = r.set_status(
                            job,
                            JobStatus::ALL[rng.random_range(0..JobStatus::ALL.len())],
                        );
                    }
                }
            }
            40..65 => {
                let _ = devices[who].sync(&server).await;
            }
            65..73 => {
                faults += 1;
                server.faults.fail_next(rng.random_range(1..4));
                let _ = devices[who].sync(&server).await;
            }
            73..80 => {
                // Cut the connection somewhere in the middle of the exchange.
                cuts += 1;
                let d = &mut devices[who];
                let limit = Duration::from_millis(rng.random_range(1..15));
                let _ = client_core::sync::sync_once(&mut d.replica, &server.url, &d.token, limit)
                    .await;
            }
            80..85 => {
                restarts += 1;
                server.crash();
                server = TestServer::start(&home).await;
            }
            85..88 => {
                // The server swaps every document that took changes in for a fresh load of
                // itself, between whatever the devices do.
                settled += server.app.docs.settle_quiet(Duration::ZERO).await;
            }
            _ => {
                let meta = server.store().document(shared).await.unwrap().unwrap();
                let text = format!("dispatcher note {step}");
                let _ = sync_server::jobs::edit_doc(&server.app, &meta, "dispatcher edit", |d| {
                    schemas::job::set_priority(d, schemas::Priority::ALL[step % 4])?;
                    schemas::job::set_notes(d, &text)?;
                    Ok(())
                })
                .await;
            }
        }
        // Whatever a device no longer lists as unacknowledged, the server has acknowledged.
        for (i, d) in devices.iter().enumerate() {
            if d.replica.unacked().unwrap().is_empty() {
                acknowledged.extend(
                    skus.iter()
                        .filter(|(w, _, _)| *w == i)
                        .map(|(_, _, s)| s.clone()),
                );
            }
        }
    }
    println!(
        "seed {seed}: {} parts, {restarts} restarts, {faults} store faults, {cuts} cuts, {settled} documents settled",
        skus.len()
    );

    // Quiet: no more faults; everyone syncs until nothing moves (from settled documents).
    server.faults.fail_next(0);
    server.app.docs.settle_quiet(Duration::ZERO).await;
    for _ in 0..3 {
        for d in devices.iter_mut() {
            d.settle(&server).await;
        }
    }
    for d in devices.iter_mut() {
        assert!(d.replica.unacked().unwrap().is_empty(), "seed {seed}");
        assert_device_matches_server(d, &server).await;
    }
    // Every part added anywhere (acknowledged ones included) is on the server and on every
    // device that holds the job.
    let mut on_server = BTreeSet::new();
    for job in jobs.iter().flatten().collect::<BTreeSet<_>>() {
        let view = sync_server::jobs::job_view(&server.app, team.org.id, *job)
            .await
            .unwrap();
        on_server.extend(view.parts.iter().map(|l| l.sku.clone()));
        for (i, d) in devices.iter_mut().enumerate() {
            if jobs[i].contains(job) {
                assert_eq!(
                    d.replica.job(*job).unwrap(),
                    view,
                    "seed {seed}: device {i} differs on job {job}"
                );
            }
        }
    }
    for (_, _, sku) in &skus {
        assert!(on_server.contains(sku), "seed {seed}: part {sku} was lost");
    }
    assert!(acknowledged.is_subset(&on_server), "seed {seed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_on_sqlite() {
    randomized(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_on_postgres() {
    randomized(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_during_sync_loses_no_acknowledged_edit() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = tempfile::tempdir().unwrap();
    let env = [("FIELDSYNC_DATA_DIR", data.path().to_str().unwrap())];
    add_user(&env, "acme", "ana", "technician");
    add_user(&env, "acme", "dana", "dispatcher");
    let device_dir = tempfile::tempdir().unwrap();
    let mut replica = client_core::Replica::open(device_dir.path()).unwrap();

    let mut server = ServerProcess::spawn(&env);
    let login_url = server.url.clone();
    replica = tokio::task::spawn_blocking(move || {
        client_core::sync::account::login(
            &mut replica,
            &login_url,
            "ana",
            fieldsync_e2e::PASSWORD,
            "phone",
        )
        .unwrap();
        replica
    })
    .await
    .unwrap();
    // The job is made on the device, offline, and registered by its first sync.
    let job = replica
        .create_job(
            schemas::job::NewJob {
                title: "Made on site".into(),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .id;
    let token = replica.meta("access_token").unwrap().unwrap();

    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let mut added: Vec<String> = Vec::new();
    let mut n = 0;
    for round in 0..6 {
        let delay = Duration::from_millis(rng.random_range(50..400));
        let pid = server.child.id();
        let killer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // SIGKILL: no chance to flush or say goodbye.
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        });
        loop {
            n += 1;
            let sku = format!("K{n}");
            replica
                .add_part(
                    job,
                    NewPartLine {
                        sku: sku.clone(),
                        qty: 1.0,
                        ..Default::default()
                    },
                )
                .unwrap();
            added.push(sku);
            let result = client_core::sync::sync_once(
                &mut replica,
                &server.url,
                &token,
                Duration::from_secs(5),
            )
            .await;
            if replica.unacked().unwrap().is_empty() {
                acknowledged.extend(added.iter().cloned());
            }
            if result.is_err() {
                break;
            }
        }
        killer.await.unwrap();
        server.kill_dash_nine();
        println!(
            "round {round}: {} parts added, {} acknowledged",
            added.len(),
            acknowledged.len()
        );
        server = ServerProcess::spawn(&env);
    }

    // Back up for good: the device settles, and the dispatcher sees every acknowledged part.
    for _ in 0..5 {
        client_core::sync::sync_once(&mut replica, &server.url, &token, Duration::from_secs(10))
            .await
            .unwrap();
        if replica.unacked().unwrap().is_empty() {
            break;
        }
    }
    assert!(replica.unacked().unwrap().is_empty(), "seed {seed}");
    let url = server.url.clone();
    let view: serde_json::Value = tokio::task::spawn_blocking(move || {
        let bearer = format!("Bearer {}", http_login(&url, "dana"));
        ureq::get(format!("{url}/api/v1/jobs/{job}"))
            .header("authorization", &bearer)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    })
    .await
    .unwrap();
    let on_server: BTreeSet<String> = view["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sku"].as_str().unwrap().to_string())
        .collect();
    assert!(
        acknowledged.len() > 1,
        "seed {seed}: the device never got an ack: {acknowledged:?}"
    );
    for sku in &acknowledged {
        assert!(
            on_server.contains(sku),
            "seed {seed}: acknowledged part {sku} lost by kill -9"
        );
    }
    assert_eq!(
        on_server,
        added.iter().cloned().collect(),
        "seed {seed}: after settling every part is there"
    );
}
