//! Opening the replica database and running its migrations.
//!
//! Migrations are an ordered, append-only list. Each applied step is recorded with a sha256 of
//! its SQL; opening a database whose recorded step differs from the code's step is refused, so a
//! migration edited after release can never silently diverge replicas.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// `(name, sql)`, in order. Never edit or reorder a landed step: append a new one.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_replica",
    include_str!("../migrations/0001_replica.sql"),
)];

/// Open (creating if needed) the database at `path` and bring it up to date.
pub fn open(path: &std::path::Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    migrate(&mut conn, MIGRATIONS)?;
    Ok(conn)
}

/// WAL lets readers proceed while a write commits. synchronous=FULL fsyncs the WAL on every
/// commit, so an action that returned survives a power cut too, not only a killed process; it
/// costs ~0.3 ms at the median but has the better tail (checkpoints stay cheap), and a toggle
/// still commits in ~1.6 ms at p99 (BENCHMARKS.md). `FIELDSYNC_SYNCHRONOUS=NORMAL` trades the
/// power-cut guarantee for speed: still safe against a process crash, never corrupts.
fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = std::env::var("FIELDSYNC_SYNCHRONOUS").unwrap_or_default();
    let sync = if sync.eq_ignore_ascii_case("NORMAL") {
        "NORMAL"
    } else {
        "FULL"
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A checkpoint runs inside whichever commit crosses the threshold and fsyncs: at SQLite's
    // default (1,000 pages) that is every ~200 edits and lands on the p99 of a checklist toggle.
    // 4,096 pages (16 MiB of WAL at most) makes it ~4x rarer; closing the replica checkpoints too.
    conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Apply the steps of `migrations` that are not yet applied, each in its own transaction.
pub fn migrate(conn: &mut Connection, migrations: &[(&str, &str)]) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version  INTEGER PRIMARY KEY,
             name     TEXT NOT NULL,
             checksum TEXT NOT NULL
         )",
    )?;
    let applied: i64 =
        conn.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))?;
    if applied as usize > migrations.len() {
        return Err(Error::NewerReplica(applied as usize));
    }
    for (i, (name, sql)) in migrations.iter().enumerate() {
        let version = i + 1;
        let recorded: Option<(String, String)> = conn
            .query_row(
                "SELECT name, checksum FROM schema_migrations WHERE version = ?1",
                [version as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match recorded {
            Some((n, sum)) if n == *name && sum == checksum(sql) => continue,
            Some(_) => {
                return Err(Error::MigrationChanged {
                    version,
                    name: name.to_string(),
                });
            }
            None => {
                let tx = conn.transaction()?;
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (?1, ?2, ?3)",
                    params![version as i64, name, checksum(sql)],
                )?;
                tx.commit()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
