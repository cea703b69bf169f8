//! The sync endpoint: axum's WebSocket around the sans-IO [`Session`].
//!
//! Everything here is plumbing: authenticate before the upgrade, then for each frame ask the
//! session what it means, load documents and sync states, persist changes (an ack goes out only
//! after the store committed), and forward fan-out notices.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use schemas::wire::{self, DocEntry, DocHeads, DocMessage, ErrorCode, ServerMsg, close};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::api::ApiError;
use crate::app::AppState;
use crate::auth::{self, Principal};
use crate::hub::{ConnId, Notice};
use crate::protocol::{Inbound, Refusal, Session};
use crate::store::{DocMeta, Role, StoreError, TokenKind};

/// Documents per outgoing sync frame.
const DOCS_PER_FRAME: usize = 64;

/// Documents loaded concurrently when a connection's set arrives.
const INITIAL_LOADS_IN_FLIGHT: usize = 16;

/// The WebSocket layer's read buffer per connection. tungstenite's default (128 KiB) is
/// zero-filled at the first read: with 10,000 idle devices the server's RSS was 260-350 MiB
/// higher than with this (`benches/sync_load.rs`, `idle`). A frame larger than this is still
/// read whole (the buffer grows to the frame), in more reads.
const READ_BUFFER_BYTES: usize = 8 * 1024;

pub async fn handler(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let token = auth::bearer(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let principal = match auth::authenticate(
        app.store.as_ref(),
        token,
        TokenKind::Access,
        chrono::Utc::now(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // Frames up to twice the limit are read and refused with an error frame; beyond that the
    // WebSocket layer drops the connection without reading the whole message into memory.
    ws.max_message_size(app.config.max_frame_bytes.saturating_mul(2))
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let user = principal.user.id;
            let span = tracing::info_span!("sync", %user, device = ?principal.device);
            let _ = tracing::Instrument::instrument(connection(app, principal, socket), span).await;
        })
}

/// Org-wide roles see every job of their org; technicians see their assigned jobs.
fn org_wide(role: Role) -> bool {
    !matches!(role, Role::Technician)
}

/// One device's (or dispatcher's) sync connection, without the socket: frames and fan-out
/// notices in, messages out. The WebSocket loop below drives it; the simulated-network tests
/// drive it directly.
pub struct Connection {
    app: Arc<AppState>,
    principal: Principal,
    session: Session,
    id: ConnId,
    /// Documents whose sync state the store already holds for this device.
    persisted: HashSet<Uuid>,
    out: Vec<ServerMsg>,
    token_checked: Instant,
}

/// How often a connection re-reads its token from the store (revocations made elsewhere).
const TOKEN_RECHECK: Duration = Duration::from_secs(30);

async fn connection(app: Arc<AppState>, principal: Principal, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (mut c, mut notices) = Connection::open(app.clone(), principal);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let close_with: Option<(u16, String)> = loop {
        let outcome = tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => c.on_frame(&bytes).await,
                Some(Ok(Message::Text(_))) => {
                    c.out.push(Refusal { code: ErrorCode::MalformedFrame, doc: None, message: "frames are binary CBOR".into(), close: false }.to_msg());
                    None
                }
                Some(Ok(_)) => None,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "socket error");
                    break Some((close::PROTOCOL, format!("connection error: {e}")));
                }
                None => break None,
            },
            Some(first) = notices.recv() => {
                let mut batch = vec![first];
                while let Ok(n) = notices.try_recv() {
                    batch.push(n);
                }
                c.on_notices(batch).await
            }
            _ = tick.tick() => c.on_tick().await,
        };
        let mut failed = false;
        for m in c.take_output() {
            if sink
                .send(Message::Binary(wire::encode(&m).into()))
                .await
                .is_err()
            {
                failed = true;
                break;
            }
        }
        if failed {
            break None;
        }
        if let Some(reason) = outcome {
            break Some(reason);
        }
    };
    if let Some((code, reason)) = close_with {
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
    c.close().await;
}

impl Connection {
    /// Register a connection for `principal`; fan-out notices for it arrive on the receiver.
    pub fn open(
        app: Arc<AppState>,
        principal: Principal,
    ) -> (Connection, mpsc::UnboundedReceiver<Notice>) {
        let (tx, notices) = mpsc::unbounded_channel();
        let org = org_wide(principal.user.role).then_some(principal.user.org_id);
        let id = app
            .hub
            .register(principal.user.id, principal.device, org, tx);
        app.metrics.connections.inc();
        let session = Session::new(
            app.config.max_frame_bytes,
            app.config.max_messages_per_second,
        );
        let c = Connection {
            app,
            principal,
            session,
            id,
            persisted: HashSet::new(),
            out: Vec::new(),
            token_checked: Instant::now(),
        };
        (c, notices)
    }

