//! The back office's review against a real server: a technician's photo and signature, uploaded
//! from the device, listed with the summary check; a review is refused to every other role, to
//! other orgs and without a reason for a rejection; an accepted review survives the server being
//! killed and reaches the technician's device, whose `job show` lists it. (The page itself is
//! driven in Chromium by `review_page.rs`.)

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token, api};
use schemas::JobStatus;
use schemas::photo::ReviewState;
use sync_server::store::{Role, User};
use uuid::Uuid;

async fn back_office(server: &TestServer, team: &Team) -> User {
    let hash = sync_server::auth::hash_password(fieldsync_e2e::PASSWORD);
    server
        .store()
        .create_user(
            team.org.id,
            &format!("office-{}", team.org.id.simple()),
            Role::BackOffice,
            &hash,
        )
        .await
        .unwrap()
}

/// A signature-like PNG.
fn png(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    image::RgbImage::from_fn(60, 20, |x, y| {
        image::Rgb(if (x + y) % 7 == 0 {
            [0, 0, 0]
        } else {
            [255; 3]
        })
    })
    .save(&path)
    .unwrap();
    path
}

/// Ana works `job` to sign-off on her device: a photo (JPEG with EXIF time and place) on the
/// checklist's photo item, the customer's signature; then syncs and uploads both blobs.
async fn work_to_signoff(ana: &mut Device, server: &TestServer, job: Uuid) -> Uuid {
    ana.settle(server).await;
    let r = &mut ana.replica;
    r.set_status(job, JobStatus::EnRoute).unwrap();
    r.set_status(job, JobStatus::InProgress).unwrap();
    r.set_check_str(job, "arrived_on_site", "pass").unwrap();
    r.set_check_str(job, "work_performed", "replaced the igniter")
        .unwrap();
    let file = ana.dir.path().join("IMG_0042.jpg");
    std::fs::write(&file, fieldsync_e2e::jpeg_with_exif(640, 480)).unwrap();
    let photo = r
        .attach_photo(job, &file, Some("after_photo"), "new igniter")
        .unwrap();
    let sig = png(ana.dir.path(), "signature.png");
    r.sign_off(job, "Dana Customer", &sig).unwrap();
    ana.settle(server).await;
    let sent = ana.upload(server).await;
    assert_eq!((sent.done, sent.refused), (2, 0), "{sent:?}");
    photo.id
}

async fn review(
    server: &TestServer,
    token: Option<&str>,
    photo: Uuid,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    api(
        "POST",
        format!("{}/api/v1/photos/{photo}/review", server.url),
        token.map(str::to_string),
        Some(body),
    )
    .await
}

