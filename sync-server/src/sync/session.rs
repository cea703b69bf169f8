//! The server side of the sync protocol as a state machine without IO.
//!
//! A [`Session`] is one connection's protocol state: the handshake, the device's document set,
//! the Automerge sync state per document, and the rate limit. It decodes and checks frames,
//! runs Automerge's sync protocol on documents handed to it, and says what to send. It never
//! touches a socket or the store: [`super::connection`] loads documents and sync states, persists
//! changes, and moves bytes. Time comes in as an argument.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use automerge::sync;
use schemas::wire::{self, ClientMsg, DocEntry, DocMessage, ErrorCode, ServerMsg};
use uuid::Uuid;

/// What a checked frame asks for.
#[derive(Debug)]
pub enum Inbound {
    Hello,
    Announce(Vec<DocEntry>),
    /// Sync messages for documents the connection holds, already decoded.
    Sync(Vec<(DocEntry, sync::Message)>),
    Released(Vec<Uuid>),
    Ping(u64),
}

/// A refusal, sent as an `error` frame; `close` ends the connection after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub doc: Option<Uuid>,
    pub message: String,
    pub close: bool,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            doc: None,
            message: message.into(),
            close: false,
        }
    }

    fn doc(code: ErrorCode, doc: Uuid, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            doc: Some(doc),
            message: message.into(),
            close: false,
        }
    }

    pub fn to_msg(&self) -> ServerMsg {
        ServerMsg::Error {
            code: self.code,
            doc: self.doc,
            message: self.message.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    Ready,
}

pub struct Session {
    phase: Phase,
    /// The connection's document set.
    set: HashMap<Uuid, DocEntry>,
    /// Documents the device still holds but no longer may: it uploads, then releases them.
    removing: HashMap<Uuid, DocEntry>,
    states: HashMap<Uuid, sync::State>,
    dirty: HashSet<Uuid>,
    /// Each document's sync state as last saved (encoded), so a state that did not change is
    /// not written again: only `shared_heads` is persisted, and most messages leave it alone.
    saved: HashMap<Uuid, Vec<u8>>,
    max_frame: usize,
    rates: Rates,
    window_start: Option<Instant>,
    /// What arrived in the current one-second window.
    window: Rates,
}

/// Per-second allowances of a connection, counted by arrival time: frames, bytes, and document
/// messages that carry changes (a `sync` frame may carry hundreds) or announce a document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub frames: u64,
    pub bytes: u64,
    pub docs: u64,
}

impl Rates {
    /// Which allowance `used` is over, if any, and whether by more than twice (a client that is
    /// not listening).
    fn over(&self, used: &Rates, docs: bool) -> Option<(String, bool)> {
        let checks = if docs {
            vec![(used.docs, self.docs, "document messages")]
        } else {
            vec![
                (used.frames, self.frames, "messages"),
                (used.bytes, self.bytes, "bytes"),
            ]
        };
        checks
            .into_iter()
            .find(|(n, limit, _)| n > limit)
            .map(|(n, limit, what)| {
                (
                    format!("more than {limit} {what} per second; slow down"),
                    n > limit.saturating_mul(2),
                )
            })
    }
}

impl Session {
    pub fn new(max_frame: usize, max_per_second: u32) -> Session {
        Session::with_rates(
            max_frame,
            Rates {
                frames: u64::from(max_per_second.max(1)),
                bytes: u64::MAX,
                docs: u64::MAX,
            },
        )
    }

    pub fn with_rates(max_frame: usize, rates: Rates) -> Session {
        Session {
            phase: Phase::AwaitingHello,
            set: HashMap::new(),
            removing: HashMap::new(),
            states: HashMap::new(),
            dirty: HashSet::new(),
            saved: HashMap::new(),
            max_frame,
            rates,
            window_start: None,
            window: Rates::default(),
        }
    }

