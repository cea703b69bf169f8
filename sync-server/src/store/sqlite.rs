//! The SQLite store, the embedded default: rusqlite on tokio's blocking threads.
//!
//! Why rusqlite and not sqlx: the device library already uses rusqlite, and a workspace can link
//! only one `libsqlite3-sys`; sqlx's SQLite driver pins an older one. rusqlite's calls block, so
//! each runs on `spawn_blocking` over one connection behind a mutex: the server writes from one
//! process, SQLite allows one writer at a time anyway, and WAL keeps outside readers (backups, the
//! sqlite3 shell) from blocking it.
//!
//! Durability: `synchronous = FULL` makes every commit reach the disk before it returns, so an
//! acknowledged upload survives a power cut.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{
    Connection, OptionalExtension, Row, ToSql, Transaction, TransactionBehavior, params,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    Append, AuditRecord, ChangeNotice, ChangeRecord, Device, DocMeta, Org, PhotoRecord, Role,
    Rotation, Store, StoreError, StoreResult, StoredDoc, TokenInfo, TokenKind, TokenRecord, User,
};

mod planning;
mod pm;
mod records;
mod sensors;
mod sla;

/// The migrations, in the order they apply, embedded so the binary carries its schema. Append new
/// files at the end and never edit one that has been released: [`migrate`] refuses a database
/// whose applied migrations differ from these. A migration must not contain its own
/// `BEGIN`/`COMMIT`, because each runs inside the runner's transaction.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_sync_core.sql",
        include_str!("../../../migrations/sqlite/0001_sync_core.sql"),
    ),
    (
        "0002_documents_by_org.sql",
        include_str!("../../../migrations/sqlite/0002_documents_by_org.sql"),
    ),
    (
        "0003_refresh_token_reuse.sql",
        include_str!("../../../migrations/sqlite/0003_refresh_token_reuse.sql"),
    ),
    (
        "0004_audit_log.sql",
        include_str!("../../../migrations/sqlite/0004_audit_log.sql"),
    ),
    (
        "0005_photos.sql",
        include_str!("../../../migrations/sqlite/0005_photos.sql"),
    ),
    (
        "0006_relational_model.sql",
        include_str!("../../../migrations/sqlite/0006_relational_model.sql"),
    ),
    (
        "0008_templates_presence.sql",
        include_str!("../../../migrations/sqlite/0008_templates_presence.sql"),
    ),
    (
        "0009_pm_schedules.sql",
        include_str!("../../../migrations/sqlite/0009_pm_schedules.sql"),
    ),
    (
        "0010_sensors.sql",
        include_str!("../../../migrations/sqlite/0010_sensors.sql"),
    ),
    (
        "0011_sla.sql",
        include_str!("../../../migrations/sqlite/0011_sla.sql"),
    ),
    (
        "0012_planning.sql",
        include_str!("../../../migrations/sqlite/0012_planning.sql"),
    ),
];

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Open (or create) the database file at `path`. Call [`Store::migrate`] before use.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<SqliteStore> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let journal_mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database(format!(
                "SQLite refused WAL mode (journal_mode is {journal_mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The store's statements are prepared once and kept (`prepare_cached`); rusqlite keeps 16
        // by default, fewer than one edit and its projection use, so some were compiled again
        // for every edit (with the uncached ones then, 6 % of the server's CPU at 100 edits/s).
        conn.set_prepared_statement_cache_capacity(256);
        // ... and run again with new values. SQLite (built with STAT4, as rusqlite bundles it)
        // lets a value bound to `LIMIT ?` or a range bound shape the plan, so binding another
        // value compiles the statement again: the projection's read of the log was compiled
        // anew at every step (3.4 % of the server's CPU at 100 edits/s, `perf`). The query
        // planner stability guarantee keeps each statement's one plan; none of ours needs more.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Run `f` on the connection on a blocking thread.
    ///
    /// Every call holds the one connection, so a long commit (an fsync) holds up every other
    /// call, acks included.
    async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held cannot leave a transaction open (rusqlite rolls back
            // a dropped transaction), so a poisoned connection is still good to use.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|err| StoreError::Failed(Box::new(err)))?
    }
}

/// Run `f` with `synchronous = NORMAL`, then put `FULL` back: its commits reach the WAL but are
/// not fsynced. Only for what can be made again from the log (the projected rows and their
/// position, written in one transaction): a power cut may undo such a commit, never half of
/// it, and never one that came before a commit of the log (the WAL is fsynced in order, so the
/// next append's fsync carries it too). The rows are then projected again. This takes the
/// projection's fsync off the path every append waits on.
fn without_fsync<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let out = f(conn);
    // Setting a pragma touches no file, so this does not fail on a working connection; should it,
    // the call fails, and appends set `FULL` themselves before they write.
    conn.pragma_update(None, "synchronous", "FULL")?;
    out
}

