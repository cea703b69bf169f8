//! The Fieldsync device library: a technician's offline replica.
//!
//! A [`Replica`] is a folder holding one SQLite database (WAL) and the photo blobs. The database
//! keeps every Automerge document the device holds (a snapshot plus the changes after it), the
//! record of local changes the server has not yet acknowledged, and *query tables* (jobs by day
//! and status, checklist progress, parts lines, photos) that screens read. The documents are the
//! truth; the query tables are rebuilt from them and are written in the same SQLite transaction
//! as the change that moved them, so a screen never shows a state the documents don't have.
//!
//! Every action ([`actions`]) works with no network and returns only after its change is
//! committed: a process killed at any instant loses no action that had returned. Several
//! processes may share a data dir (the CLI beside a live sync): each write holds the replica's
//! write lock from before it reads until it commits, so writers never build on a stale copy.
//!
//! Layout: [`db`] opens the database and runs its migrations; [`docs`] loads, caches and persists
//! documents; [`queries`] derives and reads the query tables; [`actions`] holds the technician's
//! actions; [`blobs`] stores photo and signature files by hash; [`events`] is the change stream;
//! [`repairs`] records what the server repaired; [`sync`] talks to the server (one-shot, or
//! continuously with [`sync::Reconnect`]).

pub mod actions;
pub mod blobs;
pub mod catalog;
pub mod db;
pub mod docs;
pub mod error;
pub mod events;
pub mod notices;
pub mod queries;
pub mod repairs;
mod replica;
pub mod sync;
pub mod templates;
pub mod tls;
pub mod uploads;
mod writer;

pub use actions::JobView;
pub use db::Synchronous;
pub use error::{Error, Result};
pub use events::{ChangeEvent, Origin};
pub use queries::{JobFilter, JobSummary};
pub use repairs::Repair;
pub use replica::{Clock, Options, Replica};
pub use writer::BUSY_TIMEOUT;
