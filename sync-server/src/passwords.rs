//! Password checks within a memory budget.
//!
//! One argon2 verification with the crate's defaults (the OWASP recommendation) works in 19 MiB.
//! Unbounded, 20 clients signing in at once took the server from 9 MiB to several hundred before
//! a single document existed. Here every check first takes its memory (the `m_cost` of the hash
//! it verifies) from a budget, [`crate::config::Config::password_memory`], and waits in line when
//! the budget is spent; the queue and the checks running are `/metrics` gauges. The verification
//! itself runs on a blocking thread, off the async workers.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::{Argon2, Params};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;

/// What a check whose hash does not parse is charged: the default parameters' memory.
const DEFAULT_KIB: u32 = Params::DEFAULT_M_COST;

pub struct PasswordChecks {
    /// The budget in KiB, as permits.
    memory: Arc<Semaphore>,
    budget_kib: u32,
    metrics: Arc<Metrics>,
}

impl PasswordChecks {
    /// A budget of `memory_bytes`; at least one check always fits, whatever its cost.
    pub fn new(memory_bytes: usize, metrics: Arc<Metrics>) -> PasswordChecks {
        let budget_kib = u32::try_from(memory_bytes / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        metrics
            .password_memory_budget_bytes
            .set(i64::from(budget_kib) * 1024);
        PasswordChecks {
            memory: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            metrics,
        }
    }

    /// Whether `password` matches the PHC string `hash`, once the check's memory is available.
    pub async fn verify(&self, hash: String, password: String) -> bool {
        let cost = memory_kib(&hash).clamp(1, self.budget_kib);
        self.metrics.password_checks_waiting.inc();
        let permit = self.memory.clone().acquire_many_owned(cost).await;
        self.metrics.password_checks_waiting.dec();
        let Ok(permit) = permit else {
            return false; // the semaphore is never closed
        };
        self.metrics.password_checks_running.inc();
        let metrics = self.metrics.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let ok = verify_now(&hash, &password);
            metrics.password_checks_running.dec();
            drop(permit);
            ok
        })
        .await;
        ok.unwrap_or(false)
    }
}

/// The memory an argon2 check of `hash` needs, in KiB.
fn memory_kib(hash: &str) -> u32 {
    PasswordHash::new(hash)
        .ok()
        .and_then(|h| Params::try_from(&h).ok())
        .map_or(DEFAULT_KIB, |p| p.m_cost())
}

/// Verify right here, on this thread (blocking for tens of milliseconds).
pub fn verify_now(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_of_a_check_is_read_from_its_hash() {
        let hash = crate::auth::hash_password("pw");
        assert_eq!(memory_kib(&hash), Params::DEFAULT_M_COST);
        assert_eq!(memory_kib("not a hash"), DEFAULT_KIB);
    }

    #[tokio::test]
    async fn checks_beyond_the_budget_wait_and_all_finish() {
        let metrics = Arc::new(Metrics::default());
        // Room for one default check at a time.
        let checks = Arc::new(PasswordChecks::new(20 << 20, metrics.clone()));
        let hash = crate::auth::hash_password("right");
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (checks, hash) = (checks.clone(), hash.clone());
            let password = if i % 2 == 0 { "right" } else { "wrong" };
            tasks.push(tokio::spawn(async move {
                checks.verify(hash, password.to_string()).await
            }));
        }
        // While they run, never more than one check holds memory.
        let mut seen_waiting = 0;
        for _ in 0..200 {
            assert!(metrics.password_checks_running.get() <= 1);
            seen_waiting = seen_waiting.max(metrics.password_checks_waiting.get());
            if tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(results, [true, false, true, false]);
        assert!(seen_waiting >= 1, "the checks beyond the budget queued");
        assert_eq!(metrics.password_checks_waiting.get(), 0);
        assert_eq!(metrics.password_checks_running.get(), 0);
    }
}