impl From<rusqlite::Error> for StoreError {
    /// Constraint violations are the caller's (conflict, not found, invalid); a busy or locked
    /// database, a full disk or an I/O error may pass; anything else will not. The rusqlite
    /// error is kept as the source.
    fn from(err: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::SqliteFailure(failure, message) = &err {
            let message = message.clone().unwrap_or_else(|| err.to_string());
            match failure.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    return StoreError::Conflict(message);
                }
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                    return StoreError::NotFound(message);
                }
                rusqlite::ffi::SQLITE_CONSTRAINT_CHECK
                | rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => {
                    return StoreError::Invalid(message);
                }
                _ => {}
            }
            match failure.code {
                ErrorCode::TooBig => return StoreError::Invalid(message),
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory => return StoreError::Unavailable(Box::new(err)),
                _ => {}
            }
        }
        StoreError::Failed(Box::new(err))
    }
}

/// Apply the pending [`MIGRATIONS`] in one immediate transaction (so two processes starting at
/// once do not both apply them), recording each one's name and sha256. Refuses, changing
/// nothing, when an applied migration's file changed or is unknown to this build.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             name       TEXT PRIMARY KEY,
             sha256     TEXT NOT NULL,
             applied_at INTEGER NOT NULL
         ) STRICT",
    )?;
    let applied: Vec<(String, String)> = tx
        .prepare("SELECT name, sha256 FROM schema_migrations ORDER BY name")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, recorded) in &applied {
        let Some((_, sql)) = MIGRATIONS.iter().find(|(known, _)| known == name) else {
            return Err(StoreError::Database(format!(
                "the database has migration {name} applied, which this build does not know; \
                 it was migrated by a newer build"
            )));
        };
        let current = sha256_hex(sql);
        if current != *recorded {
            return Err(StoreError::Database(format!(
                "migration {name} changed after it was applied (applied sha256 {recorded}, file now \
                 {current}); migrations are append-only: restore the file and add a new migration"
            )));
        }
    }
    for (name, sql) in MIGRATIONS {
        if applied.iter().any(|(done, _)| done == name) {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|err| StoreError::Database(format!("migration {name}: {err}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (name, sha256, applied_at) VALUES (?1, ?2, ?3)",
            params![name, sha256_hex(sql), Utc::now().timestamp_micros()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A UUID as stored: its hyphenated text, readable in the sqlite3 shell.
struct Id(Uuid);

impl ToSql for Id {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.to_string()))
    }
}

impl FromSql for Id {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Uuid::parse_str(value.as_str()?)
            .map(Id)
            .map_err(|err| FromSqlError::Other(Box::new(err)))
    }
}

/// A column of the value set `what`, parsed with `parse`; an unknown value is a corrupt row.
fn parsed<T>(
    row: &Row<'_>,
    idx: usize,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown {what} {text:?}").into(),
        )
    })
}

fn parse_token_kind(kind: &str) -> Option<TokenKind> {
    match kind {
        "access" => Some(TokenKind::Access),
        "refresh" => Some(TokenKind::Refresh),
        _ => None,
    }
}

fn token_kind_str(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Access => "access",
        TokenKind::Refresh => "refresh",
    }
}

fn timestamp(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let micros: i64 = row.get(idx)?;
    DateTime::from_timestamp_micros(micros)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(idx, micros))
}

fn insert_audit(tx: &rusqlite::Transaction<'_>, a: &AuditRecord) -> rusqlite::Result<()> {
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    tx.prepare_cached(
        "INSERT INTO audit_log (id, org_id, job_id, doc_id, actor_user, actor_device, action,
                                reasons, before, after, at, flagged)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        Id(a.id),
        Id(a.org_id),
        Id(a.job_id),
        a.doc_id.map(Id),
        a.actor_user.map(Id),
        a.actor_device.map(Id),
        a.action,
        serde_json::Value::from(a.reasons.clone()).to_string(),
        json(&a.before),
        json(&a.after),
        a.at.timestamp_micros(),
        i64::from(a.flagged),
    ])?;
    Ok(())
}