    /// Decode and check one frame that arrived at `now`. Per-document problems are refused one
    /// by one while the rest of the frame goes ahead.
    pub fn on_frame(&mut self, now: Instant, frame: &[u8]) -> (Option<Inbound>, Vec<Refusal>) {
        if let Some(r) = self.rate_limit(now, frame.len(), 0) {
            return (None, vec![r]);
        }
        let msg = match wire::decode_client(frame, self.max_frame) {
            Ok(m) => m,
            Err(e) => return (None, vec![Refusal::new(e.code(), e.to_string())]),
        };
        match (self.phase, msg) {
            (Phase::AwaitingHello, ClientMsg::Hello { protocol, .. }) => {
                if protocol != wire::PROTOCOL_VERSION {
                    let mut r = Refusal::new(
                        ErrorCode::UnsupportedVersion,
                        format!(
                            "protocol {protocol} is not supported; this server speaks {}",
                            wire::PROTOCOL_VERSION
                        ),
                    );
                    r.close = true;
                    return (None, vec![r]);
                }
                (Some(Inbound::Hello), vec![])
            }
            (Phase::AwaitingHello, _) => {
                let mut r = Refusal::new(
                    ErrorCode::ProtocolViolation,
                    "the first message must be hello",
                );
                r.close = true;
                (None, vec![r])
            }
            (Phase::Ready, ClientMsg::Hello { .. }) => (
                None,
                vec![Refusal::new(
                    ErrorCode::ProtocolViolation,
                    "hello was already received",
                )],
            ),
            (Phase::Ready, ClientMsg::Announce { docs }) => {
                // Each announced document is a registry row: it counts like a document message.
                if let Some(r) = self.rate_limit(now, 0, docs.len()) {
                    return (None, vec![r]);
                }
                (Some(Inbound::Announce(docs)), vec![])
            }
            (Phase::Ready, ClientMsg::Released { docs }) => (Some(Inbound::Released(docs)), vec![]),
            (Phase::Ready, ClientMsg::Ping { id }) => (Some(Inbound::Ping(id)), vec![]),
            (Phase::Ready, ClientMsg::Sync { docs }) => {
                let mut ok = Vec::with_capacity(docs.len());
                let mut refused = Vec::new();
                for DocMessage { doc, data } in docs {
                    let Some(entry) = self.entry(doc) else {
                        refused.push(Refusal::doc(
                            ErrorCode::DocUnavailable,
                            doc,
                            "document not available",
                        ));
                        continue;
                    };
                    match sync::Message::decode(&data) {
                        Ok(m) => ok.push((entry, m)),
                        Err(e) => refused.push(Refusal::doc(
                            ErrorCode::InvalidDocument,
                            doc,
                            format!("not an Automerge sync message: {e}"),
                        )),
                    }
                }
                // Document messages that carry changes count too (one frame may carry hundreds,
                // each to be applied and stored); those without (a device acknowledging its
                // initial sync of thousands of documents) cost no write and do not.
                let writes = ok.iter().filter(|(_, m)| !m.changes.is_empty()).count();
                if writes > 0
                    && let Some(r) = self.rate_limit(now, 0, writes)
                {
                    return (None, vec![r]);
                }
                (Some(Inbound::Sync(ok)), refused)
            }
        }
    }

    /// Count a frame's arrival (`bytes` long) or its `docs` document messages; a refusal once an
    /// allowance of the current second is used up, closing when the client keeps going at twice it.
    fn rate_limit(&mut self, now: Instant, bytes: usize, docs: usize) -> Option<Refusal> {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= Duration::from_secs(1) {
            self.window_start = Some(now);
            self.window = Rates::default();
        }
        if docs == 0 {
            self.window.frames += 1;
        }
        self.window.bytes = self.window.bytes.saturating_add(bytes as u64);
        self.window.docs = self.window.docs.saturating_add(docs as u64);
        let (message, close) = self.rates.over(&self.window, docs > 0)?;
        let mut r = Refusal::new(ErrorCode::RateLimited, message);
        r.close = close;
        Some(r)
    }

    /// The entry of a document this connection holds (in its set or being removed).
    pub fn entry(&self, doc: Uuid) -> Option<DocEntry> {
        self.set
            .get(&doc)
            .or_else(|| self.removing.get(&doc))
            .copied()
    }

    pub fn in_set(&self, doc: Uuid) -> bool {
        self.set.contains_key(&doc)
    }

    /// A document the device may still upload to but no longer read (it was unassigned).
    pub fn is_releasing(&self, doc: Uuid) -> bool {
        !self.set.contains_key(&doc) && self.removing.contains_key(&doc)
    }

