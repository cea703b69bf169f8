//! The Postgres store, for production: sqlx with compile-checked queries.
//!
//! The query macros check every statement against a database when one is given at build time,
//! and otherwise read what they need from `.sqlx/` at the workspace root, so the crate builds
//! without a database (`SQLX_OFFLINE=true` makes them use `.sqlx/` even when `DATABASE_URL` is
//! set).
//! After changing a query or a migration, regenerate `.sqlx/` with `scripts/sqlx-prepare.sh`
//! (`cargo sqlx prepare --workspace` against a scratch database with the migrations applied) and
//! commit it; CI (`scripts/test.sh`) fails when `.sqlx/` does not match the queries.
//!
//! Consistency: every write that touches more than one row runs in one transaction. Appends and
//! compactions of a document first lock its registry row, so they run one at a time per document
//! and sequence numbers become visible in order: a reader that saw seq N never later finds a
//! change of that document below N. Reads of a snapshot together with its changes run in one
//! REPEATABLE READ transaction so a concurrent compaction cannot slip between the two reads.
//!
//! Change notices between nodes travel on the `fieldsync_changes` channel (`LISTEN`/`NOTIFY`) as
//! `<doc id>:<seq>:<node id>` text; see [`Store::subscribe_changes`].

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{PgConnection, error::ErrorKind};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    Append, AuditRecord, ChangeNotice, ChangeRecord, Device, DocMeta, Notified, Org, PhotoRecord,
    Role, Rotation, Store, StoreError, StoreResult, StoredDoc, TokenInfo, TokenKind, TokenRecord,
    User,
};

mod batch;
mod planning;
mod pm;
mod records;
mod sensors;
mod sla;

/// How often a transaction that Postgres aborted as a serialization failure or deadlock is tried
/// in all before the error is returned.
const TX_ATTEMPTS: u32 = 5;

/// The advisory lock key that serializes appends to the change log (`"fsyn"` in ASCII).
const APPEND_LOCK: i64 = 0x6673_796e;

/// The `LISTEN`/`NOTIFY` channel of change notices.
const CHANGES_CHANNEL: &str = "fieldsync_changes";

/// How many received notices a subscription holds for a receiver that is behind.
const NOTICE_BUFFER: usize = 4096;

/// How long a subscription waits after a failed attempt to reach the database before it tries
/// again.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect a pool of the default size to `url` (`postgres://user@host:port/db`). Call
    /// [`Store::migrate`] before use.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        PgStore::connect_with(url, crate::config::DEFAULT_PG_POOL_SIZE).await
    }

    /// Connect a pool of at most `pool_size` connections.
    pub async fn connect_with(url: &str, pool_size: u32) -> StoreResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .connect(url)
            .await
            .map_err(db_error)?;
        Ok(PgStore { pool })
    }
}

/// Map a sqlx error onto the store's classes, keeping it as the source of the failures.
fn db_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation => return StoreError::Conflict(message),
                ErrorKind::ForeignKeyViolation => return StoreError::NotFound(message),
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    return StoreError::Invalid(message);
                }
                _ => {}
            }
            match db.code().as_deref() {
                // Class 22, data exception: a value the column cannot hold (NUL in text,
                // invalid encoding, out of range, too long).
                Some(code) if code.starts_with("22") => StoreError::Invalid(message),
                Some(code) if is_transient_sqlstate(code) => StoreError::Unavailable(err.into()),
                _ => StoreError::Failed(err.into()),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => StoreError::Unavailable(err.into()),
        _ => StoreError::Failed(err.into()),
    }
}

/// SQLSTATEs after which the same statement may succeed: serialization failure and deadlock
/// (40001, 40P01), connection exceptions (08), insufficient resources (53), operator
/// intervention such as a shutdown or a cancelled statement (57), a lock not available (55P03).
fn is_transient_sqlstate(code: &str) -> bool {
    matches!(code, "40001" | "40P01" | "55P03")
        || code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
}

