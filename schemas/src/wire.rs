//! The sync protocol: messages between a device and the server, and their codec.
//!
//! Frames are binary WebSocket messages holding one CBOR-encoded message each. Every message is a
//! map with a `type` field. Many documents travel in one frame (`sync` carries a list), so a
//! device with 200 documents does not need 200 round trips.
//!
//! ```text
//! device                                   server
//!   hello {protocol}                 ─────>
//!                                    <─────  welcome {set, removing}
//!   announce {docs}  (made offline)  ─────>
//!                                    <─────  set_changed {added, removing}
//!   sync {docs: [{doc, data}]}       <────>  sync {docs: [...]}     (Automerge sync messages)
//!                                    <─────  ack {docs: [{doc, heads}]}  (after the store commits)
//!   released {docs}                  ─────>  (after `removing`, once the device's changes are acked)
//!   ping {id}                        ─────>
//!                                    <─────  pong {id}  (everything before it was handled)
//!                                    <─────  repaired {doc, reasons}  (changes kept, then repaired)
//!                                    <─────  error {code, doc?, message}
//! ```
//!
//! Evolution: new fields are optional (`#[serde(default)]`); a message type or field that is
//! retired is never reused; `PROTOCOL_VERSION` changes only when old peers cannot follow.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DocKind;

pub const PROTOCOL_VERSION: u32 = 1;

/// Frames larger than this are refused unless the server is configured otherwise.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Documents per `sync` frame, both ways: a device's first sync of 200 documents takes four
/// frames, not 200 round trips, and no frame comes near the frame limit.
pub const DOCS_PER_FRAME: usize = 64;

/// Split document messages into the frames that carry them, [`DOCS_PER_FRAME`] at most each.
pub fn frames_of(docs: Vec<DocMessage>) -> Vec<Vec<DocMessage>> {
    let mut out = Vec::with_capacity(docs.len().div_ceil(DOCS_PER_FRAME));
    let mut docs = docs.into_iter().peekable();
    while docs.peek().is_some() {
        out.push(docs.by_ref().take(DOCS_PER_FRAME).collect());
    }
    out
}

/// A document of a device's set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DocEntry {
    pub id: Uuid,
    pub kind: DocKind,
    pub job_id: Uuid,
}

/// One document's Automerge sync message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocMessage {
    pub doc: Uuid,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A document's heads that the server has durably stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocHeads {
    pub doc: Uuid,
    pub heads: Vec<serde_bytes::ByteBuf>,
}

impl DocHeads {
    pub fn new(doc: Uuid, heads: &[automerge::ChangeHash]) -> DocHeads {
        DocHeads {
            doc,
            heads: heads
                .iter()
                .map(|h| serde_bytes::ByteBuf::from(h.0.to_vec()))
                .collect(),
        }
    }