const USER_COLUMNS: &str = "id, org_id, name, role, password_hash";

/// A user from the columns of [`USER_COLUMNS`], starting at `first`.
fn user_at(row: &Row<'_>, first: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get::<_, Id>(first)?.0,
        org_id: row.get::<_, Id>(first + 1)?.0,
        name: row.get(first + 2)?,
        role: parsed(row, first + 3, "role", Role::parse)?,
        password_hash: row.get(first + 4)?,
    })
}

fn doc_meta(row: &Row<'_>) -> rusqlite::Result<DocMeta> {
    Ok(DocMeta {
        id: row.get::<_, Id>(0)?.0,
        org_id: row.get::<_, Id>(1)?.0,
        kind: row.get(2)?,
        job_id: row.get::<_, Id>(3)?.0,
    })
}

fn ids(conn: &Connection, sql: &str, key: Uuid) -> StoreResult<Vec<Uuid>> {
    let found = conn
        .prepare_cached(sql)?
        .query_map([Id(key)], |row| Ok(row.get::<_, Id>(0)?.0))?
        .collect::<Result<_, _>>()?;
    Ok(found)
}

/// `NotFound` unless the document is registered.
fn require_document(tx: &Transaction<'_>, doc_id: Uuid) -> StoreResult<()> {
    let found = tx
        .prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?
        .query_row([Id(doc_id)], |_| Ok(()))
        .optional()?;
    found.ok_or_else(|| StoreError::NotFound(format!("document {doc_id}")))
}

/// Append every document's changes and audit rows in one transaction: one commit, one fsync.
fn append_all(conn: &mut Connection, batch: &[Append]) -> StoreResult<Vec<i64>> {
    // An ack promises the changes are on disk: never append without the fsync, whatever
    // [`without_fsync`] left behind (it puts `FULL` back; this makes sure).
    conn.pragma_update(None, "synchronous", "FULL")?;
    // IMMEDIATE takes the write lock up front, so a concurrent writer waits (busy_timeout)
    // instead of failing when a read transaction tries to become a write one.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut seqs = Vec::with_capacity(batch.len());
    for append in batch {
        require_document(&tx, append.doc_id)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO changes (doc_id, hash, bytes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (doc_id, hash) DO NOTHING",
            )?;
            for change in &append.changes {
                insert.execute(params![Id(append.doc_id), change.hash, change.bytes])?;
            }
        }
        for a in &append.audit {
            insert_audit(&tx, a)?;
        }
        if let Some((device_id, state)) = &append.sync_state {
            tx.prepare_cached(
                "INSERT INTO sync_states (device_id, doc_id, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device_id, doc_id) DO UPDATE SET state = excluded.state",
            )?
            .execute(params![Id(*device_id), Id(append.doc_id), state])?;
        }
        seqs.push(last_seq(&tx, append.doc_id)?);
    }
    tx.commit()?;
    Ok(seqs)
}

/// The highest sequence number in a document's log, 0 when it is empty.
fn last_seq(tx: &Transaction<'_>, doc_id: Uuid) -> rusqlite::Result<i64> {
    tx.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM changes WHERE doc_id = ?1")?
        .query_row([Id(doc_id)], |row| row.get(0))
}

/// The bytes of the document's changes after `seq` that were not compacted, in order.
fn live_changes_after(
    tx: &Transaction<'_>,
    doc_id: Uuid,
    seq: i64,
) -> rusqlite::Result<Vec<Vec<u8>>> {
    tx.prepare_cached(
        "SELECT bytes FROM changes WHERE doc_id = ?1 AND seq > ?2 AND bytes IS NOT NULL ORDER BY seq",
    )?
    .query_map(params![Id(doc_id), seq], |row| row.get(0))?
    .collect()
}