    /// Messages to send, in order.
    pub fn take_output(&mut self) -> Vec<ServerMsg> {
        let out = std::mem::take(&mut self.out);
        self.app.metrics.frames_out.inc_by(out.len() as u64);
        out
    }

    /// The connection ended (either side): keep the sync states and leave the hub.
    pub async fn close(mut self) {
        self.flush_states().await;
        self.app.hub.unregister(self.id);
        self.app.metrics.connections.dec();
    }

    /// Handle one frame; `Some` closes the connection with that code and reason.
    pub async fn on_frame(&mut self, bytes: &[u8]) -> Option<(u16, String)> {
        let arrived = Instant::now();
        self.app.metrics.frames_in.inc();
        let (inbound, refusals) = self.session.on_frame(arrived, bytes);
        let mut close_with = None;
        for r in refusals {
            self.app.metrics.frames_refused.inc();
            if r.close {
                let code = if r.code == ErrorCode::RateLimited {
                    close::RATE_LIMITED
                } else {
                    close::PROTOCOL
                };
                close_with = Some((code, r.message.clone()));
            }
            self.out.push(r.to_msg());
        }
        if close_with.is_some() {
            return close_with;
        }
        let result = match inbound {
            None => Ok(()),
            Some(Inbound::Hello) => self.hello().await,
            Some(Inbound::Announce(entries)) => self.announce(entries).await,
            Some(Inbound::Sync(msgs)) => self.sync(msgs, arrived).await,
            Some(Inbound::Released(docs)) => self.released(docs).await,
            Some(Inbound::Ping(id)) => {
                self.out.push(ServerMsg::Pong { id });
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "store failed while handling a frame");
            self.out.push(ServerMsg::Error {
                code: ErrorCode::StoreUnavailable,
                doc: None,
                message: "the server could not reach its store; retry later".into(),
            });
        }
        None
    }

    async fn current_set(&self) -> Result<Vec<DocEntry>, StoreError> {
        let user = &self.principal.user;
        let metas = if org_wide(user.role) {
            self.app.store.org_documents(user.org_id).await?
        } else {
            self.app.store.user_documents(user.id).await?
        };
        Ok(metas.iter().filter_map(entry_of).collect())
    }

    async fn hello(&mut self) -> Result<(), StoreError> {
        let set = self.current_set().await?;
        let mut held = Vec::new();
        if let Some(device) = self.principal.device {
            let held_ids = self.app.store.sync_state_docs(device).await?;
            self.persisted.extend(held_ids.iter().copied());
            // Only documents that left the set need looking up (a reconnect after an
            // unassignment); the rest are in the set already.
            let in_set: HashSet<Uuid> = set.iter().map(|e| e.id).collect();
            for id in held_ids.into_iter().filter(|id| !in_set.contains(id)) {
                if let Some(meta) = self.app.store.document(id).await? {
                    held.extend(entry_of(&meta));
                }
            }
        }
        let welcome = self.session.welcome(
            &self.principal.user.name,
            self.principal.device,
            set.clone(),
            held,
        );
        self.out.push(welcome);
        for e in &set {
            self.app.hub.subscribe(self.id, e.id);
        }
        self.send_initial(&set).await
    }

    /// First sync messages for documents new to this connection.
    async fn send_initial(&mut self, entries: &[DocEntry]) -> Result<(), StoreError> {
        // Load the documents a few at a time first: on Postgres each load is a round trip, and
        // a device's first sync may need two hundred of them.
        let org = self.principal.user.org_id;
        let metas: Vec<DocMeta> = entries.iter().map(|e| meta_of(e, org)).collect();
        let app = self.app.clone();
        let loads: Vec<Result<_, StoreError>> = futures_util::stream::iter(metas)
            .map(|meta| {
                let app = app.clone();
                async move { app.docs.get(&meta).await }
            })
            .buffer_unordered(INITIAL_LOADS_IN_FLIGHT)
            .collect()
            .await;
        loads.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut batch = Vec::new();
        for e in entries {
            self.ensure_state(e.id).await?;
            let mut sd = self.app.docs.lock(&meta_of(e, org)).await?;
            if let Some(m) = self.session.generate(e.id, &mut sd.doc) {
                batch.push(m);
            }
        }
        self.push_sync(batch);
        self.mark_held(entries.iter().map(|e| e.id)).await
    }

    fn push_sync(&mut self, docs: Vec<DocMessage>) {
        let mut docs = docs.into_iter().peekable();
        while docs.peek().is_some() {
            let chunk: Vec<DocMessage> = docs.by_ref().take(DOCS_PER_FRAME).collect();
            self.out.push(ServerMsg::Sync { docs: chunk });
        }
    }

