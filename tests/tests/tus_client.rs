//! The tus endpoint with the reference tus client, unchanged (`tests/js/tus-upload.mjs`, run with
//! Node; `scripts/test.sh` installs tus-js-client): a photo the device synced is uploaded by
//! tus-js-client with the device's token, aborted after its first chunk and resumed from its URL
//! (no byte sent twice); a refusal reaches the client with the server's reason. Afterwards the
//! server holds exactly the photo's bytes and the device's own upload pass has nothing to send.

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, api};

const CHUNK: usize = 8 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_tus_client_uploads_resumes_and_reads_refusals() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js/tus-upload.mjs");
    assert!(
        script
            .with_file_name("node_modules")
            .join("tus-js-client")
            .is_dir(),
        "tus-js-client is not installed in tests/js: run scripts/test.sh (npm ci there)"
    );
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana_user = team.techs[0].clone();
    let job = team.job(&server, "Boiler", "general", &[&ana_user]).await;
    let mut ana = Device::new(server.store(), &ana_user).await;
    ana.settle(&server).await;
    let bytes = fieldsync_e2e::jpeg_with_exif(800, 600);
    assert!(bytes.len() > 3 * CHUNK, "{} bytes", bytes.len());
    let file = ana.dir.path().join("IMG_0007.jpg");
    std::fs::write(&file, &bytes).unwrap();
    let photo = ana.replica.attach_photo(job, &file, None, "").unwrap();
    ana.settle(&server).await;

    let out = tokio::process::Command::new("node")
        .arg(&script)
        .env("FIELDSYNC_URL", &server.url)
        .env("TOKEN", &ana.token)
        .env("DOC", photo.id.to_string())
        .env("SHA256", &photo.sha256)
        .env("FILE", &file)
        .env("CHUNK", CHUNK.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (Node.js is needed for this test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tus-js-client failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();

    // Resumed right after the first chunk, and the ranges sent tile the file exactly once.
    assert_eq!(report["resumedFrom"], CHUNK, "{report}");
    let mut at = 0;
    for range in report["sent"].as_array().unwrap() {
        let (from, to) = (range[0].as_u64().unwrap(), range[1].as_u64().unwrap());
        assert_eq!(from, at, "a gap or a byte sent twice: {report}");
        at = to;
    }
    assert_eq!(at, bytes.len() as u64, "{report}");
    assert!(
        report["url"].as_str().unwrap().contains("/api/v1/uploads/"),
        "{report}"
    );

    // The refusal, with its stable code and reason, as the client saw it.
    assert_eq!(report["refusal"]["status"], 403, "{report}");
    let body: serde_json::Value =
        serde_json::from_str(report["refusal"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "blob-not-referenced", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not reference"),
        "{body}"
    );

    // The server holds the photo; the device sends nothing (the org holds that blob).
    let (status, record) = api(
        "GET",
        format!("{}/api/v1/photos/{}", server.url, photo.id),
        Some(ana.token.clone()),
        None,
    )
    .await;
    assert_eq!(
        (status, &record["uploaded"]),
        (200, &serde_json::json!(true)),
        "{record}"
    );
    assert_eq!(record["sha256"], photo.sha256);
    let pass = ana.upload(&server).await;
    assert_eq!(
        (pass.skipped, pass.refused, pass.bytes_sent),
        (1, 0, 0),
        "{pass:?}"
    );
}
