//! The device's sync protocol state machine (no IO but the replica).

use std::collections::{HashMap, HashSet};

use automerge::sync;
use schemas::wire::{ClientMsg, DocEntry, DocMessage, ErrorCode, PROTOCOL_VERSION, ServerMsg};
use serde::Serialize;
use uuid::Uuid;

use crate::docs::DocInfo;
use crate::{Replica, Result};

/// Documents per outgoing sync frame.

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncStats {
    /// Sync messages sent and received.
    pub sent: usize,
    pub received: usize,
    /// Documents that changed on this device because of the server.
    pub docs_updated: usize,
    /// Local changes the server acknowledged during this session.
    pub acknowledged: usize,
    /// Documents removed because their job was unassigned.
    pub removed: usize,
    /// Repairs the server reported (each recorded in the replica; see `Replica::repairs`).
    pub repaired: usize,
    /// Errors the server reported, as `code: message`.
    pub errors: Vec<String>,
}

pub struct SyncEngine {
    /// Whose sync states these are (the server's URL).
    peer: String,
    welcomed: bool,
    set: HashMap<Uuid, DocEntry>,
    removing: HashMap<Uuid, DocEntry>,
    states: HashMap<Uuid, sync::State>,
    dirty: HashSet<Uuid>,
    /// Documents the server refused; not offered again this session.
    refused: HashSet<Uuid>,
    next_ping: u64,
    awaiting_pong: Option<u64>,
    activity: bool,
    quiet: bool,
    /// Set when the server cannot go on with this session (it failed before the welcome, or
    /// its store is down): the connection should end and be retried later.
    failed: Option<String>,
    /// The session has been quiet at least once: everything was exchanged and acknowledged.
    synced: bool,
    /// The failure is the server's store being down (worth retrying soon, not a refusal).
    store_unavailable: bool,
    pub stats: SyncStats,
}

fn info(e: &DocEntry) -> DocInfo {
    DocInfo {
        id: e.id,
        kind: e.kind,
        job_id: e.job_id,
    }
}

impl SyncEngine {
    pub fn new(peer: &str) -> SyncEngine {
        SyncEngine {
            peer: peer.to_string(),
            welcomed: false,
            set: HashMap::new(),
            removing: HashMap::new(),
            states: HashMap::new(),
            dirty: HashSet::new(),
            refused: HashSet::new(),
            next_ping: 0,
            awaiting_pong: None,
            activity: false,
            quiet: false,
            failed: None,
            store_unavailable: false,
            synced: false,
            stats: SyncStats::default(),
        }
    }

    pub fn hello(&self) -> ClientMsg {
        ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            client: format!("client-core {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Why the server cannot go on with this session, if it cannot.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The session connected and synced: after the welcome it was quiet at least once (what
    /// ends a one-shot sync). A reconnect loop starts its backoff over after such a session.
    pub fn has_synced(&self) -> bool {
        self.synced
    }

    /// The session failed because the server's store is unavailable.
    pub fn store_unavailable(&self) -> bool {
        self.store_unavailable
    }

    /// True once a ping came back with nothing exchanged since it was sent and every local change
    /// the server may take is acknowledged.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    fn state<'a>(
        states: &'a mut HashMap<Uuid, sync::State>,
        r: &Replica,
        peer: &str,
        doc: Uuid,
    ) -> Result<&'a mut sync::State> {
        if let std::collections::hash_map::Entry::Vacant(e) = states.entry(doc) {
            let persisted = r.sync_state(doc, peer)?;
            let state = persisted
                .and_then(|b| sync::State::decode(&b).ok())
                .unwrap_or_default();
            e.insert(state);
        }
        Ok(states.get_mut(&doc).expect("inserted"))
    }

    fn generate(&mut self, r: &mut Replica, docs: &[Uuid]) -> Result<Vec<ClientMsg>> {
        let mut out = Vec::new();
        for doc in docs {
            if self.refused.contains(doc) || !r.knows_document(*doc)? {
                continue;
            }
            let state = Self::state(&mut self.states, r, &self.peer, *doc)?;
            if let Some(m) = r.generate_sync_message(*doc, state)? {
                self.dirty.insert(*doc);
                out.push(DocMessage {
                    doc: *doc,
                    data: m.encode(),
                });
            }
        }
        self.stats.sent += out.len();
        Ok(chunk(out))
    }

    /// A local edit happened (continuous sync): offer it to the server.
    pub fn on_local_change(&mut self, r: &mut Replica, doc: Uuid) -> Result<Vec<ClientMsg>> {
        if !self.welcomed {
            return Ok(vec![]);
        }
        if !self.set.contains_key(&doc) && !self.removing.contains_key(&doc) {
            // A document made on this device (a follow-up job, a photo): register it first.
            return self.announce_new(r);
        }
        let out = self.generate(r, &[doc])?;
        self.activity |= !out.is_empty();
        Ok(out)
    }