    /// Complete the handshake with the document set; `held` are documents this device was sent
    /// before (it holds them). Those no longer in the set are to be removed.
    pub fn welcome(
        &mut self,
        user: &str,
        device: Option<Uuid>,
        set: Vec<DocEntry>,
        held: Vec<DocEntry>,
    ) -> ServerMsg {
        self.phase = Phase::Ready;
        self.set = set.iter().map(|e| (e.id, *e)).collect();
        self.removing = held
            .into_iter()
            .filter(|e| !self.set.contains_key(&e.id))
            .map(|e| (e.id, e))
            .collect();
        ServerMsg::Welcome {
            protocol: wire::PROTOCOL_VERSION,
            user: user.to_string(),
            device,
            set,
            removing: self.removing.keys().copied().collect(),
        }
    }

    /// Replace the set after an assignment changed; `None` when nothing changed.
    pub fn update_set(&mut self, new_set: Vec<DocEntry>) -> Option<(ServerMsg, Vec<DocEntry>)> {
        let new: HashMap<Uuid, DocEntry> = new_set.into_iter().map(|e| (e.id, e)).collect();
        let added: Vec<DocEntry> = new
            .values()
            .filter(|e| !self.set.contains_key(&e.id))
            .copied()
            .collect();
        let removed: Vec<DocEntry> = self
            .set
            .values()
            .filter(|e| !new.contains_key(&e.id))
            .copied()
            .collect();
        if added.is_empty() && removed.is_empty() {
            return None;
        }
        for e in &added {
            self.removing.remove(&e.id);
        }
        for e in &removed {
            self.removing.insert(e.id, *e);
        }
        self.set = new;
        let msg = ServerMsg::SetChanged {
            added: added.clone(),
            removing: removed.iter().map(|e| e.id).collect(),
        };
        Some((msg, added))
    }

    /// Add one document to the set (one the device announced and the server registered).
    pub fn admit(&mut self, entry: DocEntry) {
        self.removing.remove(&entry.id);
        self.set.insert(entry.id, entry);
    }

    /// The device removed a document it was asked to remove. Returns false if it was not asked.
    pub fn release(&mut self, doc: Uuid) -> bool {
        self.states.remove(&doc);
        self.dirty.remove(&doc);
        self.saved.remove(&doc);
        self.removing.remove(&doc).is_some()
    }

    pub fn set_entries(&self) -> Vec<DocEntry> {
        self.set.values().copied().collect()
    }

    pub fn has_state(&self, doc: Uuid) -> bool {
        self.states.contains_key(&doc)
    }

    /// Install the persisted sync state of a document (or a fresh one).
    pub fn install_state(&mut self, doc: Uuid, persisted: Option<&[u8]>) {
        let state = persisted.and_then(|b| sync::State::decode(b).ok());
        if let (Some(_), Some(bytes)) = (&state, persisted) {
            self.saved.insert(doc, bytes.to_vec());
        }
        self.states.insert(doc, state.unwrap_or_default());
    }

    /// Forget what we believed the device has, after its changes could not be stored: the next
    /// exchange starts over and the device sends them again.
    pub fn reset_state(&mut self, doc: Uuid) {
        self.states.insert(doc, sync::State::new());
        self.saved.remove(&doc);
        self.dirty.insert(doc);
    }

    /// Apply a sync message to `doc`. A document whose content turns out to be of another kind
    /// than registered is refused (the caller must discard the in-memory document).
    pub fn receive(
        &mut self,
        entry: &DocEntry,
        doc: &mut AutoCommit,
        msg: sync::Message,
    ) -> Result<(), Refusal> {
        let state = self.states.entry(entry.id).or_default();
        schemas::sync_message::receive(doc, state, msg).map_err(|e| {
            Refusal::doc(
                ErrorCode::InvalidDocument,
                entry.id,
                format!("changes do not apply: {e}"),
            )
        })?;
        self.dirty.insert(entry.id);
        if !schemas::doc::is_of_kind(doc, entry.kind) {
            let found =
                schemas::doc::doc_kind(doc).map_or("something else".to_string(), |k| k.to_string());
            return Err(Refusal::doc(
                ErrorCode::WrongKind,
                entry.id,
                format!(
                    "document is registered as a {} but its content is {found}",
                    entry.kind
                ),
            ));
        }
        Ok(())
    }

