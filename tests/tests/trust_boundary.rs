//! The server never trusts a device more than its role allows. A real Automerge client speaks the
//! sync protocol over the real socket and crafts what a well-behaved device never sends: changes
//! that break the contract, fields its role may not write, compressed bombs, writes after an
//! unassignment, a flood. Each is kept-and-repaired or refused as the design says, on SQLite and
//! Postgres, and every read path keeps working.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token};
use fieldsync_test_support::raw::{RawClient, Received, connect};
use schemas::DocKind;
use schemas::wire::{ClientMsg, DocMessage, ErrorCode, ServerMsg, close};
use sync_server::store::{DocMeta, Role};
use uuid::Uuid;

/// A bare Automerge peer of one document over a raw connection.
struct Peer {
    raw: RawClient,
    doc_id: Uuid,
    doc: AutoCommit,
    state: sync::State,
    /// Everything else the server said, in order.
    seen: Vec<ServerMsg>,
}

impl Peer {
    /// Connect with `token`, say hello and sync `doc_id` until the server has nothing more.
    async fn connect(server: &TestServer, token: &str, doc_id: Uuid) -> Peer {
        let mut raw = connect(&server.url, Some(token)).await.unwrap();
        let welcome = raw.hello().await;
        let mut peer = Peer {
            raw,
            doc_id,
            doc: AutoCommit::new(),
            state: sync::State::new(),
            seen: vec![welcome],
        };
        peer.settle().await;
        peer
    }

    /// Exchange messages for the document until a ping comes back with nothing new on the way.
    async fn settle(&mut self) {
        for round in 0..20 {
            self.offer().await;
            let msgs = self.raw.round_trip(1000 + round).await;
            let mut any = false;
            for m in msgs {
                any |= self.absorb(m);
            }
            if !any {
                return;
            }
        }
        panic!("the document never settled");
    }

    /// Apply a server message; true when it was a sync message for our document.
    fn absorb(&mut self, m: ServerMsg) -> bool {
        match m {
            ServerMsg::Sync { docs } => {
                let mut ours = false;
                for DocMessage { doc, data } in docs {
                    if doc == self.doc_id {
                        let msg = sync::Message::decode(&data).unwrap();
                        self.doc
                            .sync()
                            .receive_sync_message(&mut self.state, msg)
                            .unwrap();
                        ours = true;
                    }
                }
                ours
            }
            other => {
                self.seen.push(other);
                false
            }
        }
    }

    async fn offer(&mut self) {
        if let Some(m) = self.doc.sync().generate_sync_message(&mut self.state) {
            self.raw
                .send(&ClientMsg::Sync {
                    docs: vec![DocMessage {
                        doc: self.doc_id,
                        data: m.encode(),
                    }],
                })
                .await;
        }
    }

    /// Make a change, send it and settle; returns what the server said about it.
    async fn edit(&mut self, f: impl FnOnce(&mut AutoCommit)) -> Vec<ServerMsg> {
        let mark = self.seen.len();
        f(&mut self.doc);
        self.doc.commit();
        self.settle().await;
        self.seen[mark..].to_vec()
    }
}