async fn a_review_is_checked_stored_and_reaches_the_device(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let mut server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let office = back_office(&server, &team).await;
    let ana_user = team.techs[0].clone();
    let job = team.job(&server, "Boiler", "general", &[&ana_user]).await;
    let mut ana = Device::new(server.store(), &ana_user).await;
    let photo = work_to_signoff(&mut ana, &server, job).await;
    let office_token = access_token(server.store(), &office, None).await;

    // The list: the job with its photo waiting, and the sign-off still matching its summary.
    let (status, list) = api(
        "GET",
        format!("{}/api/v1/review/jobs", server.url),
        Some(office_token.clone()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == job.to_string())
        .unwrap_or_else(|| panic!("job missing from {list}"));
    assert_eq!(entry["photos"][0]["id"], photo.to_string());
    assert_eq!(entry["photos"][0]["review"], serde_json::Value::Null);
    assert_eq!(entry["signoff"]["signer_name"], "Dana Customer");
    assert_eq!(entry["signoff_matches"], true);

    // The signature image is served to the back office, byte for byte what the device holds.
    let sha = entry["signoff"]["signature_sha256"].as_str().unwrap();
    let on_device = std::fs::read(client_core::blobs::blob_path(ana.dir.path(), sha)).unwrap();
    let url = format!("{}/api/v1/jobs/{job}/signature", server.url);
    let token = office_token.clone();
    let served = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_vec()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(served, on_device);

    // Refusals, each with its code, and nothing written.
    let ana_token = ana.token.clone();
    let dispatcher_token = access_token(server.store(), &team.dispatcher, None).await;
    let approve = serde_json::json!({"state": "approved"});
    for (who, token, want, code) in [
        ("nobody", None, 401, "unauthorized"),
        ("the technician", Some(ana_token.as_str()), 403, "forbidden"),
        (
            "the dispatcher",
            Some(dispatcher_token.as_str()),
            403,
            "forbidden",
        ),
    ] {
        let (status, body) = review(&server, token, photo, approve.clone()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (want, Some(code)),
            "{who}: {body}"
        );
    }
    let (status, body) = review(
        &server,
        Some(&office_token),
        photo,
        serde_json::json!({"state": "rejected", "note": "  "}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("note"), "{body}");
    let (status, body) = review(
        &server,
        Some(&office_token),
        photo,
        serde_json::json!({"state": "maybe"}),
    )
    .await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body["error"].is_string(), "{body}");
    for id in [Uuid::now_v7(), job] {
        let (status, body) = review(&server, Some(&office_token), id, approve.clone()).await;
        assert_eq!(status, 404, "{id}: {body}");
    }
    let other = Team::create(server.store(), &[]).await;
    let stranger = back_office(&server, &other).await;
    let stranger_token = access_token(server.store(), &stranger, None).await;
    let (status, body) = review(&server, Some(&stranger_token), photo, approve.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("doc-unavailable")),
        "{body}"
    );
    let (status, list) = api(
        "GET",
        format!("{}/api/v1/review/jobs", server.url),
        Some(stranger_token.clone()),
        None,
    )
    .await;
    assert_eq!(
        (status, list.as_array().map(Vec::len)),
        (200, Some(0)),
        "{list}"
    );
    // The signature: not to another org, none on a job without a sign-off, not for a photo id.
    let other_job = team.job(&server, "Unsigned", "general", &[&ana_user]).await;
    for (token, id, code) in [
        (stranger_token.clone(), job, "doc-unavailable"),
        (office_token.clone(), other_job, "not-found"),
        (office_token.clone(), photo, "not-found"),
    ] {
        let (status, body) = api(
            "GET",
            format!("{}/api/v1/jobs/{id}/signature", server.url),
            Some(token),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some(code)),
            "{id}: {body}"
        );
    }
    // The list is for the org-wide roles; a note has a bounded length.
    let (status, body) = api(
        "GET",
        format!("{}/api/v1/review/jobs", server.url),
        Some(ana_token.clone()),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body) = review(
        &server,
        Some(&office_token),
        photo,
        serde_json::json!({"state": "rejected", "note": "x".repeat(10_001)}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("note"), "{body}");
    ana.settle(&server).await;
    assert_eq!(ana.replica.photo(photo).unwrap().unwrap().review, None);

    // A rejection, answered once it is stored: the server is killed right after and the device
    // still gets it from the restarted one.
    let (status, body) = review(
        &server,
        Some(&office_token),
        photo,
        serde_json::json!({"state": "rejected", "note": "blurry, please retake"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "rejected");
    assert_eq!(body["by"], office.name);
    server.crash();
    server = TestServer::start(&home).await;
    ana.settle(&server).await;
    let got = ana.replica.photo(photo).unwrap().unwrap().review.unwrap();
    assert_eq!(
        (got.state, got.note.as_str(), got.by.as_str()),
        (
            ReviewState::Rejected,
            "blurry, please retake",
            office.name.as_str()
        )
    );
    fieldsync_e2e::assert_device_matches_server(&mut ana, &server).await;

    // The technician's `job show` lists it.
    let shown = std::process::Command::new(fieldsync_test_support::workspace_bin("mobile-shell"))
        .arg("--data-dir")
        .arg(ana.dir.path())
        .args(["job", "show", &job.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.contains(&format!("rejected by {}", office.name))
            && text.contains("blurry, please retake"),
        "{text}"
    );

    // A later review replaces it.
    let (status, _) = review(&server, Some(&office_token), photo, approve).await;
    assert_eq!(status, 200);
    ana.settle(&server).await;
    let got = ana.replica.photo(photo).unwrap().unwrap().review.unwrap();
    assert_eq!(got.state, ReviewState::Approved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_is_checked_stored_and_reaches_the_device_on_sqlite() {
    a_review_is_checked_stored_and_reaches_the_device(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_is_checked_stored_and_reaches_the_device_on_postgres() {
    a_review_is_checked_stored_and_reaches_the_device(Backend::Postgres).await;
}

/// The `/review` page in headless Chromium (`tests/js/review.mjs`, playwright-core driving
/// Debian's chromium; both installed by `scripts/test.sh`): the back office signs in, sees the
/// thumbnail, EXIF place, full-size photo, signature and summary check, and rejects the photo
/// with a comment. The server then holds that review and the device receives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_page_works_in_a_real_browser() {
    let (script, chromium) = fieldsync_e2e::browser_test("review.mjs");

    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let office = back_office(&server, &team).await;
    let ana_user = team.techs[0].clone();
    let job = team.job(&server, "Boiler", "general", &[&ana_user]).await;
    let mut ana = Device::new(server.store(), &ana_user).await;
    let photo = work_to_signoff(&mut ana, &server, job).await;
    // Thumbnails are made off the request path: wait for them so the page shows one.
    let office_token = access_token(server.store(), &office, None).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, record) = api(
            "GET",
            format!("{}/api/v1/photos/{photo}", server.url),
            Some(office_token.clone()),
            None,
        )
        .await;
        if record["thumbnails"]["320"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no thumbnails: {record}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let note = "glare on the label, please retake";
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .env("FIELDSYNC_URL", &server.url)
        .env("REVIEW_USER", &office.name)
        .env("REVIEW_PASSWORD", fieldsync_e2e::PASSWORD)
        .env("JOB_ID", job.to_string())
        .env("PHOTO_ID", photo.to_string())
        .env("REVIEW_NOTE", note)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    if let Ok(path) = std::env::var("REVIEW_SCREENSHOT") {
        cmd.env("SCREENSHOT", path);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("the browser test finished within 2 minutes")
        .expect("node runs (Node.js is needed for the browser tests)");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the page failed in Chromium:\n{printed}"
    );
    assert!(printed.contains("review page: ok"), "{printed}");

    // What the browser did is on the server and reaches the device.
    let meta = server.store().document(photo).await.unwrap().unwrap();
    let doc = server.doc_json(&meta).await;
    assert_eq!(doc["review"]["state"], "rejected");
    assert_eq!(doc["review"]["note"], note);
    ana.settle(&server).await;
    let got = ana.replica.photo(photo).unwrap().unwrap().review.unwrap();
    assert_eq!(
        (got.state, got.note.as_str()),
        (ReviewState::Rejected, note)
    );
}
