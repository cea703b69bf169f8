//! The Fieldsync contract shared by devices and the server.
//!
//! Everything both sides must agree on lives here and nowhere else:
//! - the four document kinds ([`job`], [`checklist`], [`parts`], [`photo`]): their typed state
//!   (read out of an Automerge document) and the edits that write to the document directly;
//! - the job workflow ([`status`]): statuses, priorities and the transitions allowed;
//! - checklist templates ([`template`]), made from the seeds' businesses;
//! - validation of a document's state ([`validate`]), returning every violation with its path;
//! - JSON Schemas for clients in other languages ([`json_schema`], committed in `schemas/json/`);
//! - the sync protocol's messages and their CBOR codec ([`wire`]), and the one rule both sides
//!   add to Automerge's sync messages ([`sync_message`]);
//! - the HTTP API's request and reply bodies and their text rules ([`api`]).
//! - IoT sensors' bodies and the MQTT reading payload ([`sensors`]).
//!
//! Edits use `put`/`insert` on the document, never a whole-struct reconcile: a direct write costs
//! microseconds, a reconcile milliseconds. Reading goes the other way, through
//! [`doc::read_state`], which turns the document into JSON and then into the typed struct.

pub mod api;
pub mod checklist;
pub mod doc;
pub mod error;
pub mod job;
pub mod json_schema;
pub mod parts;
pub mod photo;
pub mod planning;
pub mod sensors;
pub mod status;
pub mod sync_message;
pub mod template;
pub mod validate;
pub mod view;
pub mod wire;

pub use doc::{DocKind, read_json, read_state};
pub use error::DocError;
pub use status::{JobStatus, Priority};

/// The schema version every document written by this code carries. Bumped only with a migration
/// path for older documents; readers accept documents up to this version.
pub const SCHEMA_VERSION: u64 = 1;

/// Document ids are UUIDv7: time-ordered, so ids sort roughly by creation and index well.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
