//! The server's durable state behind one trait, with two implementations: Postgres (production,
//! sqlx with compile-checked queries) and SQLite (the embedded default, rusqlite on a blocking
//! thread). One conformance suite (`tests/store_conformance.rs`) runs against both.
//!
//! What is stored:
//! - master data the sync needs: orgs, users (argon2 password hashes), devices, tokens;
//! - the document registry (id, org, kind, job) and job assignments, which define each user's
//!   document set;
//! - the change log: append-only, idempotent by (document, change hash), plus one snapshot per
//!   document so a document loads from one snapshot and a few changes;
//! - per (device, document) Automerge sync states.
//!
//! Nodes of a multi-node (Postgres) deployment tell each other about appended changes through
//! [`Store::publish_change`] and [`Store::subscribe_changes`]. Fault injection for tests
//! (`FaultyStore`) lives in the `fieldsync-test-support` crate, not here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub mod planning;
pub mod pm;
pub mod postgres;
pub mod records;
pub mod sensors;
pub mod sla;
pub mod sqlite;

pub type StoreResult<T> = Result<T, StoreError>;

/// The cause of a database failure, kept for logs and `Error::source`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a store call fails with, in classes a caller can act on: the caller's fault (conflict,
/// not found, invalid input: a 4xx, never retried), a failure that may pass
/// ([`StoreError::is_retryable`]: the database unreachable, a timeout, a serialization failure,
/// a busy SQLite file), or one that will not.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (a user name taken, an org name taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A referenced row does not exist (assigning an unknown user, a change for an unknown doc).
    #[error("not found: {0}")]
    NotFound(String),
    /// The database refused a value (text it cannot hold, a check constraint): the input is at
    /// fault, and sending it again fails again.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The database could not be reached or did not answer in time, or aborted a transaction
    /// that may succeed when tried again (serialization failure, deadlock, SQLite busy).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The database failed in a way that trying again will not fix.
    #[error("database: {0}")]
    Failed(#[source] BoxError),
    /// A failure known only by its message (a stored document that does not load, a row with a
    /// value this build does not know, an injected fault); not retryable.
    #[error("database: {0}")]
    Database(String),
}

impl StoreError {
    /// True when the same call may succeed later (503 rather than 4xx/500 over HTTP).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// True when the caller's input is at fault (409, 404, 400 over HTTP).
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict(_) | StoreError::NotFound(_) | StoreError::Invalid(_)
        )
    }
}

/// A user's role, part of the HTTP API's contract (`schemas::api`).
pub use schemas::api::Role;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Unique across the server: it is what people sign in with.
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub revoked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// A token as stored: only its sha256 (hex) is kept, never the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: String,
    pub kind: TokenKind,
    pub user_id: Uuid,
    /// `None` for tokens of browser sessions (dispatchers) that have no device.
    pub device_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

/// A token looked up, with what is needed to decide whether it is still good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub token: TokenRecord,
    pub user: User,
    /// True when the token's device was revoked by an admin.
    pub device_revoked: bool,
}

/// What marking a refresh token used found ([`Store::use_refresh_token`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// This call marked it used: it may be traded for new tokens, once.
    Rotated,
    /// It had been used already, at `used_at`: a replay, or a copy in someone else's hands.
    Reused {
        device_id: Option<Uuid>,
        used_at: DateTime<Utc>,
    },
    /// No refresh token has this hash.
    Unknown,
}

/// A document in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocMeta {
    pub id: Uuid,
    pub org_id: Uuid,
    /// `job`, `checklist`, `parts` or `photo` (see `schemas::DocKind`).
    pub kind: String,
    /// The job the document belongs to (a job document's own id for a job).
    pub job_id: Uuid,
}

impl DocMeta {
    /// The registry row as the sync protocol names it; `None` for a kind this build does not know.
    pub fn entry(&self) -> Option<schemas::wire::DocEntry> {
        entry_of(self)
    }
}