fn repaired_reasons(msgs: &[ServerMsg], doc: Uuid) -> Vec<String> {
    msgs.iter()
        .find_map(|m| match m {
            ServerMsg::Repaired {
                doc: d, reasons, ..
            } if *d == doc => Some(reasons.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn acked(msgs: &[ServerMsg], doc: Uuid) -> bool {
    msgs.iter()
        .any(|m| matches!(m, ServerMsg::Ack { docs } if docs.iter().any(|h| h.doc == doc)))
}

async fn meta(server: &TestServer, id: Uuid) -> DocMeta {
    server.store().document(id).await.unwrap().unwrap()
}

fn is_valid(kind: DocKind, state: &serde_json::Value) -> bool {
    schemas::validate::validate(kind, state).is_empty()
}

/// A schema-breaking change is kept, repaired in the same commit, acknowledged, flagged, and
/// every reader (the dispatcher's API, another technician's device) sees the repaired job.
async fn invalid_changes_are_repaired(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let (ana, ben) = (&team.techs[0], &team.techs[1]);
    let job = team
        .job(&server, "Fix the AC", "general", &[ana, ben])
        .await;
    let mut ben_device = Device::new(server.store(), ben).await;
    ben_device.settle(&server).await;

    let token = access_token(server.store(), ana, None).await;
    let mut peer = Peer::connect(&server, &token, job).await;
    assert_eq!(
        peer.doc.get(ROOT, "title").unwrap().unwrap().0.to_string(),
        "\"Fix the AC\""
    );
    let status = schemas::read_json(&peer.doc)["status"].clone();

    let said = peer
        .edit(|d| {
            d.put(ROOT, "status", 42).unwrap();
            d.delete(ROOT, "title").unwrap();
            d.put(ROOT, "notes", "kept").unwrap();
        })
        .await;
    let reasons = repaired_reasons(&said, job);
    assert!(reasons.iter().any(|r| r.starts_with("status")), "{said:?}");
    assert!(reasons.iter().any(|r| r.starts_with("title")), "{said:?}");
    assert!(
        acked(&said, job),
        "the device's change is acknowledged: {said:?}"
    );
    // The device received the repair with its ack.
    let mine = schemas::read_json(&peer.doc);
    assert_eq!(mine["status"], status);
    assert_eq!(mine["title"], "Fix the AC");
    assert_eq!(mine["notes"], "kept", "the valid part stays");

    let on_server = server.doc_json(&meta(&server, job).await).await;
    assert!(is_valid(DocKind::Job, &on_server), "{on_server}");
    assert_eq!(on_server, mine);
    let audit = server.store().job_audit(job).await.unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (audit[0].action.as_str(), audit[0].flagged),
        ("repair", true)
    );
    assert_eq!(audit[0].actor_user, Some(ana.id));

    // Other readers: the dispatcher's view and another technician's device.
    let view = sync_server::jobs::job_view(&server.app, team.org.id, job)
        .await
        .expect("the dispatcher can read the job");
    assert_eq!(view.title, "Fix the AC");
    ben_device.settle(&server).await;
    assert_eq!(ben_device.replica.job(job).unwrap().title, "Fix the AC");

    // A parts line with a negative quantity, then `lines` replaced by text.
    let parts = server
        .job_docs(job)
        .await
        .into_iter()
        .find(|m| m.kind == "parts")
        .unwrap();
    let mut parts_peer = Peer::connect(&server, &token, parts.id).await;
    let said = parts_peer
        .edit(|d| {
            let lines = schemas::doc::get_obj(d, &ROOT, "lines", "lines").unwrap();
            let line = d.put_object(&lines, "l1", automerge::ObjType::Map).unwrap();
            d.put(&line, "id", "l1").unwrap();
            d.put(&line, "sku", "FLT").unwrap();
            d.put(&line, "qty", -5.0).unwrap();
            d.put(&line, "by", "ana").unwrap();
            d.put(&line, "at", "2026-11-28T10:00:00Z").unwrap();
        })
        .await;
    assert!(!repaired_reasons(&said, parts.id).is_empty(), "{said:?}");
    let said = parts_peer
        .edit(|d| {
            d.put(ROOT, "lines", "gone").unwrap();
        })
        .await;
    assert!(!repaired_reasons(&said, parts.id).is_empty(), "{said:?}");
    let state = server.doc_json(&parts).await;
    assert!(is_valid(DocKind::Parts, &state), "{state}");
    assert_eq!(schemas::read_json(&parts_peer.doc), state);
    ben_device.settle(&server).await;
    ben_device
        .replica
        .job(job)
        .expect("ben's device still shows the job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_changes_are_repaired_on_sqlite() {
    invalid_changes_are_repaired(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_changes_are_repaired_on_postgres() {
    invalid_changes_are_repaired(Backend::Postgres).await;
}

/// Roles on sync writes: a technician may not reassign a job; the back office may not retitle
/// one (it may review photos); a dispatcher may do both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_enforced_on_sync_writes() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana = &team.techs[0];
    let job = team.job(&server, "Fix the AC", "general", &[ana]).await;

    let token = access_token(server.store(), ana, None).await;
    let mut tech = Peer::connect(&server, &token, job).await;
    let said = tech
        .edit(|d| {
            schemas::job::set_assignees(d, &["someone-else".into()]).unwrap();
        })
        .await;
    assert!(
        repaired_reasons(&said, job)[0].starts_with("assignees"),
        "{said:?}"
    );
    let state = server.doc_json(&meta(&server, job).await).await;
    assert_eq!(state["assignees"], serde_json::json!([ana.name]));

    let back_office = server
        .store()
        .create_user(
            team.org.id,
            &format!("office-{}", team.org.id.simple()),
            Role::BackOffice,
            &sync_server::auth::hash_password(fieldsync_e2e::PASSWORD),
        )
        .await
        .unwrap();
    let token = access_token(server.store(), &back_office, None).await;
    let mut office = Peer::connect(&server, &token, job).await;
    let said = office
        .edit(|d| {
            d.put(ROOT, "title", "Renamed by the back office").unwrap();
        })
        .await;
    assert!(
        repaired_reasons(&said, job)[0].starts_with("title"),
        "{said:?}"
    );
    let state = server.doc_json(&meta(&server, job).await).await;
    assert_eq!(state["title"], "Fix the AC");

    let token = access_token(server.store(), &team.dispatcher, None).await;
    let mut dispatcher = Peer::connect(&server, &token, job).await;
    let said = dispatcher
        .edit(|d| {
            d.put(ROOT, "title", "Fix the AC, then the boiler").unwrap();
        })
        .await;
    assert!(repaired_reasons(&said, job).is_empty(), "{said:?}");
    let state = server.doc_json(&meta(&server, job).await).await;
    assert_eq!(state["title"], "Fix the AC, then the boiler");
}

/// A small frame that inflates to a huge change is refused before it is applied or stored; the
/// connection and the document carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_bomb_is_refused_and_nothing_is_stored() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana = &team.techs[0];
    let job = team.job(&server, "Fix the AC", "general", &[ana]).await;
    let token = access_token(server.store(), ana, None).await;
    let mut peer = Peer::connect(&server, &token, job).await;
    let stored_before = server.store().load(job).await.unwrap();

    // 16 MiB of one letter (sixteen times the change bound): a few KiB once compressed.
    peer.doc
        .put(ROOT, "notes", "A".repeat(16 * 1024 * 1024))
        .unwrap();
    peer.doc.commit();
    let m = peer
        .doc
        .sync()
        .generate_sync_message(&mut peer.state)
        .unwrap();
    let data = m.encode();
    assert!(data.len() < 1024 * 1024, "{}", data.len());
    peer.raw
        .send(&ClientMsg::Sync {
            docs: vec![DocMessage { doc: job, data }],
        })
        .await;
    assert_eq!(
        peer.raw.next_error().await,
        (ErrorCode::TooCostly, Some(job))
    );
    peer.raw.round_trip(1).await;
    assert_eq!(server.store().load(job).await.unwrap(), stored_before);
    let state = server.doc_json(&meta(&server, job).await).await;
    assert_eq!(state["title"], "Fix the AC");
}

/// Access ends at unassignment: the old device gets nothing new for the job, not even after
/// reconnecting, while what it still uploads is kept and flagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unassigned_device_reads_nothing_new_but_loses_nothing() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let (ana, ben) = (&team.techs[0], &team.techs[1]);
    let job = team.job(&server, "Fix the AC", "general", &[ana]).await;
    let device = server
        .store()
        .register_device(ana.id, "ana's phone")
        .await
        .unwrap();
    let token = access_token(server.store(), ana, Some(device.id)).await;
    let peer = Peer::connect(&server, &token, job).await;
    let (mut doc, mut state) = (peer.doc, peer.state);
    drop(peer.raw);

    // Unassigned, reassigned to ben, then edited by the dispatcher.
    assert!(server.store().unassign(job, ana.id).await.unwrap());
    server.store().assign(job, ben.id).await.unwrap();
    server
        .app
        .sets_changed(&[ana.id, ben.id], team.org.id)
        .await;
    let m = meta(&server, job).await;
    {
        let mut sd = server.app.docs.lock(&m).await.unwrap();
        let before = sd.doc.get_heads();
        sd.doc.put(ROOT, "title", "Secret new title").unwrap();
        sd.doc.commit();
        let seq = server.app.docs.persist(&mut sd, &before).await.unwrap();
        drop(sd);
        server.app.doc_changed(job, seq.unwrap(), None);
    }

    for round in 0..2 {
        let mut raw = connect(&server.url, Some(&token)).await.unwrap();
        let welcome = raw.hello().await;
        let ServerMsg::Welcome { set, removing, .. } = &welcome else {
            unreachable!()
        };
        assert!(set.iter().all(|e| e.job_id != job));
        assert!(removing.contains(&job), "round {round}: {welcome:?}");
        let mut peer = Peer {
            raw,
            doc_id: job,
            doc,
            state,
            seen: vec![],
        };
        peer.settle().await;
        let said = peer
            .edit(|d| {
                d.put(ROOT, "notes", format!("done, round {round}"))
                    .unwrap();
            })
            .await;
        assert!(acked(&said, job), "the late change is kept: {said:?}");
        let mine = schemas::read_json(&peer.doc);
        assert_eq!(
            mine["title"], "Fix the AC",
            "round {round}: nothing new reached it"
        );
        let on_server = server.doc_json(&m).await;
        assert_eq!(on_server["notes"], format!("done, round {round}"));
        assert_eq!(on_server["title"], "Secret new title");
        (doc, state) = (peer.doc, peer.state);
    }
    let audit = server.store().job_audit(job).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "after_unassign" && a.flagged),
        "{audit:?}"
    );
}

/// A flooding client is told to slow down and then receives its close frame (not a reset),
/// even while it keeps sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_client_receives_its_close_frame() {
    let mut home = ServerHome::new(Backend::Sqlite).await;
    home.config.max_messages_per_second = 20;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let token = access_token(server.store(), &team.techs[0], None).await;
    let mut raw = connect(&server.url, Some(&token)).await.unwrap();
    raw.hello().await;
    // Far more than twice the limit, all sent before reading anything.
    for id in 0..500 {
        raw.send(&ClientMsg::Ping { id }).await;
    }
    let code = loop {
        match raw.recv().await {
            Received::Closed(code, _) => break code,
            Received::Msg(_) => {}
        }
    };
    assert_eq!(code, close::RATE_LIMITED);
}

