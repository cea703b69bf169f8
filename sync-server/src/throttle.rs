//! Sign-in throttling: exponential backoff after repeated failures, per user name and per client
//! address, kept in memory on each node.
//!
//! Each key (a user name as typed, or a client address) counts its failed sign-ins. Once a key
//! has failed [`LoginThrottle::free_failures`] times, every further failure blocks it for
//! `base * 2^(extra failures)`, capped at `max`; a sign-in attempted while a key is blocked is
//! refused before the password is even looked at (HTTP 429 with `Retry-After`), and does not
//! count as a failure, so a locked-out user is not locked out for longer by an attacker who keeps
//! hammering. A success clears the user name's count. Unknown user names are counted exactly like
//! known ones, so the answers never tell whether a user exists.
//!
//! The map is a bounded LRU (`lru`, already used by the document cache): an attacker spraying
//! names can only evict old entries, never grow the server's memory. Keeping it per node and in
//! memory means a restart or another node forgets the counts; that bounds the damage (an
//! attacker gets `free_failures` guesses per node per backoff interval), and needs no store
//! writes on the sign-in path.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// The throttle's settings (part of [`crate::Config`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures per user name allowed before backoff starts.
    pub free_failures: u32,
    /// Failures per client address allowed before backoff starts (higher: many people may share
    /// one address behind a NAT).
    pub free_failures_per_address: u32,
    /// The first blocking interval; each further failure doubles it.
    pub base: Duration,
    /// The longest blocking interval.
    pub max: Duration,
    /// How many keys are remembered at most.
    pub capacity: usize,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            free_failures: 5,
            free_failures_per_address: 50,
            base: Duration::from_secs(1),
            max: Duration::from_secs(15 * 60),
            capacity: 100_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    failures: u32,
    /// Attempts begun and not finished: they count against the free failures, so a burst of
    /// concurrent guesses cannot all slip in before the first failure is counted.
    in_flight: u32,
    blocked_until: Option<Instant>,
}

/// The failure counts of one node.
pub struct Throttle {
    settings: LoginThrottle,
    entries: Mutex<LruCache<Key, Entry>>,
}

impl Throttle {
    pub fn new(settings: LoginThrottle) -> Throttle {
        let capacity = NonZeroUsize::new(settings.capacity.max(1)).expect("at least one");
        Throttle {
            settings,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    fn keys(name: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::User(name.to_owned())).chain(address.map(Key::Address))
    }

    fn free(&self, key: &Key) -> u32 {
        match key {
            Key::User(_) => self.settings.free_failures,
            Key::Address(_) => self.settings.free_failures_per_address,
        }
    }

    /// `Err(wait)` when sign-ins for `name` or from `address` are blocked at `now` for `wait`.
    pub fn check(&self, name: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let wait = Self::keys(name, address)
            .filter_map(|k| entries.get(&k).and_then(|e| e.blocked_until))
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(w) => Err(w),
            None => Ok(()),
        }
    }

    /// Start a sign-in attempt: `Err(wait)` when it is blocked, or when as many attempts are
    /// already under way as failures are still free (then `wait` is the base interval). Finish
    /// it with [`Attempt::failed`] or [`Attempt::succeeded`]; dropping it (the store failed)
    /// counts neither.
    pub fn begin(
        &self,
        name: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<Attempt<'_>, Duration> {
        self.check(name, address, now)?;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<Key> = Self::keys(name, address).collect();
        for key in &keys {
            if let Some(e) = entries.get(key)
                && e.failures.saturating_add(e.in_flight) >= self.free(key)
            {
                return Err(self.settings.base);
            }
        }
        for key in &keys {
            entries
                .get_or_insert_mut(key.clone(), Entry::default)
                .in_flight += 1;
        }
        Ok(Attempt {
            throttle: self,
            name: name.to_owned(),
            address,
            done: false,
        })
    }

