//! One sync connection without its socket: the protocol's core on the server.
//!
//! A [`Connection`] takes a device's frames, fan-out notices and clock ticks, each with the time
//! as an argument ([`Now`]), and answers with the messages to send and, when the connection must
//! end, a close code. Around the sans-IO [`Session`] (handshake, document set, Automerge sync
//! states, rate limit) it does the IO the protocol needs: it loads documents and sync states,
//! checks what a device sends against the cost bounds, the contract and the writer's role
//! ([`super::guard`]), persists changes (an `ack` goes out only after the store committed) and
//! re-checks the token. [`super::socket`] drives it from a WebSocket; the simulated-network
//! tests drive it directly.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use schemas::wire::{DocEntry, DocHeads, DocMessage, ErrorCode, ServerMsg, close};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::hub::{ConnId, Notice};
use super::session::{Inbound, Rates, Refusal, Session};
use super::{bounds, guard};
use crate::auth::Principal;
use crate::state::AppState;
use crate::store::{AuditRecord, DocMeta, Role, StoreError, entry_of, meta_of};

/// The time, as the connection's entry points take it: a monotonic instant for rates and
/// intervals, the wall clock for token expiry.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub mono: Instant,
    pub wall: DateTime<Utc>,
}

impl Now {
    pub fn system() -> Now {
        Now {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }

    /// `self` moved forward by `d` on both clocks (for tests that drive time).
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + chrono::Duration::from_std(d).unwrap_or_default(),
        }
    }
}

/// Documents loaded concurrently when a connection's set arrives.
const INITIAL_LOADS_IN_FLIGHT: usize = 16;

/// Org-wide roles see every job of their org; technicians see their assigned jobs.
fn org_wide(role: Role) -> bool {
    !matches!(role, Role::Technician)
}

/// One device's (or dispatcher's) sync connection, without the socket: frames and fan-out
/// notices in, messages out.
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

