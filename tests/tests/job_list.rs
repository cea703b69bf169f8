//! `GET /api/v1/jobs` as a dispatcher uses it, on both stores: every filter, cursor paging that
//! visits each job exactly once, and a clear 4xx naming the parameter for every bad input.

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use fieldsync_e2e::{Backend, ServerHome, Team, TestServer, access_token, api};
use schemas::api::CreateJob;
use schemas::job::{Customer, Schedule, Site};
use uuid::Uuid;

async fn list(server: &TestServer, token: &str, query: &str) -> (u16, serde_json::Value) {
    api(
        "GET",
        format!("{}/api/v1/jobs?{query}", server.url),
        Some(token.to_string()),
        None,
    )
    .await
}

fn ids(body: &serde_json::Value) -> BTreeSet<Uuid> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn filters_and_paging(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let token = access_token(server.store(), &team.dispatcher, None).await;
    let day = |d: u32| Utc.with_ymd_and_hms(2026, 12, d, 9, 0, 0).unwrap();
    // 12 jobs over 6 days, alternating technicians and customers.
    let mut all = Vec::new();
    for i in 0..12u32 {
        let tech = &team.techs[(i % 2) as usize];
        let body = CreateJob {
            title: format!(
                "Job {i} {}",
                if i == 7 { "boiler 100%_off" } else { "service" }
            ),
            customer: Some(Customer {
                name: ["Northwind", "Luigi's"][(i % 3 == 0) as usize].into(),
                ..Default::default()
            }),
            site: Some(Site {
                name: format!("Site {i}"),
                ..Default::default()
            }),
            schedule: Some(Schedule {
                start: day(1 + i / 2),
                end: None,
            }),
            assignees: vec![tech.name.clone()],
            ..Default::default()
        };
        let (status, job) = api(
            "POST",
            format!("{}/api/v1/jobs", server.url),
            Some(token.clone()),
            Some(serde_json::to_value(&body).unwrap()),
        )
        .await;
        assert_eq!(status, 201, "{job}");
        all.push(job["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    fieldsync_e2e::projection_caught_up(server.store()).await;
    let all: BTreeSet<Uuid> = all.into_iter().collect();

    // Paging: pages of 5 visit all 12 once, in order, and the last has no cursor.
    let mut seen = Vec::new();
    let mut query = "limit=5".to_string();
    loop {
        let (status, body) = list(&server, &token, &query).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(ids(&body));
        match body["next_cursor"].as_str() {
            Some(c) => query = format!("limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), all);

    // Technician: by name or id, only their jobs.
    let ana = &team.techs[0];
    let (_, by_name) = list(&server, &token, &format!("technician={}", ana.name)).await;
    let (_, by_id) = list(&server, &token, &format!("technician={}", ana.id)).await;
    assert_eq!(ids(&by_name).len(), 6);
    assert_eq!(ids(&by_name), ids(&by_id));
    assert!(
        by_name["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["assignees"] == serde_json::json!([ana.name]))
    );

    // Date range: [Dec 2, Dec 4) holds days 2 and 3: four jobs.
    let (status, body) = list(&server, &token, "from=2026-12-02&to=2026-12-04").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body).len(), 4, "{body}");
    let (_, body) = list(
        &server,
        &token,
        "from=2026-12-02T09:00:00Z&to=2026-12-02T09:00:01Z",
    )
    .await;
    assert_eq!(ids(&body).len(), 2, "{body}");

    // Text search: customer, title with LIKE's wildcards taken literally, and the number.
    let (_, body) = list(&server, &token, "q=luigi").await;
    assert_eq!(ids(&body).len(), 4, "{body}");
    let (_, body) = list(&server, &token, "q=100%25_off").await;
    assert_eq!(ids(&body).len(), 1, "{body}");
    let (_, body) = list(&server, &token, "q=b%25").await;
    assert_eq!(
        ids(&body).len(),
        0,
        "`b%` as a pattern would match `boiler`, as text nothing: {body}"
    );
    let (_, body) = list(&server, &token, "q=WO-000003").await;
    assert_eq!(body["items"][0]["number"], "WO-000003", "{body}");

    // Status and flagged.
    let (_, body) = list(&server, &token, "status=assigned").await;
    assert_eq!(ids(&body).len(), 12);
    let (_, body) = list(&server, &token, "status=completed").await;
    assert_eq!(ids(&body).len(), 0);
    let (_, body) = list(&server, &token, "flagged=true").await;
    assert_eq!(ids(&body).len(), 0);
    let (_, body) = list(&server, &token, "flagged=false").await;
    assert_eq!(ids(&body).len(), 12);

    // Bad input: 400 naming the parameter; nothing listed.
    for (query, names) in [
        ("status=done", "status"),
        ("technician=nobody", "technician"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-12-05&to=2026-12-01", "to"),
        ("flagged=maybe", "flagged"),
        ("cursor=abc", "cursor"),
        ("cursor=1_not-a-uuid", "cursor"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("limit=ten", "limit"),
        ("statuss=assigned", "statuss"),
        ("q=%01", "q"),
    ] {
        let (status, body) = list(&server, &token, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "bad-query", "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().starts_with(names),
            "{query}: {body}"
        );
    }
    // Roles: a technician may not list the org's jobs; nobody without a token.
    let tech_token = access_token(server.store(), ana, None).await;
    let (status, body) = list(&server, &tech_token, "").await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = api("GET", format!("{}/api/v1/jobs", server.url), None, None).await;
    assert_eq!(status, 401);
    for path in ["technicians", "stock"] {
        let (status, body) = api(
            "GET",
            format!("{}/api/v1/{path}", server.url),
            Some(tech_token.clone()),
            None,
        )
        .await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, body) = api(
        "GET",
        format!("{}/api/v1/stock?location={}", server.url, Uuid::nil()),
        Some(token.clone()),
        None,
    )
    .await;
    assert_eq!(
        (status, body.clone()),
        (200, serde_json::json!([])),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_paging_on_sqlite() {
    filters_and_paging(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_paging_on_postgres() {
    filters_and_paging(Backend::Postgres).await;
}
