//! Device sync: the WebSocket endpoint and everything a connection needs.
//!
//! - [`socket`]: the upgrade, the socket loop and close codes (plumbing only);
//! - [`connection`]: one connection's protocol core, without the socket, time as an argument;
//! - [`session`]: the sans-IO protocol state (handshake, set, sync states, rate limit);
//! - [`bounds`]: what one change may cost, checked before anything is applied;
//! - [`guard`]: the contract and role checks on every merged state, and the server's repairs;
//! - [`docs`]: the bounded cache of loaded documents, written through to the change log;
//! - [`commit`]: group commit of every connection's appends to the change log;
//! - [`hub`]: fan-out of changes and set changes to the connections of this node.

pub mod bounds;
pub mod commit;
pub mod conflicts;
pub mod connection;
pub mod docs;
pub mod guard;
pub mod hub;
pub mod session;
pub mod signoff;
pub mod socket;