/// True for the errors Postgres asks the client to retry: serialization failure (40001) and
/// deadlock (40P01). The transaction was rolled back, so running it again is safe.
fn is_retryable(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// Run `tx` (which opens, uses and commits its own transaction) until it succeeds, fails with an
/// error that a retry cannot fix, or has been tried `TX_ATTEMPTS` times. Waits between tries grow
/// exponentially and are jittered so that the transactions that collided do not collide again.
async fn retrying<T, F, Fut>(mut tx: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TxError>>,
{
    let mut attempt = 1;
    loop {
        match tx().await {
            Err(TxError::Sql(err)) if attempt < TX_ATTEMPTS && is_retryable(&err) => {
                let ceiling_ms = 10u64 << attempt;
                let wait =
                    Duration::from_millis(rand::rng().random_range(ceiling_ms / 2..=ceiling_ms));
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(TxError::Sql(err)) => return Err(db_error(err)),
            Err(TxError::Store(err)) => return Err(err),
            Ok(value) => return Ok(value),
        }
    }
}

/// What a transaction body fails with: a sqlx error (retried when Postgres says so) or a store
/// error decided by the body itself (an unknown document), which is final.
enum TxError {
    Sql(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for TxError {
    fn from(err: sqlx::Error) -> Self {
        TxError::Sql(err)
    }
}

/// Lock a document's registry row for the rest of the transaction, so appends and compactions of
/// one document run one at a time. `FOR NO KEY UPDATE` still lets other transactions insert rows
/// that reference the document (sync states), which only need a key-share lock.
async fn lock_document(conn: &mut PgConnection, doc_id: Uuid) -> Result<(), TxError> {
    let found = sqlx::query_scalar!(
        "SELECT id FROM documents WHERE id = $1 FOR NO KEY UPDATE",
        doc_id
    )
    .fetch_optional(conn)
    .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(TxError::Store(unknown_document(doc_id))),
    }
}

fn unknown_document(doc_id: Uuid) -> StoreError {
    StoreError::NotFound(format!("document {doc_id}"))
}

/// The highest sequence number in a document's log, 0 when it is empty.
async fn last_seq(conn: &mut PgConnection, doc_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(MAX(seq), 0) AS "last_seq!" FROM changes WHERE doc_id = $1"#,
        doc_id
    )
    .fetch_one(conn)
    .await
}

/// Every document's changes, audit rows and sync states of a group commit, inside the caller's
/// transaction, in a fixed number of statements whatever the batch's size (a commit that
/// carries fifty devices' edits costs a few round trips, not fifty times a few). Returns the
/// sequence number each append's document reached, in the batch's order. With `announce_as`,
/// the same statement that reads those numbers queues each document's notice, which Postgres
/// delivers at the commit (and never without it).
async fn append_all(
    conn: &mut PgConnection,
    batch: &[Append],
    announce_as: Option<Uuid>,
) -> Result<Vec<i64>, TxError> {
    // One appending transaction at a time, cluster-wide: sequence numbers are taken after this
    // lock, so the log's order is its commit order and a reader that saw seq N never later finds
    // a change below N (the projection reads the log by position and relies on it). Group commit
    // makes this one transaction per node's batch, not per edit.
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
        .execute(&mut *conn)
        .await?;
    let mut docs: Vec<Uuid> = batch.iter().map(|a| a.doc_id).collect();
    docs.sort_unstable();
    docs.dedup();
    // Locked in id order, so two nodes' batches sharing documents never wait on each other in
    // a cycle (a deadlock): the rows are locked as the sorted scan returns them.
    let found = sqlx::query_scalar!(
        "SELECT id FROM documents WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        &docs[..]
    )
    .fetch_all(&mut *conn)
    .await?;
    if found.len() != docs.len() {
        let missing = docs.iter().find(|d| !found.contains(d)).copied();
        return Err(TxError::Store(unknown_document(
            missing.unwrap_or_default(),
        )));
    }
    let (mut change_docs, mut hashes, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    for a in batch {
        for c in &a.changes {
            change_docs.push(a.doc_id);
            hashes.push(c.hash.as_str());
            bytes.push(c.bytes.as_slice());
        }
    }
    if !hashes.is_empty() {
        // WITH ORDINALITY keeps the batch's order in seq; DO NOTHING also skips a hash repeated
        // within the batch.
        sqlx::query!(
            "INSERT INTO changes (doc_id, hash, bytes)
             SELECT c.doc_id, c.hash, c.bytes
             FROM UNNEST($1::uuid[], $2::text[], $3::bytea[])
                  WITH ORDINALITY AS c(doc_id, hash, bytes, position)
             ORDER BY c.position
             ON CONFLICT (doc_id, hash) DO NOTHING",
            &change_docs[..],
            &hashes[..] as &[&str],
            &bytes[..] as &[&[u8]],
        )
        .execute(&mut *conn)
        .await?;
    }
    for a in batch.iter().flat_map(|a| &a.audit) {
        sqlx::query!(
            "INSERT INTO audit_log (id, org_id, job_id, doc_id, actor_user, actor_device,
                                    action, reasons, before, after, at, flagged)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            a.id,
            a.org_id,
            a.job_id,
            a.doc_id,
            a.actor_user,
            a.actor_device,
            a.action,
            serde_json::Value::from(a.reasons.clone()),
            a.before,
            a.after,
            a.at,
            a.flagged,
        )
        .execute(&mut *conn)
        .await?;
    }
    // One row per (device, document): an upsert may not touch a row twice in one statement.
    let mut states: Vec<(Uuid, Uuid, &[u8])> = Vec::new();
    for a in batch {
        if let Some((device, state)) = &a.sync_state {
            states.retain(|(d, doc, _)| (*d, *doc) != (*device, a.doc_id));
            states.push((*device, a.doc_id, state.as_slice()));
        }
    }
    if !states.is_empty() {
        let devices: Vec<Uuid> = states.iter().map(|s| s.0).collect();
        let state_docs: Vec<Uuid> = states.iter().map(|s| s.1).collect();
        let blobs: Vec<&[u8]> = states.iter().map(|s| s.2).collect();
        sqlx::query!(
            "INSERT INTO sync_states (device_id, doc_id, state)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bytea[])
             ON CONFLICT (device_id, doc_id) DO UPDATE SET state = EXCLUDED.state",
            &devices[..],
            &state_docs[..],
            &blobs[..] as &[&[u8]],
        )
        .execute(&mut *conn)
        .await?;
    }
    // The notice's text is `notice_payload`'s for `Notified::Doc` (`d:<doc>:<seq>:<node>`).
    let last: Vec<(Uuid, i64)> = sqlx::query!(
        r#"SELECT l.doc_id, l.last AS "last!",
                  CASE WHEN $2::uuid IS NOT NULL THEN
                      pg_notify($3, 'd:' || l.doc_id || ':' || l.last || ':' || $2)::text
                  END AS announced
           FROM (SELECT doc_id, MAX(seq) AS last FROM changes WHERE doc_id = ANY($1)
                 GROUP BY doc_id) AS l"#,
        &docs[..],
        announce_as as Option<Uuid>,
        CHANGES_CHANNEL,
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.doc_id, r.last))
    .collect();
    Ok(batch
        .iter()
        .map(|a| {
            last.iter()
                .find(|(d, _)| *d == a.doc_id)
                .map_or(0, |(_, seq)| *seq)
        })
        .collect())
}

/// A notice as sent on [`CHANGES_CHANNEL`]: `d:<doc id>:<seq>:<node id>` for a document's new
/// changes, `s:<user or org id>:<node id>` for changed document sets.
fn notice_payload(notice: &ChangeNotice) -> String {
    match notice.what {
        Notified::Doc { doc, seq } => format!("d:{doc}:{seq}:{}", notice.node),
        Notified::Sets { of } => format!("s:{of}:{}", notice.node),
        // Made by a subscription for itself; sent, it would be read as malformed.
        Notified::Resync => format!("r:{}", notice.node),
    }
}

fn parse_notice(payload: &str) -> Option<ChangeNotice> {
    let mut parts = payload.split(':');
    let what = match parts.next()? {
        "d" => Notified::Doc {
            doc: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        },
        "s" => Notified::Sets {
            of: parts.next()?.parse().ok()?,
        },
        _ => return None,
    };
    let notice = ChangeNotice {
        what,
        node: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(notice)
}

/// Forward what `listener` receives to `notices` until the receiver is dropped. When the
/// listening connection is lost, notices sent until a new one listens are gone: once a new
/// connection listens, a [`Notified::Resync`] is sent, so the receiver catches up with the store
/// (every change committed before it) and gets the later ones as notices.
async fn forward_notices(
    pool: PgPool,
    mut listener: PgListener,
    notices: mpsc::Sender<ChangeNotice>,
) {
    loop {
        let received = tokio::select! {
            () = notices.closed() => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => match parse_notice(notification.payload()) {
                Some(notice) => {
                    if notices.send(notice).await.is_err() {
                        return;
                    }
                }
                None => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a malformed change notice"
                ),
            },
            // The connection was lost; the listener made a new one and listens again (sqlx's
            // eager reconnect) before it says so.
            Ok(None) => {
                tracing::info!("change notices: connection lost and made again; catching up");
                if notices.send(resync()).await.is_err() {
                    return;
                }
            }
            // Reconnecting failed (the database is away): a new listener, once one listens.
            Err(err) => {
                tracing::warn!(error = %err, "change notices: listening failed");
                drop(listener);
                listener = loop {
                    tokio::select! {
                        () = notices.closed() => return,
                        () = tokio::time::sleep(LISTEN_RETRY) => {}
                    }
                    match listen(&pool).await {
                        Ok(l) => break l,
                        Err(err) => {
                            tracing::warn!(error = %err, "change notices: listening again failed, retrying")
                        }
                    }
                };
                tracing::info!("change notices: listening again; catching up");
                if notices.send(resync()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn resync() -> ChangeNotice {
    ChangeNotice {
        what: Notified::Resync,
        node: Uuid::nil(),
    }
}

/// A listener on the change channel, on a connection of `pool`.
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

fn parse_role(role: &str) -> StoreResult<Role> {
    Role::parse(role).ok_or_else(|| StoreError::Database(format!("unknown role {role:?} in users")))
}

fn token_kind_str(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Access => "access",
        TokenKind::Refresh => "refresh",
    }
}

fn parse_token_kind(kind: &str) -> StoreResult<TokenKind> {
    match kind {
        "access" => Ok(TokenKind::Access),
        "refresh" => Ok(TokenKind::Refresh),
        other => Err(StoreError::Database(format!(
            "unknown token kind {other:?} in tokens"
        ))),
    }
}

struct UserRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    role: String,
    password_hash: String,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> StoreResult<User> {
        Ok(User {
            id: row.id,
            org_id: row.org_id,
            name: row.name,
            role: parse_role(&row.role)?,
            password_hash: row.password_hash,
        })
    }
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|err| StoreError::Failed(Box::new(err)))
    }

    async fn create_org(&self, name: &str) -> StoreResult<Org> {
        let org = Org {
            id: Uuid::now_v7(),
            name: name.to_owned(),
        };
        sqlx::query!(
            "INSERT INTO orgs (id, name) VALUES ($1, $2)",
            org.id,
            org.name
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(org)
    }

    async fn org_by_name(&self, name: &str) -> StoreResult<Option<Org>> {
        sqlx::query_as!(Org, "SELECT id, name FROM orgs WHERE name = $1", name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn create_user(
        &self,
        org_id: Uuid,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> StoreResult<User> {
        let user = User {
            id: Uuid::now_v7(),
            org_id,
            name: name.to_owned(),
            role,
            password_hash: password_hash.to_owned(),
        };
        sqlx::query!(
            "INSERT INTO users (id, org_id, name, role, password_hash) VALUES ($1, $2, $3, $4, $5)",
            user.id,
            user.org_id,
            user.name,
            role.as_str(),
            user.password_hash,
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(user)
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        sqlx::query_as!(
            UserRow,
            "SELECT id, org_id, name, role, password_hash FROM users WHERE name = $1",
            name
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(User::try_from)
        .transpose()
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        sqlx::query_as!(
            UserRow,
            "SELECT id, org_id, name, role, password_hash FROM users WHERE id = $1",
            id
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(User::try_from)
        .transpose()
    }

    async fn users_in_org(&self, org_id: Uuid) -> StoreResult<Vec<User>> {
        sqlx::query_as!(
            UserRow,
            "SELECT id, org_id, name, role, password_hash FROM users WHERE org_id = $1 ORDER BY name",
            org_id
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(User::try_from)
        .collect()
    }

    async fn register_device(&self, user_id: Uuid, name: &str) -> StoreResult<Device> {
        let device = Device {
            id: Uuid::now_v7(),
            user_id,
            name: name.to_owned(),
            revoked: false,
        };
        sqlx::query!(
            "INSERT INTO devices (id, user_id, name) VALUES ($1, $2, $3)",
            device.id,
            device.user_id,
            device.name
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(device)
    }

    async fn device(&self, id: Uuid) -> StoreResult<Option<Device>> {
        sqlx::query_as!(
            Device,
            "SELECT id, user_id, name, revoked FROM devices WHERE id = $1",
            id
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn revoke_device(&self, id: Uuid) -> StoreResult<bool> {
        let done = sqlx::query!("UPDATE devices SET revoked = TRUE WHERE id = $1", id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO tokens (hash, kind, user_id, device_id, expires_at) VALUES ($1, $2, $3, $4, $5)",
            token.hash,
            token_kind_str(token.kind),
            token.user_id,
            token.device_id,
            token.expires_at,
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn token(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        let row = sqlx::query!(
            r#"SELECT t.hash, t.kind, t.user_id, t.device_id, t.expires_at,
                      u.org_id, u.name, u.role, u.password_hash,
                      COALESCE(d.revoked, FALSE) AS "device_revoked!"
               FROM tokens t
               JOIN users u ON u.id = t.user_id
               LEFT JOIN devices d ON d.id = t.device_id
               WHERE t.hash = $1"#,
            hash
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            Ok(TokenInfo {
                token: TokenRecord {
                    hash: row.hash,
                    kind: parse_token_kind(&row.kind)?,
                    user_id: row.user_id,
                    device_id: row.device_id,
                    expires_at: row.expires_at,
                },
                user: User {
                    id: row.user_id,
                    org_id: row.org_id,
                    name: row.name,
                    role: parse_role(&row.role)?,
                    password_hash: row.password_hash,
                },
                device_revoked: row.device_revoked,
            })
        })
        .transpose()
    }

    async fn delete_token(&self, hash: &str) -> StoreResult<bool> {
        // One statement: of concurrent deletes of one row, Postgres lets exactly one delete it
        // (the others wait on the row lock, then find it gone and affect no row).
        let done = sqlx::query!("DELETE FROM tokens WHERE hash = $1", hash)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn use_refresh_token(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<Rotation> {
        // The UPDATE decides: concurrent ones for one row wait on its lock and, once the first
        // committed, find `used_at` set and change nothing.
        let rotated = sqlx::query_scalar!(
            "UPDATE tokens SET used_at = $2 WHERE hash = $1 AND kind = 'refresh' AND used_at IS NULL RETURNING hash",
            hash,
            now
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        if rotated.is_some() {
            return Ok(Rotation::Rotated);
        }
        let used = sqlx::query!(
            "SELECT device_id, used_at FROM tokens WHERE hash = $1 AND kind = 'refresh'",
            hash
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(match used {
            Some(row) => Rotation::Reused {
                device_id: row.device_id,
                used_at: row.used_at.unwrap_or(now),
            },
            None => Rotation::Unknown,
        })
    }

    async fn create_document(&self, meta: &DocMeta) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO documents (id, org_id, kind, job_id) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            meta.id,
            meta.org_id,
            meta.kind,
            meta.job_id,
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn document(&self, id: Uuid) -> StoreResult<Option<DocMeta>> {
        sqlx::query_as!(
            DocMeta,
            "SELECT id, org_id, kind, job_id FROM documents WHERE id = $1",
            id
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn job_documents(&self, job_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        sqlx::query_as!(
            DocMeta,
            "SELECT id, org_id, kind, job_id FROM documents WHERE job_id = $1 ORDER BY id",
            job_id
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn org_jobs(&self, org_id: Uuid) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar!(
            "SELECT id FROM documents WHERE org_id = $1 AND kind = 'job' ORDER BY id",
            org_id
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn user_documents(&self, user_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        sqlx::query_as!(
            DocMeta,
            "SELECT d.id, d.org_id, d.kind, d.job_id
             FROM assignments a
             JOIN users u ON u.id = a.user_id
             JOIN documents d ON d.job_id = a.job_id AND d.org_id = u.org_id
             WHERE a.user_id = $1
             ORDER BY d.job_id, d.id",
            user_id
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn org_documents(&self, org_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        sqlx::query_as!(
            DocMeta,
            "SELECT id, org_id, kind, job_id FROM documents WHERE org_id = $1 ORDER BY job_id, id",
            org_id
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn append_changes(&self, doc_id: Uuid, changes: &[ChangeRecord]) -> StoreResult<i64> {
        self.append_changes_audited(doc_id, changes, &[]).await
    }

    async fn append_changes_audited(
        &self,
        doc_id: Uuid,
        changes: &[ChangeRecord],
        audit: &[AuditRecord],
    ) -> StoreResult<i64> {
        let one = [Append {
            doc_id,
            changes: changes.to_vec(),
            audit: audit.to_vec(),
            sync_state: None,
        }];
        Ok(self.append_batch(&one, None).await?[0])
    }

    async fn append_batch(
        &self,
        batch: &[Append],
        announce_as: Option<Uuid>,
    ) -> StoreResult<Vec<i64>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        retrying(move || async move {
            let mut tx = self.pool.begin().await?;
            let seqs = append_all(&mut tx, batch, announce_as).await?;
            tx.commit().await?;
            Ok(seqs)
        })
        .await
    }

    async fn job_audit(&self, job_id: Uuid) -> StoreResult<Vec<AuditRecord>> {
        retrying(move || async move {
            let rows = sqlx::query!(
                "SELECT id, org_id, job_id, doc_id, actor_user, actor_device, action, reasons,
                        before, after, at, flagged
                 FROM audit_log WHERE job_id = $1 ORDER BY at, id",
                job_id
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| AuditRecord {
                    id: r.id,
                    org_id: r.org_id,
                    job_id: r.job_id,
                    doc_id: r.doc_id,
                    actor_user: r.actor_user,
                    actor_device: r.actor_device,
                    action: r.action,
                    reasons: serde_json::from_value(r.reasons).unwrap_or_default(),
                    before: r.before,
                    after: r.after,
                    at: r.at,
                    flagged: r.flagged,
                })
                .collect())
        })
        .await
    }

    async fn load(&self, doc_id: Uuid) -> StoreResult<StoredDoc> {
        retrying(move || async move {
            let mut tx = self
                .pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let registered = sqlx::query_scalar!("SELECT id FROM documents WHERE id = $1", doc_id)
                .fetch_optional(&mut *tx)
                .await?;
            if registered.is_none() {
                return Err(TxError::Store(unknown_document(doc_id)));
            }
            let snapshot = sqlx::query!(
                "SELECT bytes, upto_seq FROM snapshots WHERE doc_id = $1",
                doc_id
            )
            .fetch_optional(&mut *tx)
            .await?;
            let after = snapshot.as_ref().map_or(0, |s| s.upto_seq);
            let changes = sqlx::query_scalar!(
                r#"SELECT bytes AS "bytes!" FROM changes
                   WHERE doc_id = $1 AND seq > $2 AND bytes IS NOT NULL ORDER BY seq"#,
                doc_id,
                after
            )
            .fetch_all(&mut *tx)
            .await?;
            let last_seq = last_seq(&mut tx, doc_id).await?;
            tx.commit().await?;
            Ok(StoredDoc {
                snapshot: snapshot.map(|s| s.bytes),
                changes,
                last_seq,
            })
        })
        .await
    }

    async fn changes_since(&self, doc_id: Uuid, seq: i64) -> StoreResult<StoredDoc> {
        retrying(move || async move {
            let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
            let registered =
                sqlx::query_scalar!("SELECT id FROM documents WHERE id = $1", doc_id).fetch_optional(&mut *tx).await?;
            if registered.is_none() {
                return Err(TxError::Store(unknown_document(doc_id)));
            }
            // A change after `seq` without bytes was compacted into the snapshot, which the caller
            // then needs as well.
            let snapshot = sqlx::query_scalar!(
                "SELECT s.bytes FROM snapshots s
                 WHERE s.doc_id = $1
                   AND EXISTS (SELECT 1 FROM changes c WHERE c.doc_id = $1 AND c.seq > $2 AND c.bytes IS NULL)",
                doc_id,
                seq
            )
            .fetch_optional(&mut *tx)
            .await?;
            let changes = sqlx::query_scalar!(
                r#"SELECT bytes AS "bytes!" FROM changes
                   WHERE doc_id = $1 AND seq > $2 AND bytes IS NOT NULL ORDER BY seq"#,
                doc_id,
                seq
            )
            .fetch_all(&mut *tx)
            .await?;
            let last_seq = last_seq(&mut tx, doc_id).await?;
            tx.commit().await?;
            Ok(StoredDoc { snapshot, changes, last_seq })
        })
        .await
    }

    /// A snapshot older than the stored one (a smaller `upto_seq`) is ignored: the changes it
    /// lacks were already dropped, so storing it would lose them. `upto_seq` past the end of the
    /// log is taken as the end of the log, so changes appended later are never hidden behind it.
    async fn save_snapshot(&self, doc_id: Uuid, snapshot: &[u8], upto_seq: i64) -> StoreResult<()> {
        retrying(move || async move {
            let mut tx = self.pool.begin().await?;
            lock_document(&mut tx, doc_id).await?;
            let upto = upto_seq.min(last_seq(&mut tx, doc_id).await?);
            let saved = sqlx::query!(
                "INSERT INTO snapshots (doc_id, bytes, upto_seq) VALUES ($1, $2, $3)
                 ON CONFLICT (doc_id) DO UPDATE SET bytes = EXCLUDED.bytes, upto_seq = EXCLUDED.upto_seq
                 WHERE snapshots.upto_seq <= EXCLUDED.upto_seq",
                doc_id,
                snapshot,
                upto,
            )
            .execute(&mut *tx)
            .await?;
            if saved.rows_affected() > 0 {
                sqlx::query!(
                    "UPDATE changes SET bytes = NULL WHERE doc_id = $1 AND seq <= $2 AND bytes IS NOT NULL",
                    doc_id,
                    upto
                )
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn sync_state(&self, device_id: Uuid, doc_id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar!(
            "SELECT state FROM sync_states WHERE device_id = $1 AND doc_id = $2",
            device_id,
            doc_id
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn put_sync_state(&self, device_id: Uuid, doc_id: Uuid, state: &[u8]) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO sync_states (device_id, doc_id, state) VALUES ($1, $2, $3)
             ON CONFLICT (device_id, doc_id) DO UPDATE SET state = EXCLUDED.state",
            device_id,
            doc_id,
            state,
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn put_sync_states(
        &self,
        device_id: Uuid,
        states: &[(Uuid, Vec<u8>)],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        for (doc_id, state) in states {
            sqlx::query!(
                "INSERT INTO sync_states (device_id, doc_id, state) VALUES ($1, $2, $3)
             ON CONFLICT (device_id, doc_id) DO UPDATE SET state = EXCLUDED.state",
                device_id,
                doc_id,
                state,
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn sync_state_docs(&self, device_id: Uuid) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar!(
            "SELECT doc_id FROM sync_states WHERE device_id = $1 ORDER BY doc_id",
            device_id
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn delete_sync_state(&self, device_id: Uuid, doc_id: Uuid) -> StoreResult<()> {
        sqlx::query!(
            "DELETE FROM sync_states WHERE device_id = $1 AND doc_id = $2",
            device_id,
            doc_id
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn assign(&self, job_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
        let done = sqlx::query!(
            "INSERT INTO assignments (job_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            job_id,
            user_id
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn unassign(&self, job_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
        let done = sqlx::query!(
            "DELETE FROM assignments WHERE job_id = $1 AND user_id = $2",
            job_id,
            user_id
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn assigned_jobs(&self, user_id: Uuid) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar!(
            "SELECT job_id FROM assignments WHERE user_id = $1 ORDER BY job_id",
            user_id
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn job_assignees(&self, job_id: Uuid) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar!(
            "SELECT user_id FROM assignments WHERE job_id = $1 ORDER BY user_id",
            job_id
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn put_photo(&self, p: &PhotoRecord) -> StoreResult<()> {
        sqlx::query!(
            "INSERT INTO photos (org_id, sha256, size, mime, width, height, taken_at, lat, lon, \
             thumbnails, stored_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (org_id, sha256) DO UPDATE SET size = excluded.size, \
             mime = excluded.mime, width = excluded.width, height = excluded.height, \
             taken_at = excluded.taken_at, lat = excluded.lat, lon = excluded.lon, \
             thumbnails = excluded.thumbnails, stored_at = excluded.stored_at",
            p.org_id,
            p.sha256,
            i64::try_from(p.size).unwrap_or(i64::MAX),
            p.mime,
            i32::try_from(p.width).unwrap_or(i32::MAX),
            i32::try_from(p.height).unwrap_or(i32::MAX),
            p.taken_at,
            p.location.map(|l| l.lat),
            p.location.map(|l| l.lon),
            p.thumbnails_text(),
            p.stored_at,
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn photo(&self, org_id: Uuid, sha256: &str) -> StoreResult<Option<PhotoRecord>> {
        let row = sqlx::query!(
            "SELECT org_id, sha256, size, mime, width, height, taken_at, lat, lon, thumbnails, \
             stored_at FROM photos WHERE org_id = $1 AND sha256 = $2",
            org_id,
            sha256
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|r| PhotoRecord {
            org_id: r.org_id,
            sha256: r.sha256,
            size: r.size.max(0) as u64,
            mime: r.mime,
            width: r.width.max(0) as u32,
            height: r.height.max(0) as u32,
            taken_at: r.taken_at,
            location: r
                .lat
                .zip(r.lon)
                .map(|(lat, lon)| schemas::photo::GeoPoint { lat, lon }),
            thumbnails: PhotoRecord::parse_thumbnails(&r.thumbnails),
            stored_at: r.stored_at,
        }))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query!("SELECT 1 AS one")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn publish_change(&self, notice: ChangeNotice) -> StoreResult<()> {
        sqlx::query!(
            "SELECT pg_notify('fieldsync_changes', $1)",
            notice_payload(&notice)
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// The subscription holds a connection of its own (outside the pool, so it neither takes a
    /// query's connection nor is closed as idle) and has run `LISTEN` on it before this returns.
    fn records(&self) -> &dyn super::records::Records {
        self
    }

    fn pm(&self) -> &dyn super::pm::PmStore {
        self
    }

    fn planning(&self) -> &dyn super::planning::PlanningStore {
        self
    }

    fn sla(&self) -> &dyn super::sla::SlaStore {
        self
    }

    fn sensor_store(&self) -> &dyn super::sensors::SensorStore {
        self
    }

    async fn subscribe_changes(&self) -> StoreResult<Option<mpsc::Receiver<ChangeNotice>>> {
        let connect_options = (*self.pool.connect_options()).clone();
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(connect_options)
            .await
            .map_err(db_error)?;
        let listener = listen(&listener_pool).await.map_err(db_error)?;
        let (sender, receiver) = mpsc::channel(NOTICE_BUFFER);
        tokio::spawn(forward_notices(listener_pool, listener, sender));
        Ok(Some(receiver))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_payload_round_trips() {
        let doc = Uuid::now_v7();
        let notice = ChangeNotice {
            what: Notified::Doc { doc, seq: 42 },
            node: Uuid::now_v7(),
        };
        let payload = notice_payload(&notice);
        assert!(payload.len() < 100, "{payload}");
        assert_eq!(parse_notice(&payload), Some(notice));
        let sets = ChangeNotice {
            what: Notified::Sets { of: doc },
            node: Uuid::now_v7(),
        };
        assert_eq!(parse_notice(&notice_payload(&sets)), Some(sets));
        for bad in [
            "",
            "x:1:y",
            &format!("d:{doc}:1"),
            &format!("{doc}:1:{doc}"),
            &format!("{payload}:extra"),
        ] {
            assert_eq!(parse_notice(bad), None, "{bad:?}");
        }
    }
}
