//! Load-generator benchmarks of the sync server over real sockets. Prints the figures recorded in
//! BENCHMARKS.md ("Sync server"), one line per scenario:
//!
//!     SQLX_OFFLINE=true cargo bench -p sync-server --bench sync_load [-- ack|fanout|idle|initial|cache]
//!
//! - `ack`: edit→ack latency with 1,000 and 10,000 documents open across devices;
//! - `fanout`: edit→other device latency with 1,000 devices connected;
//! - `idle`: server RSS with 10,000 idle device sockets (the server as a separate process);
//! - `initial`: a week's work (50 jobs, 200 documents) to an empty `client_core::Replica`;
//! - `cache`: server RSS after touching 50,000 documents with a 64 MiB document cache (a separate
//!   process);
//! - `jobs`: the hot path: technicians sign in over HTTP, create jobs on their devices and edit
//!   them, paced or unpaced, with a dispatcher watching; server CPU per document and per edit
//!   against Automerge's own cost, peak RSS, latencies, and a rate sweep (`sync_load/jobs.rs`).
//!
//! Every scenario starts its own server on 127.0.0.1, port 0 (in this process, on a runtime of its
//! own, or — `idle`, `cache` — the `sync-server` binary that cargo builds with the bench), seeds
//! org, users, jobs and tokens straight through the store, and drives devices with the raw
//! protocol client below (tokio-tungstenite, `schemas::wire`, one Automerge document and sync
//! state per document). The store is the embedded SQLite store in a temporary directory
//! (`synchronous = FULL`: every append fsyncs) unless `BENCH_DATABASE_URL=postgres://…` names a
//! database to use instead (data is added under fresh names; nothing is dropped).
//!
//! Knobs (environment): `BENCH_ACK_EDITS` (4000), `BENCH_ACK_CACHE_MB` (2048: every document stays
//! loaded), `BENCH_FANOUT_EDITS` (2000), `BENCH_FANOUT_RATE` (100 edits/s), `BENCH_IDLE_SOCKETS`
//! (10000), `BENCH_IDLE_PER_TECH` (4 devices per technician), `BENCH_IDLE_NO_JOBS` (set: empty
//! document sets, the sockets' own cost), `BENCH_CACHE_DOCS` (50000), `BENCH_CACHE_MB` (64), and
//! `BENCH_SERVER_WRAP`: a command the separate server process is started through, which must exec
//! it (e.g. `env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2` to try another allocator).
//!
//! `idle` needs about 10,200 file descriptors in this process (`ulimit -n`); the server process
//! gets its hard limit.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::sync::{self as am_sync, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ChangeHash, ROOT};
use chrono::Utc;
use fieldsync_test_support::ServerProcess;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::checklist::{self, ChecklistItem, ItemValue};
use schemas::job::{self, Customer, NewJob, Schedule, Signoff, Site};
use schemas::parts::{self, NewPartLine};
use schemas::photo::{self, GeoPoint, NewPhoto};
use schemas::template::{self, ItemKind};
use schemas::wire::{self, ClientMsg, DocEntry, DocMessage, ServerMsg};
use schemas::{DocKind, JobStatus, Priority};
use sync_server::AppState;
use sync_server::config::{Config, Database};
use sync_server::store::{DocMeta, Role, User};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use uuid::Uuid;

#[path = "sync_load/jobs.rs"]
mod jobs;

// ---- figures ------------------------------------------------------------------------------------

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

