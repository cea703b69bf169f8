//! Bad input gets a clear refusal and changes nothing: missing, forged, expired and revoked
//! tokens; documents outside a device's set; malformed, unknown, oversized and flooding frames;
//! invalid Automerge bytes; a document of the wrong kind; technicians on dispatcher endpoints.

use automerge::sync::SyncDoc;
use automerge::transaction::Transactable;
use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer};
use fieldsync_test_support::raw::{Received, connect};
use schemas::wire::{self, ClientMsg, DocMessage, ErrorCode, ServerMsg, close};
use sync_server::store::{Role, TokenKind, TokenRecord};

async fn setup() -> (ServerHome, TestServer, Team) {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    (home, server, team)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_expired_refresh_and_revoked_tokens_are_refused() {
    let (_home, server, team) = setup().await;
    let ana = &team.techs[0];

    let (status, body) = connect(&server.url, None).await.err().unwrap();
    assert_eq!(status, 401);
    assert!(body.contains("no token"), "{body}");
    let (status, body) = connect(&server.url, Some("fsa_0123456789abcdef"))
        .await
        .err()
        .unwrap();
    assert_eq!(
        (status, body.contains("not recognised")),
        (401, true),
        "{body}"
    );

    let device = server
        .store()
        .register_device(ana.id, "old phone")
        .await
        .unwrap();
    let (expired, hash) = sync_server::auth::new_token(TokenKind::Access);
    let record = TokenRecord {
        hash,
        kind: TokenKind::Access,
        user_id: ana.id,
        device_id: Some(device.id),
        expires_at: chrono::Utc::now() - chrono::Duration::minutes(1),
    };
    server.store().insert_token(&record).await.unwrap();
    let (status, body) = connect(&server.url, Some(&expired)).await.err().unwrap();
    assert_eq!((status, body.contains("expired")), (401, true), "{body}");

    let issued = sync_server::auth::issue(
        server.store(),
        ana,
        Some(device.id),
        chrono::Utc::now(),
        chrono::Duration::hours(1),
        chrono::Duration::days(1),
    )
    .await
    .unwrap();
    let (status, _) = connect(&server.url, Some(&issued.refresh_token))
        .await
        .err()
        .unwrap();
    assert_eq!(status, 401, "a refresh token is not an access token");

    // A connected device whose device is revoked is cut off with a close code, and cannot return.
    let mut live = connect(&server.url, Some(&issued.access_token))
        .await
        .unwrap();
    live.hello().await;
    let hash = sync_server::auth::hash_password(fieldsync_e2e::PASSWORD);
    let admin = server
        .store()
        .create_user(
            team.org.id,
            &format!("admin-{}", team.org.id.simple()),
            Role::Admin,
            &hash,
        )
        .await
        .unwrap();
    let admin_token = fieldsync_e2e::access_token(server.store(), &admin, None).await;
    let revoke = format!("{}/api/v1/devices/{}/revoke", server.url, device.id);
    let status = tokio::task::spawn_blocking(move || {
        ureq::post(&revoke)
            .header("authorization", &format!("Bearer {admin_token}"))
            .send_empty()
            .unwrap()
            .status()
            .as_u16()
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(live.closed().await, close::UNAUTHORIZED);
    let (status, body) = connect(&server.url, Some(&issued.access_token))
        .await
        .err()
        .unwrap();
    assert_eq!((status, body.contains("revoked")), (401, true), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_outside_the_set_are_unavailable_and_untouched() {
    let (_home, server, team) = setup().await;
    let (ana, ben) = (&team.techs[0], &team.techs[1]);
    let bens_job = team.job(&server, "Ben's job", "general", &[ben]).await;
    let meta = server.store().document(bens_job).await.unwrap().unwrap();
    let before = server.doc_json(&meta).await;

    let a = Device::new(server.store(), ana).await;
    let mut raw = connect(&server.url, Some(&a.token)).await.unwrap();
    let ServerMsg::Welcome { set, .. } = raw.hello().await else {
        unreachable!()
    };
    assert!(set.is_empty(), "ana sees none of ben's documents");
    // Forge an edit to ben's job and push it.
    let mut forged = automerge::AutoCommit::new();
    forged.put(automerge::ROOT, "title", "hijacked").unwrap();
    forged.commit();
    let msg = forged
        .sync()
        .generate_sync_message(&mut automerge::sync::State::new())
        .unwrap()
        .encode();
    raw.send(&ClientMsg::Sync {
        docs: vec![DocMessage {
            doc: bens_job,
            data: msg.clone(),
        }],
    })
    .await;
    assert_eq!(
        raw.next_error().await,
        (ErrorCode::DocUnavailable, Some(bens_job))
    );
    // The same answer for a document that does not exist at all.
    let nowhere = uuid::Uuid::now_v7();
    raw.send(&ClientMsg::Sync {
        docs: vec![DocMessage {
            doc: nowhere,
            data: msg,
        }],
    })
    .await;
    assert_eq!(
        raw.next_error().await,
        (ErrorCode::DocUnavailable, Some(nowhere))
    );
    // Claiming ben's job id as a new document of ana's is refused too.
    let entry = wire::DocEntry {
        id: bens_job,
        kind: schemas::DocKind::Job,
        job_id: bens_job,
    };
    raw.send(&ClientMsg::Announce { docs: vec![entry] }).await;
    assert_eq!(
        raw.next_error().await,
        (ErrorCode::DocUnavailable, Some(bens_job))
    );
    raw.round_trip(1).await;
    assert_eq!(server.doc_json(&meta).await, before);
    assert!(
        server
            .store()
            .assigned_jobs(ana.id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_codes_and_nothing_is_stored() {
    let (_home, server, team) = setup().await;
    let ana = &team.techs[0];
    let job = team.job(&server, "Ana's job", "general", &[ana]).await;
    let docs = server.job_docs(job).await;
    let checklist = docs.iter().find(|d| d.kind == "checklist").unwrap().clone();
    let checklist_before = server.store().load(checklist.id).await.unwrap();
    let a = Device::new(server.store(), ana).await;

    // Before hello: refused and closed.
    let mut raw = connect(&server.url, Some(&a.token)).await.unwrap();
    raw.send(&ClientMsg::Ping { id: 1 }).await;
    assert_eq!(raw.next_error().await.0, ErrorCode::ProtocolViolation);
    assert_eq!(raw.closed().await, close::PROTOCOL);

    // An unsupported protocol version: refused and closed.
    let mut raw = connect(&server.url, Some(&a.token)).await.unwrap();
    raw.send(&ClientMsg::Hello {
        protocol: 999,
        client: String::new(),
    })
    .await;
    assert_eq!(raw.next_error().await.0, ErrorCode::UnsupportedVersion);
    assert_eq!(raw.closed().await, close::PROTOCOL);

    let mut raw = connect(&server.url, Some(&a.token)).await.unwrap();
    raw.hello().await;
    raw.send_bytes(b"\x00\x01not cbor at all".to_vec()).await;
    assert_eq!(raw.next_error().await.0, ErrorCode::MalformedFrame);
    raw.send_bytes(wire::encode(&serde_json::json!({"type": "teleport"})))
        .await;
    assert_eq!(raw.next_error().await.0, ErrorCode::UnknownMessage);
    raw.send_bytes(wire::encode(
        &serde_json::json!({"type": "sync", "docs": "lots"}),
    ))
    .await;
    assert_eq!(raw.next_error().await.0, ErrorCode::MalformedFrame);
    // Oversized (over the limit, under the hard cap): an error frame, and the connection lives on.
    let big = vec![7u8; server.app.config.max_frame_bytes + 10];
    raw.send(&ClientMsg::Sync {
        docs: vec![DocMessage {
            doc: checklist.id,
            data: big,
        }],
    })
    .await;
    assert_eq!(raw.next_error().await.0, ErrorCode::FrameTooLarge);
    // Not an Automerge sync message.
    raw.send(&ClientMsg::Sync {
        docs: vec![DocMessage {
            doc: checklist.id,
            data: vec![0x42, 1, 2, 3],
        }],
    })
    .await;
    assert_eq!(
        raw.next_error().await,
        (ErrorCode::InvalidDocument, Some(checklist.id))
    );
    // A parts document pushed into the checklist's id: wrong kind, not stored.
    let mut wrong =
        schemas::parts::create(&automerge::ActorId::random(), checklist.id, job).unwrap();
    wrong.commit();
    let mut state = automerge::sync::State::new();
    let mut refused = None;
    for round in 0..4 {
        let Some(m) = wrong.sync().generate_sync_message(&mut state) else {
            break;
        };
        raw.send(&ClientMsg::Sync {
            docs: vec![DocMessage {
                doc: checklist.id,
                data: m.encode(),
            }],
        })
        .await;
        for msg in raw.round_trip(10 + round).await {
            match msg {
                ServerMsg::Error { code, .. } => refused = Some(code),
                ServerMsg::Sync { docs } => {
                    for d in docs {
                        let m = automerge::sync::Message::decode(&d.data).unwrap();
                        wrong.sync().receive_sync_message(&mut state, m).unwrap();
                    }
                }
                _ => {}
            }
        }
        if refused.is_some() {
            break;
        }
    }
    assert_eq!(refused, Some(ErrorCode::WrongKind));
    raw.round_trip(99).await;
    let after = server.store().load(checklist.id).await.unwrap();
    assert_eq!(
        after, checklist_before,
        "nothing from the refused messages was stored"
    );
    let json = server.doc_json(&checklist).await;
    assert_eq!(json["kind"], "checklist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_told_to_slow_down_then_closed() {
    let mut home = ServerHome::new(Backend::Sqlite).await;
    home.config.max_messages_per_second = 20;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let a = Device::new(server.store(), &team.techs[0]).await;
    let mut raw = connect(&server.url, Some(&a.token)).await.unwrap();
    raw.hello().await;
    // Hello counted as one; the server closes on the message after twice the limit. Sending
    // exactly that many leaves nothing unread, so the close frame is not lost to a reset.
    let limit = server.app.config.max_messages_per_second as u64;
    for id in 0..(limit * 2) {
        raw.send(&ClientMsg::Ping { id }).await;
    }
    let mut saw_rate_limited = false;
    let code = loop {
        match raw.recv().await {
            Received::Msg(ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => saw_rate_limited = true,
            Received::Msg(_) => {}
            Received::Closed(code, _) => break code,
        }
    };
    assert!(saw_rate_limited);
    assert_eq!(code, close::RATE_LIMITED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn technicians_cannot_use_dispatcher_endpoints() {
    let (_home, server, team) = setup().await;
    let ana = &team.techs[0];
    let job = team.job(&server, "Job", "general", &[ana]).await;
    let url = server.url.clone();
    let name = ana.name.clone();
    let codes = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let login = agent
            .post(format!("{url}/api/v1/auth/login"))
            .send_json(serde_json::json!({"name": name, "password": fieldsync_e2e::PASSWORD}))
            .unwrap()
            .body_mut()
            .read_json::<serde_json::Value>()
            .unwrap();
        let token = login["tokens"]["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let auth = format!("Bearer {token}");
        let wrong_pw = agent
            .post(format!("{url}/api/v1/auth/login"))
            .send_json(serde_json::json!({"name": name, "password": "nope"}))
            .unwrap()
            .status()
            .as_u16();
        let create = agent
            .post(format!("{url}/api/v1/jobs"))
            .header("authorization", &auth)
            .send_json(serde_json::json!({"title": "x"}))
            .unwrap()
            .status()
            .as_u16();
        let get = agent
            .get(format!("{url}/api/v1/jobs/{job}"))
            .header("authorization", &auth)
            .call()
            .unwrap()
            .status()
            .as_u16();
        let patch = agent
            .patch(format!("{url}/api/v1/jobs/{job}"))
            .header("authorization", &auth)
            .send_json(serde_json::json!({"priority": "low"}))
            .unwrap()
            .status()
            .as_u16();
        let anonymous = agent
            .get(format!("{url}/api/v1/jobs/{job}"))
            .call()
            .unwrap()
            .status()
            .as_u16();
        (wrong_pw, create, get, patch, anonymous)
    })
    .await
    .unwrap();
    assert_eq!(codes, (401, 403, 403, 403, 401));
}