/// A document's snapshot and the live changes after it, as `tx` sees them (`last_seq` not read).
fn stored_state(tx: &Transaction<'_>, doc_id: Uuid) -> rusqlite::Result<StoredDoc> {
    let snapshot: Option<(Vec<u8>, i64)> = tx
        .prepare_cached("SELECT bytes, upto_seq FROM snapshots WHERE doc_id = ?1")?
        .query_row([Id(doc_id)], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let after = snapshot.as_ref().map_or(0, |(_, upto)| *upto);
    Ok(StoredDoc {
        changes: live_changes_after(tx, doc_id, after)?,
        snapshot: snapshot.map(|(bytes, _)| bytes),
        last_seq: 0,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        self.call(migrate).await
    }

    async fn create_org(&self, name: &str) -> StoreResult<Org> {
        let org = Org {
            id: Uuid::now_v7(),
            name: name.to_owned(),
        };
        let row = org.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO orgs (id, name) VALUES (?1, ?2)",
                params![Id(row.id), row.name],
            )?;
            Ok(())
        })
        .await?;
        Ok(org)
    }

    async fn org_by_name(&self, name: &str) -> StoreResult<Option<Org>> {
        let name = name.to_owned();
        self.call(move |conn| {
            let org = conn
                .prepare_cached("SELECT id, name FROM orgs WHERE name = ?1")?
                .query_row([name], |row| {
                    Ok(Org {
                        id: row.get::<_, Id>(0)?.0,
                        name: row.get(1)?,
                    })
                })
                .optional()?;
            Ok(org)
        })
        .await
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
        let row = user.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO users (id, org_id, name, role, password_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![Id(row.id), Id(row.org_id), row.name, row.role.as_str(), row.password_hash],
            )?;
            Ok(())
        })
        .await?;
        Ok(user)
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let name = name.to_owned();
        self.call(move |conn| {
            let user = conn
                .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"))?
                .query_row([name], |row| user_at(row, 0))
                .optional()?;
            Ok(user)
        })
        .await
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        self.call(move |conn| {
            let user = conn
                .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
                .query_row([Id(id)], |row| user_at(row, 0))
                .optional()?;
            Ok(user)
        })
        .await
    }

    async fn users_in_org(&self, org_id: Uuid) -> StoreResult<Vec<User>> {
        self.call(move |conn| {
            let users = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE org_id = ?1 ORDER BY name"
                ))?
                .query_map([Id(org_id)], |row| user_at(row, 0))?
                .collect::<Result<_, _>>()?;
            Ok(users)
        })
        .await
    }

    async fn register_device(&self, user_id: Uuid, name: &str) -> StoreResult<Device> {
        let device = Device {
            id: Uuid::now_v7(),
            user_id,
            name: name.to_owned(),
            revoked: false,
        };
        let row = device.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO devices (id, user_id, name) VALUES (?1, ?2, ?3)",
                params![Id(row.id), Id(row.user_id), row.name],
            )?;
            Ok(())
        })
        .await?;
        Ok(device)
    }

    async fn device(&self, id: Uuid) -> StoreResult<Option<Device>> {
        self.call(move |conn| {
            let device = conn
                .prepare_cached("SELECT id, user_id, name, revoked FROM devices WHERE id = ?1")?
                .query_row([Id(id)], |row| {
                    Ok(Device {
                        id: row.get::<_, Id>(0)?.0,
                        user_id: row.get::<_, Id>(1)?.0,
                        name: row.get(2)?,
                        revoked: row.get(3)?,
                    })
                })
                .optional()?;
            Ok(device)
        })
        .await
    }

    async fn revoke_device(&self, id: Uuid) -> StoreResult<bool> {
        self.call(move |conn| {
            Ok(conn.execute("UPDATE devices SET revoked = 1 WHERE id = ?1", [Id(id)])? > 0)
        })
        .await
    }

    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()> {
        let token = token.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO tokens (hash, kind, user_id, device_id, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.hash,
                    token_kind_str(token.kind),
                    Id(token.user_id),
                    token.device_id.map(Id),
                    token.expires_at.timestamp_micros(),
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn token(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        let hash = hash.to_owned();
        self.call(move |conn| {
            let info = conn
                .prepare_cached(
                    "SELECT t.hash, t.kind, t.device_id, t.expires_at,
                            u.id, u.org_id, u.name, u.role, u.password_hash,
                            COALESCE(d.revoked, 0)
                     FROM tokens t
                     JOIN users u ON u.id = t.user_id
                     LEFT JOIN devices d ON d.id = t.device_id
                     WHERE t.hash = ?1",
                )?
                .query_row([hash], |row| {
                    let user = user_at(row, 4)?;
                    Ok(TokenInfo {
                        token: TokenRecord {
                            hash: row.get(0)?,
                            kind: parsed(row, 1, "token kind", parse_token_kind)?,
                            user_id: user.id,
                            device_id: row.get::<_, Option<Id>>(2)?.map(|id| id.0),
                            expires_at: timestamp(row, 3)?,
                        },
                        user,
                        device_revoked: row.get(9)?,
                    })
                })
                .optional()?;
            Ok(info)
        })
        .await
    }

    async fn delete_token(&self, hash: &str) -> StoreResult<bool> {
        let hash = hash.to_owned();
        self.call(move |conn| Ok(conn.execute("DELETE FROM tokens WHERE hash = ?1", [hash])? > 0))
            .await
    }

    async fn use_refresh_token(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<Rotation> {
        let hash = hash.to_owned();
        self.call(move |conn| {
            let rotated = conn.execute(
                "UPDATE tokens SET used_at = ?2 WHERE hash = ?1 AND kind = 'refresh' AND used_at IS NULL",
                params![hash, now.timestamp_micros()],
            )?;
            if rotated > 0 {
                return Ok(Rotation::Rotated);
            }
            let used: Option<(Option<Id>, Option<i64>)> = conn
                .query_row(
                    "SELECT device_id, used_at FROM tokens WHERE hash = ?1 AND kind = 'refresh'",
                    [&hash],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            Ok(match used {
                Some((device_id, used_at)) => Rotation::Reused {
                    device_id: device_id.map(|Id(id)| id),
                    used_at: used_at
                        .and_then(DateTime::from_timestamp_micros)
                        .unwrap_or(now),
                },
                None => Rotation::Unknown,
            })
        })
        .await
    }

    async fn create_document(&self, meta: &DocMeta) -> StoreResult<()> {
        let meta = meta.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO documents (id, org_id, kind, job_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
                params![Id(meta.id), Id(meta.org_id), meta.kind, Id(meta.job_id)],
            )?;
            Ok(())
        })
        .await
    }

    async fn document(&self, id: Uuid) -> StoreResult<Option<DocMeta>> {
        self.call(move |conn| {
            let meta = conn
                .prepare_cached("SELECT id, org_id, kind, job_id FROM documents WHERE id = ?1")?
                .query_row([Id(id)], doc_meta)
                .optional()?;
            Ok(meta)
        })
        .await
    }

    async fn job_documents(&self, job_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        self.call(move |conn| {
            let docs = conn
                .prepare_cached(
                    "SELECT id, org_id, kind, job_id FROM documents WHERE job_id = ?1 ORDER BY id",
                )?
                .query_map([Id(job_id)], doc_meta)?
                .collect::<Result<_, _>>()?;
            Ok(docs)
        })
        .await
    }

    async fn org_jobs(&self, org_id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.call(move |conn| {
            ids(
                conn,
                "SELECT id FROM documents WHERE org_id = ?1 AND kind = 'job' ORDER BY id",
                org_id,
            )
        })
        .await
    }

    async fn user_documents(&self, user_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        self.call(move |conn| {
            let docs = conn
                .prepare_cached(
                    "SELECT d.id, d.org_id, d.kind, d.job_id
                     FROM assignments a
                     JOIN users u ON u.id = a.user_id
                     JOIN documents d ON d.job_id = a.job_id AND d.org_id = u.org_id
                     WHERE a.user_id = ?1
                     ORDER BY d.job_id, d.id",
                )?
                .query_map([Id(user_id)], doc_meta)?
                .collect::<Result<_, _>>()?;
            Ok(docs)
        })
        .await
    }

    async fn org_documents(&self, org_id: Uuid) -> StoreResult<Vec<DocMeta>> {
        self.call(move |conn| {
            let docs = conn
                .prepare_cached(
                    "SELECT id, org_id, kind, job_id FROM documents WHERE org_id = ?1
                     ORDER BY job_id, id",
                )?
                .query_map([Id(org_id)], doc_meta)?
                .collect::<Result<_, _>>()?;
            Ok(docs)
        })
        .await
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
        let one = Append {
            doc_id,
            changes: changes.to_vec(),
            audit: audit.to_vec(),
            sync_state: None,
        };
        let seqs = self.call(move |conn| append_all(conn, &[one])).await?;
        Ok(seqs[0])
    }

    /// One node only: there is nobody to announce the changes to.
    async fn append_batch(
        &self,
        batch: &[Append],
        _announce_as: Option<Uuid>,
    ) -> StoreResult<Vec<i64>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch = batch.to_vec();
        self.call(move |conn| append_all(conn, &batch)).await
    }

    async fn job_audit(&self, job_id: Uuid) -> StoreResult<Vec<AuditRecord>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, org_id, job_id, doc_id, actor_user, actor_device, action, reasons,
                        before, after, at, flagged
                 FROM audit_log WHERE job_id = ?1 ORDER BY at, id",
            )?;
            let rows = stmt.query_map([Id(job_id)], |row| {
                let json = |idx: usize| -> rusqlite::Result<Option<serde_json::Value>> {
                    let text: Option<String> = row.get(idx)?;
                    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
                };
                let reasons: String = row.get(7)?;
                Ok(AuditRecord {
                    id: row.get::<_, Id>(0)?.0,
                    org_id: row.get::<_, Id>(1)?.0,
                    job_id: row.get::<_, Id>(2)?.0,
                    doc_id: row.get::<_, Option<Id>>(3)?.map(|i| i.0),
                    actor_user: row.get::<_, Option<Id>>(4)?.map(|i| i.0),
                    actor_device: row.get::<_, Option<Id>>(5)?.map(|i| i.0),
                    action: row.get(6)?,
                    reasons: serde_json::from_str(&reasons).unwrap_or_default(),
                    before: json(8)?,
                    after: json(9)?,
                    at: timestamp(row, 10)?,
                    flagged: row.get::<_, i64>(11)? != 0,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn load(&self, doc_id: Uuid) -> StoreResult<StoredDoc> {
        self.call(move |conn| {
            // One transaction so the snapshot and the changes after it are read from one state.
            let tx = conn.transaction()?;
            require_document(&tx, doc_id)?;
            let stored = StoredDoc {
                last_seq: last_seq(&tx, doc_id)?,
                ..stored_state(&tx, doc_id)?
            };
            tx.commit()?;
            Ok(stored)
        })
        .await
    }

    async fn changes_since(&self, doc_id: Uuid, seq: i64) -> StoreResult<StoredDoc> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            require_document(&tx, doc_id)?;
            // A change after `seq` without bytes was compacted into the snapshot, which the caller
            // then needs as well.
            let snapshot: Option<Vec<u8>> = tx
                .prepare_cached(
                    "SELECT s.bytes FROM snapshots s
                     WHERE s.doc_id = ?1
                       AND EXISTS (SELECT 1 FROM changes c WHERE c.doc_id = ?1 AND c.seq > ?2 AND c.bytes IS NULL)",
                )?
                .query_row(params![Id(doc_id), seq], |row| row.get(0))
                .optional()?;
            let changes = live_changes_after(&tx, doc_id, seq)?;
            let last_seq = last_seq(&tx, doc_id)?;
            tx.commit()?;
            Ok(StoredDoc { snapshot, changes, last_seq })
        })
        .await
    }

    /// A snapshot older than the stored one (a smaller `upto_seq`) is ignored: the changes it
    /// lacks were already dropped, so storing it would lose them. `upto_seq` past the end of the
    /// log is taken as the end of the log, so changes appended later are never hidden behind it.
    async fn save_snapshot(&self, doc_id: Uuid, snapshot: &[u8], upto_seq: i64) -> StoreResult<()> {
        let snapshot = snapshot.to_vec();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            require_document(&tx, doc_id)?;
            let upto = upto_seq.min(last_seq(&tx, doc_id)?);
            let saved = tx.execute(
                "INSERT INTO snapshots (doc_id, bytes, upto_seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT (doc_id) DO UPDATE SET bytes = excluded.bytes, upto_seq = excluded.upto_seq
                 WHERE snapshots.upto_seq <= excluded.upto_seq",
                params![Id(doc_id), snapshot, upto],
            )?;
            if saved > 0 {
                tx.execute(
                    "UPDATE changes SET bytes = NULL WHERE doc_id = ?1 AND seq <= ?2 AND bytes IS NOT NULL",
                    params![Id(doc_id), upto],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn sync_state(&self, device_id: Uuid, doc_id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        self.call(move |conn| {
            let state = conn
                .prepare_cached(
                    "SELECT state FROM sync_states WHERE device_id = ?1 AND doc_id = ?2",
                )?
                .query_row([Id(device_id), Id(doc_id)], |row| row.get(0))
                .optional()?;
            Ok(state)
        })
        .await
    }

    async fn put_sync_state(&self, device_id: Uuid, doc_id: Uuid, state: &[u8]) -> StoreResult<()> {
        let state = state.to_vec();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO sync_states (device_id, doc_id, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device_id, doc_id) DO UPDATE SET state = excluded.state",
                params![Id(device_id), Id(doc_id), state],
            )?;
            Ok(())
        })
        .await
    }

    async fn put_sync_states(
        &self,
        device_id: Uuid,
        states: &[(Uuid, Vec<u8>)],
    ) -> StoreResult<()> {
        let states = states.to_vec();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO sync_states (device_id, doc_id, state) VALUES (?1, ?2, ?3)
                     ON CONFLICT (device_id, doc_id) DO UPDATE SET state = excluded.state",
                )?;
                for (doc, state) in &states {
                    stmt.execute(params![Id(device_id), Id(*doc), state])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn sync_state_docs(&self, device_id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.call(move |conn| {
            ids(
                conn,
                "SELECT doc_id FROM sync_states WHERE device_id = ?1 ORDER BY doc_id",
                device_id,
            )
        })
        .await
    }

    async fn delete_sync_state(&self, device_id: Uuid, doc_id: Uuid) -> StoreResult<()> {
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM sync_states WHERE device_id = ?1 AND doc_id = ?2",
                [Id(device_id), Id(doc_id)],
            )?;
            Ok(())
        })
        .await
    }

    async fn assign(&self, job_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
        self.call(move |conn| {
            let added = conn.execute(
                "INSERT INTO assignments (job_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                [Id(job_id), Id(user_id)],
            )?;
            Ok(added > 0)
        })
        .await
    }

    async fn unassign(&self, job_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
        self.call(move |conn| {
            let removed = conn.execute(
                "DELETE FROM assignments WHERE job_id = ?1 AND user_id = ?2",
                [Id(job_id), Id(user_id)],
            )?;
            Ok(removed > 0)
        })
        .await
    }

    async fn assigned_jobs(&self, user_id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.call(move |conn| {
            ids(
                conn,
                "SELECT job_id FROM assignments WHERE user_id = ?1 ORDER BY job_id",
                user_id,
            )
        })
        .await
    }

    async fn job_assignees(&self, job_id: Uuid) -> StoreResult<Vec<Uuid>> {
        self.call(move |conn| {
            ids(
                conn,
                "SELECT user_id FROM assignments WHERE job_id = ?1 ORDER BY user_id",
                job_id,
            )
        })
        .await
    }

    async fn put_photo(&self, photo: &PhotoRecord) -> StoreResult<()> {
        let p = photo.clone();
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO photos (org_id, sha256, size, mime, width, height, taken_at, lat, \
                 lon, thumbnails, stored_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (org_id, sha256) DO UPDATE SET size = excluded.size, \
                 mime = excluded.mime, width = excluded.width, height = excluded.height, \
                 taken_at = excluded.taken_at, lat = excluded.lat, lon = excluded.lon, \
                 thumbnails = excluded.thumbnails, stored_at = excluded.stored_at",
            )?
            .execute(params![
                Id(p.org_id),
                p.sha256,
                i64::try_from(p.size).unwrap_or(i64::MAX),
                p.mime,
                p.width,
                p.height,
                p.taken_at.map(|t| t.timestamp_micros()),
                p.location.map(|l| l.lat),
                p.location.map(|l| l.lon),
                p.thumbnails_text(),
                p.stored_at.timestamp_micros(),
            ])?;
            Ok(())
        })
        .await
    }

    async fn photo(&self, org_id: Uuid, sha256: &str) -> StoreResult<Option<PhotoRecord>> {
        let sha256 = sha256.to_owned();
        self.call(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT org_id, sha256, size, mime, width, height, taken_at, lat, lon, \
                     thumbnails, stored_at FROM photos WHERE org_id = ?1 AND sha256 = ?2",
                )?
                .query_row(params![Id(org_id), sha256], |row| {
                    let taken: Option<i64> = row.get(6)?;
                    let lat: Option<f64> = row.get(7)?;
                    let lon: Option<f64> = row.get(8)?;
                    Ok(PhotoRecord {
                        org_id: row.get::<_, Id>(0)?.0,
                        sha256: row.get(1)?,
                        size: row.get::<_, i64>(2)?.max(0) as u64,
                        mime: row.get(3)?,
                        width: row.get(4)?,
                        height: row.get(5)?,
                        taken_at: taken.and_then(DateTime::from_timestamp_micros),
                        location: lat
                            .zip(lon)
                            .map(|(lat, lon)| schemas::photo::GeoPoint { lat, lon }),
                        thumbnails: PhotoRecord::parse_thumbnails(&row.get::<_, String>(9)?),
                        stored_at: timestamp(row, 10)?,
                    })
                })
                .optional()?;
            Ok(row)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.call(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    /// The embedded server is a single node: there is nobody to tell.
    async fn publish_change(&self, _notice: ChangeNotice) -> StoreResult<()> {
        Ok(())
    }

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

    async fn subscribe_changes(
        &self,
    ) -> StoreResult<Option<tokio::sync::mpsc::Receiver<ChangeNotice>>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_and_keep_their_source() {
        let sqlite = |code: i32| {
            StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some("message".into()),
            ))
        };
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            let err = sqlite(code);
            assert!(err.is_retryable(), "{err:?}");
            assert!(std::error::Error::source(&err).is_some());
        }
        let err = sqlite(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE);
        assert!(matches!(err, StoreError::Conflict(_)) && !err.is_retryable());
        let err = sqlite(rusqlite::ffi::SQLITE_CONSTRAINT_CHECK);
        assert!(matches!(err, StoreError::Invalid(_)) && err.is_caller_error());
        let err = sqlite(rusqlite::ffi::SQLITE_CORRUPT);
        assert!(matches!(err, StoreError::Failed(_)) && !err.is_retryable());
    }

    /// A kept statement run again with other values is not compiled again (the query planner
    /// stability guarantee): without it, binding a new `LIMIT ?` value re-prepares.
    #[tokio::test]
    async fn kept_statements_are_not_compiled_again_for_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
        store.migrate().await.unwrap();
        let conn = store.conn.lock().unwrap();
        let sql = "SELECT seq FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2";
        for (from, limit) in [(0, 10), (5, 2000), (7, 3)] {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            stmt.query_map(params![from, limit], |r| r.get::<_, i64>(0))
                .unwrap()
                .for_each(drop);
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "compiled again for new values"
        );
    }

    /// The checksum guard: a database whose applied migration no longer matches its file (here,
    /// the recorded sha256 is altered instead of the embedded file) is refused, not migrated.
    #[tokio::test]
    async fn refuses_a_changed_migration() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.expect("migrating twice is a no-op");
        store
            .call(|conn| {
                conn.execute("UPDATE schema_migrations SET sha256 = 'edited' WHERE name = '0001_sync_core.sql'", [])?;
                Ok(())
            })
            .await
            .unwrap();
        let err = store.migrate().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Database(message) if message.contains("0001_sync_core.sql changed")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refuses_an_unknown_applied_migration() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
        store.migrate().await.unwrap();
        store
            .call(|conn| {
                conn.execute(
                    "INSERT INTO schema_migrations (name, sha256, applied_at) VALUES ('9999_future.sql', '', 0)",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let err = store.migrate().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Database(message) if message.contains("9999_future.sql")),
            "{err}"
        );
    }

    #[test]
    fn without_fsync_puts_full_back_even_when_its_work_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        let level = |c: &Connection| -> i64 {
            c.pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        // FULL is 2, NORMAL 1.
        let inside = without_fsync(&mut conn, |c| Ok(level(c))).unwrap();
        assert_eq!((inside, level(&conn)), (1, 2));
        let failed: StoreResult<()> =
            without_fsync(&mut conn, |_| Err(StoreError::Database("no".into())));
        assert!(failed.is_err());
        assert_eq!(level(&conn), 2);
    }
}
