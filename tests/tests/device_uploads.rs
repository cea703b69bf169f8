//! The device's upload queue against a real server (tus endpoint, local blob store): a photo
//! taken offline is queued with its document, sent after the document syncs, resumed from the
//! server's offset after the server dies mid-upload (at most one chunk sent twice), not sent at
//! all when the org already holds it, and a refusal reaches the device with the server's reason.

use std::sync::mpsc;

use client_core::sync::upload::{UploadEvent, UploadSummary, upload_pending};
use client_core::uploads::{BlobKind, UploadState};
use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer};
use rand::SeedableRng;

const CHUNK: usize = 64 * 1024;

/// A JPEG of noise (so it does not compress much): a few hundred KiB, several chunks.
fn noisy_jpeg(seed: u64) -> Vec<u8> {
    fieldsync_e2e::noisy_jpeg(&mut rand::rngs::StdRng::seed_from_u64(seed), 480, 360)
}

/// A TCP proxy to `target` on a port of its own; aborting the handle cuts every connection.
async fn proxy(target: &str) -> (String, tokio::task::JoinHandle<()>) {
    let target = target.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        // Dropped with this task: every connection it carries is aborted too.
        let mut links = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            links.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (url, task)
}

/// Run the device's upload pass on a blocking thread (the tus client is blocking HTTP).
async fn upload(
    dir: std::path::PathBuf,
    server: String,
    token: String,
    mut on_event: impl FnMut(&UploadEvent) + Send + 'static,
) -> (client_core::Result<UploadSummary>, Vec<UploadEvent>) {
    tokio::task::spawn_blocking(move || {
        let r = client_core::Replica::open(&dir).unwrap();
        let mut events = Vec::new();
        let result = upload_pending(&r, &server, &token, CHUNK, &mut |e| {
            events.push(e.clone());
            on_event(e);
        });
        (result, events)
    })
    .await
    .unwrap()
}

/// An upload pass of `device` against `server`, straight through.
async fn upload_now(
    device: &Device,
    server: &TestServer,
) -> (client_core::Result<UploadSummary>, Vec<UploadEvent>) {
    upload(
        device.dir.path().to_path_buf(),
        server.url.clone(),
        device.token.clone(),
        |_| {},
    )
    .await
}