/// `method url` with a bearer token and an optional JSON body: (status, JSON reply).
async fn http(
    method: &'static str,
    url: String,
    token: String,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        let mut reply = match body {
            Some(b) => agent.run(builder.body(b.to_string()).unwrap()),
            None => agent.run(builder.body(()).unwrap()),
        }
        .unwrap();
        let status = reply.status().as_u16();
        let text = reply.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    })
    .await
    .unwrap()
}

/// A job document stored broken (as changes accepted before the server checked them left it)
/// does not stop the dispatcher: GET heals it (audited and flagged on the reply), and PATCH to
/// cancel and unassign work, on both stores.
async fn broken_documents_are_healed_on_read(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let ana = &team.techs[0];
    let job = team.job(&server, "Fix the AC", "general", &[ana]).await;
    // Break it behind the guard's back, straight into the change log.
    let m = meta(&server, job).await;
    {
        let mut sd = server.app.docs.lock(&m).await.unwrap();
        let before = sd.doc.get_heads();
        sd.doc.put(ROOT, "status", "teleported").unwrap();
        sd.doc.delete(ROOT, "title").unwrap();
        sd.doc.commit();
        server.app.docs.persist(&mut sd, &before).await.unwrap();
    }
    assert!(!is_valid(DocKind::Job, &server.doc_json(&m).await));

    let token = access_token(server.store(), &team.dispatcher, None).await;
    let url = format!("{}/api/v1/jobs/{job}", server.url);
    let (status, reply) = http("GET", url.clone(), token.clone(), None).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["title"], "Fix the AC", "{reply}");
    let flags = reply["flags"].as_array().unwrap();
    assert!(
        flags
            .iter()
            .any(|f| f["action"] == "repair" && f["reasons"].to_string().contains("status")),
        "{reply}"
    );
    assert!(is_valid(DocKind::Job, &server.doc_json(&m).await));

    let (status, reply) = http(
        "PATCH",
        url.clone(),
        token.clone(),
        Some(serde_json::json!({"status": "cancelled"})),
    )
    .await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("cancelled")),
        "{reply}"
    );
    let (status, reply) = http(
        "POST",
        format!("{url}/unassign"),
        token,
        Some(serde_json::json!({"user": ana.name})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_documents_are_healed_on_read_on_sqlite() {
    broken_documents_are_healed_on_read(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_documents_are_healed_on_read_on_postgres() {
    broken_documents_are_healed_on_read(Backend::Postgres).await;
}

/// `/sync` without the WebSocket upgrade answers the API's JSON error body, not plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_without_an_upgrade_gets_a_json_error() {
    let home = ServerHome::new(Backend::Sqlite).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let token = access_token(server.store(), &team.techs[0], None).await;
    let (status, reply) = http("GET", format!("{}/sync", server.url), token, None).await;
    assert!((400..500).contains(&status), "{status} {reply}");
    assert_eq!(reply["error"], "websocket-required", "{reply}");
    assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
}