fn bench_db() -> Option<String> {
    std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

fn store_label() -> String {
    match bench_db() {
        Some(_) => "Postgres (BENCH_DATABASE_URL)".into(),
        None => "embedded SQLite (WAL, synchronous=FULL: each append fsyncs), temp dir".into(),
    }
}

/// How the separate server process runs (its allocator is the binary's, jemalloc, unless a
/// wrapper preloads another).
fn process_label() -> String {
    match std::env::var("BENCH_SERVER_WRAP") {
        Ok(w) if !w.trim().is_empty() => format!("separate process via `{}`", w.trim()),
        _ => "separate process, jemalloc".into(),
    }
}

/// The server's configuration for a scenario: defaults, the bench's store, long-lived tokens.
fn bench_config(dir: &Path) -> Config {
    let mut config = Config::embedded(dir);
    if let Some(url) = bench_db() {
        config.database = Database::Postgres(url);
    }
    config
}

const TOKEN_TTL_HOURS: i64 = 12;

// ---- seeding through the store ------------------------------------------------------------------

const TEMPLATES: [&str; 5] = [
    "hvac_maintenance",
    "collision_qc",
    "device_diagnostics",
    "hotel_maintenance",
    "general",
];

const TITLES: [&str; 6] = [
    "Rooftop unit seasonal service",
    "Walk-in freezer not holding temperature",
    "Rear bumper and quarter panel QC",
    "Laptop intake diagnostics",
    "Room 412: AC not cooling",
    "Lobby lighting circuit fault",
];

const NOTES: [&str; 4] = [
    "Arrived on site, met the facilities manager and isolated the unit at the disconnect. ",
    "Condenser coil was clogged with cottonwood; cleaned it with coil cleaner and rinsed. ",
    "Suction pressure back within range after cleaning; replaced the cracked fan belt from van stock. ",
    "Recommend quarterly coil cleaning during spring. Customer signed off on the work.",
];

/// Seeds one org of a scenario: its dispatcher, technicians, jobs and tokens.
struct Seeder {
    app: Arc<AppState>,
    run: String,
    org: Uuid,
    dispatcher: User,
    password_hash: String,
    actor: ActorId,
    jobs: usize,
}

impl Seeder {
    async fn new(app: Arc<AppState>, label: &str) -> Seeder {
        let id = Uuid::now_v7().simple().to_string();
        let run = format!("{label}-{}", &id[id.len() - 8..]);
        let org = app
            .store
            .create_org(&format!("bench-{run}"))
            .await
            .expect("create org");
        // One argon2 hash for everyone: hashing is deliberately slow and nobody signs in here.
        let password_hash = sync_server::auth::hash_password("bench-password");
        let dispatcher = app
            .store
            .create_user(
                org.id,
                &format!("{run}-dispatch"),
                Role::Dispatcher,
                &password_hash,
            )
            .await
            .expect("create dispatcher");
        Seeder {
            app,
            run,
            org: org.id,
            dispatcher,
            password_hash,
            actor: ActorId::random(),
            jobs: 0,
        }
    }

    async fn technician(&self, i: usize) -> User {
        self.app
            .store
            .create_user(
                self.org,
                &format!("{}-tech{i}", self.run),
                Role::Technician,
                &self.password_hash,
            )
            .await
            .expect("create technician")
    }

    /// A job (job, checklist and parts documents, plus a photo document when asked) assigned to
    /// `assignees`, made the way the dispatcher API makes it.
    async fn job(&mut self, assignees: &[&User], with_photo: bool) -> Vec<DocEntry> {
        let i = self.jobs;
        self.jobs += 1;
        let tpl = template::find(TEMPLATES[i % TEMPLATES.len()]).expect("built-in template");
        let new = NewJob {
            title: format!("{} #{i}", TITLES[i % TITLES.len()]),
            description: "Customer reports the unit trips after a few minutes; check and service."
                .into(),
            customer: Customer {
                id: None,
                name: format!("Customer {}", i % 97),
                phone: Some(format!("+44 20 7946 {:04}", i % 10_000)),
                email: None,
            },
            site: Site {
                id: None,
                name: format!("Site {}", i % 53),
                address: Some(format!("{} Harbour St", i % 200 + 1)),
            },
            asset: None,
            assignees: assignees.iter().map(|u| u.name.clone()).collect(),
            schedule: Some(Schedule {
                start: Utc::now() + chrono::Duration::hours((i % 40) as i64),
                end: None,
            }),
            priority: Priority::Medium,
            follow_up_of: None,
        };
        let job = sync_server::jobs::create_job_documents(
            &self.app,
            &sync_server::jobs::Actor::from(&self.dispatcher),
            &new,
            &tpl,
        )
        .await
        .expect("create job");
        for u in assignees {
            self.app.store.assign(job, u.id).await.expect("assign");
        }
        let mut metas = self.app.store.job_documents(job).await.expect("documents");
        if with_photo {
            metas.push(self.photo(job, i).await);
        }
        metas
            .iter()
            .map(|m| sync_server::store::entry_of(m).expect("known kind"))
            .collect()
    }

    async fn photo(&self, job_id: Uuid, i: usize) -> DocMeta {
        let id = schemas::new_id();
        let new = NewPhoto {
            job_id,
            checklist_item: Some("nameplate_photo".into()),
            sha256: hex_of(i as u64 + 1),
            size: 2_400_000 + i as u64,
            mime: "image/jpeg".into(),
            width: 4032,
            height: 3024,
            taken_at: Utc::now(),
            location: Some(GeoPoint {
                lat: 51.5 + (i % 100) as f64 / 1000.0,
                lon: -0.12,
            }),
            caption: "Unit nameplate".into(),
        };
        let mut doc = photo::create(&self.actor, id, &new, &self.dispatcher.name).expect("photo");
        doc.commit();
        let meta = DocMeta {
            id,
            org_id: self.org,
            kind: DocKind::Photo.as_str().into(),
            job_id,
        };
        sync_server::jobs::store_new_document(&self.app, &meta, &mut doc)
            .await
            .expect("store the photo document");
        meta
    }

    fn meta(&self, e: &DocEntry) -> DocMeta {
        sync_server::store::meta_of(e, self.org)
    }

    /// Apply `edit` to a document as a technician's device would (its own actor, one commit per
    /// action), and store the changes.
    async fn edit(&self, e: &DocEntry, actor: &ActorId, edit: impl FnOnce(&mut AutoCommit)) {
        let mut sd = self.app.docs.lock(&self.meta(e)).await.expect("load");
        let before = sd.doc.get_heads();
        let mut fork = sd.doc.fork().with_actor(actor.clone());
        edit(&mut fork);
        fork.commit();
        sd.doc.merge(&mut fork).expect("merge");
        self.app
            .docs
            .persist(&mut sd, &before)
            .await
            .expect("persist");
    }

    /// A finished job's worth of work on its documents: status changes, a time entry, notes typed
    /// in four saves, every checklist item answered, parts used, a sign-off, the photo uploaded.
    async fn fill_week(&self, entries: &[DocEntry], tech: &User, i: usize) {
        let actor = ActorId::random();
        let by = tech.name.as_str();
        let start = Utc::now() - chrono::Duration::days((i % 5) as i64 + 1);
        for e in entries {
            match e.kind {
                DocKind::Job => {
                    self.edit(e, &actor, |d| {
                        let mut at = start;
                        let mut step = |d: &mut AutoCommit, from, to| {
                            at += chrono::Duration::minutes(35);
                            job::set_status(d, from, to, by, at).expect("status");
                            d.commit();
                        };
                        step(d, JobStatus::Assigned, JobStatus::EnRoute);
                        step(d, JobStatus::EnRoute, JobStatus::InProgress);
                        job::start_time_entry(d, "te-1", by, start).expect("time");
                        d.commit();
                        let mut notes = String::new();
                        for n in NOTES {
                            notes.push_str(n);
                            job::set_notes(d, &notes).expect("notes");
                            d.commit();
                        }
                        job::stop_time_entry(d, "te-1", start + chrono::Duration::hours(2))
                            .expect("time");
                        d.commit();
                        step(d, JobStatus::InProgress, JobStatus::Completed);
                        let signoff = Signoff {
                            signer_name: format!("Site manager {}", i % 13),
                            signature_sha256: hex_of(1000 + i as u64),
                            signed_at: start + chrono::Duration::hours(2),
                            summary_sha256: hex_of(2000 + i as u64),
                            by: by.to_string(),
                        };
                        job::set_signoff(d, &signoff).expect("signoff");
                        d.commit();
                    })
                    .await
                }
                DocKind::Checklist => {
                    self.edit(e, &actor, |d| {
                        let items = checklist::read(d).expect("checklist").items;
                        for (k, item) in items.iter().enumerate() {
                            let v = value_for(item, i + k);
                            let at = start + chrono::Duration::minutes(5 * k as i64);
                            checklist::set_value(d, &item.id, Some(&v), by, at).expect("value");
                            d.commit();
                        }
                        // One answer corrected afterwards, as happens.
                        if let Some(item) = items.first() {
                            let v = value_for(item, i + 1);
                            checklist::set_value(d, &item.id, Some(&v), by, start).expect("value");
                            d.commit();
                        }
                    })
                    .await
                }
                DocKind::Parts => {
                    self.edit(e, &actor, |d| {
                        for k in 0..4 {
                            let line = NewPartLine {
                                sku: format!("SKU-{:05}", (i * 7 + k * 13) % 99_991),
                                description: PART_NAMES[k % PART_NAMES.len()].into(),
                                qty: (k + 1) as f64,
                                unit: Some("ea".into()),
                                source: Some("van".into()),
                            };
                            parts::add_line(d, &format!("line-{k}"), &line, by, start)
                                .expect("part");
                            d.commit();
                        }
                        parts::set_qty(d, "line-1", 1.0, by, start).expect("qty");
                        d.commit();
                    })
                    .await
                }
                DocKind::Photo => {
                    self.edit(e, &actor, |d| {
                        d.put(
                            ROOT,
                            "caption",
                            format!("Nameplate of unit {i}, serial visible"),
                        )
                        .expect("caption");
                        d.commit();
                        d.put(ROOT, "upload", "uploaded").expect("upload");
                        d.commit();
                    })
                    .await
                }
            }
        }
    }

    /// An access token (12 h) for `user`, on a newly registered device unless `device` is false
    /// (a dispatcher's browser session).
    async fn token(&self, user: &User, device: bool) -> String {
        let device = if device {
            Some(
                self.app
                    .store
                    .register_device(user.id, "bench device")
                    .await
                    .expect("register device")
                    .id,
            )
        } else {
            None
        };
        let ttl = chrono::Duration::hours(TOKEN_TTL_HOURS);
        sync_server::auth::issue(self.app.store.as_ref(), user, device, Utc::now(), ttl, ttl)
            .await
            .expect("issue token")
            .access_token
    }
}

const PART_NAMES: [&str; 4] = [
    "Pleated air filter 20x25x2",
    "V-belt A42",
    "Capacitor 45/5 uF 440 V",
    "Coil cleaner, 1 gal",
];

fn hex_of(n: u64) -> String {
    format!("{:064x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn value_for(item: &ChecklistItem, n: usize) -> ItemValue {
    match item.kind {
        ItemKind::PassFail => ItemValue::Text(["pass", "pass", "fail", "na"][n % 4].into()),
        ItemKind::Number => {
            let lo = item.min.unwrap_or(0.0);
            let hi = item.max.unwrap_or(lo + 100.0);
            ItemValue::Number(lo + (hi - lo) * (n % 10) as f64 / 10.0)
        }
        ItemKind::Choice if !item.choices.is_empty() => {
            ItemValue::Text(item.choices[n % item.choices.len()].clone())
        }
        ItemKind::Choice | ItemKind::Text => ItemValue::Text(format!(
            "Checked and noted on visit {n}; no further action needed."
        )),
        ItemKind::PhotoRequired => ItemValue::Text(Uuid::now_v7().to_string()),
    }
}

// ---- the raw protocol client --------------------------------------------------------------------

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

struct DevDoc {
    entry: DocEntry,
    doc: AutoCommit,
    state: am_sync::State,
    /// The checklist's items, read at the first edit.
    items: Option<Vec<ChecklistItem>>,
}

/// One device connection: the socket, and an Automerge document and sync state per document.
struct Device {
    ws: Ws,
    name: String,
    actor: ActorId,
    docs: HashMap<Uuid, DevDoc>,
    ids: Vec<Uuid>,
    next_ping: u64,
    edits: u64,
    errors: Vec<String>,
}

impl Device {
    async fn connect(addr: SocketAddr, token: &str, name: &str) -> Result<Device, String> {
        let mut req = format!("ws://{addr}/sync")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?,
        );
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_tungstenite::connect_async_with_config(req, None, true),
        )
        .await
        .map_err(|_| format!("{name}: connect timed out"))?
        .map_err(|e| format!("{name}: connect: {e}"))?;
        Ok(Device {
            ws,
            name: name.to_string(),
            actor: ActorId::random(),
            docs: HashMap::new(),
            ids: Vec::new(),
            next_ping: 0,
            edits: 0,
            errors: Vec::new(),
        })
    }

    async fn send(&mut self, msg: &ClientMsg) -> Result<(), String> {
        let bytes = wire::encode(msg);
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|e| format!("{}: send: {e}", self.name))
    }

    async fn send_docs(&mut self, docs: Vec<DocMessage>) -> Result<(), String> {
        for docs in schemas::wire::frames_of(docs) {
            self.send(&ClientMsg::Sync { docs }).await?;
        }
        Ok(())
    }

    /// A frame read from the socket, as a server message (`None` for control frames).
    fn decode(
        &mut self,
        frame: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<Option<ServerMsg>, String> {
        match frame {
            None => Err(format!("{}: the server closed the socket", self.name)),
            Some(Err(e)) => Err(format!("{}: {e}", self.name)),
            Some(Ok(Message::Binary(b))) => wire::decode_server(&b, usize::MAX)
                .map(Some)
                .map_err(|e| format!("{}: bad frame: {e}", self.name)),
            Some(Ok(Message::Close(c))) => {
                Err(format!("{}: closed by the server: {c:?}", self.name))
            }
            Some(Ok(_)) => Ok(None),
        }
    }

    /// The next server message and when its frame was read.
    async fn recv(&mut self, limit: Duration) -> Result<(ServerMsg, Instant), String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| format!("{}: nothing from the server within {limit:?}", self.name))?;
            let at = Instant::now();
            if let Some(msg) = self.decode(frame)? {
                return Ok((msg, at));
            }
        }
    }

    fn note(&mut self, msg: ServerMsg) {
        if let ServerMsg::Error { code, message, .. } = msg {
            self.errors.push(format!("{}: {message}", code.as_str()));
        }
    }

    /// Apply the server's sync messages; returns the replies.
    fn apply(&mut self, docs: Vec<DocMessage>) -> Vec<DocMessage> {
        let mut out = Vec::new();
        for DocMessage { doc, data } in docs {
            let Some(d) = self.docs.get_mut(&doc) else {
                continue;
            };
            let msg = match am_sync::Message::decode(&data) {
                Ok(m) => m,
                Err(e) => {
                    self.errors.push(format!("undecodable sync message: {e}"));
                    continue;
                }
            };
            if let Err(e) = d.doc.sync().receive_sync_message(&mut d.state, msg) {
                self.errors
                    .push(format!("sync message does not apply: {e}"));
                continue;
            }
            if let Some(m) = schemas::sync_message::generate(&mut d.doc, &mut d.state) {
                out.push(DocMessage {
                    doc,
                    data: m.encode(),
                });
            }
        }
        out
    }

    async fn hello(&mut self) -> Result<(), String> {
        self.send(&ClientMsg::Hello {
            protocol: wire::PROTOCOL_VERSION,
            client: "sync_load bench".into(),
        })
        .await?;
        let (msg, _) = self.recv(Duration::from_secs(60)).await?;
        let ServerMsg::Welcome { set, .. } = msg else {
            return Err(format!("{}: expected welcome, got {msg:?}", self.name));
        };
        for entry in set {
            self.ids.push(entry.id);
            self.docs.insert(
                entry.id,
                DevDoc {
                    entry,
                    doc: AutoCommit::new().with_actor(self.actor.clone()),
                    state: am_sync::State::new(),
                    items: None,
                },
            );
        }
        Ok(())
    }

    /// Exchange sync messages until a ping comes back with nothing exchanged since it was sent
    /// and every document has content.
    async fn settle(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        for _ in 0..1_000 {
            self.next_ping += 1;
            let id = self.next_ping;
            self.send(&ClientMsg::Ping { id }).await?;
            let mut activity = false;
            loop {
                let left = deadline
                    .checked_duration_since(Instant::now())
                    .ok_or_else(|| format!("{}: did not settle within {limit:?}", self.name))?;
                match self.recv(left).await?.0 {
                    ServerMsg::Sync { docs } => {
                        activity = true;
                        let replies = self.apply(docs);
                        self.send_docs(replies).await?;
                    }
                    ServerMsg::Pong { id: got } if got == id => break,
                    other => self.note(other),
                }
            }
            if !activity {
                let empty = self
                    .docs
                    .values_mut()
                    .filter_map(|d| d.doc.get_heads().is_empty().then_some(()))
                    .count();
                return if empty == 0 {
                    Ok(())
                } else {
                    Err(format!("{}: {empty} documents never arrived", self.name))
                };
            }
        }
        Err(format!("{}: did not settle in 1,000 rounds", self.name))
    }

    /// Handshake and the initial sync of the device's whole set.
    async fn initial_sync(&mut self) -> Result<(), String> {
        self.hello().await?;
        self.settle(Duration::from_secs(300)).await
    }

    /// A technician's edit on `doc`, committed; returns the change's hash.
    fn edit(&mut self, doc: Uuid) -> ChangeHash {
        // Numbered across all devices, so two devices never write the same text.
        static EDITS: AtomicU64 = AtomicU64::new(1);
        self.edits += 1;
        let n = EDITS.fetch_add(1, Ordering::Relaxed);
        let by = self.name.clone();
        let d = self.docs.get_mut(&doc).expect("a document of the device");
        let now = Utc::now();
        match d.entry.kind {
            DocKind::Job => job::set_notes(
                &mut d.doc,
                &format!(
                    "Visit note {n}: checked pressures, replaced the filter, cleaned the coil."
                ),
            )
            .expect("notes"),
            DocKind::Checklist => {
                if d.items.is_none() {
                    d.items = Some(checklist::read(&d.doc).expect("checklist").items);
                }
                let items = d.items.as_ref().expect("read above");
                let item = &items[n as usize % items.len()];
                let v = value_for(item, n as usize);
                checklist::set_value(&mut d.doc, &item.id, Some(&v), &by, now).expect("value")
            }
            DocKind::Parts => {
                let line = NewPartLine {
                    sku: format!("SKU-{:05}", n % 99_991),
                    description: PART_NAMES[n as usize % PART_NAMES.len()].into(),
                    qty: (n % 4 + 1) as f64,
                    unit: Some("ea".into()),
                    source: Some("van".into()),
                };
                parts::add_line(&mut d.doc, &format!("line-{}", n % 6), &line, &by, now)
                    .expect("part")
            }
            DocKind::Photo => d
                .doc
                .put(ROOT, "caption", format!("Nameplate, take {n}"))
                .expect("caption"),
        }
        d.doc.commit().expect("an edit makes a change")
    }

    fn generate(&mut self, doc: Uuid) -> Option<DocMessage> {
        let d = self.docs.get_mut(&doc)?;
        let m = schemas::sync_message::generate(&mut d.doc, &mut d.state)?;
        Some(DocMessage {
            doc,
            data: m.encode(),
        })
    }

    fn has_change(&mut self, doc: Uuid, hash: &ChangeHash) -> bool {
        self.docs
            .get_mut(&doc)
            .is_some_and(|d| d.doc.get_change_by_hash(hash).is_some())
    }

    /// Edit `doc`, send the sync message, and time until the ack covering the change arrives.
    /// Then wait (untimed, up to 200 ms) for the server's sync reply, so the exchange is complete
    /// before the next edit.
    async fn timed_edit(&mut self, doc: Uuid) -> Result<Duration, String> {
        let hash = self.edit(doc);
        let t0 = Instant::now();
        let m = self
            .generate(doc)
            .ok_or_else(|| format!("{}: an edit produced no sync message", self.name))?;
        self.send(&ClientMsg::Sync { docs: vec![m] }).await?;
        let mut latency = None;
        let mut replied = false;
        let mut deadline = t0 + Duration::from_secs(10);
        while latency.is_none() || !replied {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let (msg, at) = match self.recv(left).await {
                Ok(x) => x,
                Err(_) if latency.is_some() => break,
                Err(e) => return Err(e),
            };
            match msg {
                ServerMsg::Ack { docs } => {
                    if latency.is_none()
                        && docs
                            .iter()
                            .any(|d| d.doc == doc && d.change_hashes().contains(&hash))
                    {
                        latency = Some(at - t0);
                        deadline = at + Duration::from_millis(200);
                    }
                }
                ServerMsg::Sync { docs } => {
                    replied |= docs.iter().any(|d| d.doc == doc);
                    let replies = self.apply(docs);
                    self.send_docs(replies).await?;
                }
                other => self.note(other),
            }
        }
        latency.ok_or_else(|| format!("{}: no ack within 10 s", self.name))
    }
}