async fn photo_record(server: &TestServer, token: &str, photo: uuid::Uuid) -> serde_json::Value {
    let url = format!("{}/api/v1/photos/{photo}", server.url);
    let token = token.to_string();
    tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .body_mut()
            .read_json::<serde_json::Value>()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_taken_offline_uploads_after_sync_and_resumes_after_the_server_dies() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let mut server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let ana_user = team.techs[0].clone();
    let job = team.job(&server, "Boiler", "general", &[&ana_user]).await;
    let mut ana = Device::new(server.store(), &ana_user).await;
    ana.settle(&server).await;

    // Offline: the photo is taken, and queued in the same write as its document.
    let bytes = noisy_jpeg(7);
    assert!(bytes.len() > 4 * CHUNK, "{} bytes", bytes.len());
    let file = ana.dir.path().join("IMG_0001.jpg");
    std::fs::write(&file, &bytes).unwrap();
    let photo = ana
        .replica
        .attach_photo(job, &file, None, "boiler")
        .unwrap();
    let queued = ana.replica.uploads_waiting().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].kind, queued[0].state, queued[0].size),
        (BlobKind::Photo, UploadState::Pending, bytes.len() as u64)
    );

    // Back online: the document first, then the bytes; after two chunks the network drops and
    // the server dies.
    ana.settle(&server).await;
    let (link, cut) = proxy(&server.url).await;
    let (reached, proceed) = (mpsc::channel::<()>(), mpsc::channel::<()>());
    let (tx_reached, rx_reached) = reached;
    let (tx_proceed, rx_proceed) = proceed;
    let mut progress = 0;
    let pass = tokio::spawn(upload(
        ana.dir.path().to_path_buf(),
        link,
        ana.token.clone(),
        move |e| {
            if let UploadEvent::Progress { .. } = e {
                progress += 1;
                if progress == 2 {
                    tx_reached.send(()).unwrap();
                    rx_proceed.recv().unwrap();
                }
            }
        },
    ));
    tokio::task::spawn_blocking(move || rx_reached.recv().unwrap())
        .await
        .unwrap();
    cut.abort();
    let _ = cut.await;
    let url_before = server.url.clone();
    let restarted = TestServer::start(&home).await;
    std::mem::replace(&mut server, restarted).crash();
    tx_proceed.send(()).unwrap();
    let (result, _) = pass.await.unwrap();
    let err = result.expect_err("the server went away mid-upload");
    assert!(err.is_retryable(), "{err}");
    let cut = ana.replica.upload(&queued[0].sha256).unwrap().unwrap();
    assert_eq!(cut.state, UploadState::Pending);
    assert_eq!(
        cut.sent,
        2 * CHUNK as u64,
        "what the server confirmed is recorded"
    );
    assert!(cut.url.is_some() && cut.attempts == 1 && cut.error.is_some());
    assert_ne!(url_before, server.url);

    // The next pass asks the restarted server where it stands and sends only the rest.
    let (result, events) = upload_now(&ana, &server).await;
    let summary = result.unwrap();
    assert!(
        matches!(events.first(), Some(UploadEvent::Started { from, .. }) if *from == 2 * CHUNK as u64),
        "{events:?}"
    );
    assert_eq!(summary.done, 1);
    assert_eq!(summary.bytes_sent, (bytes.len() - 2 * CHUNK) as u64);
    assert!(ana.replica.uploads_waiting().unwrap().is_empty());
    let record = photo_record(&server, &ana.token, photo.id).await;
    assert_eq!(record["uploaded"], true, "{record}");
    assert_eq!(record["sha256"], photo.sha256);
    assert_eq!(record["size"], bytes.len() as u64);

    // The same picture on ben's device (another job): the org holds it, nothing is sent.
    let ben_user = team.techs[1].clone();
    let job2 = team.job(&server, "Chiller", "general", &[&ben_user]).await;
    let mut ben = Device::new(server.store(), &ben_user).await;
    ben.settle(&server).await;
    let file = ben.dir.path().join("copy.jpg");
    std::fs::write(&file, &bytes).unwrap();
    ben.replica.attach_photo(job2, &file, None, "same").unwrap();
    ben.settle(&server).await;
    let (result, events) = upload_now(&ben, &server).await;
    let summary = result.unwrap();
    assert_eq!(
        (summary.done, summary.skipped, summary.bytes_sent),
        (1, 1, 0)
    );
    assert!(matches!(
        events.as_slice(),
        [UploadEvent::Done { skipped: true, .. }]
    ));

    // While the job is on ana's device its photo stays there; once the dispatcher unassigns it
    // and the device releases the job, the confirmed blob is removed to free the space.
    let blob = client_core::blobs::blob_path(ana.dir.path(), &photo.sha256);
    ana.settle(&server).await;
    assert!(blob.exists());
    let dispatcher = fieldsync_e2e::access_token(server.store(), &team.dispatcher, None).await;
    let (status, body) = fieldsync_e2e::api(
        "POST",
        format!("{}/api/v1/jobs/{job}/unassign", server.url),
        Some(dispatcher),
        Some(serde_json::json!({"user": ana_user.name})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    ana.settle(&server).await;
    assert!(ana.replica.photo(photo.id).unwrap().is_none());
    assert!(
        !blob.exists(),
        "the released job's confirmed photo is removed"
    );
    assert!(ana.replica.upload(&photo.sha256).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_says_why_on_the_device_and_the_queue_goes_on() {
    let mut home = ServerHome::new(Backend::Sqlite).await;
    // Uploads over 100 KiB are refused here.
    home.config.uploads.max_bytes = 100 * 1024;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana_user = team.techs[0].clone();
    let job = team.job(&server, "Boiler", "general", &[&ana_user]).await;
    let mut ana = Device::new(server.store(), &ana_user).await;
    ana.settle(&server).await;
    let big = noisy_jpeg(1);
    let small = {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(32, 24, image::Rgb([90, 120, 150]))
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    for (name, bytes) in [("big.jpg", &big), ("small.png", &small)] {
        let file = ana.dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        ana.replica.attach_photo(job, &file, None, name).unwrap();
    }
    ana.settle(&server).await;
    let (result, events) = upload_now(&ana, &server).await;
    let summary = result.unwrap();
    assert_eq!((summary.done, summary.refused), (1, 1), "{events:?}");
    let waiting = ana.replica.uploads_waiting().unwrap();
    assert_eq!(waiting.len(), 1, "only the refused one is left");
    assert_eq!(waiting[0].state, UploadState::Refused);
    let reason = waiting[0].error.clone().unwrap_or_default();
    assert!(reason.contains("HTTP 413"), "{reason}");
    // A refused upload is not tried again.
    let (result, events) = upload_now(&ana, &server).await;
    assert_eq!(result.unwrap(), UploadSummary::default());
    assert!(events.is_empty());
}