    fn announce_new(&mut self, r: &mut Replica) -> Result<Vec<ClientMsg>> {
        let new: Vec<DocEntry> = r
            .documents()?
            .into_iter()
            .filter(|d| {
                !self.set.contains_key(&d.id)
                    && !self.removing.contains_key(&d.id)
                    && !self.refused.contains(&d.id)
            })
            .map(|d| DocEntry {
                id: d.id,
                kind: d.kind,
                job_id: d.job_id,
            })
            .collect();
        Ok(if new.is_empty() {
            vec![]
        } else {
            vec![ClientMsg::Announce { docs: new }]
        })
    }

    /// Handle one message from the server; returns what to send back.
    pub fn on_message(&mut self, r: &mut Replica, msg: ServerMsg) -> Result<Vec<ClientMsg>> {
        let mut out = Vec::new();
        if !matches!(msg, ServerMsg::Pong { .. }) {
            self.quiet = false;
        }
        match msg {
            ServerMsg::Welcome { set, removing, .. } => {
                self.welcomed = true;
                self.activity = true;
                self.set = set.iter().map(|e| (e.id, *e)).collect();
                let local: HashMap<Uuid, DocInfo> =
                    r.documents()?.into_iter().map(|d| (d.id, d)).collect();
                self.removing = removing
                    .iter()
                    .filter_map(|id| {
                        local.get(id).map(|d| {
                            (
                                d.id,
                                DocEntry {
                                    id: d.id,
                                    kind: d.kind,
                                    job_id: d.job_id,
                                },
                            )
                        })
                    })
                    .collect();
                // Asked to remove something this device no longer has: nothing to upload.
                let gone: Vec<Uuid> = removing
                    .iter()
                    .filter(|id| !local.contains_key(id))
                    .copied()
                    .collect();
                if !gone.is_empty() {
                    out.push(ClientMsg::Released { docs: gone });
                }
                out.extend(self.announce_new(r)?);
                out.extend(self.sync_every_held(r)?);
            }
            ServerMsg::SetChanged { added, removing } => {
                self.activity = true;
                for e in added {
                    self.removing.remove(&e.id);
                    self.set.insert(e.id, e);
                }
                for id in removing {
                    if let Some(e) = self.set.remove(&id) {
                        self.removing.insert(id, e);
                    }
                }
                out.extend(self.sync_every_held(r)?);
            }
            ServerMsg::Sync { docs } => {
                self.activity = true;
                // Apply, persist and settle acks under the replica's write lock, so the changes
                // merge into the latest state on disk (another process may be writing it too).
                let reply_for = r.write(|r| self.apply_frame(r, docs))?;
                out.extend(self.generate(r, &reply_for)?);
                out.extend(self.release_done(r)?);
            }
            ServerMsg::Ack { docs } => {
                self.activity = true;
                for d in docs {
                    if r.has_document(d.doc)? {
                        self.stats.acknowledged += r.ack(d.doc, &d.change_hashes())?;
                    }
                }
                out.extend(self.release_done(r)?);
            }
            ServerMsg::Pong { id } => {
                if self.awaiting_pong == Some(id) {
                    self.awaiting_pong = None;
                    let waiting = self.unacked_offered(r)?;
                    self.quiet = !self.activity && waiting == 0;
                    self.synced |= self.quiet && self.welcomed;
                    self.activity = false;
                }
            }
            // The server kept this device's changes but fixed the document: record it for the
            // technician (`status`). The fix itself arrives as ordinary sync changes.
            ServerMsg::Repaired {
                doc,
                job_id,
                reasons,
                after_unassign,
            } => {
                self.activity = true;
                r.record_repair(doc, job_id, &reasons, after_unassign)?;
                self.stats.repaired += 1;
            }
            ServerMsg::Error { code, doc, message } => {
                self.stats
                    .errors
                    .push(format!("{}: {message}", code.as_str()));
                if !self.welcomed || (code == ErrorCode::StoreUnavailable && doc.is_none()) {
                    self.failed = Some(format!("{}: {message}", code.as_str()));
                    self.store_unavailable = code == ErrorCode::StoreUnavailable;
                }
                match (code, doc) {
                    // Not stored: start over for that document so its changes are sent again.
                    (ErrorCode::StoreUnavailable, Some(d)) => {
                        self.activity = true;
                        self.states.insert(d, sync::State::new());
                        out.extend(self.generate(r, &[d])?);
                    }
                    (ErrorCode::StoreUnavailable, None) => self.activity = true,
                    (_, Some(d)) => {
                        self.refused.insert(d);
                    }
                    _ => {}
                }
            }
        }
        self.activity |= !out.is_empty();
        Ok(out)
    }