    /// The next sync message for `doc`, if the device needs one.
    ///
    /// Access ends at unassignment: for a document the device is releasing, the message is made
    /// from the document as the device already has it (forked at the device's heads), so it
    /// carries nothing new, while the device can still upload its pending changes.
    pub fn generate(&mut self, doc_id: Uuid, doc: &mut AutoCommit) -> Option<DocMessage> {
        let releasing = !self.set.contains_key(&doc_id) && self.removing.contains_key(&doc_id);
        let state = self.states.entry(doc_id).or_default();
        let msg = if releasing {
            let theirs = state
                .their_heads
                .clone()
                .filter(|h| h.iter().all(|h| doc.get_change_by_hash(h).is_some()))
                .unwrap_or_else(|| state.shared_heads.clone());
            let mut view = doc.fork_at(&theirs).ok()?;
            schemas::sync_message::generate(&mut view, state)?
        } else {
            schemas::sync_message::generate(doc, state)?
        };
        self.dirty.insert(doc_id);
        Some(DocMessage {
            doc: doc_id,
            data: msg.encode(),
        })
    }

    /// Mark a document's sync state as still to be saved.
    pub fn reset_dirty(&mut self, doc: Uuid) {
        self.dirty.insert(doc);
    }

    /// Sync states changed since the last call and different from what was saved, encoded for
    /// the store. The caller reports what it saved with [`Session::mark_saved`].
    pub fn take_dirty(&mut self) -> Vec<(Uuid, Vec<u8>)> {
        let dirty: Vec<Uuid> = self.dirty.drain().collect();
        dirty
            .into_iter()
            .filter_map(|d| self.states.get(&d).map(|s| (d, s.encode())))
            .filter(|(d, bytes)| self.saved.get(d) != Some(bytes))
            .collect()
    }

    /// The document's sync state encoded for the store, when it differs from what was saved.
    pub fn unsaved_state(&self, doc: Uuid) -> Option<Vec<u8>> {
        let bytes = self.states.get(&doc)?.encode();
        (self.saved.get(&doc) != Some(&bytes)).then_some(bytes)
    }