    /// The heads as change hashes; malformed entries are skipped.
    pub fn change_hashes(&self) -> Vec<automerge::ChangeHash> {
        self.heads
            .iter()
            .filter_map(|h| automerge::ChangeHash::try_from(h.as_slice()).ok())
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// The first frame of a connection.
    Hello {
        protocol: u32,
        #[serde(default)]
        client: String,
    },
    /// Documents this device created while offline (a follow-up job, a photo), to register.
    Announce {
        docs: Vec<DocEntry>,
    },
    Sync {
        docs: Vec<DocMessage>,
    },
    /// The device removed these documents, as asked by `removing`.
    Released {
        docs: Vec<Uuid>,
    },
    Ping {
        id: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        protocol: u32,
        user: String,
        #[serde(default)]
        device: Option<Uuid>,
        /// The device's document set: the documents of the jobs assigned to its user.
        set: Vec<DocEntry>,
        /// Documents the device holds but may no longer keep: upload pending changes, then
        /// remove them and answer `released`.
        #[serde(default)]
        removing: Vec<Uuid>,
    },
    SetChanged {
        #[serde(default)]
        added: Vec<DocEntry>,
        #[serde(default)]
        removing: Vec<Uuid>,
    },
    Sync {
        docs: Vec<DocMessage>,
    },
    /// Sent only after the store committed these heads.
    Ack {
        docs: Vec<DocHeads>,
    },
    Pong {
        id: u64,
    },
    /// The server kept this device's changes to `doc` but they broke the contract or the
    /// writer's role, so it repaired the document with a change of its own (the repaired state
    /// follows in a `sync`). Sent before the `ack` of the same changes. Added in protocol 1 as an
    /// optional message: a device that does not know it may ignore it.
    Repaired {
        doc: Uuid,
        job_id: Uuid,
        /// One sentence per repaired field, for people (e.g. "status: `teleported` is not a
        /// job status; kept `en_route`").
        reasons: Vec<String>,
        /// The changes arrived after the device's job had been unassigned.
        #[serde(default)]
        after_unassign: bool,
    },
    Error {
        code: ErrorCode,
        #[serde(default)]
        doc: Option<Uuid>,
        message: String,
    },
}

/// Stable error codes; the message beside them is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not CBOR, or not a map with a known shape.
    MalformedFrame,
    /// A `type` this server does not know (a newer client?).
    UnknownMessage,
    FrameTooLarge,
    UnsupportedVersion,
    /// A message before `hello`, or a second `hello`.
    ProtocolViolation,
    /// Not in this device's set (whether or not it exists).
    DocUnavailable,
    /// The bytes are not a valid Automerge sync message or change.
    InvalidDocument,
    /// The document's content is of another kind than it is registered as.
    WrongKind,
    RateLimited,
    /// A change or document over the server's cost bounds (decompressed size, string length,
    /// ops per change, document size); nothing of it was stored.
    TooCostly,
    /// The server could not store the change; it was not acknowledged and will be asked again.
    StoreUnavailable,
    Unauthorized,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed-frame",
            ErrorCode::UnknownMessage => "unknown-message",
            ErrorCode::FrameTooLarge => "frame-too-large",
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::ProtocolViolation => "protocol-violation",
            ErrorCode::DocUnavailable => "doc-unavailable",
            ErrorCode::InvalidDocument => "invalid-document",
            ErrorCode::WrongKind => "wrong-kind",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::TooCostly => "too-costly",
            ErrorCode::StoreUnavailable => "store-unavailable",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Internal => "internal",
        }
    }
}

/// WebSocket close codes the server uses (4000-4999 are for applications).
pub mod close {
    pub const UNAUTHORIZED: u16 = 4001;
    pub const PROTOCOL: u16 = 4002;
    pub const TOO_LARGE: u16 = 4009;
    pub const RATE_LIMITED: u16 = 4029;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("unknown message type `{0}`")]
    Unknown(String),
}

impl DecodeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::Malformed(_) => ErrorCode::MalformedFrame,
            DecodeError::Unknown(_) => ErrorCode::UnknownMessage,
        }
    }
}

pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    ciborium::into_writer(msg, &mut out).expect("encoding to a Vec cannot fail");
    out
}

const CLIENT_TYPES: &[&str] = &["hello", "announce", "sync", "released", "ping"];
const SERVER_TYPES: &[&str] = &[
    "welcome",
    "set_changed",
    "sync",
    "ack",
    "pong",
    "repaired",
    "error",
];

/// Decode a frame from a device. Never panics, whatever the bytes.
pub fn decode_client(frame: &[u8], limit: usize) -> Result<ClientMsg, DecodeError> {
    decode(frame, limit, CLIENT_TYPES)
}

/// Decode a frame from the server.
pub fn decode_server(frame: &[u8], limit: usize) -> Result<ServerMsg, DecodeError> {
    decode(frame, limit, SERVER_TYPES)
}