/// Connect and initially sync every device, `concurrency` at a time; results in token order.
/// `keep_docs` false drops each device's documents once synced (idle sockets only).
async fn connect_all(
    addr: SocketAddr,
    tokens: Vec<(String, String)>,
    concurrency: usize,
    keep_docs: bool,
) -> Vec<Result<Device, String>> {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    let n = tokens.len();
    for (i, (name, token)) in tokens.into_iter().enumerate() {
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let result = async {
                let mut d = Device::connect(addr, &token, &name).await?;
                d.initial_sync().await?;
                if !keep_docs {
                    d.docs = HashMap::new();
                    d.ids = Vec::new();
                }
                Ok(d)
            }
            .await;
            (i, result)
        });
    }
    let mut out: Vec<Option<Result<Device, String>>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.expect("device task");
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every device reported"))
        .collect()
}

fn all_ok(devices: Vec<Result<Device, String>>) -> Vec<Device> {
    devices
        .into_iter()
        .map(|d| d.unwrap_or_else(|e| panic!("device failed: {e}")))
        .collect()
}

// ---- servers ------------------------------------------------------------------------------------

/// The server in this process, on a runtime of its own (2 workers on this machine, as the binary
/// would have), with the bench's clients on another.
struct InProc {
    rt: Option<Runtime>,
    app: Arc<AppState>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl InProc {
    fn start(tune: impl FnOnce(&mut Config)) -> InProc {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = bench_config(dir.path());
        tune(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("server")
            .build()
            .expect("server runtime");
        let (app, addr, stop) = rt.block_on(async {
            let store = sync_server::open_store(&config).await.expect("open store");
            let app = AppState::new(config, store);
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(sync_server::serve(app.clone(), listener, async {
                let _ = stopped.await;
            }));
            (app, addr, stop)
        });
        InProc {
            rt: Some(rt),
            app,
            addr,
            stop: Some(stop),
            _dir: dir,
        }
    }

    /// Run seeding on the server's runtime (the store belongs to it).
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("running").block_on(f)
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// Seed the store of a separate server process before it starts: the bench opens the same
/// database, runs `seed` with an `AppState` of its own (its cache small), and closes it.
fn seed_offline<T>(dir: &Path, seed: impl AsyncFnOnce(Arc<AppState>) -> T) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("seeding runtime");
    let out = rt.block_on(async {
        let mut config = bench_config(dir);
        config.doc_cache_bytes = 16 << 20;
        let store = sync_server::open_store(&config).await.expect("open store");
        let app = AppState::new(config, store);
        seed(app).await
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    out
}

/// The `sync-server` binary (built by cargo with this bench) as a child process.
struct ChildServer {
    _process: ServerProcess,
    addr: SocketAddr,
    pid: u32,
}

impl ChildServer {
    fn spawn(dir: &Path, cache_mb: usize) -> ChildServer {
        ChildServer::spawn_with(dir, cache_mb, &[])
    }

    /// [`ChildServer::spawn`] with more settings for the server's environment.
    fn spawn_with(dir: &Path, cache_mb: usize, env: &[(&str, &str)]) -> ChildServer {
        let exe = env!("CARGO_BIN_EXE_sync-server");
        let mut cmd = std::process::Command::new("sh");
        // Raise the soft fd limit to the hard one for the server (10,000 sockets).
        cmd.arg("-c")
            .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec $BENCH_SERVER_WRAP "$0" "$@""#)
            .arg(exe)
            .arg("--data-dir")
            .arg(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("FIELDSYNC_DOC_CACHE_MB", cache_mb.to_string())
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .stderr(std::process::Stdio::inherit());
        if let Some(url) = bench_db() {
            cmd.env("DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        // `exec`: the shell's process becomes the server's, so its pid is the server's.
        let process = ServerProcess::start(cmd);
        ChildServer {
            addr: process.addr,
            pid: process.pid(),
            _process: process,
        }
    }

    /// (VmRSS, VmHWM) in bytes.
    fn rss(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Threads and the kinds of resident memory, from /proc.
    fn status_summary(&self) -> String {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .filter(|l| {
                ["Threads:", "RssAnon:", "RssFile:", "VmData:"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// User + system CPU time so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (in parentheses): utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
    }
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Samples a process's RSS every 100 ms on a thread until dropped; keeps the largest.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kb) = status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    m.fetch_max(kb * 1024, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// GET `path` over plain HTTP/1.1; the body.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    };
    tokio::time::timeout(Duration::from_secs(30), fetch)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The dispatcher board's live feed, read as `/board` reads it: `GET /api/v1/board/events` over
/// HTTP/1.1 (chunked), recording each `changed` event's log position and arrival time.
async fn board_feed(addr: SocketAddr, token: String, events: Arc<Mutex<Vec<(i64, Instant)>>>) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        eprintln!("    board feed: cannot connect");
        return;
    };
    let _ = s.set_nodelay(true);
    let request = format!(
        "GET /api/v1/board/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    if s.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    let mut raw = Vec::new();
    let mut body = Vec::new();
    let mut in_body = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let Ok(n) = s.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        let at = Instant::now();
        raw.extend_from_slice(&buf[..n]);
        if !in_body {
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            if !head.starts_with("HTTP/1.1 200") {
                eprintln!(
                    "    board feed refused: {}",
                    head.lines().next().unwrap_or("")
                );
                return;
            }
            raw.drain(..end + 4);
            in_body = true;
        }
        // Chunked transfer coding: `<hex size>\r\n<data>\r\n`, as many as are complete.
        while let Some(line) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..line]).trim(), 16)
                .unwrap_or(0);
            if raw.len() < line + 2 + size + 2 {
                break;
            }
            body.extend_from_slice(&raw[line + 2..line + 2 + size]);
            raw.drain(..line + 2 + size + 2);
        }
        // Server-sent events end with a blank line.
        while let Some(end) = body.windows(2).position(|w| w == b"\n\n") {
            let event = String::from_utf8_lossy(&body[..end]).to_string();
            body.drain(..end + 2);
            if event.lines().any(|l| l == "event: changed")
                && let Some(pos) = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .and_then(|d| d.trim().parse().ok())
            {
                events.lock().expect("feed").push((pos, at));
            }
        }
    }
}

/// The cumulative buckets `(upper bound in s, count)` of `fieldsync_projection_lag_seconds`.
fn lag_buckets(metrics: &str) -> Vec<(f64, u64)> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("fieldsync_projection_lag_seconds_bucket{le=\"")?;
            let (le, tail) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, tail.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// The `q` quantile of cumulative buckets, interpolated inside its bucket as Prometheus'
/// `histogram_quantile` does, and that bucket's upper bound (a sure bound on it).
fn quantile(buckets: &[(f64, u64)], q: f64) -> (f64, f64) {
    let total = buckets.last().map_or(0, |b| b.1);
    if total == 0 {
        return (0.0, 0.0);
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, n) in buckets {
        if n as f64 >= rank {
            if le.is_infinite() {
                return (lower.0, le);
            }
            let within = (rank - lower.1 as f64) / (n - lower.1).max(1) as f64;
            return (lower.0 + (le - lower.0) * within, le);
        }
        lower = (le, n);
    }
    (lower.0, f64::INFINITY)
}

/// A metric's value from the OpenMetrics text (the first sample named exactly `name`).
/// Wait until the server's projection stops moving (it has caught up with the log), at most
/// `limit`; returns the position it reached.
fn projection_caught_up(client: &Runtime, addr: SocketAddr, limit: Duration) -> f64 {
    let started = Instant::now();
    let (mut last, mut still_since) = (-1.0, Instant::now());
    loop {
        let body = client.block_on(http_get(addr, "/metrics"));
        let position = metric(&body, "fieldsync_projection_position").unwrap_or(0.0);
        if position != last {
            (last, still_since) = (position, Instant::now());
        } else if position > 0.0 && still_since.elapsed() >= Duration::from_secs(2) {
            return position;
        }
        if started.elapsed() > limit {
            eprintln!("    the projection was still moving after {limit:?}");
            return position;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The cumulative buckets of an OpenMetrics histogram: (upper bound, count).
fn buckets(body: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    body.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// "p99 ≤ X ms" of the observations a histogram got between two renderings.
fn hist_quantile(before: &str, after: &str, name: &str, q: f64) -> String {
    let (b, a) = (buckets(before, name), buckets(after, name));
    let diff: Vec<(f64, f64)> = a
        .iter()
        .map(|(le, n)| {
            (
                *le,
                n - b.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1),
            )
        })
        .collect();
    let total = diff.last().map_or(0.0, |x| x.1);
    if total == 0.0 {
        return "n/a".into();
    }
    match diff.iter().find(|(_, n)| *n >= q * total) {
        Some((le, _)) if le.is_finite() => format!("≤ {:.1} ms", le * 1e3),
        _ => "> largest bucket".into(),
    }
}

/// A TCP proxy that counts the bytes going each way (client→server, server→client).
async fn counting_proxy(target: SocketAddr) -> (SocketAddr, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let (u, d) = (up.clone(), down.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pump(ri, wo, u.clone()));
            tokio::spawn(pump(ro, wi, d.clone()));
        }
    });
    (addr, up, down)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64, Ordering::Relaxed);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

fn soft_fd_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

// ---- scenario 1: edit→ack -----------------------------------------------------------------------

struct AckRun {
    docs: usize,
    devices: usize,
    loaded: usize,
    seq: Vec<Duration>,
    conc: Vec<Duration>,
    errors: usize,
}

/// Edits on random documents of random devices, `workers` at a time (each worker owns a share
/// of the devices and edits one document at a time).
async fn run_edits(
    devices: Vec<Device>,
    workers: usize,
    edits: usize,
    seed: u64,
) -> (Vec<Duration>, Vec<Device>) {
    let mut groups: Vec<Vec<Device>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, d) in devices.into_iter().enumerate() {
        groups[i % workers].push(d);
    }
    let per = edits / workers;
    let mut set = JoinSet::new();
    for (w, mut group) in groups.into_iter().enumerate() {
        set.spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed * 1000 + w as u64);
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let dev = rng.random_range(0..group.len());
                let d = &mut group[dev];
                let doc = d.ids[rng.random_range(0..d.ids.len())];
                lat.push(d.timed_edit(doc).await.unwrap_or_else(|e| panic!("{e}")));
            }
            (lat, group)
        });
    }
    let mut lat = Vec::new();
    let mut devices = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (l, g) = joined.expect("edit worker");
        lat.extend(l);
        devices.extend(g);
    }
    lat.sort();
    (lat, devices)
}

