//! The replica handle: the open database, the device's identity and the loaded documents.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::ActorId;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

use crate::db::Synchronous;
use crate::docs::DocCache;
use crate::events::Events;
use crate::{ChangeEvent, Result, db};

/// Where the replica reads the time. Time is an input so tests can fix it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How to open a replica. `Options::default()` uses the system clock and `synchronous=FULL`.
#[derive(Clone, Default)]
pub struct Options {
    pub clock: Option<Clock>,
    /// Durability of each commit; see [`Synchronous`].
    pub synchronous: Synchronous,
}

/// A technician's offline replica. Not shared between threads: wrap it in a mutex to share.
pub struct Replica {
    pub(crate) conn: Connection,
    pub(crate) dir: PathBuf,
    pub(crate) actor: ActorId,
    pub(crate) user: String,
    pub(crate) clock: Clock,
    pub(crate) docs: DocCache,
    pub(crate) events: Events,
    /// Inside [`Replica::write`]: the write lock is held and a transaction is open.
    pub(crate) in_write: bool,
    /// Events of the open write, sent once it commits.
    pub(crate) deferred_events: Vec<ChangeEvent>,
}

pub const DB_FILE: &str = "replica.sqlite";
const DEFAULT_USER: &str = "technician";

impl Replica {
    /// Open the replica in `data_dir`, creating the folder and database if needed.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Replica> {
        Replica::open_with(data_dir, Options::default())
    }

    pub fn open_with(data_dir: impl AsRef<Path>, options: Options) -> Result<Replica> {
        let dir = data_dir.as_ref().to_path_buf();
        if dir.exists() && !dir.is_dir() {
            return Err(crate::Error::DataDir {
                dir: dir.display().to_string(),
                reason: "it is a file, not a folder".into(),
            });
        }
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::DataDir {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let busy = |e: crate::Error| match e {
            crate::Error::Db(e) if crate::writer::is_busy(&e) => crate::Error::Busy {
                dir: dir.display().to_string(),
            },
            e => e,
        };
        let conn = db::open(&dir.join(DB_FILE), options.synchronous).map_err(busy)?;
        // Each device writes with its own Automerge actor, made once and kept. Two processes
        // opening a new replica at once must agree on it: the first insert wins, both read it.
        let actor = match meta_get(&conn, "actor")? {
            Some(hex) => hex,
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('actor', ?1) ON CONFLICT (key) DO NOTHING",
                    [ActorId::random().to_hex_string()],
                )
                .map_err(|e| busy(e.into()))?;
                meta_get(&conn, "actor")?.expect("just inserted")
            }
        };
        let actor = ActorId::from(
            hex::decode(actor).map_err(|e| crate::Error::InvalidValue(e.to_string()))?,
        );
        let user = meta_get(&conn, "user")?.unwrap_or_else(|| DEFAULT_USER.to_string());
        let clock = options.clock.unwrap_or_else(|| Arc::new(Utc::now));
        Ok(Replica {
            conn,
            dir,
            actor,
            user,
            clock,
            docs: DocCache::default(),
            events: Events::default(),
            in_write: false,
            deferred_events: Vec::new(),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The name edits are recorded under (who set a status, checked an item, used a part).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Record who works on this device (set when the technician signs in).
    pub fn set_user(&mut self, name: &str) -> Result<()> {
        self.set_meta("user", name)?;
        self.user = name.to_string();
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        meta_get(&self.conn, key)
    }

    /// One statement, so it needs no write scope of its own; it still waits for (and reports) a
    /// writer in another process like every write.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        meta_set(&self.conn, key, value).map_err(|e| match e {
            crate::Error::Db(e) => self.busy_or_db(e),
            e => e,
        })
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// A stream of change events, sent after each change commits.
    pub fn subscribe(&mut self) -> std::sync::mpsc::Receiver<ChangeEvent> {
        self.events.subscribe()
    }

    /// SQLite's own consistency check (used after crash tests and by support tools).
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}
