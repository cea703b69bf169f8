//! Edits through the API based on what the dispatcher read: `GET /api/v1/jobs/{id}` gives the
//! job's version in `ETag`; a `PATCH` with `If-Match` of an older version merges a notes edit
//! like a device's (the technician's text written meanwhile stays) and refuses any other field
//! with 412; an `If-Match` that is no version of the job is refused too. On both stores.

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token};
use serde_json::{Value, json};

/// `(status, ETag, body)`.
async fn call(
    method: &'static str,
    url: String,
    token: String,
    if_match: Option<String>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    tokio::task::spawn_blocking(move || {
        let extra: Vec<(&str, &str)> = if_match.iter().map(|m| ("If-Match", m.as_str())).collect();
        let (status, headers, body) =
            fieldsync_e2e::http_json(method, &url, Some(&token), &extra, body);
        let etag = headers
            .into_iter()
            .find(|(k, _)| k == "etag")
            .map(|(_, v)| v);
        (status, etag, body)
    })
    .await
    .unwrap()
}

async fn edits_based_on_an_old_read(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana_user = team.techs[0].clone();
    let job = team.job(&server, "Boiler", "general", &[&ana_user]).await;
    let dispatcher = access_token(server.store(), &team.dispatcher, None).await;
    let url = format!("{}/api/v1/jobs/{job}", server.url);

    // The dispatcher reads the job (with its notes) and writes while ana adds a line offline.
    let (status, first, _) = call(
        "PATCH",
        url.clone(),
        dispatcher.clone(),
        None,
        Some(json!({"notes": "Gate code 4711."})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, read, body) = call("GET", url.clone(), dispatcher.clone(), None, None).await;
    assert_eq!((status, &body["notes"]), (200, &json!("Gate code 4711.")));
    let read = read.expect("an ETag");
    assert_eq!(
        first.as_deref(),
        Some(read.as_str()),
        "PATCH answers the new version"
    );
    let mut ana = Device::new(server.store(), &ana_user).await;
    ana.settle(&server).await;
    ana.replica
        .set_notes(job, "Gate code 4711.\nDog in the yard.")
        .unwrap();
    ana.settle(&server).await;

    // Based on the old read, a notes edit merges: ana's line stays.
    let (status, now, body) = call(
        "PATCH",
        url.clone(),
        dispatcher.clone(),
        Some(read.clone()),
        Some(json!({"notes": "Gate code 4711. Call before arriving."})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let notes = body["notes"].as_str().unwrap();
    assert!(
        notes.contains("Dog in the yard.") && notes.contains("Call before arriving."),
        "{notes:?}"
    );
    assert_ne!(now.as_deref(), Some(read.as_str()));
    ana.settle(&server).await;
    assert_eq!(ana.replica.job(job).unwrap().notes, notes);

    // Any other field based on the old read is refused, and changes nothing.
    let (status, _, body) = call(
        "PATCH",
        url.clone(),
        dispatcher.clone(),
        Some(read.clone()),
        Some(json!({"title": "Boiler (urgent)", "notes": "x"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (412, Some("stale-version")),
        "{body}"
    );
    // Versions that never were, and malformed ones.
    for bad in [
        format!("\"{}\"", "ab".repeat(32)),
        "\"not-a-version\"".to_string(),
        "W/\"weak\"".to_string(),
    ] {
        let (status, _, body) = call(
            "PATCH",
            url.clone(),
            dispatcher.clone(),
            Some(bad.clone()),
            Some(json!({"notes": "x"})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (412, Some("stale-version")),
            "{bad}: {body}"
        );
    }
    let (_, current, body) = call("GET", url.clone(), dispatcher.clone(), None, None).await;
    assert_eq!(body["title"], "Boiler");
    assert_eq!(body["notes"], notes);

    // Based on the current version, anything goes.
    let (status, _, body) = call(
        "PATCH",
        url.clone(),
        dispatcher.clone(),
        current,
        Some(json!({"title": "Boiler (urgent)"})),
    )
    .await;
    assert_eq!(
        (status, &body["title"]),
        (200, &json!("Boiler (urgent)")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_based_on_an_old_read_on_sqlite() {
    edits_based_on_an_old_read(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_based_on_an_old_read_on_postgres() {
    edits_based_on_an_old_read(Backend::Postgres).await;
}