    fn finish(&self, name: &str, address: Option<IpAddr>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for key in Self::keys(name, address) {
            if let Some(e) = entries.peek_mut(&key) {
                e.in_flight = e.in_flight.saturating_sub(1);
            }
        }
    }

    /// Count a failed sign-in for `name` from `address` at `now`.
    pub fn failed(&self, name: &str, address: Option<IpAddr>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for key in Self::keys(name, address) {
            let free = self.free(&key);
            let entry = entries.get_or_insert_mut(key, Entry::default);
            entry.failures = entry.failures.saturating_add(1);
            if entry.failures >= free {
                let doublings = (entry.failures - free).min(30);
                let wait = self
                    .settings
                    .base
                    .saturating_mul(1u32 << doublings)
                    .min(self.settings.max);
                entry.blocked_until = Some(now + wait);
            }
        }
    }

    /// A successful sign-in clears the user name's failures (not the address's).
    pub fn succeeded(&self, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.peek_mut(&Key::User(name.to_owned())) {
            e.failures = 0;
            e.blocked_until = None;
        }
    }
}

/// A sign-in attempt under way ([`Throttle::begin`]).
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    name: String,
    address: Option<IpAddr>,
    done: bool,
}

impl Attempt<'_> {
    /// The password was wrong (or the user unknown).
    pub fn failed(mut self, now: Instant) {
        self.throttle.finish(&self.name, self.address);
        self.throttle.failed(&self.name, self.address, now);
        self.done = true;
    }

    /// The password was right.
    pub fn succeeded(mut self) {
        self.throttle.finish(&self.name, self.address);
        self.throttle.succeeded(&self.name);
        self.done = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.finish(&self.name, self.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(LoginThrottle {
            free_failures: 3,
            free_failures_per_address: 10,
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            capacity: 16,
        })
    }

    #[test]
    fn backoff_starts_after_the_free_failures_and_doubles_up_to_the_cap() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..2 {
            t.failed("ana", None, now);
            assert_eq!(t.check("ana", None, now), Ok(()));
        }
        let mut at = now;
        for want in [1, 2, 4, 8, 8] {
            t.failed("ana", None, at);
            assert_eq!(t.check("ana", None, at), Err(Duration::from_secs(want)));
            at += Duration::from_secs(want);
            assert_eq!(
                t.check("ana", None, at),
                Ok(()),
                "free again after {want} s"
            );
        }
        assert_eq!(
            t.check("ben", None, now),
            Ok(()),
            "other names are not blocked"
        );
        t.succeeded("ana");
        t.failed("ana", None, at);
        assert_eq!(t.check("ana", None, at), Ok(()), "a success starts over");
    }

    #[test]
    fn an_address_is_blocked_across_names() {
        let t = throttle();
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        for i in 0..10 {
            t.failed(&format!("user{i}"), Some(addr), now);
        }
        assert_eq!(
            t.check("someone-else", Some(addr), now),
            Err(Duration::from_secs(1))
        );
        assert_eq!(t.check("someone-else", None, now), Ok(()));
    }

    #[test]
    fn concurrent_attempts_count_against_the_free_failures() {
        let t = throttle();
        let now = Instant::now();
        let a = t.begin("ana", None, now).unwrap();
        let b = t.begin("ana", None, now).unwrap();
        let c = t.begin("ana", None, now).unwrap();
        assert_eq!(
            t.begin("ana", None, now).err(),
            Some(Duration::from_secs(1)),
            "a fourth concurrent guess waits"
        );
        a.failed(now);
        drop(b); // the store failed: neither a failure nor a success
        c.succeeded();
        let d = t.begin("ana", None, now).expect("free again");
        d.failed(now);
        assert!(t.begin("ana", None, now).is_ok());
    }

    #[test]
    fn the_map_stays_bounded() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..1000 {
            t.failed(&format!("user{i}"), None, now);
        }
        assert!(t.entries.lock().unwrap().len() <= 16);
    }
}
