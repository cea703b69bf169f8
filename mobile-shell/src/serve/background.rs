//! Sync in the background of the app, whenever the server is reachable: the live sync session
//! (client-core's [`Reconnect`] loop) on one thread, the upload queue, the checklist templates
//! and the parts catalog on another, each with its own handle on the replica. Neither needs the
//! technician: a signed-out device waits for a sign-in, an outage is retried with backoff, and
//! what happens is told to the page through [`Link`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use client_core::sync::upload::{UploadEvent, upload_pending};
use client_core::sync::{Backoff, LiveEvent, Reconnect, SyncError, account};
use client_core::uploads::UploadState;
use client_core::{Options, Replica};

/// How long after its last sign of life a live session still counts as online.
const ALIVE: Duration = Duration::from_millis(1500);

/// A phone app in the foreground retries sooner than a background daemon: an outage costs at
/// most this long once the server is back.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// What the background work tells the page.
#[derive(Default)]
pub struct Link {
    /// Milliseconds since the Unix epoch until which the live session counts as connected.
    online_until: AtomicI64,
    /// Bumped by a sign-in, so the loops start over with the new credentials at once.
    signins: AtomicU64,
    /// The upload being sent: sha256, bytes confirmed, size.
    current: Mutex<Option<(String, u64, u64)>>,
    /// Why the last attempt failed, when it did (offline, a refused sign-in).
    problem: Mutex<Option<String>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Link {
    pub fn online(&self) -> bool {
        self.online_until.load(Ordering::SeqCst) > now_ms()
    }

    fn alive(&self) {
        self.online_until
            .store(now_ms() + ALIVE.as_millis() as i64, Ordering::SeqCst);
        *self.problem.lock().expect("link") = None;
    }

    fn offline(&self, why: String) {
        self.online_until.store(0, Ordering::SeqCst);
        *self.problem.lock().expect("link") = Some(why);
    }

    pub fn signed_in(&self) {
        self.signins.fetch_add(1, Ordering::SeqCst);
    }

    pub fn current_upload(&self) -> Option<(String, u64, u64)> {
        self.current.lock().expect("link").clone()
    }

    pub fn problem(&self) -> Option<String> {
        self.problem.lock().expect("link").clone()
    }

    /// Sleep `d`, cut short by a sign-in.
    fn sleep(&self, d: Duration) {
        let start = self.signins.load(Ordering::SeqCst);
        let until = Instant::now() + d;
        while Instant::now() < until && self.signins.load(Ordering::SeqCst) == start {
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
    }
}

/// Start both loops; they run as long as the process does.
pub fn start(dir: &Path, options: Options, link: std::sync::Arc<Link>) {
    let (d, o, l) = (dir.to_path_buf(), options.clone(), link.clone());
    std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || sync_loop(&d, o, &l))
        .expect("a thread");
    let d = dir.to_path_buf();
    std::thread::Builder::new()
        .name("uploads".into())
        .spawn(move || side_loop(&d, options, &link))
        .expect("a thread");
}

fn open(dir: &PathBuf, options: &Options, link: &Link) -> Replica {
    loop {
        match Replica::open_with(dir, options.clone()) {
            Ok(r) => return r,
            Err(e) => {
                link.offline(format!("cannot open the replica: {e}"));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// The live session: connected, it exchanges every change as it is made (local edits are picked
/// up from the replica on a short tick); cut off, it reconnects with backoff.
fn sync_loop(dir: &PathBuf, options: Options, link: &Link) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut r = open(dir, &options, link);
    loop {
        if r.meta("server").ok().flatten().is_none() {
            link.offline("not signed in".into());
            link.sleep(Duration::from_secs(1));
            continue;
        }
        let signins = link.signins.load(Ordering::SeqCst);
        let mut reconnect = Reconnect {
            backoff: Backoff::new(Duration::from_secs(1), MAX_RETRY),
            ..Reconnect::default()
        };
        // `done` is asked on every turn of a connected session (at least every 200 ms): that
        // is the sign of life; a new sign-in ends the session to start over with it.
        let result = rt.block_on(reconnect.run(
            &mut r,
            |_| {
                link.alive();
                link.signins.load(Ordering::SeqCst) != signins
            },
            |LiveEvent::Retrying { error, .. }| link.offline(error.to_string()),
            |d| {
                let start = link.signins.load(Ordering::SeqCst);
                async move {
                    let until = tokio::time::Instant::now() + d;
                    while tokio::time::Instant::now() < until
                        && link.signins.load(Ordering::SeqCst) == start
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
        ));
        match result {
            Ok(()) => {}
            Err(SyncError::Unauthorized(m)) => {
                link.offline(format!(
                    "the server refused this device: {m}; sign in again"
                ));
                link.sleep(Duration::from_secs(30));
            }
            Err(e) => {
                link.offline(e.to_string());
                link.sleep(Duration::from_secs(2));
            }
        }
    }
}

/// Uploads, templates and the catalog: the queue is sent whenever something waits; templates
/// and the catalog are fetched after a sign-in and then once a minute while online.
fn side_loop(dir: &PathBuf, options: Options, link: &Link) {
    let mut r = open(dir, &options, link);
    let mut backoff = Backoff::new(Duration::from_secs(1), MAX_RETRY);
    let mut fetched: Option<(Instant, u64)> = None;
    loop {
        let signins = link.signins.load(Ordering::SeqCst);
        if r.meta("server").ok().flatten().is_none() {
            link.sleep(Duration::from_secs(1));
            continue;
        }
        let due =
            fetched.is_none_or(|(at, s)| s != signins || at.elapsed() >= Duration::from_secs(60));
        let pending = r
            .uploads_waiting()
            .map(|w| w.iter().any(|u| u.state == UploadState::Pending))
            .unwrap_or(false);
        if !due && !pending {
            link.sleep(Duration::from_secs(1));
            continue;
        }
        let outcome = account::credentials(&mut r).and_then(|(server, token)| {
            if due {
                client_core::sync::templates::refresh(&r, &server, &token)?;
                if let Err(e) = client_core::sync::catalog::refresh(&r, &server, &token) {
                    // An older server without the van's stock: parts are still typed by SKU.
                    if !e.is_retryable() {
                        eprintln!("parts catalog not refreshed: {e}");
                    } else {
                        return Err(e);
                    }
                }
                fetched = Some((Instant::now(), signins));
            }
            if pending {
                let mut on_event = |e: &UploadEvent| {
                    let mut current = link.current.lock().expect("link");
                    match e {
                        UploadEvent::Started {
                            sha256, size, from, ..
                        } => *current = Some((sha256.clone(), *from, *size)),
                        UploadEvent::Progress { sha256, sent, size } => {
                            *current = Some((sha256.clone(), *sent, *size))
                        }
                        UploadEvent::Done { .. } | UploadEvent::Refused { .. } => *current = None,
                    }
                };
                let sent = upload_pending(
                    &r,
                    &server,
                    &token,
                    client_core::sync::upload::DEFAULT_CHUNK_BYTES,
                    &mut on_event,
                );
                *link.current.lock().expect("link") = None;
                sent?;
            }
            Ok(())
        });
        match outcome {
            Ok(()) => {
                backoff.reset();
                link.sleep(Duration::from_secs(1));
            }
            Err(e) => {
                let delay = backoff.after_failure(false);
                if !e.is_retryable() {
                    eprintln!("uploads paused: {e}");
                }
                // Retry sooner when the live session says the server is back.
                let until = Instant::now() + delay;
                let was_online = link.online();
                while Instant::now() < until && (was_online || !link.online()) {
                    link.sleep(Duration::from_millis(250));
                    if link.signins.load(Ordering::SeqCst) != signins {
                        break;
                    }
                }
            }
        }
    }
}