fn ack_run(client: &Runtime, devices: usize, jobs_per_device: usize) -> AckRun {
    let cache_mb = env_usize("BENCH_ACK_CACHE_MB", 2048);
    let edits = env_usize("BENCH_ACK_EDITS", 4000);
    let srv = InProc::start(|c| c.doc_cache_bytes = cache_mb << 20);
    let started = Instant::now();
    let tokens = srv.block_on(async {
        let mut s = Seeder::new(srv.app.clone(), "ack").await;
        let mut tokens = Vec::new();
        for d in 0..devices {
            let tech = s.technician(d).await;
            for _ in 0..jobs_per_device {
                s.job(&[&tech], true).await;
            }
            tokens.push((tech.name.clone(), s.token(&tech, true).await));
        }
        tokens
    });
    let seeded = started.elapsed();
    let addr = srv.addr;
    let devs = all_ok(client.block_on(connect_all(addr, tokens, 16, true)));
    let docs: usize = devs.iter().map(|d| d.ids.len()).sum();
    let loaded = srv.app.docs.loaded_count();
    println!(
        "    ack setup: {docs} docs on {devices} devices (seeded in {:.1} s, initial syncs in {:.1} s); \
         {loaded} loaded in the server's cache (budget {cache_mb} MiB, estimate {})",
        seeded.as_secs_f64(),
        (started.elapsed() - seeded).as_secs_f64(),
        mib(srv.app.metrics.cache_bytes.get().max(0) as u64)
    );
    let (seq, conc, devs_after, m0, m1) = client.block_on(async {
        let (_, devs) = run_edits(devs, 1, 200.min(edits), 1).await; // warm-up
        let m0 = srv.app.metrics.render();
        let (seq, devs) = run_edits(devs, 1, edits, 2).await;
        let m1 = srv.app.metrics.render();
        let (conc, devs) = run_edits(devs, 8.min(devices), edits, 3).await;
        (seq, conc, devs, m0, m1)
    });
    println!(
        "    ack @{docs} docs, server's own view of the sequential run: frame→ack p50 {} p99 {}; \
         store append p50 {} p99 {}",
        hist_quantile(&m0, &m1, "fieldsync_sync_ack_latency_seconds", 0.5),
        hist_quantile(&m0, &m1, "fieldsync_sync_ack_latency_seconds", 0.99),
        hist_quantile(&m0, &m1, "fieldsync_store_append_latency_seconds", 0.5),
        hist_quantile(&m0, &m1, "fieldsync_store_append_latency_seconds", 0.99),
    );
    let errors = devs_after.iter().map(|d| d.errors.len()).sum();
    for d in devs_after.iter().filter(|d| !d.errors.is_empty()).take(3) {
        eprintln!("    {}: {:?}", d.name, &d.errors[..d.errors.len().min(3)]);
    }
    drop(devs_after);
    AckRun {
        docs,
        devices,
        loaded,
        seq,
        conc,
        errors,
    }
}

