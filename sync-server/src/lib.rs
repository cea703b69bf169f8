//! The Fieldsync sync server.
//!
//! Devices connect to `/sync` over a WebSocket and exchange Automerge sync messages for the
//! documents of the jobs assigned to their user ([`sync`]: the socket around a socketless
//! connection core). Every change goes into an append-only change log ([`store`], Postgres or
//! embedded SQLite) before it is acknowledged, after the server checked it against the contract
//! and the writer's role; documents are loaded on demand into a bounded cache; changes fan out to
//! the other connections holding the same document, and to other nodes through Postgres
//! LISTEN/NOTIFY ([`state::AppState::publish`]). [`api`] is the JSON API (sign-in, dispatcher
//! actions), [`auth`] the passwords and tokens. [`launch`] runs it all; the binary only parses
//! flags.
//!
//! Modules depend downwards only: `api` and `sync` use `state`, which uses `store`.

pub mod api;
pub mod auth;
pub mod config;
pub mod demo;
pub mod metrics;
pub mod state;
pub mod store;
pub mod sync;

pub use config::Config;
pub use state::{AppState, launch, open_store, router, serve};
