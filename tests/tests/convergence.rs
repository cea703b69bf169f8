//! Two devices and a dispatcher change the same job while the devices are offline; the devices
//! reconnect in random orders; everything converges and no edit is lost. On SQLite and Postgres.

use fieldsync_e2e::{
    Backend, Device, ServerHome, Team, TestServer, assert_device_matches_server, seed,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use schemas::JobStatus;
use schemas::parts::NewPartLine;

async fn offline_edits_converge(backend: Backend) {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let (ana, ben) = (&team.techs[0], &team.techs[1]);
    let shared = team
        .job(&server, "Chiller overhaul", "hvac_maintenance", &[ana, ben])
        .await;
    let solo = team.job(&server, "Filter swap", "general", &[ana]).await;

    let mut a = Device::new(server.store(), ana).await;
    let mut b = Device::new(server.store(), ben).await;
    a.settle(&server).await;
    b.settle(&server).await;
    assert_eq!(a.replica.documents().unwrap().len(), 6);
    assert_eq!(
        b.replica.documents().unwrap().len(),
        3,
        "ben holds only his job"
    );

    // Offline: both technicians and the dispatcher change the shared job.
    a.replica.set_status(shared, JobStatus::EnRoute).unwrap();
    a.replica
        .set_check_str(shared, "filter_replaced", "pass")
        .unwrap();
    let a_line = a
        .replica
        .add_part(
            shared,
            NewPartLine {
                sku: "FLT-A".into(),
                qty: 2.0,
                ..Default::default()
            },
        )
        .unwrap();
    a.replica
        .set_notes(shared, "roof access via stairwell B")
        .unwrap();
    a.replica
        .set_check_str(solo, "arrived_on_site", "pass")
        .unwrap();
    let b_line = b
        .replica
        .add_part(
            shared,
            NewPartLine {
                sku: "BELT-B".into(),
                qty: 1.0,
                ..Default::default()
            },
        )
        .unwrap();
    b.replica
        .set_check_str(shared, "refrigerant_pressure", "118")
        .unwrap();
    let meta = server.store().document(shared).await.unwrap().unwrap();
    sync_server::jobs::edit_doc(&server.app, &meta, "dispatcher edit", |d| {
        schemas::job::set_priority(d, schemas::Priority::Urgent)?;
        Ok(())
    })
    .await
    .unwrap();

    // Reconnect in a random order, several rounds.
    let mut order = vec![0, 1, 0, 1, 0, 1];
    order.shuffle(&mut rng);
    for who in order {
        let d = if who == 0 { &mut a } else { &mut b };
        if rng.random_bool(0.8) {
            d.sync(&server).await.unwrap();
        }
    }
    a.settle(&server).await;
    b.settle(&server).await;
    a.settle(&server).await;

    for d in [&mut a, &mut b] {
        let view = d.replica.job(shared).unwrap();
        let skus: Vec<&str> = view.parts.iter().map(|l| l.sku.as_str()).collect();
        assert!(
            skus.contains(&"FLT-A") && skus.contains(&"BELT-B"),
            "seed {seed}: {skus:?}"
        );
        assert!(
            view.parts.iter().any(|l| l.id == a_line) && view.parts.iter().any(|l| l.id == b_line)
        );
        assert_eq!(view.priority, schemas::Priority::Urgent, "seed {seed}");
        assert_eq!(view.status, JobStatus::EnRoute);
        assert_eq!(view.notes, "roof access via stairwell B");
        let value = |id: &str| {
            view.checklist
                .items
                .iter()
                .find(|i| i.id == id)
                .unwrap()
                .value
                .clone()
        };
        assert!(value("filter_replaced").is_some() && value("refrigerant_pressure").is_some());
        assert!(d.replica.unacked().unwrap().is_empty());
        assert_device_matches_server(d, &server).await;
    }
    assert_eq!(
        a.docs_json()
            .into_iter()
            .filter(|(id, _)| b.replica.has_document(*id).unwrap())
            .collect::<Vec<_>>(),
        b.docs_json()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_converge_on_sqlite() {
    offline_edits_converge(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_converge_on_postgres() {
    offline_edits_converge(Backend::Postgres).await;
}

/// A change from one device reaches another connected device and a dispatcher connection
/// without polling; assigning a job sends it live; unassigning uploads pending changes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_fan_out_and_assignment_changes() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let (ana, ben) = (&team.techs[0], &team.techs[1]);
    let job = team.job(&server, "Shared", "general", &[ana, ben]).await;
    let mut a = Device::new(server.store(), ana).await;
    let mut b = Device::new(server.store(), ben).await;
    a.settle(&server).await;
    b.settle(&server).await;

    // ben stays connected; ana's edit must reach him while he waits.
    let url = server.url.clone();
    let token = b.token.clone();
    let mut b_replica = std::mem::replace(
        &mut b.replica,
        client_core::Replica::open(tempfile::tempdir().unwrap().keep()).unwrap(),
    );
    let waiter = tokio::spawn(async move {
        let stats = client_core::sync::sync_until(
            &mut b_replica,
            &url,
            &token,
            std::time::Duration::from_secs(20),
            |r| {
                r.job(job)
                    .map(|v| v.parts.iter().any(|l| l.sku == "LIVE-1"))
                    .unwrap_or(false)
            },
        )
        .await;
        (b_replica, stats)
    });
    // A dispatcher connection sees it too.
    let dispatch = fieldsync_e2e::access_token(server.store(), &team.dispatcher, None).await;
    let mut board = fieldsync_test_support::raw::connect(&server.url, Some(&dispatch))
        .await
        .unwrap();
    board.hello().await;
    board.round_trip(1).await;
    while server.app.hub.connection_count() < 2 {
        tokio::task::yield_now().await;
    }
    a.replica
        .add_part(
            job,
            NewPartLine {
                sku: "LIVE-1".into(),
                qty: 1.0,
                ..Default::default()
            },
        )
        .unwrap();
    a.sync(&server).await.unwrap();
    let (replica, stats) = waiter.await.unwrap();
    b.replica = replica;
    stats.expect("ben received ana's part while connected");
    let parts_doc = server
        .job_docs(job)
        .await
        .into_iter()
        .find(|d| d.kind == "parts")
        .unwrap()
        .id;
    let mut pushed = false;
    for _ in 0..20 {
        if let fieldsync_test_support::raw::Received::Msg(schemas::wire::ServerMsg::Sync { docs }) =
            board.recv().await
            && docs.iter().any(|d| d.doc == parts_doc)
        {
            pushed = true;
            break;
        }
    }
    assert!(pushed, "the dispatcher connection got the change");

    // Unassign ben while he has an unsent edit: it is uploaded first, then the job leaves his device.
    b.replica.set_notes(job, "ben was here").unwrap();
    let token = fieldsync_e2e::access_token(server.store(), &team.dispatcher, None).await;
    let url = format!("{}/api/v1/jobs/{job}/unassign", server.url);
    let ben_name = ben.name.clone();
    let status = tokio::task::spawn_blocking(move || {
        let client = ureq_agent();
        client
            .post(&url)
            .header("authorization", &format!("Bearer {token}"))
            .send_json(serde_json::json!({"user": ben_name}))
            .map(|r| r.status().as_u16())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status, 200);
    let stats = b.sync(&server).await.unwrap();
    assert_eq!(stats.removed, 3, "{stats:?}");
    assert!(b.replica.documents().unwrap().is_empty());
    a.settle(&server).await;
    assert_eq!(
        a.replica.job(job).unwrap().notes,
        "ben was here",
        "ben's last edit survived the unassignment"
    );
    assert_eq!(
        a.replica.job(job).unwrap().assignees,
        std::slice::from_ref(&ana.name)
    );

    // Assigning sends the job back to his device.
    let token = fieldsync_e2e::access_token(server.store(), &team.dispatcher, None).await;
    let url = format!("{}/api/v1/jobs/{job}/assign", server.url);
    let ben_name = ben.name.clone();
    tokio::task::spawn_blocking(move || {
        ureq_agent()
            .post(&url)
            .header("authorization", &format!("Bearer {token}"))
            .send_json(serde_json::json!({"user": ben_name}))
            .unwrap();
    })
    .await
    .unwrap();
    b.settle(&server).await;
    assert_eq!(b.replica.documents().unwrap().len(), 3);
    assert_device_matches_server(&mut b, &server).await;
}

fn ureq_agent() -> ureq::Agent {
    ureq::Agent::new_with_defaults()
}