fn scenario_ack(client: &Runtime) {
    // The same 125 devices (so the same edit rate per connection) holding 2 or 20 jobs each, of 4
    // documents (job, checklist, parts, photo): 1,000 or 10,000 documents open.
    let small = ack_run(client, 125, 2);
    let large = ack_run(client, 125, 20);
    for r in [&small, &large] {
        println!(
            "    ack @{} docs / {} devices ({} loaded): sequential n={} p50 {} p99 {} max {}; \
             8 in flight n={} p50 {} p99 {} max {}; errors {}",
            r.docs,
            r.devices,
            r.loaded,
            r.seq.len(),
            ms(pct(&r.seq, 0.5)),
            ms(pct(&r.seq, 0.99)),
            ms(*r.seq.last().unwrap_or(&Duration::ZERO)),
            r.conc.len(),
            ms(pct(&r.conc, 0.5)),
            ms(pct(&r.conc, 0.99)),
            ms(*r.conc.last().unwrap_or(&Duration::ZERO)),
            r.errors,
        );
    }
    let (p99s, p99l) = (pct(&small.seq, 0.99), pct(&large.seq, 0.99));
    let ratio = p99l.as_secs_f64() / p99s.as_secs_f64();
    let ok = p99s < Duration::from_millis(5) && p99l < Duration::from_millis(5) && ratio < 1.5;
    println!(
        "ack: edit→ack (one edit in flight) @{} docs p50 {} p99 {} | @{} docs p50 {} p99 {} | \
         p99 ratio {ratio:.2} — goal p99 < 5 ms, ratio ≈ 1: {} [store: {}]",
        small.docs,
        ms(pct(&small.seq, 0.5)),
        ms(p99s),
        large.docs,
        ms(pct(&large.seq, 0.5)),
        ms(p99l),
        verdict(ok),
        store_label()
    );
}

// ---- scenario 2: fan-out ------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role2 {
    Tech,
    Dispatcher,
}

struct Track {
    sender: usize,
    hash: ChangeHash,
    sent: Instant,
    peer: Option<Duration>,
    dispatcher: Option<Duration>,
    ack: Option<Duration>,
}

struct Tracker {
    pending: Mutex<HashMap<Uuid, Track>>,
    with_dispatcher: bool,
    done: mpsc::UnboundedSender<(Uuid, Track)>,
    /// For the board's feed: per acknowledged edit, when it was sent and a log position at or
    /// after its change (the newest the server had committed when the ack arrived).
    board: Option<(Arc<AppState>, Mutex<Vec<BoardMark>>)>,
}

/// When an edit was sent, and a log position at or after its change.
type BoardMark = (Instant, i64);

impl Tracker {
    fn update(&self, doc: Uuid, f: impl FnOnce(&mut Track)) {
        let mut pending = self.pending.lock().expect("tracker");
        let Some(t) = pending.get_mut(&doc) else {
            return;
        };
        f(t);
        if t.ack.is_some() && t.peer.is_some() && (!self.with_dispatcher || t.dispatcher.is_some())
        {
            let t = pending.remove(&doc).expect("present");
            let _ = self.done.send((doc, t));
        }
    }
}