    /// The documents of a server `sync` frame: apply each message, persist what changed in one
    /// transaction (one fsync for the frame), then the acks the server's heads imply. Returns
    /// the documents to answer.
    fn apply_frame(&mut self, r: &mut Replica, docs: Vec<DocMessage>) -> Result<Vec<Uuid>> {
        let mut reply_for = Vec::new();
        let mut changed = Vec::new();
        let mut heads = Vec::new();
        for DocMessage { doc, data } in docs {
            self.stats.received += 1;
            let Some(entry) = self
                .set
                .get(&doc)
                .or_else(|| self.removing.get(&doc))
                .copied()
            else {
                continue;
            };
            let Ok(msg) = sync::Message::decode(&data) else {
                self.stats
                    .errors
                    .push(format!("undecodable sync message for {doc}"));
                continue;
            };
            // The server only shows heads it has stored: they acknowledge what they cover
            // (this also settles acks lost with a dropped connection).
            let server_heads = msg.heads.clone();
            let state = Self::state(&mut self.states, r, &self.peer, doc)?;
            match r.apply_sync_message(info(&entry), state, msg) {
                Ok(true) => changed.push(doc),
                Ok(false) => {}
                Err(e) => {
                    self.refused.insert(doc);
                    self.stats.errors.push(e.to_string());
                    continue;
                }
            }
            self.dirty.insert(doc);
            heads.push((doc, server_heads));
            reply_for.push(doc);
        }
        // One transaction for the whole frame, then the acks it implies.
        r.persist_remote(&changed)?;
        self.stats.docs_updated += changed.len();
        for (doc, server_heads) in heads {
            if r.has_document(doc)? {
                self.stats.acknowledged += r.ack(doc, &server_heads)?;
            }
        }
        Ok(reply_for)
    }

    /// Local changes still waiting for an ack, on documents the server has not refused.
    fn unacked_offered(&self, r: &Replica) -> Result<usize> {
        Ok(r.unacked()?
            .iter()
            .filter(|(d, _)| !self.refused.contains(d))
            .count())
    }

    /// Ask whether the server has handled everything so far (sent when there is nothing else to
    /// send); the answer decides [`Self::is_quiet`].
    pub fn ping(&mut self) -> Option<ClientMsg> {
        if self.awaiting_pong.is_some() {
            return None;
        }
        self.next_ping += 1;
        self.awaiting_pong = Some(self.next_ping);
        Some(ClientMsg::Ping { id: self.next_ping })
    }

    /// What to send: `out`, followed by a ping while the session is not quiet and none is in
    /// flight. The ping goes behind frames too: the server answers in order, so its pong says it
    /// handled them. Pinging only when there was nothing else to send stalled a one-shot sync
    /// whenever this device's last frame needed no answer (Automerge's closing "I now have your
    /// heads" message, as after receiving documents new to the device): no frame came back, so
    /// no ping ever went out, and the sync waited for its time limit.
    pub fn with_ping(&mut self, mut out: Vec<ClientMsg>) -> Vec<ClientMsg> {
        if !self.quiet {
            out.extend(self.ping());
        }
        out
    }

    /// Offer every document of the set and every one being removed, then release what is done.
    fn sync_every_held(&mut self, r: &mut Replica) -> Result<Vec<ClientMsg>> {
        let docs: Vec<Uuid> = self
            .set
            .keys()
            .chain(self.removing.keys())
            .copied()
            .collect();
        let mut out = self.generate(r, &docs)?;
        out.extend(self.release_done(r)?);
        Ok(out)
    }

    /// Remove documents the server asked to remove once all their local changes are acknowledged.
    fn release_done(&mut self, r: &mut Replica) -> Result<Vec<ClientMsg>> {
        let mut released = Vec::new();
        let ids: Vec<Uuid> = self.removing.keys().copied().collect();
        for id in ids {
            if r.has_document(id)? && r.unacked_count(id)? > 0 {
                continue;
            }
            if r.has_document(id)? {
                // A job leaving is said to the technician (its changes reached the server
                // first); the job's other documents leave with it silently.
                if let Some(title) = r.job_title(id)? {
                    r.add_notice(
                        Some(id),
                        &format!(
                            "Job \u{201c}{title}\u{201d} was unassigned by dispatch; your changes were uploaded and it left this device."
                        ),
                    )?;
                }
                r.remove_document(id)?;
                self.stats.removed += 1;
            }
            self.removing.remove(&id);
            self.states.remove(&id);
            self.dirty.remove(&id);
            released.push(id);
        }
        if released.is_empty() {
            return Ok(vec![]);
        }
        // The photos and signatures of jobs that left are not needed once the server has them.
        let pruned = r.prune_blobs()?;
        if pruned > 0 {
            tracing::debug!(pruned, "removed the blobs of released jobs");
        }
        Ok(vec![ClientMsg::Released { docs: released }])
    }

