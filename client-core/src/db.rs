//! Opening the replica database and running its migrations.
//!
//! Migrations are an ordered, append-only list. Each applied step is recorded with a sha256 of
//! its SQL; opening a database whose recorded step differs from the code's step is refused, so a
//! migration edited after release can never silently diverge replicas.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// `(name, sql)`, in order. Never edit or reorder a landed step: append a new one.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_replica",
        include_str!("../migrations/0001_replica.sql"),
    ),
    (
        "0002_repairs",
        include_str!("../migrations/0002_repairs.sql"),
    ),
    (
        "0003_broken_jobs",
        include_str!("../migrations/0003_broken_jobs.sql"),
    ),
    (
        "0004_uploads",
        include_str!("../migrations/0004_uploads.sql"),
    ),
    (
        "0005_templates",
        include_str!("../migrations/0005_templates.sql"),
    ),
    (
        "0006_catalog_notices",
        include_str!("../migrations/0006_catalog_notices.sql"),
    ),
];

/// How hard a commit is made durable (SQLite's `synchronous`).
///
/// `Full` fsyncs the WAL on every commit, so an action that returned survives a power cut too,
/// not only a killed process; it costs ~0.3 ms at the median but has the better tail (checkpoints
/// stay cheap), and a toggle still commits in ~1.6 ms at p99 (BENCHMARKS.md). `Normal` trades the
/// power-cut guarantee for speed: still safe against a process crash, never corrupts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

impl Synchronous {
    /// `FULL` or `NORMAL`, in any case; anything else is `None`.
    pub fn parse(s: &str) -> Option<Synchronous> {
        if s.eq_ignore_ascii_case("FULL") {
            Some(Synchronous::Full)
        } else if s.eq_ignore_ascii_case("NORMAL") {
            Some(Synchronous::Normal)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Open (creating if needed) the database at `path` and bring it up to date.
pub fn open(path: &std::path::Path, synchronous: Synchronous) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    configure(&conn, synchronous)?;
    migrate(&mut conn, MIGRATIONS)?;
    Ok(conn)
}

/// WAL lets readers proceed while a write commits; `synchronous` is the caller's choice (see
/// [`Synchronous`]), never read from the process environment, so a library user decides it.
fn configure(conn: &Connection, synchronous: Synchronous) -> Result<()> {
    // First, so that even switching a new database to WAL waits for another process opening it.
    conn.busy_timeout(crate::BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous.as_str())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A checkpoint runs inside whichever commit crosses the threshold and fsyncs: at SQLite's
    // default (1,000 pages) that is every ~200 edits and lands on the p99 of a checklist toggle.
    // 4,096 pages (16 MiB of WAL at most) makes it ~4x rarer; closing the replica checkpoints too.
    conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
    Ok(())
}

pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Apply the steps of `migrations` that are not yet applied, all in one transaction.
///
/// Checking needs no write lock, so opening an up-to-date replica never waits for a writer in
/// another process. Applying takes the write lock (`BEGIN IMMEDIATE`) and checks again under
/// it: two processes opening a new replica at once apply each step exactly once.
pub fn migrate(conn: &mut Connection, migrations: &[(&str, &str)]) -> Result<()> {
    if !check(conn, migrations)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version  INTEGER PRIMARY KEY,
             name     TEXT NOT NULL,
             checksum TEXT NOT NULL
         )",
    )?;
    let applied: i64 = tx.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))?;
    check(&tx, migrations)?;
    for (i, (name, sql)) in migrations.iter().enumerate().skip(applied as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (?1, ?2, ?3)",
            params![(i + 1) as i64, name, checksum(sql)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Whether steps of `migrations` remain to be applied; an error if an applied step differs from
/// the code's or the database knows steps the code does not.
fn check(conn: &Connection, migrations: &[(&str, &str)]) -> Result<bool> {
    let has_table: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !has_table {
        return Ok(true);
    }
    let mut stmt =
        conn.prepare("SELECT version, name, checksum FROM schema_migrations ORDER BY version")?;
    let applied: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if applied.len() > migrations.len() {
        return Err(Error::NewerReplica(applied.len()));
    }
    for (i, (name, sql)) in migrations.iter().enumerate() {
        let version = i + 1;
        match applied.get(i) {
            Some((v, n, sum)) if *v == version as i64 && n == name && *sum == checksum(sql) => {}
            Some(_) => {
                return Err(Error::MigrationChanged {
                    version,
                    name: name.to_string(),
                });
            }
            None => return Ok(true),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_comes_from_the_options() {
        let dir = tempfile::tempdir().unwrap();
        let level = |s| {
            let conn = open(&dir.path().join("r.sqlite"), s).unwrap();
            conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        // SQLite reports NORMAL as 1 and FULL as 2.
        assert_eq!(level(Synchronous::Normal), 1);
        assert_eq!(level(Synchronous::Full), 2);
        assert_eq!(Synchronous::parse("normal"), Some(Synchronous::Normal));
        assert_eq!(Synchronous::parse("off"), None);
    }

    #[test]
    fn a_changed_migration_is_refused_and_a_new_one_applies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        let v1: &[(&str, &str)] = &[("one", "CREATE TABLE a (x INTEGER);")];
        migrate(&mut Connection::open(&path).unwrap(), v1).unwrap();
        // Same list again: nothing to do.
        migrate(&mut Connection::open(&path).unwrap(), v1).unwrap();
        // Appending a step applies it.
        let v2: &[(&str, &str)] = &[
            ("one", "CREATE TABLE a (x INTEGER);"),
            ("two", "CREATE TABLE b (y INTEGER);"),
        ];
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, v2).unwrap();
        conn.execute("INSERT INTO b (y) VALUES (1)", []).unwrap();
        // Editing a landed step is refused.
        let edited: &[(&str, &str)] = &[
            ("one", "CREATE TABLE a (x TEXT);"),
            ("two", "CREATE TABLE b (y INTEGER);"),
        ];
        let err = migrate(&mut Connection::open(&path).unwrap(), edited).unwrap_err();
        assert!(
            matches!(err, Error::MigrationChanged { version: 1, .. }),
            "{err}"
        );
        // An older app meeting a newer replica is refused too.
        let err = migrate(&mut Connection::open(&path).unwrap(), v1).unwrap_err();
        assert!(matches!(err, Error::NewerReplica(2)), "{err}");
    }
}