/// One device's loop in the fan-out run: edit when told, apply what arrives, and note when a
/// tracked change reaches it (or, for its sender, when the ack does).
async fn fanout_device(
    mut dev: Device,
    idx: usize,
    role: Role2,
    mut cmds: mpsc::UnboundedReceiver<Uuid>,
    tracker: Arc<Tracker>,
) -> Device {
    loop {
        tokio::select! {
            cmd = cmds.recv() => {
                let Some(doc) = cmd else { break };
                let hash = dev.edit(doc);
                let sent = Instant::now();
                tracker.pending.lock().expect("tracker").insert(doc, Track {
                    sender: idx, hash, sent, peer: None, dispatcher: None, ack: None,
                });
                if let Some(m) = dev.generate(doc)
                    && let Err(e) = dev.send(&ClientMsg::Sync { docs: vec![m] }).await
                {
                    dev.errors.push(e);
                    break;
                }
            }
            frame = dev.ws.next() => {
                let at = Instant::now();
                match dev.decode(frame) {
                    Err(e) => { dev.errors.push(e); break; }
                    Ok(None) => {}
                    Ok(Some(ServerMsg::Sync { docs })) => {
                        let ids: Vec<Uuid> = docs.iter().map(|d| d.doc).collect();
                        let replies = dev.apply(docs);
                        for doc in ids {
                            tracker.update(doc, |t| {
                                if t.sender != idx && dev.has_change(doc, &t.hash) {
                                    let slot = match role {
                                        Role2::Tech => &mut t.peer,
                                        Role2::Dispatcher => &mut t.dispatcher,
                                    };
                                    slot.get_or_insert(at - t.sent);
                                }
                            });
                        }
                        if let Err(e) = dev.send_docs(replies).await {
                            dev.errors.push(e);
                            break;
                        }
                    }
                    Ok(Some(ServerMsg::Ack { docs })) => {
                        for d in docs {
                            tracker.update(d.doc, |t| {
                                if t.sender == idx && d.change_hashes().contains(&t.hash) {
                                    if t.ack.is_none()
                                        && let Some((app, marks)) = &tracker.board
                                    {
                                        let bound = app.projection.latest_committed();
                                        marks.lock().expect("marks").push((t.sent, bound));
                                    }
                                    t.ack.get_or_insert(at - t.sent);
                                }
                            });
                        }
                    }
                    Ok(Some(other)) => dev.note(other),
                }
            }
        }
    }
    dev
}

fn scenario_fanout(client: &Runtime) {
    let n_devices = 1000;
    let edits = env_usize("BENCH_FANOUT_EDITS", 2000);
    let rate = env_usize("BENCH_FANOUT_RATE", 100).max(1);
    let srv = InProc::start(|_| {});
    let started = Instant::now();
    // Technicians 2k and 2k+1 share a job (the job a pair works on); each also has a job of its
    // own. A dispatcher's board (a connection without a device) sees the whole org.
    let (tokens, dispatcher_token, board_token, shared) = srv.block_on(async {
        let mut s = Seeder::new(srv.app.clone(), "fanout").await;
        let mut techs = Vec::new();
        for i in 0..n_devices {
            techs.push(s.technician(i).await);
        }
        let mut shared = Vec::new();
        for k in 0..n_devices / 2 {
            let docs = s.job(&[&techs[2 * k], &techs[2 * k + 1]], false).await;
            shared.push(docs.iter().map(|e| e.id).collect::<Vec<_>>());
        }
        for t in &techs {
            s.job(&[t], false).await;
        }
        let mut tokens = Vec::new();
        for t in &techs {
            tokens.push((t.name.clone(), s.token(t, true).await));
        }
        let dispatcher = s.dispatcher.clone();
        let dt = s.token(&dispatcher, false).await;
        // The board page signs in without a device.
        let bt = s.token(&dispatcher, false).await;
        (tokens, dt, bt, shared)
    });
    let seeded = started.elapsed();
    let addr = srv.addr;
    let mut devs = all_ok(client.block_on(connect_all(addr, tokens, 32, true)));
    let dispatcher = all_ok(client.block_on(connect_all(
        addr,
        vec![("dispatcher".into(), dispatcher_token)],
        1,
        true,
    )));
    let dispatcher_docs = dispatcher[0].ids.len();
    devs.extend(dispatcher);
    println!(
        "    fanout setup: {} devices + 1 dispatcher board ({dispatcher_docs} docs) connected and synced \
         (seeded in {:.1} s, synced in {:.1} s); server connections {}, {} docs loaded (estimate {}, budget {})",
        n_devices,
        seeded.as_secs_f64(),
        (started.elapsed() - seeded).as_secs_f64(),
        srv.app.hub.connection_count(),
        srv.app.docs.loaded_count(),
        mib(srv.app.metrics.cache_bytes.get().max(0) as u64),
        mib(srv.app.config.doc_cache_bytes as u64),
    );

    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let tracker = Arc::new(Tracker {
        pending: Mutex::new(HashMap::new()),
        with_dispatcher: true,
        done: done_tx,
        board: Some((srv.app.clone(), Mutex::new(Vec::new()))),
    });
    // The board page's live feed, read as the page reads it, and the projection's lag histogram
    // before the edits (seeding projected thousands of changes at once).
    let feed = Arc::new(Mutex::new(Vec::new()));
    let feed_task = client.spawn(board_feed(addr, board_token, feed.clone()));
    let lag_before = lag_buckets(&client.block_on(http_get(addr, "/metrics")));
    let result = client.block_on(async {
        let mut cmd_tx = Vec::new();
        let mut tasks = JoinSet::new();
        let count = devs.len();
        for (idx, dev) in devs.into_iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            cmd_tx.push(tx);
            let role = if idx == count - 1 {
                Role2::Dispatcher
            } else {
                Role2::Tech
            };
            tasks.spawn(fanout_device(dev, idx, role, rx, tracker.clone()));
        }
        let pair_of: HashMap<Uuid, usize> = shared
            .iter()
            .enumerate()
            .flat_map(|(k, docs)| docs.iter().map(move |d| (*d, k)))
            .collect();
        let mut rng = StdRng::seed_from_u64(7);
        let mut busy: HashMap<usize, (Uuid, Instant)> = HashMap::new();
        let mut peer = Vec::new();
        let mut disp = Vec::new();
        let mut ack = Vec::new();
        let mut lost = 0usize;
        let mut issued = 0usize;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(Duration::from_millis(500));
        let began = Instant::now();
        let hard_stop = tokio::time::Instant::now()
            + Duration::from_secs_f64(edits as f64 / rate as f64 + 60.0);
        while issued < edits || !busy.is_empty() {
            tokio::select! {
                _ = tick.tick(), if issued < edits => {
                    // One edit in flight per shared job: pick a pair that is not waiting.
                    let Some(k) = (0..20).map(|_| rng.random_range(0..shared.len()))
                        .find(|k| !busy.contains_key(k)) else { continue };
                    let doc = shared[k][rng.random_range(0..shared[k].len())];
                    let sender = 2 * k + rng.random_range(0..2usize);
                    busy.insert(k, (doc, Instant::now()));
                    let _ = cmd_tx[sender].send(doc);
                    issued += 1;
                }
                Some((doc, t)) = done_rx.recv() => {
                    peer.push(t.peer.expect("complete"));
                    disp.push(t.dispatcher.expect("complete"));
                    ack.push(t.ack.expect("complete"));
                    busy.remove(&pair_of[&doc]);
                }
                _ = check.tick() => {
                    // Edits that did not arrive everywhere within 5 s count as lost.
                    let stale: Vec<(usize, Uuid)> = busy.iter()
                        .filter(|(_, (_, at))| at.elapsed() > Duration::from_secs(5))
                        .map(|(k, (d, _))| (*k, *d)).collect();
                    for (k, d) in stale {
                        tracker.pending.lock().expect("tracker").remove(&d);
                        busy.remove(&k);
                        lost += 1;
                    }
                }
                _ = tokio::time::sleep_until(hard_stop) => break,
            }
        }
        let elapsed = began.elapsed();
        drop(cmd_tx);
        let mut errors = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(d) = joined {
                errors.extend(d.errors);
            }
        }
        peer.sort();
        disp.sort();
        ack.sort();
        (peer, disp, ack, lost, issued, elapsed, errors)
    });
    let (peer, disp, ack, lost, issued, elapsed, errors) = result;
    for e in errors.iter().take(3) {
        eprintln!("    fanout device error: {e}");
    }
    // Let the last edits reach the board, then match each edit to the first event at or past it.
    std::thread::sleep(Duration::from_secs(1));
    feed_task.abort();
    let lag = lag_buckets(&client.block_on(http_get(addr, "/metrics")));
    let events = feed.lock().expect("feed").clone();
    let marks = tracker
        .board
        .as_ref()
        .map(|(_, m)| m.lock().expect("marks").clone())
        .unwrap_or_default();
    let mut board = Vec::new();
    let mut unseen = 0usize;
    for (sent, bound) in &marks {
        match events.iter().find(|(pos, at)| *pos >= *bound && at >= sent) {
            Some((_, at)) => board.push(*at - *sent),
            None => unseen += 1,
        }
    }
    board.sort();
    let lag: Vec<(f64, u64)> = lag
        .iter()
        .zip(lag_before.iter().chain(std::iter::repeat(&(0.0, 0))))
        .map(|((le, n), (_, m))| (*le, n.saturating_sub(*m)))
        .collect();
    let (lag_p99, lag_bucket) = quantile(&lag, 0.99);
    let lag_n = lag.last().map_or(0, |b| b.1);
    println!(
        "board: edit→board live feed (SSE) p50 {} p99 {} max {} over {} edits ({unseen} never seen) with {n_devices} \
         devices syncing — goal p99 < 50 ms: {}; projection lag (commit→rows) p99 ≈ {:.1} ms (≤ {:.0} ms, \
         its histogram bucket) over {lag_n} changes — goal p99 < 250 ms: {} [store: {}]",
        ms(pct(&board, 0.5)),
        ms(pct(&board, 0.99)),
        ms(*board.last().unwrap_or(&Duration::ZERO)),
        board.len(),
        verdict(pct(&board, 0.99) < Duration::from_millis(50) && unseen == 0 && !board.is_empty()),
        lag_p99 * 1000.0,
        lag_bucket * 1000.0,
        verdict(lag_bucket <= 0.25 && lag_n > 0),
        store_label()
    );
    let p99 = pct(&peer, 0.99);
    println!(
        "fanout: edit→other device p50 {} p99 {} max {} over {} edits ({} issued at {rate}/s in {:.1} s, \
         {lost} lost) among {n_devices} connected devices; dispatcher board p99 {}; sender's ack p99 {}; \
         errors {} — goal p99 < 50 ms: {} [store: {}]",
        ms(pct(&peer, 0.5)),
        ms(p99),
        ms(*peer.last().unwrap_or(&Duration::ZERO)),
        peer.len(),
        issued,
        elapsed.as_secs_f64(),
        ms(pct(&disp, 0.99)),
        ms(pct(&ack, 0.99)),
        errors.len(),
        verdict(p99 < Duration::from_millis(50) && lost == 0 && !peer.is_empty()),
        store_label()
    );
}

