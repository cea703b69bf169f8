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
//!
//! Before SQLite's lock, a writer takes an OS lock on `replica.lock` in the data dir, waiting
//! for it in the kernel. SQLite alone makes a waiting writer poll (sleeping up to 100 ms between
//! tries), and two busy writers taking turns can starve a third past its timeout: measured with
//! two streams of 200 `part add` processes, a few of them failed. A blocked `flock` is woken as
//! soon as the lock is released, so waiters are served in turn. std's `File::lock` (Rust 1.89)
//! is the same `flock`/`LockFileEx` as the `fs4` and `fd-lock` crates, without a dependency.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc;
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
        let _lock = self.lock_writes()?;
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

    /// The data dir's write lock, held until the returned file is dropped.
    fn lock_writes(&self) -> Result<File> {
        lock_file(&self.dir.join(LOCK_FILE), BUSY_TIMEOUT)?.ok_or_else(|| Error::Busy {
            dir: self.dir.display().to_string(),
        })
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

/// The file whose OS lock serializes writers; it holds nothing.
pub const LOCK_FILE: &str = "replica.lock";

/// Lock `path` exclusively, waiting at most `timeout`; `None` when it stayed locked that long.
///
/// The blocking lock runs on a helper thread with its own open file, so giving up is possible:
/// if the helper gets the lock after its requester has gone, it drops its file at once and
/// with it the lock.
fn lock_file(path: &Path, timeout: Duration) -> std::io::Result<Option<File>> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    };
    let file = open()?;
    match file.try_lock() {
        Ok(()) => return Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    drop(file);
    let file = open()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = file.lock().map(|()| file);
        // A requester that gave up no longer listens: the file (and its lock) is dropped here.
        let _ = tx.send(result);
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result.map(Some),
        Err(_) => Ok(None),
    }
}
