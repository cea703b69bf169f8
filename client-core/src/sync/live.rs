//! Continuous sync: stay connected, and reconnect with backoff after an outage.
//!
//! [`Backoff`] is the delay policy, pure and tested on its own. [`Reconnect`] is the loop the
//! app runs: sign-in refresh, one live session, and on failure the next delay. Time goes through
//! a `sleep` argument, so tests step the loop without waiting.

use std::future::Future;
use std::time::Duration;

use super::account;
use super::net::{self, SyncError};
use crate::Replica;

/// Reconnect delays: `first`, doubling up to `max` across failed attempts, back to `first` once
/// a session has connected and synced. Without that reset a long-lived device that lives through
/// a few separate outages drifts to the maximum delay for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s … up to a minute.
    fn default() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            next: first,
        }
    }

    /// How long to wait before the next attempt, after a session (or a connection attempt)
    /// ended in failure. `synced` says whether that session connected and synced: then this
    /// outage has only just begun and the delay starts over.
    pub fn after_failure(&mut self, synced: bool) -> Duration {
        if synced {
            self.reset();
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// A session ended without failing (it was renewed): the next outage starts from `first`.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// What the loop reports to the app between sessions.
#[derive(Debug)]
pub enum LiveEvent<'a> {
    /// The session ended with `error`; the next attempt is in `delay`.
    Retrying {
        error: &'a SyncError,
        delay: Duration,
    },
}

/// The continuous sync loop: connect, stay in sync, reconnect with [`Backoff`] after failures.
#[derive(Clone, Debug)]
pub struct Reconnect {
    pub backoff: Backoff,
    /// A session is renewed after this long (which also refreshes the access token).
    pub session_limit: Duration,
}

impl Default for Reconnect {
    fn default() -> Reconnect {
        Reconnect {
            backoff: Backoff::default(),
            session_limit: Duration::from_secs(600),
        }
    }
}

impl Reconnect {
    /// Sync with the server the replica is signed in to until `done` holds (checked while
    /// connected). Returns an error only when retrying cannot help: the server refused this
    /// device (sign in again) or the replica is not signed in. Everything else — offline, the
    /// server down or restarting, a dropped connection — is retried after the backoff delay,
    /// reported through `on_event` and waited out with `sleep`.
    pub async fn run<F, S>(
        &mut self,
        r: &mut Replica,
        mut done: impl FnMut(&mut Replica) -> bool + Send,
        mut on_event: impl FnMut(LiveEvent<'_>),
        mut sleep: S,
    ) -> Result<(), SyncError>
    where
        S: FnMut(Duration) -> F,
        F: Future<Output = ()>,
    {
        loop {
            let outcome = match account::credentials(r) {
                Ok((server, token)) => {
                    net::live_session(r, &server, &token, self.session_limit, &mut done).await
                }
                Err(e) => net::Outcome {
                    result: Err(e.into()),
                    synced: false,
                },
            };
            let error = match outcome.result {
                Ok(_) => return Ok(()),
                // A session that lasted its whole limit is renewed at once.
                Err(SyncError::Timeout(_)) => {
                    self.backoff.reset();
                    continue;
                }
                Err(e) if is_permanent(&e) => return Err(e),
                Err(e) => e,
            };
            let delay = self.backoff.after_failure(outcome.synced);
            on_event(LiveEvent::Retrying {
                error: &error,
                delay,
            });
            sleep(delay).await;
        }
    }
}

/// Failures no retry can fix without the technician: a refused sign-in, bad input (such as not
/// being signed in at all).
fn is_permanent(e: &SyncError) -> bool {
    match e {
        SyncError::Unauthorized(_) => true,
        SyncError::Replica(e) => matches!(e, crate::Error::Unauthorized(_)) || e.is_bad_input(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: &[u64]) -> Vec<Duration> {
        d.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn failed_attempts_double_the_delay_up_to_the_maximum() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| b.after_failure(false)).collect();
        assert_eq!(delays, secs(&[1, 2, 4, 8, 16, 32, 60, 60]));
    }

    #[test]
    fn a_session_that_connected_and_synced_starts_the_delay_over() {
        let mut b = Backoff::default();
        // An outage: three failed attempts.
        let first: Vec<Duration> = (0..3).map(|_| b.after_failure(false)).collect();
        assert_eq!(first, secs(&[1, 2, 4]));
        // Then a session connects and syncs, and later drops: a new outage, from 1 s again.
        assert_eq!(b.after_failure(true), Duration::from_secs(1));
        assert_eq!(b.after_failure(false), Duration::from_secs(2));
        // Many separate outages never drift to the maximum.
        for _ in 0..20 {
            assert_eq!(b.after_failure(true), Duration::from_secs(1));
        }
    }

    #[test]
    fn a_renewed_session_resets_and_a_maximum_below_the_first_delay_is_the_first() {
        let mut b = Backoff::default();
        b.after_failure(false);
        b.after_failure(false);
        b.reset();
        assert_eq!(b.after_failure(false), Duration::from_secs(1));
        let mut odd = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(odd.after_failure(false), Duration::from_secs(5));
        assert_eq!(odd.after_failure(false), Duration::from_secs(5));
    }
}