fn decode<T: serde::de::DeserializeOwned>(
    frame: &[u8],
    limit: usize,
    known: &[&str],
) -> Result<T, DecodeError> {
    if frame.len() > limit {
        return Err(DecodeError::TooLarge {
            size: frame.len(),
            limit,
        });
    }
    // Decode to a generic value first so an unknown `type` is told apart from a broken frame.
    let value: ciborium::Value = ciborium::from_reader(frame)
        .map_err(|e| DecodeError::Malformed(format!("not CBOR: {e}")))?;
    let ty = value
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("type")))
        .and_then(|(_, v)| v.as_text())
        .ok_or_else(|| DecodeError::Malformed("not a map with a text `type`".into()))?;
    if !known.contains(&ty) {
        return Err(DecodeError::Unknown(ty.chars().take(64).collect()));
    }
    value
        .deserialized()
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let doc = Uuid::now_v7();
        let msgs = vec![
            ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                client: "test".into(),
            },
            ClientMsg::Announce {
                docs: vec![DocEntry {
                    id: doc,
                    kind: DocKind::Photo,
                    job_id: doc,
                }],
            },
            ClientMsg::Sync {
                docs: vec![DocMessage {
                    doc,
                    data: vec![1, 2, 3],
                }],
            },
            ClientMsg::Released { docs: vec![doc] },
            ClientMsg::Ping { id: 7 },
        ];
        for m in msgs {
            assert_eq!(
                decode_client(&encode(&m), DEFAULT_MAX_FRAME_BYTES).unwrap(),
                m
            );
        }
        let heads = vec![automerge::ChangeHash([9; 32])];
        let s = ServerMsg::Ack {
            docs: vec![DocHeads::new(doc, &heads)],
        };
        let back = decode_server(&encode(&s), DEFAULT_MAX_FRAME_BYTES).unwrap();
        assert_eq!(back, s);
        let ServerMsg::Ack { docs } = back else {
            unreachable!()
        };
        assert_eq!(docs[0].change_hashes(), heads);
    }

    #[test]
    fn bad_frames_are_told_apart() {
        assert!(matches!(
            decode_client(b"\xff\x00garbage", 1024),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_client(&encode(&42u32), 1024),
            Err(DecodeError::Malformed(_))
        ));
        let unknown = encode(&serde_json::json!({"type": "teleport", "to": "mars"}));
        assert_eq!(
            decode_client(&unknown, 1024),
            Err(DecodeError::Unknown("teleport".into()))
        );
        let wrong_shape = encode(&serde_json::json!({"type": "sync", "docs": 3}));
        assert!(matches!(
            decode_client(&wrong_shape, 1024),
            Err(DecodeError::Malformed(_))
        ));
        let big = encode(&ClientMsg::Sync {
            docs: vec![DocMessage {
                doc: Uuid::nil(),
                data: vec![0; 2048],
            }],
        });
        assert!(matches!(
            decode_client(&big, 1024),
            Err(DecodeError::TooLarge { .. })
        ));
        // A server message is not a client message.
        assert!(matches!(
            decode_client(&encode(&ServerMsg::Pong { id: 1 }), 1024),
            Err(DecodeError::Unknown(_))
        ));
    }

    /// Frames of the first protocol version, as recorded bytes: later versions must still decode
    /// them.
    #[test]
    fn version_one_frames_still_decode() {
        // {"type": "hello", "protocol": 1} — a hello without the optional `client` field.
        let hello = hex::decode("a264747970656568656c6c6f6870726f746f636f6c01").unwrap();
        assert_eq!(
            decode_client(&hello, 1024).unwrap(),
            ClientMsg::Hello {
                protocol: 1,
                client: String::new()
            }
        );
        // {"type": "ping", "id": 7}
        let ping = hex::decode("a264747970656470696e6762696407").unwrap();
        assert_eq!(
            decode_client(&ping, 1024).unwrap(),
            ClientMsg::Ping { id: 7 }
        );
    }
}