impl Connection {
    /// Register a connection for `principal`; fan-out notices for it arrive on the receiver.
    pub fn open(
        app: Arc<AppState>,
        principal: Principal,
        now: Now,
    ) -> (Connection, mpsc::UnboundedReceiver<Notice>) {
        let (tx, notices) = mpsc::unbounded_channel();
        let org = org_wide(principal.user.role).then_some(principal.user.org_id);
        let id = app
            .hub
            .register(principal.user.id, principal.device, org, tx);
        app.metrics.connections.inc();
        app.presence
            .connect(principal.user.id, principal.user.org_id);
        let session = Session::with_rates(
            app.config.max_frame_bytes,
            Rates {
                frames: u64::from(app.config.max_messages_per_second.max(1)),
                bytes: app.config.max_bytes_per_second as u64,
                docs: u64::from(app.config.max_doc_messages_per_second.max(1)),
            },
        );
        let c = Connection {
            app,
            principal,
            session,
            id,
            persisted: HashSet::new(),
            out: Vec::new(),
            token_checked: now.mono,
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
        self.app.presence.disconnect(self.principal.user.id);
        self.app.metrics.connections.dec();
    }

    /// Handle one frame; `Some` closes the connection with that code and reason.
    pub async fn on_frame(&mut self, now: Now, bytes: &[u8]) -> Option<(u16, String)> {
        let arrived = now.mono;
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
            Some(Inbound::Sync(msgs)) => self.sync(msgs, now).await,
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

    /// A text frame: the protocol is binary CBOR.
    pub fn on_text_frame(&mut self, _now: Now) {
        self.app.metrics.frames_refused.inc();
        self.out.push(
            Refusal {
                code: ErrorCode::MalformedFrame,
                doc: None,
                message: "frames are binary CBOR".into(),
                close: false,
            }
            .to_msg(),
        );
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
        for docs in schemas::wire::frames_of(docs) {
            self.out.push(ServerMsg::Sync { docs });
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
        for (doc, bytes) in batch {
            self.session.mark_saved(doc, bytes);
        }
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
            self.app.sets_changed(&[], user.org_id).await;
            self.mark_held(added.iter().map(|e| e.id)).await?;
        }
        Ok(())
    }

    async fn sync(
        &mut self,
        msgs: Vec<(DocEntry, automerge::sync::Message)>,
        now: Now,
    ) -> Result<(), StoreError> {
        let mut replies = Vec::new();
        let mut acks = Vec::new();
        let org = self.principal.user.org_id;
        for (entry, msg) in msgs {
            self.ensure_state(entry.id).await?;
            let carries_changes = !msg.changes.is_empty();
            // Read before this document is locked: the job and the sibling document are locked
            // one at a time and let go, so two connections never wait on each other's documents.
            let signed = if carries_changes {
                self.signed(&entry, org).await
            } else {
                None
            };
            let mut sd = self.app.docs.lock(&meta_of(&entry, org)).await?;
            // Cost bounds first: measured on the raw chunks, before automerge inflates them.
            if carries_changes
                && let Err(e) = bounds::measure_chunks(
                    msg.changes.iter(),
                    sd.saved_bytes,
                    &self.app.config.limits,
                )
            {
                drop(sd);
                self.refuse_costly(entry.id, e);
                continue;
            }
            let before = sd.doc.get_heads();
            if let Err(refusal) = self.session.receive(&entry, &mut sd.doc, msg) {
                self.app.docs.discard(sd);
                self.session.reset_state(entry.id);
                self.app.metrics.frames_refused.inc();
                self.out.push(refusal.to_msg());
                continue;
            }
            let new_changes = if carries_changes {
                sd.doc.get_changes(&before)
            } else {
                Vec::new()
            };
            if let Err(e) = bounds::check_changes(new_changes.iter(), &self.app.config.limits) {
                self.app.docs.discard(sd);
                self.refuse_costly(entry.id, e);
                continue;
            }
            // Heads the device's own changes reached: what a releasing device is acknowledged.
            let device_heads = sd.doc.get_heads();
            let (audit, repaired) = if new_changes.is_empty() {
                (Vec::new(), None)
            } else {
                self.guard(&entry, &mut sd.doc, &before, signed.as_ref(), now)
            };
            // The device's sync state goes into the same commit as its changes.
            let state = match self.principal.device {
                Some(device) if carries_changes => self
                    .session
                    .unsaved_state(entry.id)
                    .map(|bytes| (device, bytes)),
                _ => None,
            };
            match self
                .app
                .docs
                .persist_audited(&mut sd, &before, &audit, state.clone())
                .await
            {
                Ok(seq) => {
                    if let (Some(_), Some((_, bytes))) = (seq, state) {
                        self.session.mark_saved(entry.id, bytes);
                        self.persisted.insert(entry.id);
                    }
                    if let Some(msg) = repaired {
                        self.out.push(msg);
                    }
                    // Every change in a loaded document is in the store (a failed append unloads
                    // it), so the current heads are safe to acknowledge.
                    if carries_changes {
                        let heads = if self.session.is_releasing(entry.id) {
                            device_heads
                        } else {
                            sd.doc.get_heads()
                        };
                        acks.push(DocHeads::new(entry.id, &heads));
                    }
                    if let Some(m) = self.session.generate(entry.id, &mut sd.doc) {
                        replies.push(m);
                    }
                    drop(sd);
                    if let Some(seq) = seq {
                        self.app.doc_changed(entry.id, seq, Some(self.id));
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
                .observe(now.mono.elapsed().as_secs_f64());
            self.out.push(ServerMsg::Ack { docs: acks });
        }
        self.push_sync(replies);
        Ok(())
    }

    /// Refuse a document message over the cost bounds: nothing of it is kept, and the device is
    /// told which document and why.
    fn refuse_costly(&mut self, doc: Uuid, e: bounds::Exceeded) {
        tracing::warn!(%doc, error = %e, "refused a change over the cost bounds");
        self.session.reset_state(doc);
        self.app.metrics.frames_refused.inc();
        self.out.push(ServerMsg::Error {
            code: ErrorCode::TooCostly,
            doc: Some(doc),
            message: format!("refused, nothing stored: {e}"),
        });
    }

    /// What the customer signed, when `entry` is the checklist or parts of a signed-off job: the
    /// summary and the other document's state. Anything that cannot be read (a job not yet on
    /// the server) counts as not signed.
    async fn signed(&self, entry: &DocEntry, org: Uuid) -> Option<super::signoff::Signed> {
        use super::signoff::{Sibling, Signed};
        use schemas::DocKind;
        if !matches!(entry.kind, DocKind::Checklist | DocKind::Parts) {
            return None;
        }
        let job_meta = crate::store::DocMeta {
            id: entry.job_id,
            org_id: org,
            kind: DocKind::Job.as_str().into(),
            job_id: entry.job_id,
        };
        let (summary, sibling_id) = {
            let job = self.app.docs.lock(&job_meta).await.ok()?;
            // Most jobs are not signed: look at that one field before reading the whole job.
            use automerge::ReadDoc;
            if !matches!(
                job.doc.get(automerge::ROOT, "signoff"),
                Ok(Some((automerge::Value::Object(_), _)))
            ) {
                return None;
            }
            let job: schemas::job::Job = schemas::read_state(&job.doc, DocKind::Job).ok()?;
            let sibling = match entry.kind {
                DocKind::Checklist => job.parts_id,
                _ => job.checklist_id,
            };
            (job.signoff?.summary_sha256, sibling)
        };
        let sibling_kind = match entry.kind {
            DocKind::Checklist => DocKind::Parts,
            _ => DocKind::Checklist,
        };
        let meta = crate::store::DocMeta {
            id: sibling_id,
            org_id: org,
            kind: sibling_kind.as_str().into(),
            job_id: entry.job_id,
        };
        let other = self.app.docs.lock(&meta).await.ok()?;
        let sibling = match sibling_kind {
            DocKind::Parts => Sibling::Parts(schemas::read_state(&other.doc, sibling_kind).ok()?),
            _ => Sibling::Checklist(schemas::read_state(&other.doc, sibling_kind).ok()?),
        };
        Some(Signed { summary, sibling })
    }

    /// Check a document after this writer's changes (contract and role, see [`guard`]): the audit
    /// rows to store with the changes, and the `repaired` message to send before the ack.
    fn guard(
        &mut self,
        entry: &DocEntry,
        doc: &mut automerge::AutoCommit,
        before: &[automerge::ChangeHash],
        signed: Option<&super::signoff::Signed>,
        now: Now,
    ) -> (Vec<AuditRecord>, Option<ServerMsg>) {
        let user = &self.principal.user;
        let after_unassign = self.session.is_releasing(entry.id);
        let record = |action: &str, reasons: Vec<String>| AuditRecord {
            id: Uuid::now_v7(),
            org_id: user.org_id,
            job_id: entry.job_id,
            doc_id: Some(entry.id),
            actor_user: Some(user.id),
            actor_device: self.principal.device,
            action: action.into(),
            reasons,
            before: None,
            after: None,
            at: now.wall,
            flagged: true,
        };
        let mut audit = Vec::new();
        if after_unassign {
            audit.push(record(
                "after_unassign",
                vec![format!(
                    "{} changed this {} after the job was unassigned from them",
                    user.name, entry.kind
                )],
            ));
        }
        let repair = guard::check(entry.kind, doc, before, user.role);
        // Concurrent values these changes created (after any repair, which may settle them).
        let conflicts = super::conflicts::new_conflicts(entry.kind, doc, before);
        if !conflicts.is_empty() {
            self.app.metrics.conflicts.inc_by(conflicts.len() as u64);
            let mut reasons: Vec<String> = conflicts.iter().map(|c| c.describe()).collect();
            if entry.kind == schemas::DocKind::Job && conflicts.iter().any(|c| c.path == "status") {
                match super::conflicts::settle_status_history(doc, "fieldsync", now.wall) {
                    Ok(true) => {
                        doc.commit_with(
                            automerge::transaction::CommitOptions::default()
                                .with_message("fieldsync: status history settled"),
                        );
                        reasons.push(
                            "status history: an entry leading to the shown status was added".into(),
                        );
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(doc = %entry.id, error = %e, "could not settle a status history")
                    }
                }
            }
            audit.push(record("conflict", reasons));
        }
        let mut reasons = Vec::new();
        if let Some(repair) = repair {
            self.app.metrics.repairs.inc();
            tracing::info!(doc = %entry.id, reasons = ?repair.reasons, "repaired a device's change");
            let mut why = repair.reasons.clone();
            why.extend(
                repair
                    .unresolved
                    .iter()
                    .map(|v| format!("still invalid: {v}")),
            );
            let mut row = record("repair", why.clone());
            row.before = Some(repair.before);
            row.after = Some(repair.after);
            audit.push(row);
            reasons.extend(why);
        }
        if let Some(frozen) =
            signed.and_then(|s| super::signoff::enforce(entry.kind, doc, before, s))
        {
            self.app.metrics.repairs.inc();
            tracing::info!(doc = %entry.id, reasons = ?frozen.reasons, "put back a change made after sign-off");
            let mut row = record("changed_after_signoff", frozen.reasons.clone());
            row.before = Some(frozen.before);
            row.after = Some(frozen.after);
            audit.push(row);
            reasons.extend(frozen.reasons);
        }
        if reasons.is_empty() {
            return (audit, None);
        }
        let msg = ServerMsg::Repaired {
            doc: entry.id,
            job_id: entry.job_id,
            reasons,
            after_unassign,
        };
        (audit, Some(msg))
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
    pub async fn on_notices(&mut self, _now: Now, notices: Vec<Notice>) -> Option<(u16, String)> {
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
    pub async fn on_tick(&mut self, now: Now) -> Option<(u16, String)> {
        self.flush_states().await;
        if self.principal.expires_at <= now.wall {
            return Some((close::UNAUTHORIZED, "token expired".into()));
        }
        if now.mono.saturating_duration_since(self.token_checked) < TOKEN_RECHECK {
            return None;
        }
        self.token_checked = now.mono;
        match self.app.store.token(&self.principal.token_hash).await {
            Ok(Some(info)) if info.device_revoked => {
                Some((close::UNAUTHORIZED, "device revoked".into()))
            }
            Ok(None) => Some((close::UNAUTHORIZED, "token revoked".into())),
            Ok(Some(info)) if info.token.expires_at <= now.wall => {
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
            Ok(()) => {
                for (doc, bytes) in batch {
                    self.persisted.insert(doc);
                    self.session.mark_saved(doc, bytes);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "sync states not saved; a reconnect exchanges a little more")
            }
        }
    }
}
