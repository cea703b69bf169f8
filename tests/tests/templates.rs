//! An org's own checklist templates, on both stores: written and versioned through the API
//! (every refusal naming its field, stale versions refused), kept per org, never changing a job
//! made before, and reaching the technician's device when it syncs, where a job made offline
//! uses the org's current version.

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token, http_json};
use schemas::job::NewJob;
use serde_json::{Value, json};

struct Client {
    url: String,
    token: String,
}

impl Client {
    /// `(status, ETag, body)`.
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        let (method, url, token) = (
            method.to_string(),
            format!("{}{path}", self.url),
            self.token.clone(),
        );
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (s, headers, body) = http_json(&method, &url, Some(&token), &h, body);
            let etag = headers
                .into_iter()
                .find(|(k, _)| k == "etag")
                .map(|(_, v)| v);
            (s, etag, body)
        })
        .await
        .unwrap()
    }
}

fn roof(items: &[&str]) -> Value {
    json!({
        "name": "roof_inspection",
        "title": "Roof inspection",
        "items": items.iter().map(|id| json!({
            "id": id, "label": format!("Check {id}"), "kind": "pass_fail", "required": true
        })).collect::<Vec<_>>(),
    })
}

fn item_ids(checklist: &Value) -> Vec<String> {
    checklist["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn checklist_of(server: &TestServer, job: uuid::Uuid) -> Value {
    let docs = server.job_docs(job).await;
    let meta = docs.iter().find(|d| d.kind == "checklist").unwrap();
    server.doc_json(meta).await
}

async fn templates_per_org(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let d = Client {
        url: server.url.clone(),
        token: access_token(server.store(), &team.dispatcher, None).await,
    };
    let stranger = Client {
        url: server.url.clone(),
        token: access_token(server.store(), &other.dispatcher, None).await,
    };
    let tech = Client {
        url: server.url.clone(),
        token: access_token(server.store(), &team.techs[0], None).await,
    };

    // The built-in pack is every org's start, version 0; an unchanged set answers 304.
    let (s, tag, list) = d.call("GET", "/api/v1/templates", &[], None).await;
    assert_eq!(s, 200, "{list}");
    let builtin = schemas::template::builtin();
    assert_eq!(list.as_array().unwrap().len(), builtin.len());
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t["builtin"] == true && t["version"] == 0)
    );
    let tag = tag.expect("the set's ETag");
    let (s, _, _) = d
        .call("GET", "/api/v1/templates", &[("If-None-Match", &tag)], None)
        .await;
    assert_eq!(s, 304);

    // Refusals name what is wrong; only dispatchers write.
    let mut dup = roof(&["gutters", "flashing"]);
    dup["items"][1]["id"] = json!("gutters");
    let mut bad_choice = roof(&["gutters"]);
    bad_choice["items"][0]["kind"] = json!("choice");
    let mut bad_range = roof(&["gutters"]);
    bad_range["items"][0]["kind"] = json!("number");
    bad_range["items"][0]["min"] = json!(10);
    bad_range["items"][0]["max"] = json!(1);
    let mut bad_name = roof(&["gutters"]);
    bad_name["name"] = json!("Roof Inspection!");
    let mut taken = roof(&["gutters"]);
    taken["name"] = json!("general");
    for (body, code, needle) in [
        (roof(&[]), 400, "`items`"),
        (dup, 400, "`items[1].id`"),
        (bad_choice, 400, "`items[0].choices`"),
        (bad_range, 400, "`items[0].min`"),
        (bad_name, 400, "`name`"),
        (json!({"name": "x", "items": []}), 422, "title"),
        (taken, 409, "PUT"),
    ] {
        let (s, _, e) = d
            .call("POST", "/api/v1/templates", &[], Some(body.clone()))
            .await;
        assert_eq!(s, code, "{body}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{needle} in {e}"
        );
    }
    let (s, _, e) = tech
        .call("POST", "/api/v1/templates", &[], Some(roof(&["gutters"])))
        .await;
    assert_eq!(s, 403, "{e}");

    // Version 1, then a job made from it.
    let (s, etag, v1) = d
        .call(
            "POST",
            "/api/v1/templates",
            &[],
            Some(roof(&["gutters", "flashing"])),
        )
        .await;
    assert_eq!(s, 201, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["builtin"], false);
    assert_eq!(etag.as_deref(), Some("\"1\""));
    let (s, _, e) = d
        .call("POST", "/api/v1/templates", &[], Some(roof(&["gutters"])))
        .await;
    assert_eq!(s, 409, "a second POST of the name: {e}");
    let (s, _, job_a) = d
        .call(
            "POST",
            "/api/v1/jobs",
            &[],
            Some(json!({"title": "Roof at Elm St", "template": "roof_inspection"})),
        )
        .await;
    assert_eq!(s, 201, "{job_a}");
    let job_a: uuid::Uuid = job_a["id"].as_str().unwrap().parse().unwrap();

    // Version 2 from version 1; a second writer still on version 1 is refused.
    let (s, etag, v2) = d
        .call(
            "PUT",
            "/api/v1/templates/roof_inspection",
            &[("If-Match", "\"1\"")],
            Some(roof(&["gutters", "flashing", "skylights"])),
        )
        .await;
    assert_eq!(s, 200, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(etag.as_deref(), Some("\"2\""));
    let (s, _, e) = d
        .call(
            "PUT",
            "/api/v1/templates/roof_inspection",
            &[("If-Match", "\"1\"")],
            Some(roof(&["chimney"])),
        )
        .await;
    assert_eq!(s, 412, "{e}");
    assert_eq!(e["error"], "stale-version");
    for (path, headers, body, code) in [
        (
            "/api/v1/templates/roof_inspection",
            vec![("If-Match", "soon")],
            roof(&["chimney"]),
            400,
        ),
        (
            "/api/v1/templates/gutter_clean",
            vec![],
            roof(&["chimney"]),
            400,
        ),
        (
            "/api/v1/templates/nothing_here",
            vec![],
            {
                let mut b = roof(&["chimney"]);
                b["name"] = json!("nothing_here");
                b
            },
            404,
        ),
    ] {
        let (s, _, e) = d.call("PUT", path, &headers, Some(body)).await;
        assert_eq!(s, code, "{path}: {e}");
    }

    // Job A keeps version 1; a new job gets version 2.
    let a = checklist_of(&server, job_a).await;
    assert_eq!(item_ids(&a), ["gutters", "flashing"]);
    assert_eq!(a["template_version"], 1);
    let (s, _, job_b) = d
        .call(
            "POST",
            "/api/v1/jobs",
            &[],
            Some(json!({"title": "Roof at Oak Ave", "template": "roof_inspection"})),
        )
        .await;
    assert_eq!(s, 201, "{job_b}");
    let job_b: uuid::Uuid = job_b["id"].as_str().unwrap().parse().unwrap();
    let b = checklist_of(&server, job_b).await;
    assert_eq!(item_ids(&b), ["gutters", "flashing", "skylights"]);
    assert_eq!(b["template_version"], 2);

    // Every version stays readable; queries are checked.
    let (s, _, old) = d
        .call(
            "GET",
            "/api/v1/templates/roof_inspection?version=1",
            &[],
            None,
        )
        .await;
    assert_eq!((s, old["version"].clone()), (200, json!(1)), "{old}");
    let (s, _, builtin_general) = d
        .call("GET", "/api/v1/templates/general?version=0", &[], None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(builtin_general["builtin"], true);
    for (path, code) in [
        ("/api/v1/templates/roof_inspection?version=9", 404),
        ("/api/v1/templates/roof_inspection?version=two", 400),
        ("/api/v1/templates/roof_inspection?color=red", 400),
        ("/api/v1/templates/unknown", 404),
    ] {
        let (s, _, e) = d.call("GET", path, &[], None).await;
        assert_eq!(s, code, "{path}: {e}");
    }

    // An org's version of a built-in template replaces it for that org only.
    let mut general = serde_json::to_value(schemas::template::find("general").unwrap()).unwrap();
    general["items"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "photo_of_meter", "label": "Meter reading photo", "kind": "photo_required", "required": true}));
    let (s, _, g1) = d
        .call(
            "PUT",
            "/api/v1/templates/general",
            &[("If-Match", "\"0\"")],
            Some(general),
        )
        .await;
    assert_eq!(s, 200, "{g1}");
    assert_eq!(
        (g1["version"].clone(), g1["builtin"].clone()),
        (json!(1), json!(false))
    );
    let (s, tag2, list) = d
        .call("GET", "/api/v1/templates", &[("If-None-Match", &tag)], None)
        .await;
    assert_eq!(s, 200, "the set changed");
    assert_ne!(tag2.as_deref(), Some(tag.as_str()));
    assert_eq!(list.as_array().unwrap().len(), builtin.len() + 1);

    // Another org sees none of it.
    let (s, _, theirs) = stranger.call("GET", "/api/v1/templates", &[], None).await;
    assert_eq!(s, 200);
    assert!(
        theirs
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["builtin"] == true),
        "{theirs}"
    );
    let (s, _, _) = stranger
        .call("GET", "/api/v1/templates/roof_inspection", &[], None)
        .await;
    assert_eq!(s, 404);
    let (s, _, e) = stranger
        .call(
            "POST",
            "/api/v1/jobs",
            &[],
            Some(json!({"title": "Not ours", "template": "roof_inspection"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");

    // The technician's device fetches the org's set when it syncs ...
    let mut ana = Device::new(server.store(), &team.techs[0]).await;
    ana.settle(&server).await;
    let fetched = refresh(&ana, &server).await;
    assert!(fetched.changed);
    let on_device = ana.replica.template("roof_inspection").unwrap().unwrap();
    assert_eq!(on_device.version, 2);
    assert_eq!(ana.replica.template("general").unwrap().unwrap().version, 1);
    assert!(
        !refresh(&ana, &server).await.changed,
        "an unchanged set is a 304"
    );

    // ... and a job made there offline uses the org's current version.
    let made = ana
        .replica
        .create_job(
            NewJob {
                title: "Leak above room 12".into(),
                ..Default::default()
            },
            Some("roof_inspection"),
        )
        .unwrap();
    ana.settle(&server).await;
    let c = checklist_of(&server, made.id).await;
    assert_eq!(item_ids(&c), ["gutters", "flashing", "skylights"]);
    assert_eq!(c["template_version"], 2);
    let err = ana
        .replica
        .create_job(
            NewJob {
                title: "x".into(),
                ..Default::default()
            },
            Some("gutter_clean"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("gutter_clean"), "{err}");
}

async fn refresh(device: &Device, server: &TestServer) -> client_core::sync::templates::Refreshed {
    let (dir, url, token) = (
        device.dir.path().to_path_buf(),
        server.url.clone(),
        device.token.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let r = client_core::Replica::open(&dir).unwrap();
        client_core::sync::templates::refresh(&r, &url, &token)
    })
    .await
    .unwrap()
    .expect("templates fetched")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_per_org_sqlite() {
    templates_per_org(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_per_org_postgres() {
    templates_per_org(Backend::Postgres).await;
}
