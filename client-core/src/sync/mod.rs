//! The device's side of sync.
//!
//! [`engine::SyncEngine`] is the protocol state machine: server messages in, client messages
//! out, documents read and written through the [`Replica`](crate::Replica); it opens no socket.
//! [`net`] is the thin tokio-tungstenite loop around it, [`live`] keeps a device in sync with
//! reconnects and backoff, [`account`] signs in and keeps the tokens in the replica, and
//! [`upload`] sends the photo and signature queue with tus, resuming after any cut.

pub mod account;
pub mod catalog;
pub mod engine;
pub mod live;
pub mod net;
pub mod templates;
pub mod upload;

pub use engine::{SyncEngine, SyncStats};
pub use live::{Backoff, LiveEvent, Reconnect};
pub use net::{SyncError, sync_once, sync_until};
