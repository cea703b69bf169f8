//! The Fieldsync sync server.
//!
//! Devices connect to `/sync` over a WebSocket and exchange Automerge sync messages for the
//! documents of the jobs assigned to their user ([`sync`]: the socket around a socketless
//! connection core). Every change goes into an append-only change log ([`store`], Postgres or
//! embedded SQLite) before it is acknowledged, after the server checked it against the contract
//! and the writer's role; documents are loaded on demand into a bounded cache; changes fan out to
//! the other connections holding the same document, and to other nodes through Postgres
//! LISTEN/NOTIFY ([`state::AppState::doc_changed`]). [`http`] is the JSON API (sign-in,
//! dispatcher actions, the back office's [`review`]) over the job service [`jobs`]; [`auth`] holds passwords and tokens ([`passwords`]: checks within a memory budget),
//! [`throttle`] the sign-in backoff. [`planning`] makes work by itself: preventive-maintenance
//! jobs from schedules. Photo and signature bytes come in through the tus endpoint
//! ([`http::uploads`], [`uploads`]) and are kept in a blob store ([`blobs`]: S3 or a folder). [`server::launch`] runs it all; the binary only parses flags.
//!
//! Modules depend downwards only: `server` uses `http` and `sync`, which use `jobs` and `state`,
//! which use `store`; [`error::ApiError`], the refusal both the API and the sync endpoint answer
//! with, sits beside them and uses only `store` and `auth`.

pub mod auth;
pub mod blobs;
pub mod config;
pub mod demo;
pub mod error;
pub mod http;
pub mod iot;
pub mod jobs;
pub mod metrics;
pub mod passwords;
pub mod planning;
pub mod presence;
pub mod projection;
pub mod review;
pub mod server;
pub mod state;
pub mod store;
pub mod sync;
pub mod templates;
pub mod throttle;
pub mod uploads;

pub use config::Config;
pub use server::{launch, open_store, router, serve};
pub use state::AppState;