    /// The store now holds `bytes` as the document's sync state.
    pub fn mark_saved(&mut self, doc: Uuid, bytes: Vec<u8>) {
        self.saved.insert(doc, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::SyncDoc;
    use automerge::transaction::Transactable;
    use schemas::DocKind;

    fn ready(set: Vec<DocEntry>) -> Session {
        let mut s = Session::new(1024, 10);
        let (inbound, refused) = s.on_frame(
            Instant::now(),
            &wire::encode(&ClientMsg::Hello {
                protocol: 1,
                client: String::new(),
            }),
        );
        assert!(matches!(inbound, Some(Inbound::Hello)) && refused.is_empty());
        s.welcome("ana", None, set, vec![]);
        s
    }

    fn entry(kind: DocKind) -> DocEntry {
        let id = Uuid::now_v7();
        DocEntry {
            id,
            kind,
            job_id: id,
        }
    }

    #[test]
    fn hello_must_come_first_and_once() {
        let mut s = Session::new(1024, 10);
        let (_, r) = s.on_frame(Instant::now(), &wire::encode(&ClientMsg::Ping { id: 1 }));
        assert_eq!(
            (r[0].code, r[0].close),
            (ErrorCode::ProtocolViolation, true)
        );
        let mut s = Session::new(1024, 10);
        let (_, r) = s.on_frame(
            Instant::now(),
            &wire::encode(&ClientMsg::Hello {
                protocol: 99,
                client: String::new(),
            }),
        );
        assert_eq!(
            (r[0].code, r[0].close),
            (ErrorCode::UnsupportedVersion, true)
        );
        let mut s = ready(vec![]);
        let (_, r) = s.on_frame(
            Instant::now(),
            &wire::encode(&ClientMsg::Hello {
                protocol: 1,
                client: String::new(),
            }),
        );
        assert_eq!(
            (r[0].code, r[0].close),
            (ErrorCode::ProtocolViolation, false)
        );
    }

    #[test]
    fn documents_outside_the_set_are_refused_one_by_one() {
        let mine = entry(DocKind::Job);
        let mut s = ready(vec![mine]);
        let mut doc = AutoCommit::new();
        let msg = doc
            .sync()
            .generate_sync_message(&mut sync::State::new())
            .unwrap()
            .encode();
        let stranger = Uuid::now_v7();
        let frame = wire::encode(&ClientMsg::Sync {
            docs: vec![
                DocMessage {
                    doc: mine.id,
                    data: msg.clone(),
                },
                DocMessage {
                    doc: stranger,
                    data: msg,
                },
                DocMessage {
                    doc: mine.id,
                    data: vec![1, 2, 3],
                },
            ],
        });
        let (inbound, refused) = s.on_frame(Instant::now(), &frame);
        let Some(Inbound::Sync(ok)) = inbound else {
            panic!()
        };
        assert_eq!(ok.len(), 1);
        assert_eq!(
            refused.iter().map(|r| (r.code, r.doc)).collect::<Vec<_>>(),
            [
                (ErrorCode::DocUnavailable, Some(stranger)),
                (ErrorCode::InvalidDocument, Some(mine.id))
            ]
        );
    }

    /// A session holding `registered`, a parts document a device made under its id, an empty
    /// server copy and the device's sync state: the start of an exchange.
    fn parts_made_on_a_device(
        registered: DocEntry,
    ) -> (Session, AutoCommit, AutoCommit, sync::State) {
        let s = ready(vec![registered]);
        let actor = automerge::ActorId::random();
        let mut device_doc =
            schemas::parts::create(&actor, registered.id, registered.job_id).unwrap();
        device_doc.commit();
        (s, device_doc, AutoCommit::new(), sync::State::new())
    }

    #[test]
    fn a_document_of_the_wrong_kind_is_refused() {
        let registered = entry(DocKind::Checklist);
        let (mut s, mut device_doc, mut server_doc, mut device_state) =
            parts_made_on_a_device(registered);
        // Run the exchange until the changes arrive.
        let mut result = Ok(());
        for _ in 0..4 {
            if let Some(m) = device_doc.sync().generate_sync_message(&mut device_state) {
                result = s.receive(&registered, &mut server_doc, m);
                if result.is_err() {
                    break;
                }
            }
            if let Some(m) = s.generate(registered.id, &mut server_doc) {
                let m = sync::Message::decode(&m.data).unwrap();
                device_doc
                    .sync()
                    .receive_sync_message(&mut device_state, m)
                    .unwrap();
            }
        }
        assert_eq!(result.unwrap_err().code, ErrorCode::WrongKind);
    }

    #[test]
    fn a_device_holding_a_small_document_is_sent_the_new_change_not_the_document() {
        let registered = entry(DocKind::Parts);
        let (mut s, mut device_doc, mut server_doc, mut device_state) =
            parts_made_on_a_device(registered);
        let exchange = |s: &mut Session,
                        server_doc: &mut AutoCommit,
                        device_doc: &mut AutoCommit,
                        device_state: &mut sync::State| {
            for _ in 0..4 {
                if let Some(m) = schemas::sync_message::generate(device_doc, device_state) {
                    s.receive(&registered, server_doc, m).unwrap();
                }
                if let Some(m) = s.generate(registered.id, server_doc) {
                    let m = sync::Message::decode(&m.data).unwrap();
                    device_doc
                        .sync()
                        .receive_sync_message(device_state, m)
                        .unwrap();
                }
            }
        };
        exchange(&mut s, &mut server_doc, &mut device_doc, &mut device_state);
        assert_eq!(server_doc.get_heads(), device_doc.get_heads());

        // A dispatcher's edit on the server: one change of a two-change document, which
        // Automerge alone would send as the whole document.
        server_doc
            .put(automerge::ROOT, "note", "bring a ladder")
            .unwrap();
        let edit = server_doc.commit().expect("a change");
        let m = s
            .generate(registered.id, &mut server_doc)
            .expect("a message");
        let m = sync::Message::decode(&m.data).unwrap();
        let sent: Vec<u8> = m.changes.iter().flatten().copied().collect();
        let change = server_doc
            .get_change_by_hash(&edit)
            .unwrap()
            .raw_bytes()
            .to_vec();
        assert_eq!(sent, change);
        device_doc
            .sync()
            .receive_sync_message(&mut device_state, m)
            .unwrap();
        exchange(&mut s, &mut server_doc, &mut device_doc, &mut device_state);
        assert_eq!(server_doc.get_heads(), device_doc.get_heads());
    }

    #[test]
    fn too_many_messages_are_refused_then_the_connection_closed() {
        let mut s = ready(vec![]);
        let now = Instant::now();
        let ping = wire::encode(&ClientMsg::Ping { id: 1 });
        let mut codes = Vec::new();
        for _ in 0..25 {
            let (_, r) = s.on_frame(now, &ping);
            codes.push(r.first().map(|r| (r.code, r.close)));
        }
        assert!(codes[..9].iter().all(Option::is_none), "{codes:?}");
        assert_eq!(codes[10], Some((ErrorCode::RateLimited, false)));
        assert_eq!(codes[24], Some((ErrorCode::RateLimited, true)));
        // A new second, a new allowance.
        let (_, r) = s.on_frame(now + Duration::from_secs(1), &ping);
        assert!(r.is_empty());
    }

    #[test]
    fn bytes_and_document_messages_count_by_arrival() {
        let rates = Rates {
            frames: 1000,
            bytes: 200_000,
            docs: 100,
        };
        let mine = entry(DocKind::Job);
        let mut s = Session::with_rates(1 << 20, rates);
        let hello = wire::encode(&ClientMsg::Hello {
            protocol: 1,
            client: String::new(),
        });
        let now = Instant::now();
        s.on_frame(now, &hello);
        s.welcome("ana", None, vec![mine], vec![]);
        // 60 document messages with changes per frame: the second frame goes over 100 a second.
        let mut doc = AutoCommit::new();
        doc.put(automerge::ROOT, "title", "x").unwrap();
        doc.commit();
        let mut state = sync::State::new();
        let _ = doc.sync().generate_sync_message(&mut state);
        // An empty peer says what it has (nothing); the answer carries the change.
        let empty_peer = AutoCommit::new()
            .sync()
            .generate_sync_message(&mut sync::State::new())
            .unwrap();
        doc.sync()
            .receive_sync_message(&mut state, empty_peer)
            .unwrap();
        let with_changes = doc.sync().generate_sync_message(&mut state).unwrap();
        assert!(!with_changes.changes.is_empty());
        let data = with_changes.encode();
        let frame = wire::encode(&ClientMsg::Sync {
            docs: (0..60)
                .map(|_| DocMessage {
                    doc: mine.id,
                    data: data.clone(),
                })
                .collect(),
        });
        // Messages without changes are not counted: 300 of them pass.
        let empty = AutoCommit::new()
            .sync()
            .generate_sync_message(&mut sync::State::new())
            .unwrap()
            .encode();
        for _ in 0..5 {
            let (_, r) = s.on_frame(
                now,
                &wire::encode(&ClientMsg::Sync {
                    docs: (0..60)
                        .map(|_| DocMessage {
                            doc: mine.id,
                            data: empty.clone(),
                        })
                        .collect(),
                }),
            );
            assert!(r.is_empty(), "{r:?}");
        }
        let (_, r) = s.on_frame(now, &frame);
        assert!(r.iter().all(|r| r.code != ErrorCode::RateLimited));
        let (inbound, r) = s.on_frame(now, &frame);
        assert!(inbound.is_none());
        assert_eq!((r[0].code, r[0].close), (ErrorCode::RateLimited, false));
        // Refused messages count too: past twice the allowance the connection closes.
        let (_, r) = s.on_frame(now, &frame);
        assert_eq!((r[0].code, r[0].close), (ErrorCode::RateLimited, false));
        let (_, r) = s.on_frame(now, &frame);
        assert_eq!((r[0].code, r[0].close), (ErrorCode::RateLimited, true));
        // Bytes: a new second, then one big frame over the byte allowance.
        let later = now + Duration::from_secs(1);
        let big = wire::encode(&ClientMsg::Ping { id: 1 }).repeat(40_000);
        let (_, r) = s.on_frame(later, &big);
        assert_eq!(r[0].code, ErrorCode::RateLimited, "{r:?}");
        assert!(r[0].message.contains("bytes"), "{}", r[0].message);
    }

    #[test]
    fn set_changes_move_documents_to_removing_and_back() {
        let a = entry(DocKind::Job);
        let b = entry(DocKind::Job);
        let mut s = ready(vec![a]);
        let (msg, added) = s.update_set(vec![b]).unwrap();
        assert_eq!(added, vec![b]);
        assert_eq!(
            msg,
            ServerMsg::SetChanged {
                added: vec![b],
                removing: vec![a.id]
            }
        );
        assert!(
            s.entry(a.id).is_some() && !s.in_set(a.id),
            "a removed document may still upload"
        );
        assert!(s.update_set(vec![b]).is_none());
        assert!(s.release(a.id));
        assert!(s.entry(a.id).is_none());
        assert!(!s.release(a.id));
    }
}