    async fn ensure_state(&mut self, doc: Uuid) -> Result<(), StoreError> {
        if self.session.has_state(doc) {
            return Ok(());
        }
        let persisted = match self.principal.device {
            Some(device) if self.persisted.contains(&doc) => {
                self.app.store.sync_state(device, doc).await?
            }
            _ => None,
        };
        self.session.install_state(doc, persisted.as_deref());
        Ok(())
    }

    /// Record at once that this device now holds these documents, so an unassignment while it is
    /// offline still lets it upload them later. Other sync state writes are batched per tick.
    async fn mark_held(&mut self, docs: impl Iterator<Item = Uuid>) -> Result<(), StoreError> {
        let Some(device) = self.principal.device else {
            return Ok(());
        };
        let new: Vec<Uuid> = docs.filter(|d| !self.persisted.contains(d)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let states: std::collections::HashMap<Uuid, Vec<u8>> =
            self.session.take_dirty().into_iter().collect();
        let batch: Vec<(Uuid, Vec<u8>)> = new
            .iter()
            .map(|doc| {
                let state = states
                    .get(doc)
                    .cloned()
                    .unwrap_or_else(|| automerge::sync::State::new().encode());
                (*doc, state)
            })
            .collect();
        self.app.store.put_sync_states(device, &batch).await?;
        self.persisted.extend(new.iter().copied());
        // Put the other dirty states back for the next tick.
        for (doc, _) in states.into_iter().filter(|(d, _)| !new.contains(d)) {
            self.session.reset_dirty(doc);
        }
        Ok(())
    }

    async fn announce(&mut self, entries: Vec<DocEntry>) -> Result<(), StoreError> {
        let user = self.principal.user.clone();
        // Jobs first: their checklist, parts and photos name them.
        let mut entries = entries;
        entries.sort_by_key(|e| e.kind != schemas::DocKind::Job);
        let mut added = Vec::new();
        for e in entries {
            if self.session.entry(e.id).is_some() {
                continue;
            }
            let refuse = |message: &str| ServerMsg::Error {
                code: ErrorCode::DocUnavailable,
                doc: Some(e.id),
                message: message.into(),
            };
            if self.app.store.document(e.id).await?.is_some() {
                self.out.push(refuse("document not available"));
                continue;
            }
            let is_job = e.kind == schemas::DocKind::Job;
            if is_job && e.job_id != e.id {
                self.out.push(refuse("a job document is its own job"));
                continue;
            }
            if !is_job && !self.session.in_set(e.job_id) {
                self.out.push(refuse("the document's job is not available"));
                continue;
            }
            self.app
                .store
                .create_document(&meta_of(&e, user.org_id))
                .await?;
            if is_job && user.role == Role::Technician {
                self.app.store.assign(e.id, user.id).await?;
            }
            self.session.admit(e);
            self.app.hub.subscribe(self.id, e.id);
            added.push(e);
        }
        if !added.is_empty() {
            self.out.push(ServerMsg::SetChanged {
                added: added.clone(),
                removing: vec![],
            });
            // The dispatch board learns about jobs made on a device.
            self.app.hub.sets_changed(&[], user.org_id);
            self.app.publish_sets_changed(&[], user.org_id).await;
            self.mark_held(added.iter().map(|e| e.id)).await?;
        }
        Ok(())
    }

    async fn sync(
        &mut self,
        msgs: Vec<(DocEntry, automerge::sync::Message)>,
        arrived: Instant,
    ) -> Result<(), StoreError> {
        let mut replies = Vec::new();
        let mut acks = Vec::new();
        let org = self.principal.user.org_id;
        for (entry, msg) in msgs {
            self.ensure_state(entry.id).await?;
            let carries_changes = !msg.changes.is_empty();
            let mut sd = self.app.docs.lock(&meta_of(&entry, org)).await?;
            let before = sd.doc.get_heads();
            if let Err(refusal) = self.session.receive(&entry, &mut sd.doc, msg) {
                self.app.docs.discard(sd);
                self.session.reset_state(entry.id);
                self.app.metrics.frames_refused.inc();
                self.out.push(refusal.to_msg());
                continue;
            }
            match self.app.docs.persist(&mut sd, &before).await {
                Ok(seq) => {
                    // Every change in a loaded document is in the store (a failed append unloads
                    // it), so the current heads are safe to acknowledge.
                    if carries_changes {
                        acks.push(DocHeads::new(entry.id, &sd.doc.get_heads()));
                    }
                    if let Some(m) = self.session.generate(entry.id, &mut sd.doc) {
                        replies.push(m);
                    }
                    drop(sd);
                    if let Some(seq) = seq {
                        self.app.hub.doc_changed(entry.id, Some(self.id));
                        self.app.publish(entry.id, seq).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(doc = %entry.id, error = %e, "append failed; the device will resend");
                    self.app.docs.discard(sd);
                    self.session.reset_state(entry.id);
                    self.out.push(ServerMsg::Error {
                        code: ErrorCode::StoreUnavailable,
                        doc: Some(entry.id),
                        message: "could not store the changes; they were not acknowledged".into(),
                    });
                }
            }
        }
        if !acks.is_empty() {
            self.app.metrics.acks.inc_by(acks.len() as u64);
            self.app
                .metrics
                .ack_latency
                .observe(arrived.elapsed().as_secs_f64());
            self.out.push(ServerMsg::Ack { docs: acks });
        }
        self.push_sync(replies);
        Ok(())
    }

    async fn released(&mut self, docs: Vec<Uuid>) -> Result<(), StoreError> {
        for doc in docs {
            if self.session.release(doc) {
                self.app.hub.unsubscribe(self.id, doc);
                if let Some(device) = self.principal.device {
                    self.app.store.delete_sync_state(device, doc).await?;
                }
                self.persisted.remove(&doc);
            }
        }
        Ok(())
    }

    /// Fan-out notices; `Some` closes the connection.
    pub async fn on_notices(&mut self, notices: Vec<Notice>) -> Option<(u16, String)> {
        let mut changed: Vec<Uuid> = Vec::new();
        let mut set_changed = false;
        for n in notices {
            match n {
                Notice::DocChanged(d) if !changed.contains(&d) => changed.push(d),
                Notice::DocChanged(_) => {}
                Notice::SetChanged => set_changed = true,
                Notice::Revoked => return Some((close::UNAUTHORIZED, "device revoked".into())),
            }
        }
        let result: Result<(), StoreError> = async {
            if set_changed {
                let set = self.current_set().await?;
                if let Some((msg, added)) = self.session.update_set(set) {
                    self.out.push(msg);
                    for e in &added {
                        self.app.hub.subscribe(self.id, e.id);
                    }
                    self.send_initial(&added).await?;
                }
            }
            let org = self.principal.user.org_id;
            let mut batch = Vec::new();
            for doc in changed {
                let Some(entry) = self.session.entry(doc) else {
                    continue;
                };
                self.ensure_state(doc).await?;
                let mut sd = self.app.docs.lock(&meta_of(&entry, org)).await?;
                if let Some(m) = self.session.generate(doc, &mut sd.doc) {
                    batch.push(m);
                }
            }
            self.push_sync(batch);
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "store failed while fanning out");
        }
        None
    }

    /// Once a second: persist sync states and end the connection when its token expires. The
    /// store is asked whether the token or device was revoked only every `TOKEN_RECHECK` (a
    /// revocation through this node's API closes the connection at once through the hub), so
    /// ten thousand idle connections cost no store queries per second.
    pub async fn on_tick(&mut self) -> Option<(u16, String)> {
        self.flush_states().await;
        if self.principal.expires_at <= chrono::Utc::now() {
            return Some((close::UNAUTHORIZED, "token expired".into()));
        }
        if self.token_checked.elapsed() < TOKEN_RECHECK {
            return None;
        }
        self.token_checked = Instant::now();
        match self.app.store.token(&self.principal.token_hash).await {
            Ok(Some(info)) if info.device_revoked => {
                Some((close::UNAUTHORIZED, "device revoked".into()))
            }
            Ok(None) => Some((close::UNAUTHORIZED, "token revoked".into())),
            Ok(Some(info)) if info.token.expires_at <= chrono::Utc::now() => {
                Some((close::UNAUTHORIZED, "token expired".into()))
            }
            _ => None,
        }
    }

    async fn flush_states(&mut self) {
        let Some(device) = self.principal.device else {
            return;
        };
        let batch: Vec<(Uuid, Vec<u8>)> = self
            .session
            .take_dirty()
            .into_iter()
            .filter(|(doc, _)| self.persisted.contains(doc) || self.session.entry(*doc).is_some())
            .collect();
        if batch.is_empty() {
            return;
        }
        match self.app.store.put_sync_states(device, &batch).await {
            Ok(()) => self.persisted.extend(batch.iter().map(|(d, _)| *d)),
            Err(e) => {
                tracing::debug!(error = %e, "sync states not saved; a reconnect exchanges a little more")
            }
        }
    }
}

pub fn entry_of(meta: &DocMeta) -> Option<DocEntry> {
    Some(DocEntry {
        id: meta.id,
        kind: schemas::DocKind::parse(&meta.kind)?,
        job_id: meta.job_id,
    })
}

pub fn meta_of(e: &DocEntry, org_id: Uuid) -> DocMeta {
    DocMeta {
        id: e.id,
        org_id,
        kind: e.kind.as_str().to_string(),
        job_id: e.job_id,
    }
}
