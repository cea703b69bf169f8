//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document generated from the handlers, naming every
//! route of the API with its methods, and every path it names answers on the server (not 404).

use fieldsync_e2e::{Backend, ServerHome, TestServer, api};

/// Every route of the JSON API and its methods, as `server.rs` mounts them.
const ROUTES: &[(&str, &[&str])] = &[
    ("/api/v1/auth/login", &["post"]),
    ("/api/v1/auth/refresh", &["post"]),
    ("/api/v1/devices/{id}/revoke", &["post"]),
    ("/api/v1/jobs", &["get", "post"]),
    ("/api/v1/jobs/{id}", &["get", "patch"]),
    ("/api/v1/jobs/{id}/assign", &["post"]),
    ("/api/v1/jobs/{id}/unassign", &["post"]),
    ("/api/v1/jobs/{id}/flags/{flag}/resolve", &["post"]),
    ("/api/v1/jobs/{id}/signature", &["get"]),
    ("/api/v1/technicians", &["get"]),
    ("/api/v1/kpis", &["get"]),
    ("/api/v1/technicians/{id}", &["put"]),
    ("/api/v1/stock", &["get"]),
    ("/api/v1/stock/mine", &["get"]),
    ("/api/v1/stock/locations", &["get", "post"]),
    ("/api/v1/stock/receipts", &["post"]),
    ("/api/v1/customers", &["get", "post"]),
    ("/api/v1/customers/{id}", &["put"]),
    ("/api/v1/customers/{id}/sites", &["post"]),
    ("/api/v1/sites/{id}", &["put"]),
    ("/api/v1/assets", &["get", "post"]),
    ("/api/v1/assets/{id}", &["put"]),
    ("/api/v1/catalog", &["get", "post"]),
    ("/api/v1/templates", &["get", "post"]),
    ("/api/v1/templates/{name}", &["get", "put"]),
    ("/api/v1/pm/templates", &["get", "post"]),
    ("/api/v1/pm/schedules", &["get", "post"]),
    ("/api/v1/pm/schedules/{id}", &["get"]),
    ("/api/v1/sla/policies", &["get", "post"]),
    ("/api/v1/sla/jobs", &["get"]),
    ("/api/v1/sla/jobs/{id}", &["get"]),
    ("/api/v1/planning/settings", &["get", "put"]),
    ("/api/v1/planning/job-types", &["get"]),
    ("/api/v1/planning/job-types/{template}", &["put"]),
    ("/api/v1/technicians/{id}/home", &["put"]),
    ("/api/v1/technicians/{id}/time-blocks", &["get", "post"]),
    ("/api/v1/technicians/{id}/time-blocks/{block}", &["delete"]),
    ("/api/v1/sites/{id}/location", &["put"]),
    ("/api/v1/jobs/{id}/suggestions", &["get"]),
    ("/api/v1/routes/plan", &["post"]),
    ("/api/v1/routes/apply", &["post"]),
    ("/api/v1/sensors", &["get", "post"]),
    ("/api/v1/sensors/readings", &["post"]),
    ("/api/v1/sensors/{id}", &["get"]),
    ("/api/v1/sensors/{id}/readings", &["get"]),
    ("/api/v1/board/events", &["get"]),
    ("/api/v1/photos/{id}", &["get"]),
    ("/api/v1/photos/{id}/original", &["get"]),
    ("/api/v1/photos/{id}/thumbnails/{px}", &["get"]),
    ("/api/v1/photos/{id}/review", &["post"]),
    ("/api/v1/review/jobs", &["get"]),
    ("/api/v1/uploads", &["post"]),
    ("/api/v1/uploads/{id}", &["head", "patch", "delete"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_names_every_route() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let (status, doc) = api(
        "GET",
        format!("{}/api/v1/openapi.json", server.url),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in the document"));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{m} {path} is not in the document");
        }
    }
    assert_eq!(
        paths.len(),
        ROUTES.len(),
        "documented paths that are not routes: {:?}",
        paths.keys()
    );
    // Bodies come from the types: the job list's items carry the number, errors their code.
    let schemas = &doc["components"]["schemas"];
    let summary = &schemas["JobSummary"];
    assert!(
        summary["required"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "number"),
        "{summary}"
    );
    assert!(
        schemas["ErrorBody"]["properties"]["error"].is_object(),
        "{}",
        schemas["ErrorBody"]
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let list = &paths["/api/v1/jobs"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "status",
        "technician",
        "from",
        "to",
        "q",
        "flagged",
        "cursor",
        "limit",
    ] {
        assert!(params.contains(&p), "{p} missing from {params:?}");
    }

    // Each documented path exists: without a token the API answers 401 (or a 4xx of the
    // route's own), never the router's 404 for an unknown route.
    let id = uuid::Uuid::now_v7();
    for (path, methods) in ROUTES {
        let concrete = path
            .replace("{id}", &id.to_string())
            .replace("{flag}", &id.to_string())
            .replace("{block}", &id.to_string())
            .replace("{template}", "general")
            .replace("{px}", "320");
        for m in *methods {
            if *m == "head" {
                continue;
            }
            let (status, body) = api(
                &m.to_uppercase(),
                format!("{}{concrete}", server.url),
                None,
                Some(serde_json::json!({})),
            )
            .await;
            assert!(
                body["error"] != "not-found" && status != 405,
                "{m} {concrete}: {status} {body}"
            );
        }
    }
}
