//! The HTTP API through the real server, on each store: sign-in and tokens (single-use refresh
//! tokens, throttling, revocable sessions), input that the store must never see, JSON error
//! bodies for every rejection, and dispatcher actions that fail without changing anything.

use std::time::Duration;

use fieldsync_e2e::{Backend, PASSWORD, ServerHome, Team, TestServer};
use serde_json::{Value, json};
use sync_server::store::{DocMeta, Role, User};
use uuid::Uuid;

/// Generate `sqlite::<name>` and `postgres::<name>` from `async fn <name>(Backend)`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$name(fieldsync_e2e::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$name(fieldsync_e2e::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_stores! {
    unassign_that_fails_changes_nothing,
    concurrent_refreshes_with_one_token_let_exactly_one_through,
    every_login_makes_a_revocable_device,
    a_reused_refresh_token_revokes_its_device,
    invalid_text_is_refused_before_the_store,
}

// ---- helpers --------------------------------------------------------------------------------

/// An answer: status, `Retry-After`, and the body as JSON (`Value::Null` when it is not JSON).
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    raw: String,
}

/// One HTTP request (blocking; the async helpers below run it on a blocking thread).
fn request_blocking(
    method: &str,
    url: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        builder = builder.header("authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    let mut response = match body {
        Some(b) => agent.run(builder.body(b).unwrap()),
        None => agent.run(builder.body(()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let raw = response
        .body_mut()
        .with_config()
        .limit(10 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Reply {
        status,
        retry_after,
        body,
        raw,
    }
}

/// A POST of a JSON-ish body of exactly `length` bytes, over a plain socket; the answer.
fn oversized_request(addr: &str, path: &str, length: usize) -> Reply {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = br#"{"name":"a","password":""#.to_vec();
    body.resize(length - 2, b'x');
    body.extend_from_slice(br#""}"#);
    // The server may answer before reading everything; a failed write then is fine.
    let _ = stream.write_all(&body);
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let (head, body) = loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before an answer");
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let want = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= want {
                break (head.to_string(), body.to_string());
            }
        }
    };
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        retry_after: None,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        raw: body,
    }
}

async fn request(
    method: &str,
    url: String,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    let (method, token, content_type) = (
        method.to_string(),
        token.map(str::to_string),
        content_type.map(str::to_string),
    );
    tokio::task::spawn_blocking(move || {
        request_blocking(
            &method,
            &url,
            token.as_deref(),
            content_type.as_deref(),
            body,
        )
    })
    .await
    .unwrap()
}

/// A JSON request.
async fn send(method: &str, url: String, token: Option<&str>, body: Value) -> Reply {
    request(
        method,
        url,
        token,
        Some("application/json"),
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

async fn login(server: &TestServer, name: &str, password: &str, device: Option<&str>) -> Reply {
    let mut body = json!({"name": name, "password": password});
    if let Some(d) = device {
        body["device_name"] = json!(d);
    }
    send(
        "POST",
        format!("{}/api/v1/auth/login", server.url),
        None,
        body,
    )
    .await
}

/// The error body every refusal has: `{"error": <code>, "message": <sentence>}`.
#[track_caller]
fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.body["error"], json!(code), "{}", reply.raw);
    let message = reply.body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "a message: {reply:?}");
    assert_eq!(
        reply.body.as_object().map(|o| o.len()),
        Some(2),
        "only error and message: {reply:?}"
    );
}

async fn start(backend: Backend) -> (ServerHome, TestServer, Team) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    (home, server, team)
}

async fn admin_of(server: &TestServer, team: &Team) -> User {
    let hash = sync_server::auth::hash_password(PASSWORD);
    server
        .store()
        .create_user(
            team.org.id,
            &format!("admin-{}", team.org.id.simple()),
            Role::Admin,
            &hash,
        )
        .await
        .unwrap()
}

async fn token_of(server: &TestServer, user: &User) -> String {
    fieldsync_e2e::access_token(server.store(), user, None).await
}