// ---- scenario 3: idle sockets -------------------------------------------------------------------

fn scenario_idle(client: &Runtime) {
    let sockets = env_usize("BENCH_IDLE_SOCKETS", 10_000);
    if let Some(limit) = soft_fd_limit()
        && limit < sockets as u64 + 200
    {
        println!(
            "idle: SKIPPED — this process may open {limit} files; {sockets} sockets need more \
             (run `ulimit -n {}` first, or set BENCH_IDLE_SOCKETS)",
            sockets + 200
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // Four devices per technician (phones and tablets), one job (3 documents) each.
    let per_tech = env_usize("BENCH_IDLE_PER_TECH", 4).max(1);
    let started = Instant::now();
    let tokens = seed_offline(dir.path(), async |app| {
        let mut s = Seeder::new(app, "idle").await;
        let mut tokens = Vec::new();
        for t in 0..sockets.div_ceil(per_tech) {
            let tech = s.technician(t).await;
            if std::env::var_os("BENCH_IDLE_NO_JOBS").is_none() {
                s.job(&[&tech], false).await;
            }
            for d in 0..per_tech {
                if tokens.len() < sockets {
                    tokens.push((format!("{}#{d}", tech.name), s.token(&tech, true).await));
                }
            }
        }
        tokens
    });
    let seeded = started.elapsed();
    let server = ChildServer::spawn(dir.path(), 256);
    std::thread::sleep(Duration::from_secs(1));
    let (base, _) = server.rss();
    let connect_started = Instant::now();
    let devices = client.block_on(connect_all(server.addr, tokens, 64, false));
    let connect_time = connect_started.elapsed();
    let failed: Vec<&String> = devices.iter().filter_map(|d| d.as_ref().err()).collect();
    for e in failed.iter().take(3) {
        eprintln!("    idle connect error: {e}");
    }
    let connected = devices.len() - failed.len();
    // Let the per-connection ticks write the sync states, then watch the idle server.
    std::thread::sleep(Duration::from_secs(5));
    let cpu0 = server.cpu();
    let window = Duration::from_secs(10);
    let sampler = RssSampler::start(server.pid);
    std::thread::sleep(window);
    let idle_cpu = server.cpu().saturating_sub(cpu0);
    let max_rss = sampler.max();
    drop(sampler);
    let (rss, hwm) = server.rss();
    println!("    idle, server process: {}", server.status_summary());
    let body = client.block_on(http_get(server.addr, "/metrics"));
    let conns = metric(&body, "fieldsync_sync_connections").unwrap_or(-1.0);
    let cache_bytes = metric(&body, "fieldsync_doc_cache_bytes").unwrap_or(0.0) as u64;
    let cache_docs = metric(&body, "fieldsync_doc_cache_documents").unwrap_or(0.0);
    println!(
        "    idle setup: seeded {} technicians × {per_tech} devices, {} each, in {:.1} s; \
         connected + initial sync in {:.1} s; server baseline RSS {}; cache {cache_docs} docs, estimate {}",
        sockets.div_ceil(per_tech),
        if std::env::var_os("BENCH_IDLE_NO_JOBS").is_some() {
            "no jobs"
        } else {
            "1 job (3 docs)"
        },
        seeded.as_secs_f64(),
        connect_time.as_secs_f64(),
        mib(base),
        mib(cache_bytes),
    );
    let per_conn = rss.saturating_sub(base) / connected.max(1) as u64;
    println!(
        "idle: {connected} idle device sockets (server says {conns}): server RSS {} (max over 10 s {}, \
         peak {}; {} above the empty server, {:.1} KiB per connection incl. its sync states and \
         loaded docs); idle CPU {:.0}% of one core; {} failed — goal RSS < 1 GiB: {} [{}; store: {}]",
        mib(rss),
        mib(max_rss),
        mib(hwm),
        mib(rss.saturating_sub(base)),
        per_conn as f64 / 1024.0,
        idle_cpu.as_secs_f64() / window.as_secs_f64() * 100.0,
        failed.len(),
        verdict(rss < 1 << 30 && max_rss < 1 << 30 && failed.is_empty()),
        process_label(),
        store_label()
    );
    // What stays once every device is gone (cache, allocator, what connections leave behind).
    client.block_on(async move {
        let mut set = JoinSet::new();
        for mut d in devices.into_iter().flatten() {
            set.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), d.ws.close(None)).await;
            });
        }
        while set.join_next().await.is_some() {}
    });
    std::thread::sleep(Duration::from_secs(3));
    let body = client.block_on(http_get(server.addr, "/metrics"));
    println!(
        "    idle, after every device disconnected: server RSS {} (server says {} connections; cache {} docs)",
        mib(server.rss().0),
        metric(&body, "fieldsync_sync_connections").unwrap_or(-1.0),
        metric(&body, "fieldsync_doc_cache_documents").unwrap_or(-1.0),
    );
}

// ---- scenario 4: initial sync of a week's work --------------------------------------------------

