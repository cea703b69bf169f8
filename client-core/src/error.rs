use uuid::Uuid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a device action can fail with. Input errors leave the replica untouched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no job `{0}` on this device")]
    JobNotFound(String),
    #[error("no document `{0}` on this device")]
    DocNotFound(Uuid),
    #[error("job {job} has no checklist item `{item}`")]
    UnknownItem { job: Uuid, item: String },
    #[error("job {job} has no part line `{line}`")]
    UnknownPartLine { job: Uuid, line: String },
    #[error("unknown checklist template `{0}`")]
    UnknownTemplate(String),
    #[error(
        "unknown status `{0}` (one of pending, assigned, en_route, in_progress, on_hold, completed, cancelled)"
    )]
    UnknownStatus(String),
    #[error("a job cannot go from {from} to {to}")]
    InvalidTransition {
        from: schemas::JobStatus,
        to: schemas::JobStatus,
    },
    #[error("required checklist items are not done: {}", .0.join(", "))]
    ChecklistIncomplete(Vec<String>),
    #[error("job {0} is signed off: its checklist and parts can no longer change")]
    SignedOff(Uuid),
    #[error("job {job} is {status}: it can no longer change")]
    JobClosed {
        job: Uuid,
        status: schemas::JobStatus,
    },
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("{path}: not a usable image ({reason})")]
    NotAnImage { path: String, reason: String },
    #[error("a time entry is already running for {0} on this job")]
    TimeEntryRunning(String),
    #[error("no running time entry for {0} on this job")]
    NoRunningTimeEntry(String),
    #[error(
        "replica migration {version} ({name}) differs from the one applied to this database; refusing to open it"
    )]
    MigrationChanged { version: usize, name: String },
    #[error("replica was written by a newer version of the app (migration {0} is unknown)")]
    NewerReplica(usize),
    #[error("cannot use {dir} as the data folder: {reason}")]
    DataDir { dir: String, reason: String },
    #[error(
        "another Fieldsync process is using {dir}: it kept the replica busy for longer than {}s; try again",
        crate::BUSY_TIMEOUT.as_secs()
    )]
    Busy { dir: String },
    /// No answer from the server at all: no network, wrong address, server down.
    #[error("offline: cannot reach {server} ({reason})")]
    Offline { server: String, reason: String },
    /// The server answered but cannot serve now (HTTP 5xx, its store unavailable).
    #[error("the server is unavailable (HTTP {status}); try again later")]
    ServerUnavailable { status: u16 },
    /// HTTP 401: a wrong password, an expired sign-in or a revoked device.
    #[error("{0}")]
    Unauthorized(String),
    /// The server refused the request as it stands (another HTTP 4xx).
    #[error("the server refused the request (HTTP {status})")]
    Refused { status: u16 },
    #[error("document {doc} is corrupt: {reason}")]
    Corrupt { doc: Uuid, reason: String },
    #[error(transparent)]
    Doc(#[from] schemas::DocError),
    /// A document of the job cannot be read as its kind (a peer wrote something invalid): the
    /// reasons, to show in its place. The server repairs such documents when it receives them.
    #[error("job {job} cannot be shown: its {kind} is broken ({})", .reasons.join("; "))]
    Broken {
        job: uuid::Uuid,
        kind: schemas::DocKind,
        reasons: Vec<String>,
    },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True when the caller's input was at fault (and retrying the same call cannot succeed);
    /// false for storage failures, the network, the server and sign-in.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            Error::Db(_)
                | Error::Io(_)
                | Error::Corrupt { .. }
                | Error::MigrationChanged { .. }
                | Error::NewerReplica(_)
                | Error::Busy { .. }
                | Error::Offline { .. }
                | Error::ServerUnavailable { .. }
                | Error::Unauthorized(_)
                | Error::Broken { .. }
        )
    }

    /// True when the same call may succeed later without anything changing on this device: the
    /// network comes back, the server recovers, another process finishes its write.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Busy { .. } | Error::Offline { .. } | Error::ServerUnavailable { .. }
        )
    }
}

/// Why a connection failed, as a short lower-case phrase ("connection refused", "failed to
/// lookup address information: …"), without the OS error number.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => &text[..i],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first.is_ascii_uppercase() => {
            first.to_ascii_lowercase().to_string() + chars.as_str()
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_reasons_are_short_phrases() {
        // As the OS words it on Linux.
        let refused = std::io::Error::other("Connection refused (os error 111)");
        assert_eq!(io_reason(&refused), "connection refused");
        let kind = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&kind), "connection refused");
        let other = std::io::Error::other("failed to lookup address information: nope");
        assert_eq!(
            io_reason(&other),
            "failed to lookup address information: nope"
        );
    }
}