// ---- dispatcher actions ---------------------------------------------------------------------

/// `unassign` used to remove the assignment first and then fail on the job document, answering
/// an error after the change. A failed request now changes nothing, on either side.
async fn unassign_that_fails_changes_nothing(backend: Backend) {
    let (_home, server, team) = start(backend).await;
    let ana = &team.techs[0];
    let job = team.job(&server, "Leaky tap", "general", &[ana]).await;
    let token = token_of(&server, &team.dispatcher).await;
    let meta = server.store().document(job).await.unwrap().unwrap();
    let unassign = format!("{}/api/v1/jobs/{job}/unassign", server.url);

    // The job edit's append fails.
    server.faults.fail_next(1);
    let reply = send(
        "POST",
        unassign.clone(),
        Some(&token),
        json!({"user": ana.name}),
    )
    .await;
    assert!(reply.status >= 500, "{reply:?}");
    assert_eq!(
        server.store().job_assignees(job).await.unwrap(),
        vec![ana.id]
    );
    assert_eq!(server.doc_json(&meta).await["assignees"], json!([ana.name]));

    // A job whose document has not reached the server yet cannot be read: refused, unchanged.
    let empty = Uuid::now_v7();
    let empty_meta = DocMeta {
        id: empty,
        org_id: team.org.id,
        kind: "job".into(),
        job_id: empty,
    };
    server.store().create_document(&empty_meta).await.unwrap();
    server.store().assign(empty, ana.id).await.unwrap();
    let reply = send(
        "POST",
        format!("{}/api/v1/jobs/{empty}/unassign", server.url),
        Some(&token),
        json!({"user": ana.name}),
    )
    .await;
    assert!(reply.status >= 400, "{reply:?}");
    assert_eq!(
        server.store().job_assignees(empty).await.unwrap(),
        vec![ana.id]
    );

    // With a working store the same request goes through.
    let reply = send("POST", unassign, Some(&token), json!({"user": ana.name})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        server.store().job_assignees(job).await.unwrap(),
        Vec::<Uuid>::new()
    );
    assert_eq!(server.doc_json(&meta).await["assignees"], json!([]));
}

// ---- tokens ---------------------------------------------------------------------------------

