//! One writer at a time per replica, across processes.
//!
//! An action is a read-modify-write: it loads a document, checks the input against it, adds an
//! Automerge change and persists it. Two processes on one data dir (the CLI beside a running
//! `sync`, two scripts) that both load a document before either writes would each make the
//! device actor's *next* change — two different changes with the same actor and sequence
//! number, which Automerge refuses to load ("duplicate seq"): the replica is corrupt.
//!
//! So every write runs in [`Replica::write`]: `BEGIN IMMEDIATE` takes SQLite's write lock (an OS
//! lock on the database file) *before* anything is read, the document cache is refreshed from
//! disk if another process committed meanwhile, and only then does the action read, check, edit
//! and persist. Writers are serialized and each sees the latest state; readers are never blocked
//! (WAL). The lock is held per write, not per process, so a long-running `sync` and a one-shot
//! `part add` both work. A writer that waits longer than the busy timeout gets [`Error::Busy`].

use std::time::Duration;

use crate::{Error, Replica, Result};

/// How long a writer waits for another process's write to finish before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Replica {
    /// Run `f` as one write transaction holding the replica's write lock. Nested calls join the
    /// outer transaction. On error everything `f` wrote is rolled back and the document cache is
    /// emptied (memory may hold changes the disk does not); change events are sent only after the
    /// commit.
    pub(crate) fn write<R>(&mut self, f: impl FnOnce(&mut Replica) -> Result<R>) -> Result<R> {
        if self.in_write {
            return f(self);
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.busy_or_db(e))?;
        self.in_write = true;
        let result = self
            .forget_if_written_elsewhere()
            .and_then(|()| f(self))
            .and_then(|v| {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(|e| self.busy_or_db(e))?;
                Ok(v)
            });
        self.in_write = false;
        match result {
            Ok(v) => {
                for e in std::mem::take(&mut self.deferred_events) {
                    self.events.emit(e);
                }
                Ok(v)
            }
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.deferred_events.clear();
                self.docs.loaded.clear();
                Err(e)
            }
        }
    }

    /// SQLite's "database is locked" after the busy timeout means another process held the write
    /// lock all that time: say so, naming the data dir.
    pub(crate) fn busy_or_db(&self, e: rusqlite::Error) -> Error {
        if is_busy(&e) {
            Error::Busy {
                dir: self.dir.display().to_string(),
            }
        } else {
            Error::Db(e)
        }
    }
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy)
    )
}