/// A registry row as the sync protocol's [`schemas::wire::DocEntry`].
pub fn entry_of(meta: &DocMeta) -> Option<schemas::wire::DocEntry> {
    Some(schemas::wire::DocEntry {
        id: meta.id,
        kind: schemas::DocKind::parse(&meta.kind)?,
        job_id: meta.job_id,
    })
}

/// A protocol entry as a registry row of `org_id`.
pub fn meta_of(e: &schemas::wire::DocEntry, org_id: Uuid) -> DocMeta {
    DocMeta {
        id: e.id,
        org_id,
        kind: e.kind.as_str().to_string(),
        job_id: e.job_id,
    }
}

/// One Automerge change, as raw bytes with its hash (hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecord {
    pub hash: String,
    pub bytes: Vec<u8>,
}

/// Everything needed to load a document: its latest snapshot (if compacted) and the changes
/// appended after it, in append order, with the sequence number of the last one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub changes: Vec<Vec<u8>>,
    /// The highest change sequence number the result covers (0 when there is none).
    pub last_seq: i64,
}

/// What the server read from a stored image (a `photos` row): one per blob of an org.
#[derive(Clone, Debug, PartialEq)]
pub struct PhotoRecord {
    pub org_id: Uuid,
    /// Hex sha256 of the original, its key in the blob store.
    pub sha256: String,
    pub size: u64,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    /// EXIF `DateTimeOriginal`, when the image has it.
    pub taken_at: Option<DateTime<Utc>>,
    /// EXIF GPS position, when the image has it.
    pub location: Option<schemas::photo::GeoPoint>,
    /// Thumbnail sizes made so far.
    pub thumbnails: Vec<u32>,
    pub stored_at: DateTime<Utc>,
}

impl PhotoRecord {
    /// `thumbnails` as stored: "320,1280".
    pub fn thumbnails_text(&self) -> String {
        self.thumbnails
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn parse_thumbnails(text: &str) -> Vec<u32> {
        text.split(',')
            .filter_map(|t| t.trim().parse().ok())
            .collect()
    }
}

/// One row of the audit log: what the server did on a writer's behalf, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_id: Uuid,
    pub doc_id: Option<Uuid>,
    pub actor_user: Option<Uuid>,
    pub actor_device: Option<Uuid>,
    /// `repair` (the server put back valid values), `after_unassign` (changes from a device
    /// whose job had been unassigned, accepted so nothing is lost) or `conflict` (a field two
    /// writers set concurrently to different values; every replica shows one, the reasons name
    /// all of them).
    pub action: String,
    pub reasons: Vec<String>,
    /// The repaired parts of the document as the writer left them, and as the repair left them.
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
    /// Shown to the dispatcher on the job.
    pub flagged: bool,
}

/// One document's share of a group commit ([`Store::append_batch`]): its new changes, the
/// audit rows that explain them, and the sync state of the device that sent them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Append {
    pub doc_id: Uuid,
    pub changes: Vec<ChangeRecord>,
    pub audit: Vec<AuditRecord>,
    /// `(device, encoded state)`: saved as [`Store::put_sync_state`] would, in the same commit,
    /// so a device's edit costs one commit rather than one for the change and one for its state.
    pub sync_state: Option<(Uuid, Vec<u8>)>,
}