/// Rotation is single use: of 20 concurrent refreshes with one refresh token exactly one gets
/// new tokens (on Postgres several used to, each starting its own line of tokens).
async fn concurrent_refreshes_with_one_token_let_exactly_one_through(backend: Backend) {
    // A long grace period: the losers' concurrent uses are refused, never taken as theft.
    let mut home = ServerHome::new(backend).await;
    home.config.refresh_reuse_grace = Duration::from_secs(3600);
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana = &team.techs[0];
    let reply = login(&server, &ana.name, PASSWORD, Some("phone")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let refresh = reply.body["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/api/v1/auth/refresh", server.url);
    let (u, r) = (url.clone(), refresh.clone());
    let replies = tokio::task::spawn_blocking(move || {
        let barrier = std::sync::Barrier::new(20);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..20)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        request_blocking(
                            "POST",
                            &u,
                            None,
                            Some("application/json"),
                            Some(serde_json::to_vec(&json!({"refresh_token": r})).unwrap()),
                        )
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<Reply>>()
        })
    })
    .await
    .unwrap();
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "{replies:?}");
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_error(r, 401, "unauthorized");
    }
    // The old token is spent; the new one works once.
    let again = send("POST", url.clone(), None, json!({"refresh_token": refresh})).await;
    assert_error(&again, 401, "unauthorized");
    let next = ok[0].body["tokens"]["refresh_token"].as_str().unwrap();
    let reply = send("POST", url, None, json!({"refresh_token": next})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// A rotated refresh token presented again (after the grace period, here none) is taken as
/// stolen: the device is revoked, so the tokens the rotation issued stop working too.
async fn a_reused_refresh_token_revokes_its_device(backend: Backend) {
    let mut home = ServerHome::new(backend).await;
    home.config.refresh_reuse_grace = Duration::ZERO;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana = &team.techs[0];
    let reply = login(&server, &ana.name, PASSWORD, Some("phone")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let first = reply.body["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/api/v1/auth/refresh", server.url);
    let rotated = send("POST", url.clone(), None, json!({"refresh_token": first})).await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let second = rotated.body["tokens"]["refresh_token"].as_str().unwrap();
    let access = rotated.body["tokens"]["access_token"].as_str().unwrap();

    let replay = send("POST", url.clone(), None, json!({"refresh_token": first})).await;
    assert_error(&replay, 401, "unauthorized");
    let after = send("POST", url, None, json!({"refresh_token": second})).await;
    assert_error(&after, 401, "unauthorized");
    assert!(
        after.body["message"].as_str().unwrap().contains("revoked"),
        "{after:?}"
    );
    let (status, _) = fieldsync_test_support::raw::connect(&server.url, Some(access))
        .await
        .err()
        .expect("the device's access token is refused too");
    assert_eq!(status, 401);
}

/// A login without a device name still registers a device (a session), so an admin can revoke
/// it: its refresh token and its sync connection are refused afterwards.
async fn every_login_makes_a_revocable_device(backend: Backend) {
    let (_home, server, team) = start(backend).await;
    let reply = login(&server, &team.dispatcher.name, PASSWORD, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let device: Uuid = serde_json::from_value(reply.body["device_id"].clone())
        .unwrap_or_else(|e| panic!("a device id ({e}): {reply:?}"));
    let access = reply.body["tokens"]["access_token"].as_str().unwrap();
    let refresh = reply.body["tokens"]["refresh_token"].as_str().unwrap();
    assert!(
        fieldsync_test_support::raw::connect(&server.url, Some(access))
            .await
            .is_ok()
    );

    let admin = admin_of(&server, &team).await;
    let admin_token = token_of(&server, &admin).await;
    let revoked = request(
        "POST",
        format!("{}/api/v1/devices/{device}/revoke", server.url),
        Some(&admin_token),
        None,
        None,
    )
    .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");

    let again = send(
        "POST",
        format!("{}/api/v1/auth/refresh", server.url),
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_error(&again, 401, "unauthorized");
    let (status, _) = fieldsync_test_support::raw::connect(&server.url, Some(access))
        .await
        .err()
        .expect("a revoked session cannot sync");
    assert_eq!(status, 401);
}

// ---- sign-in throttling (in memory, the same on every store) --------------------------------

/// A server whose throttle blocks for a minute after five failures, so no block runs out while
/// a test runs.
async fn throttled_server() -> (ServerHome, TestServer, Team) {
    let mut home = ServerHome::new(Backend::Sqlite).await;
    home.config.login_throttle.base = Duration::from_secs(60);
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    (home, server, team)
}

/// 60 wrong passwords, then the right one: the first five are answered 401, every later
/// attempt 429 with `Retry-After`, the right password included.
async fn wrong_passwords_then_right(server: &TestServer, name: &str) -> Vec<(u16, String)> {
    let mut seen = Vec::new();
    for i in 0..60 {
        let reply = login(server, name, &format!("wrong {i}"), None).await;
        if i < 5 {
            assert_error(&reply, 401, "unauthorized");
        } else {
            assert_error(&reply, 429, "too-many-attempts");
            let secs: u64 = reply
                .retry_after
                .as_deref()
                .expect("Retry-After")
                .parse()
                .unwrap();
            assert!((1..=60).contains(&secs), "{reply:?}");
        }
        seen.push((reply.status, reply.body["error"].to_string()));
    }
    let reply = login(server, name, PASSWORD, None).await;
    assert_error(&reply, 429, "too-many-attempts");
    seen.push((reply.status, reply.body["error"].to_string()));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_are_throttled_and_unknown_names_alike() {
    let (_home, server, team) = throttled_server().await;
    let ana = &team.techs[0];
    let known = wrong_passwords_then_right(&server, &ana.name).await;
    let unknown = wrong_passwords_then_right(&server, "nobody-by-this-name").await;
    assert_eq!(known, unknown, "unknown names are answered like known ones");

    // Other names are not blocked by ana's failures.
    let reply = login(&server, &team.dispatcher.name, PASSWORD, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_names_from_one_address_are_throttled() {
    let mut home = ServerHome::new(Backend::Sqlite).await;
    home.config.login_throttle.base = Duration::from_secs(60);
    home.config.login_throttle.free_failures_per_address = 8;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    for i in 0..8 {
        let reply = login(&server, &format!("guess-{i}"), "x", None).await;
        assert_error(&reply, 401, "unauthorized");
    }
    let reply = login(&server, &team.techs[0].name, PASSWORD, None).await;
    assert_error(&reply, 429, "too-many-attempts");
    assert!(reply.retry_after.is_some());
}

// ---- input the store must never see --------------------------------------------------------

/// NUL (which Postgres cannot store in text and answered with 503), other control characters
/// and over-long text are refused with 400 and the JSON body, on every store alike.
async fn invalid_text_is_refused_before_the_store(backend: Backend) {
    let (_home, server, team) = start(backend).await;
    let ana = &team.techs[0];
    let job = team.job(&server, "Boiler", "general", &[]).await;
    let token = token_of(&server, &team.dispatcher).await;
    let url = &server.url;

    for (name, device) in [
        ("ana\0".to_string(), None),
        (format!("{}\u{1b}[2J", ana.name), None),
        ("a".repeat(101), None),
        (ana.name.clone(), Some("phone\0")),
        (ana.name.clone(), Some("phone\n2")),
    ] {
        let reply = login(&server, &name, PASSWORD, device).await;
        assert_error(&reply, 400, "bad-request");
    }
    let reply = send(
        "POST",
        format!("{url}/api/v1/auth/refresh"),
        None,
        json!({"refresh_token": "fsr_\0"}),
    )
    .await;
    assert_error(&reply, 400, "bad-request");

    for path in ["assign", "unassign"] {
        let reply = send(
            "POST",
            format!("{url}/api/v1/jobs/{job}/{path}"),
            Some(&token),
            json!({"user": format!("{}\0", ana.name)}),
        )
        .await;
        assert_error(&reply, 400, "bad-request");
    }
    for body in [
        json!({"title": "Leak\0"}),
        json!({"title": "Leak", "assignees": [format!("{}\0", ana.name)]}),
        json!({"title": "Leak", "description": "bell\u{7}"}),
        json!({"title": "x".repeat(201)}),
        json!({"title": "Leak", "template": "general\0"}),
        json!({"title": "Leak", "customer": {"name": "Bob\0"}}),
        json!({"title": "Leak", "site": {"name": "Depot", "address": "1 Road\0"}}),
    ] {
        let reply = send("POST", format!("{url}/api/v1/jobs"), Some(&token), body).await;
        assert_error(&reply, 400, "bad-request");
    }
    for body in [json!({"title": "Leak\0"}), json!({"notes": "a\0b"})] {
        let reply = send(
            "PATCH",
            format!("{url}/api/v1/jobs/{job}"),
            Some(&token),
            body,
        )
        .await;
        assert_error(&reply, 400, "bad-request");
    }
    // Multi-line text keeps its line breaks; nothing above changed the job.
    let reply = send(
        "PATCH",
        format!("{url}/api/v1/jobs/{job}"),
        Some(&token),
        json!({"notes": "line one\nline two\ttab"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let meta = server.store().document(job).await.unwrap().unwrap();
    assert_eq!(server.doc_json(&meta).await["title"], json!("Boiler"));
    assert!(server.store().job_assignees(job).await.unwrap().is_empty());
}

// ---- JSON errors for every rejection -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_has_the_json_error_body() {
    let (_home, server, team) = start(Backend::Sqlite).await;
    let job = team.job(&server, "Boiler", "general", &[]).await;
    let token = token_of(&server, &team.dispatcher).await;
    let url = &server.url;
    let login_url = format!("{url}/api/v1/auth/login");

    let reply = request(
        "POST",
        login_url.clone(),
        None,
        Some("application/json"),
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_error(&reply, 400, "bad-json");
    let reply = request(
        "POST",
        login_url.clone(),
        None,
        Some("text/plain"),
        Some(br#"{"name":"a","password":"b"}"#.to_vec()),
    )
    .await;
    assert_error(&reply, 415, "unsupported-media-type");
    let reply = request("POST", login_url.clone(), None, None, Some(b"{}".to_vec())).await;
    assert_error(&reply, 415, "unsupported-media-type");
    let reply = send(
        "POST",
        login_url.clone(),
        None,
        json!({"name": 5, "password": "x"}),
    )
    .await;
    assert_error(&reply, 422, "invalid-body");
    let reply = send("POST", login_url.clone(), None, json!({"name": "a"})).await;
    assert_error(&reply, 422, "invalid-body");
    let reply = send(
        "POST",
        login_url.clone(),
        None,
        json!({"name": "a", "password": "b", "remember_me": true}),
    )
    .await;
    assert_error(&reply, 422, "invalid-body");
    // One byte over axum's default limit (2 MiB): the server reads it all before answering, so
    // it never closes on unread data (a larger body races the answer with a reset).
    let addr = server.url.trim_start_matches("http://").to_string();
    let reply = tokio::task::spawn_blocking(move || {
        oversized_request(&addr, "/api/v1/auth/login", 2 * 1024 * 1024 + 1)
    })
    .await
    .unwrap();
    assert_error(&reply, 413, "body-too-large");

    let reply = request(
        "GET",
        format!("{url}/api/v1/nothing-here"),
        None,
        None,
        None,
    )
    .await;
    assert_error(&reply, 404, "not-found");
    let reply = request("DELETE", login_url.clone(), None, None, None).await;
    assert_error(&reply, 405, "method-not-allowed");
    let reply = request(
        "GET",
        format!("{url}/api/v1/jobs/not-a-uuid"),
        Some(&token),
        None,
        None,
    )
    .await;
    assert_error(&reply, 400, "bad-request");

    // Unknown fields are refused on job creation as on PATCH.
    let reply = send(
        "POST",
        format!("{url}/api/v1/jobs"),
        Some(&token),
        json!({"title": "Leak", "colour": "red"}),
    )
    .await;
    assert_error(&reply, 422, "invalid-body");
    let reply = send(
        "PATCH",
        format!("{url}/api/v1/jobs/{job}"),
        Some(&token),
        json!({"colour": "red"}),
    )
    .await;
    assert_error(&reply, 422, "invalid-body");
    let reply = send(
        "POST",
        format!("{url}/api/v1/jobs/{job}/assign"),
        Some(&token),
        json!({"user": 1}),
    )
    .await;
    assert_error(&reply, 422, "invalid-body");
    // Without a token: the JSON body too.
    let reply = request("GET", format!("{url}/api/v1/jobs/{job}"), None, None, None).await;
    assert_error(&reply, 401, "unauthorized");
}

// ---- errors keep their class, not their details --------------------------------------------

/// `/readyz` used to send the store's raw error (host, user, database) to anyone; now a short
/// JSON body, the cause in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_json_without_the_store_error() {
    let home = ServerHome::new(Backend::Postgres).await;
    let server = TestServer::start(&home).await;
    let reply = request("GET", format!("{}/readyz", server.url), None, None, None).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, json!({"status": "ready"}));

    let sync_server::config::Database::Postgres(url) = &home.config.database else {
        unreachable!()
    };
    let (server_url, database) = url.rsplit_once('/').unwrap();
    {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&format!("{server_url}/postgres"))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {database} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    let reply = request("GET", format!("{}/readyz", server.url), None, None, None).await;
    assert_error(&reply, 503, "store-unavailable");
    assert!(!reply.raw.contains(database), "{}", reply.raw);
    assert!(!reply.raw.contains("postgres"), "{}", reply.raw);
}