    /// Save the sync states that changed, so the next connection sends only what is new.
    pub fn save_states(&mut self, r: &mut Replica) -> Result<()> {
        let states: Vec<(Uuid, Vec<u8>)> = self
            .dirty
            .drain()
            .filter_map(|d| self.states.get(&d).map(|s| (d, s.encode())))
            .collect();
        r.put_sync_states(&self.peer, &states)
    }
}

fn chunk(docs: Vec<DocMessage>) -> Vec<ClientMsg> {
    schemas::wire::frames_of(docs)
        .into_iter()
        .map(|docs| ClientMsg::Sync { docs })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome() -> ServerMsg {
        ServerMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            user: "ana".into(),
            device: None,
            set: vec![],
            removing: vec![],
        }
    }

    fn is_ping(m: &ClientMsg) -> bool {
        matches!(m, ClientMsg::Ping { .. })
    }

    #[test]
    fn a_ping_follows_frames_sent_until_a_pong_finds_the_session_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path()).unwrap();
        let job = r
            .create_job(
                schemas::job::NewJob {
                    title: "Held".into(),
                    ..Default::default()
                },
                None,
            )
            .unwrap();
        let entries: Vec<DocEntry> = r
            .documents()
            .unwrap()
            .iter()
            .map(|d| DocEntry {
                id: d.id,
                kind: d.kind,
                job_id: d.job_id,
            })
            .collect();
        assert_eq!(entries.len(), 3, "{}", job.id);
        let mut engine = SyncEngine::new("test");
        // A device holding documents answers the welcome with sync frames: a ping goes behind
        // them (before, none did, and a sync whose last frame needed no answer never ended).
        let welcome = ServerMsg::Welcome {
            protocol: PROTOCOL_VERSION,
            user: "ana".into(),
            device: None,
            set: entries,
            removing: vec![],
        };
        let out = engine.on_message(&mut r, welcome).unwrap();
        assert!(!out.is_empty() && !out.iter().any(is_ping));
        let out = engine.with_ping(out);
        assert!(is_ping(out.last().unwrap()), "a ping follows the frames");
        // Only one ping in flight.
        assert!(!engine.with_ping(vec![]).iter().any(is_ping));
        // Its pong: things were exchanged since, and local changes wait for their ack: not quiet,
        // ping again.
        let out = engine
            .on_message(&mut r, ServerMsg::Pong { id: 1 })
            .unwrap();
        assert!(!engine.is_quiet());
        assert!(engine.with_ping(out).iter().any(is_ping));
    }

    #[test]
    fn a_pong_with_nothing_exchanged_since_its_ping_ends_the_pinging() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path()).unwrap();
        let mut engine = SyncEngine::new("test");
        let out = engine.on_message(&mut r, welcome()).unwrap();
        assert!(matches!(
            engine.with_ping(out)[..],
            [ClientMsg::Ping { id: 1 }]
        ));
        // The welcome itself was activity: one more round.
        let out = engine
            .on_message(&mut r, ServerMsg::Pong { id: 1 })
            .unwrap();
        assert!(matches!(
            engine.with_ping(out)[..],
            [ClientMsg::Ping { id: 2 }]
        ));
        assert!(!engine.has_synced());
        let out = engine
            .on_message(&mut r, ServerMsg::Pong { id: 2 })
            .unwrap();
        assert!(engine.is_quiet() && engine.has_synced());
        assert!(engine.with_ping(out).is_empty());
    }

    #[test]
    fn a_repair_reported_by_the_server_is_recorded_in_the_replica() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path()).unwrap();
        let mut engine = SyncEngine::new("test");
        engine.on_message(&mut r, welcome()).unwrap();
        let (doc, job) = (schemas::new_id(), schemas::new_id());
        let reasons = vec!["status: `teleported` is not a job status; kept `en_route`".to_string()];
        let out = engine
            .on_message(
                &mut r,
                ServerMsg::Repaired {
                    doc,
                    job_id: job,
                    reasons: reasons.clone(),
                    after_unassign: true,
                },
            )
            .unwrap();
        assert!(out.is_empty());
        assert_eq!(engine.stats.repaired, 1);
        assert!(engine.stats.errors.is_empty(), "a repair is not an error");
        let repairs = r.repairs().unwrap();
        assert_eq!(repairs.len(), 1);
        assert_eq!(
            (repairs[0].doc_id, repairs[0].job_id, &repairs[0].reasons),
            (doc, job, &reasons)
        );
        assert!(repairs[0].after_unassign);
        // Kept across a reopen.
        drop(r);
        assert_eq!(
            Replica::open(dir.path()).unwrap().repairs().unwrap(),
            repairs
        );
    }
}
