//! Server configuration, from flags and the environment (see `.env.sample`).

use std::path::PathBuf;
use std::time::Duration;

/// Where the server keeps its state.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// The embedded default: one SQLite file.
    Sqlite(PathBuf),
    /// `postgres://…`: production, and several nodes on one database.
    Postgres(String),
}

impl std::fmt::Debug for Database {
    /// Never prints a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Database::Postgres(url) => {
                let redacted = match (url.find("://"), url.rfind('@')) {
                    (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
                    _ => url.clone(),
                };
                write!(f, "Postgres({redacted})")
            }
        }
    }
}

impl Database {
    /// `DATABASE_URL` as given; unset means the embedded SQLite file in `data_dir`.
    pub fn from_url(url: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Database> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            None => Ok(Database::Sqlite(data_dir.join("server.sqlite"))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Database::Postgres(u.into()))
            }
            Some(u) if u.starts_with("sqlite://") => {
                Ok(Database::Sqlite(PathBuf::from(&u["sqlite://".len()..])))
            }
            Some(u) => anyhow::bail!(
                "DATABASE_URL must be postgres://… or sqlite://PATH, got `{}`",
                u.split(':').next().unwrap_or("")
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database: Database,
    /// Folder for the embedded database and, later, local blobs.
    pub data_dir: PathBuf,
    /// Largest sync frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Sync messages a connection may send per second before it is told to slow down.
    pub max_messages_per_second: u32,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// A used refresh token presented again later than this after its use revokes its device
    /// (taken as stolen); sooner, it is only refused (a client's own concurrent retry).
    pub refresh_reuse_grace: Duration,
    /// Memory budget for loaded documents; least recently used ones are unloaded beyond it.
    pub doc_cache_bytes: usize,
    /// A document is compacted into a new snapshot after this many appended changes.
    pub compact_every: usize,
    /// Backoff after failed sign-ins, per user name and per client address.
    pub login_throttle: crate::throttle::LoginThrottle,
}

impl Config {
    /// The defaults, with the embedded store in `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        Config {
            database: Database::Sqlite(data_dir.join("server.sqlite")),
            data_dir,
            max_frame_bytes: schemas::wire::DEFAULT_MAX_FRAME_BYTES,
            max_messages_per_second: 500,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_reuse_grace: Duration::from_secs(10),
            doc_cache_bytes: 256 * 1024 * 1024,
            compact_every: 256,
            login_throttle: crate::throttle::LoginThrottle::default(),
        }
    }
}