fn scenario_initial(client: &Runtime) {
    let srv = InProc::start(|_| {});
    let jobs = 50;
    let (entries, tokens, saved) = srv.block_on(async {
        let mut s = Seeder::new(srv.app.clone(), "initial").await;
        let tech = s.technician(0).await;
        let mut entries = Vec::new();
        for j in 0..jobs {
            let e = s.job(&[&tech], true).await;
            s.fill_week(&e, &tech, j).await;
            entries.extend(e);
        }
        let mut saved = 0usize;
        for e in &entries {
            let mut sd = srv.app.docs.lock(&s.meta(e)).await.expect("load");
            saved += sd.doc.save().len();
        }
        let mut tokens = Vec::new();
        for _ in 0..8 {
            tokens.push(s.token(&tech, true).await);
        }
        // The server's share of a cold start: loading the 200 documents from the change log.
        for e in &entries {
            srv.app.docs.evict(e.id);
        }
        let t = Instant::now();
        for e in &entries {
            drop(srv.app.docs.lock(&s.meta(e)).await.expect("load"));
        }
        let cold = t.elapsed();
        let t = Instant::now();
        let mut changes = 0;
        for e in &entries {
            changes += srv.app.store.load(e.id).await.expect("load").changes.len();
        }
        println!(
            "    initial, server: loading the {} documents from the log ({changes} changes, no \
             snapshots yet) takes {} one after another; the store reads alone {}",
            entries.len(),
            ms(cold),
            ms(t.elapsed())
        );
        (entries, tokens, saved)
    });
    let url = format!("http://{}", srv.addr);
    let mut times = Vec::new();
    let mut synced_docs = 0;
    let mut errors = Vec::new();
    // Run 1 with the server's document cache emptied (as after a restart), runs 2-5 warm: each
    // a new device with a fresh replica.
    for e in &entries {
        srv.app.docs.evict(e.id);
    }
    for token in &tokens[..5] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut r = client_core::Replica::open(dir.path()).expect("replica");
        let t = Instant::now();
        let stats = client
            .block_on(client_core::sync::sync_once(
                &mut r,
                &url,
                token,
                Duration::from_secs(60),
            ))
            .expect("initial sync");
        times.push(t.elapsed());
        synced_docs = r.documents().expect("documents").len();
        errors.extend(stats.errors);
    }
    // Bytes on the wire: once more through a counting proxy.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut r = client_core::Replica::open(dir.path()).expect("replica");
    let (up, down) = client.block_on(async {
        let (paddr, up, down) = counting_proxy(srv.addr).await;
        client_core::sync::sync_once(
            &mut r,
            &format!("http://{paddr}"),
            &tokens[5],
            Duration::from_secs(60),
        )
        .await
        .expect("initial sync through the proxy");
        tokio::time::sleep(Duration::from_millis(200)).await;
        (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed))
    });
    // The same with the bench's raw protocol client (no replica), to tell the server's share.
    let mut raw = Vec::new();
    for token in &tokens[6..8] {
        let addr = srv.addr;
        let (welcome, total) = client.block_on(async {
            let t = Instant::now();
            let mut d = Device::connect(addr, token, "raw").await.expect("connect");
            d.hello().await.expect("hello");
            let welcome = t.elapsed();
            d.settle(Duration::from_secs(60)).await.expect("settle");
            (welcome, t.elapsed())
        });
        raw.push(format!(
            "welcome after {}, quiet after {}",
            ms(welcome),
            ms(total)
        ));
    }
    println!(
        "    initial, raw protocol client (no replica), warm: {}",
        raw.join("; ")
    );
    let wire = up + down;
    let ratio = wire as f64 / saved as f64;
    let cold = times[0];
    let mut warm = times[1..].to_vec();
    warm.sort();
    let worst = *times.iter().max().expect("runs");
    println!(
        "initial: {jobs} jobs / {} docs ({synced_docs} arrived) to an empty replica (client_core::sync_once) \
         until quiet: cold cache {} , warm median {} (max {}); wire {} bytes (up {up}, down {down}, TCP incl. \
         HTTP upgrade + WS framing) vs saved {saved} bytes = {ratio:.2}×; errors {} — goal < 300 ms and ≤ 1.5×: {} \
         [store: {}]",
        entries.len(),
        ms(cold),
        ms(pct(&warm, 0.5)),
        ms(*warm.last().expect("runs")),
        wire,
        errors.len(),
        verdict(worst < Duration::from_millis(300) && ratio <= 1.5 && synced_docs == entries.len()),
        store_label()
    );
    for e in errors.iter().take(3) {
        eprintln!("    initial sync error: {e}");
    }
}

// ---- scenario 5: cache-bounded RSS --------------------------------------------------------------

fn scenario_cache(client: &Runtime) {
    let target = env_usize("BENCH_CACHE_DOCS", 50_000);
    let cache_mb = env_usize("BENCH_CACHE_MB", 64);
    let jobs_per_device = 25; // × 4 documents = 100 per device
    let devices = target.div_ceil(jobs_per_device * 4);
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let tokens = seed_offline(dir.path(), async |app| {
        let mut s = Seeder::new(app, "cache").await;
        let mut tokens = Vec::new();
        for d in 0..devices {
            let tech = s.technician(d).await;
            for _ in 0..jobs_per_device {
                s.job(&[&tech], true).await;
            }
            tokens.push((tech.name.clone(), s.token(&tech, true).await));
        }
        tokens
    });
    let seeded = started.elapsed();
    let server = ChildServer::spawn(dir.path(), cache_mb);
    // The documents were seeded straight into the store, so the new server's projection starts
    // by catching up with all of them: the baseline is taken once it has, or it would count the
    // catch-up's memory as the server's and overlap the touching below.
    let caught_up = Instant::now();
    let position = projection_caught_up(client, server.addr, Duration::from_secs(300));
    let caught_up = caught_up.elapsed();
    // And once jemalloc has given back what the catch-up freed (it returns freed pages over its
    // 10 s decay), so that the documents below are not counted into memory already resident.
    std::thread::sleep(Duration::from_secs(11));
    let (base, _) = server.rss();
    let sampler = RssSampler::start(server.pid);
    let touch_started = Instant::now();
    let addr = server.addr;
    // Devices come, sync their 100 documents and go, 8 at a time: every document is loaded once.
    let outcome: Vec<Result<usize, String>> = client.block_on(async {
        let sem = Arc::new(Semaphore::new(8));
        let mut set = JoinSet::new();
        for (name, token) in tokens {
            let sem = sem.clone();
            set.spawn(async move {
                let _p = sem.acquire_owned().await.expect("semaphore");
                let mut d = Device::connect(addr, &token, &name).await?;
                d.initial_sync().await?;
                let n = d.ids.len();
                let _ = d.ws.close(None).await;
                Ok(n)
            });
        }
        let mut out = Vec::new();
        while let Some(j) = set.join_next().await {
            out.push(j.expect("device task"));
        }
        out
    });
    let touch_time = touch_started.elapsed();
    let touched: usize = outcome.iter().filter_map(|r| r.as_ref().ok()).sum();
    let failed: Vec<&String> = outcome.iter().filter_map(|r| r.as_ref().err()).collect();
    for e in failed.iter().take(3) {
        eprintln!("    cache device error: {e}");
    }
    let (rss_after, _) = server.rss();
    std::thread::sleep(Duration::from_secs(3));
    let max_rss = sampler.max();
    drop(sampler);
    let (rss_settled, hwm) = server.rss();
    let body = client.block_on(http_get(server.addr, "/metrics"));
    let cache_bytes = metric(&body, "fieldsync_doc_cache_bytes").unwrap_or(0.0) as u64;
    let cache_docs = metric(&body, "fieldsync_doc_cache_documents").unwrap_or(0.0);
    let budget = (cache_mb as u64) << 20;
    println!(
        "    cache setup: {touched} docs on {devices} devices seeded in {:.1} s (projected up to \
         change {position} in {:.1} s after the server started), touched in {:.1} s; \
         server baseline RSS {}; after: cache {cache_docs} docs, estimate {}",
        seeded.as_secs_f64(),
        caught_up.as_secs_f64(),
        touch_time.as_secs_f64(),
        mib(base),
        mib(cache_bytes),
    );
    let growth = hwm.max(max_rss).saturating_sub(base);
    println!(
        "cache: touched {touched} docs with FIELDSYNC_DOC_CACHE_MB={cache_mb}: server RSS {} right after, {} 3 s later, \
         peak {} (sampled max {}) = {} above the empty server's {}; {} failed — goal growth ≤ cache setting \
         ({}): {} [{}; store: {}]",
        mib(rss_after),
        mib(rss_settled),
        mib(hwm),
        mib(max_rss),
        mib(growth),
        mib(base),
        failed.len(),
        mib(budget),
        verdict(growth <= budget && failed.is_empty()),
        process_label(),
        store_label()
    );
}

// ---- main ---------------------------------------------------------------------------------------

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    type Scenario = (&'static str, fn(&Runtime));
    let scenarios: [Scenario; 6] = [
        ("ack", scenario_ack),
        ("fanout", scenario_fanout),
        ("idle", scenario_idle),
        ("initial", scenario_initial),
        ("cache", scenario_cache),
        ("jobs", jobs::scenario_jobs),
    ];
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!(
        "sync_load: {cores} cores, {:.0} GiB; store: {}",
        mem as f64 / (1024.0 * 1024.0),
        store_label()
    );
    // The bench's devices run on their own runtime; in-process servers get another.
    let client = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("devices")
        .build()
        .expect("client runtime");
    for (name, run) in scenarios {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
            let t = Instant::now();
            run(&client);
            println!("    ({name} took {:.0} s)", t.elapsed().as_secs_f64());
        }
    }
}
