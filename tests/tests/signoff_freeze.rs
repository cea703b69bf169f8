//! After the customer signs off, the checklist and parts are frozen. Ben was offline when Ana
//! had the customer sign: his edits to a checklist item and the parts (a new line, a changed
//! quantity, a removed line) reach the server afterwards, in a seeded order against Ana's. They
//! stay in the documents' history, are put back by a server change, are recorded as a flagged
//! `changed_after_signoff` row with his values, and every replica ends on exactly what the
//! customer signed. On both stores.

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token, api};
use rand::{Rng, SeedableRng};
use schemas::JobStatus;
use schemas::parts::NewPartLine;

fn png(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("signature.png");
    image::RgbImage::from_pixel(40, 20, image::Rgb([0, 0, 0]))
        .save(&path)
        .unwrap();
    path
}

fn line(sku: &str, qty: f64) -> NewPartLine {
    NewPartLine {
        sku: sku.into(),
        description: "used".into(),
        qty,
        unit: Some("ea".into()),
        source: None,
    }
}

async fn edits_after_signoff_are_put_back(backend: Backend) {
    let seed = fieldsync_e2e::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let (ana_user, ben_user) = (team.techs[0].clone(), team.techs[1].clone());
    let job = team
        .job(&server, "Rooftop unit", "general", &[&ana_user, &ben_user])
        .await;
    let mut ana = Device::new(server.store(), &ana_user).await;
    let mut ben = Device::new(server.store(), &ben_user).await;

    // Ana works the job: two part lines, the checklist, in progress; both devices see it.
    ana.settle(&server).await;
    let keep = ana.replica.add_part(job, line("BELT-A42", 2.0)).unwrap();
    let drop = ana.replica.add_part(job, line("FUSE-15A", 1.0)).unwrap();
    ana.replica.set_status(job, JobStatus::EnRoute).unwrap();
    ana.replica.set_status(job, JobStatus::InProgress).unwrap();
    ana.replica
        .set_check_str(job, "arrived_on_site", "pass")
        .unwrap();
    ana.replica
        .set_check_str(job, "work_performed", "replaced the belt")
        .unwrap();
    ana.settle(&server).await;
    ben.settle(&server).await;

    // Offline, Ben changes the work; Ana has the customer sign and syncs first.
    ben.replica
        .set_check_str(job, "site_left_clean", "fail")
        .unwrap();
    ben.replica.set_part_qty(job, &keep, 5.0).unwrap();
    ben.replica.remove_part(job, &drop).unwrap();
    ben.replica.add_part(job, line("CAP-35-5UF", 1.0)).unwrap();
    let sig = png(ana.dir.path());
    let signed = ana.replica.sign_off(job, "Dana Customer", &sig).unwrap();
    let signed_view = ana.replica.job(job).unwrap();
    ana.settle(&server).await;
    // Ben reconnects, once or in two rounds with Ana syncing in between.
    ben.sync(&server).await.unwrap();
    if rng.random_bool(0.5) {
        ana.settle(&server).await;
    }
    ben.settle(&server).await;
    ana.settle(&server).await;
    ben.settle(&server).await;

    for d in [&mut ana, &mut ben] {
        fieldsync_e2e::assert_device_matches_server(d, &server).await;
        let view = d.replica.job(job).unwrap();
        assert_eq!(
            view.checklist.items, signed_view.checklist.items,
            "SEED={seed}"
        );
        assert_eq!(view.parts, signed_view.parts, "SEED={seed}");
        assert_eq!(
            schemas::checklist::summary_hash(&view.checklist.items, view.parts.iter()),
            signed.summary_sha256,
            "SEED={seed}"
        );
    }

    // The dispatcher sees the flag, with Ben's values kept in the audit row.
    let token = access_token(server.store(), &team.dispatcher, None).await;
    let (status, body) = api(
        "GET",
        format!("{}/api/v1/jobs/{job}", server.url),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let flags: Vec<&serde_json::Value> = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "changed_after_signoff")
        .collect();
    assert_eq!(
        flags.len(),
        2,
        "one per document (checklist, parts): {body}"
    );
    let text = serde_json::to_string(&flags).unwrap();
    assert!(text.contains("site_left_clean"), "{text}");
    assert!(
        text.contains("CAP-35-5UF"),
        "Ben's new line is in the record: {text}"
    );
    assert!(
        flags
            .iter()
            .all(|f| f["actor_user"] == ben_user.id.to_string()),
        "{text}"
    );
    assert!(
        flags.iter().all(|f| f["message"]
            .as_str()
            .unwrap()
            .contains("after the customer signed")),
        "{text}"
    );

    // Before the sign-off nothing is frozen: Ana's edits then were never flagged.
    assert!(
        !body["flags"].to_string().contains("\"code\":\"repair\""),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_after_signoff_are_put_back_on_sqlite() {
    edits_after_signoff_are_put_back(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_after_signoff_are_put_back_on_postgres() {
    edits_after_signoff_are_put_back(Backend::Postgres).await;
}