/// What one node tells the others, sent by node `node` so that they catch up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeNotice {
    pub what: Notified,
    /// The node that made the change, so it can ignore its own notices.
    pub node: Uuid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notified {
    /// Document `doc` now has changes up to `seq` (others catch up with [`Store::changes_since`]).
    Doc { doc: Uuid, seq: i64 },
    /// The document sets of this user, or of this org's org-wide connections, changed (an
    /// assignment moved, a job was made).
    Sets { of: Uuid },
    /// The feed itself was interrupted (its connection to the database was lost and made
    /// again): notices sent meanwhile are gone, so everything held must be checked against the
    /// store. Made by the subscription, never sent between nodes.
    Resync,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Apply pending migrations (idempotent).
    async fn migrate(&self) -> StoreResult<()>;

    async fn create_org(&self, name: &str) -> StoreResult<Org>;
    async fn org_by_name(&self, name: &str) -> StoreResult<Option<Org>>;

    /// `Conflict` when the name is taken.
    async fn create_user(
        &self,
        org_id: Uuid,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> StoreResult<User>;
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;
    async fn user(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn users_in_org(&self, org_id: Uuid) -> StoreResult<Vec<User>>;

    async fn register_device(&self, user_id: Uuid, name: &str) -> StoreResult<Device>;
    async fn device(&self, id: Uuid) -> StoreResult<Option<Device>>;
    /// Revoke a device: its tokens stop working. Returns false when there is no such device.
    async fn revoke_device(&self, id: Uuid) -> StoreResult<bool>;

    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()>;
    async fn token(&self, hash: &str) -> StoreResult<Option<TokenInfo>>;
    /// Delete a token. Returns true when this call deleted it, false when it was not there
    /// (already deleted, by a concurrent call too): exactly one of several concurrent calls for
    /// one token gets true, which is what makes refresh-token rotation single-use.
    async fn delete_token(&self, hash: &str) -> StoreResult<bool>;
    /// Mark a refresh token used at `now`, in one statement: of concurrent calls for one token
    /// exactly one gets [`Rotation::Rotated`], the others (and every later call) `Reused`.
    async fn use_refresh_token(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<Rotation>;

    /// Register a document; registering the same id again is a no-op.
    async fn create_document(&self, meta: &DocMeta) -> StoreResult<()>;
    async fn document(&self, id: Uuid) -> StoreResult<Option<DocMeta>>;
    async fn job_documents(&self, job_id: Uuid) -> StoreResult<Vec<DocMeta>>;
    /// Every job document id of an org (the dispatcher's view).
    async fn org_jobs(&self, org_id: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Every registered document of every job assigned to the user (the user's document set),
    /// ordered by job id, then document id. Only documents of the user's own org count, so a
    /// document registered elsewhere under the same job id never reaches the user. Assigned
    /// jobs without registered documents contribute nothing.
    async fn user_documents(&self, user_id: Uuid) -> StoreResult<Vec<DocMeta>>;
    /// Every document of an org, of every kind, ordered by job id, then document id.
    async fn org_documents(&self, org_id: Uuid) -> StoreResult<Vec<DocMeta>>;

    /// Append changes to a document's log in one transaction. A change whose hash the log already
    /// holds for that document is skipped (a retried upload is a no-op), even after compaction.
    /// Returns the sequence number of the last change now in the log for the document.
    async fn append_changes(&self, doc_id: Uuid, changes: &[ChangeRecord]) -> StoreResult<i64>;
    /// [`Store::append_changes`] and, in the same transaction, rows of the audit log that explain
    /// them (a repair the server made, changes that arrived after an unassignment): both are
    /// stored, or neither.
    async fn append_changes_audited(
        &self,
        doc_id: Uuid,
        changes: &[ChangeRecord],
        audit: &[AuditRecord],
    ) -> StoreResult<i64>;
    /// Several documents' appends in one transaction (group commit: one fsync or Postgres commit
    /// for the edits of every connection that arrived meanwhile). Each append behaves as
    /// [`Store::append_changes_audited`]; all are stored or none (the first failure fails the
    /// batch). Returns, per append in order, the sequence number its document reached.
    ///
    /// With `announce_as` (a node's id), a multi-node store also tells every node, in the same
    /// transaction, that each document reached its sequence number (as [`Store::publish_change`]
    /// would with [`Notified::Doc`]): the notices go out if and only if the batch commits, and an
    /// acknowledged change has always been announced, even when the node dies right after.
    async fn append_batch(
        &self,
        batch: &[Append],
        announce_as: Option<Uuid>,
    ) -> StoreResult<Vec<i64>>;
    /// The audit log of a job, oldest first.
    async fn job_audit(&self, job_id: Uuid) -> StoreResult<Vec<AuditRecord>>;
    /// The snapshot and every change after it. `NotFound` for an unregistered document.
    async fn load(&self, doc_id: Uuid) -> StoreResult<StoredDoc>;
    /// Changes appended after `seq` (for a node catching up after a notification).
    async fn changes_since(&self, doc_id: Uuid, seq: i64) -> StoreResult<StoredDoc>;
    /// Replace the snapshot with one that includes every change up to `upto_seq`; those changes'
    /// bytes are dropped (their hashes are kept for idempotency).
    async fn save_snapshot(&self, doc_id: Uuid, snapshot: &[u8], upto_seq: i64) -> StoreResult<()>;

    async fn sync_state(&self, device_id: Uuid, doc_id: Uuid) -> StoreResult<Option<Vec<u8>>>;
    async fn put_sync_state(&self, device_id: Uuid, doc_id: Uuid, state: &[u8]) -> StoreResult<()>;
    /// Save several sync states of a device at once, in one transaction (one fsync instead of one
    /// per document when a device receives 200 documents): all of them or none. No default body
    /// (nor for any method here), so a wrapping store must forward it explicitly.
    async fn put_sync_states(&self, device_id: Uuid, states: &[(Uuid, Vec<u8>)])
    -> StoreResult<()>;
    /// The documents the device holds a sync state for, i.e. that it has been sent, ordered by
    /// id. Empty for an unknown device.
    async fn sync_state_docs(&self, device_id: Uuid) -> StoreResult<Vec<Uuid>>;
    /// Forget the device's sync state for a document (when the document leaves the device's set,
    /// so it is sent from scratch if it comes back). No error when there is none.
    async fn delete_sync_state(&self, device_id: Uuid, doc_id: Uuid) -> StoreResult<()>;

    /// Returns false when the assignment already existed.
    async fn assign(&self, job_id: Uuid, user_id: Uuid) -> StoreResult<bool>;
    /// Returns false when there was no such assignment.
    async fn unassign(&self, job_id: Uuid, user_id: Uuid) -> StoreResult<bool>;
    async fn assigned_jobs(&self, user_id: Uuid) -> StoreResult<Vec<Uuid>>;
    async fn job_assignees(&self, job_id: Uuid) -> StoreResult<Vec<Uuid>>;

    /// Insert or replace the `photos` row of (`org_id`, `sha256`).
    async fn put_photo(&self, photo: &PhotoRecord) -> StoreResult<()>;
    /// The `photos` row of a blob of `org_id`, if its original was stored.
    async fn photo(&self, org_id: Uuid, sha256: &str) -> StoreResult<Option<PhotoRecord>>;

    /// A trivial query, to tell that the database answers (readiness checks).
    async fn ping(&self) -> StoreResult<()>;

    /// Tell the other nodes that a document has new changes. Postgres sends it with `pg_notify`
    /// to every node subscribed, this one included; a single-node store (SQLite) does nothing.
    async fn publish_change(&self, notice: ChangeNotice) -> StoreResult<()>;
    /// Receive the notices every node publishes from now on (once this returns, a notice published
    /// afterwards is delivered), or `None` when the store is single-node (SQLite) and there is
    /// nothing to receive. Each call opens its own subscription; dropping the receiver ends it.
    ///
    /// Notices are hints, not a log: those published while the subscription's connection is
    /// lost (it reconnects by itself) are never delivered, so a node must still catch up from the
    /// store ([`Store::changes_since`]) when it next serves a document. A receiver that falls
    /// more than a few thousand notices behind holds the subscription up; none are dropped.
    async fn subscribe_changes(
        &self,
    ) -> StoreResult<Option<tokio::sync::mpsc::Receiver<ChangeNotice>>>;

    /// The relational records beside the log: the dispatcher's data and the projected rows.
    fn records(&self) -> &dyn records::Records;

    /// Preventive maintenance: templates, schedules and their occurrences (migration 0009).
    fn pm(&self) -> &dyn pm::PmStore;

    /// Planning: settings, job types, and what suggestions and route plans read (migration 0012).
    fn planning(&self) -> &dyn planning::PlanningStore;

    /// SLA policies, the jobs their clocks read, and the breaches recorded (migration 0011).
    fn sla(&self) -> &dyn sla::SlaStore;

    /// IoT sensors: their rules, readings and the jobs they opened (migration 0010).
    fn sensor_store(&self) -> &dyn sensors::SensorStore;
}
