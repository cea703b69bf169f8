//! The Fieldsync sync server.
//!
//! Devices connect to `/sync` over a WebSocket and exchange Automerge sync messages for the
//! documents of the jobs assigned to their user ([`ws`] around the sans-IO [`protocol`]). Every
//! change goes into an append-only change log ([`store`], Postgres or embedded SQLite) before it
//! is acknowledged; documents are loaded on demand into a bounded cache ([`docs`]); changes fan
//! out to the other connections holding the same document ([`hub`]), and to other nodes through
//! Postgres LISTEN/NOTIFY. [`http`] is the JSON API (sign-in, dispatcher actions) over the job
//! service [`jobs`], [`auth`] the passwords and tokens. [`launch`] runs it all; the binary only parses flags.

pub mod api;
mod app;
pub mod auth;
pub mod config;
pub mod demo;
pub mod docs;
pub mod http;
pub mod hub;
pub mod jobs;
pub mod metrics;
pub mod protocol;
pub mod store;
pub mod throttle;
pub mod ws;

pub use app::{AppState, SET_CHANGED_SEQ, launch, open_store, router, serve};
pub use config::Config;
