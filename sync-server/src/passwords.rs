//! Password checks within a memory budget.
//!
//! One argon2 verification with the crate's defaults (the OWASP recommendation) works in 19 MiB.
//! Unbounded, 20 clients signing in at once took the server from 9 MiB to several hundred before
//! a single document existed. Here every check first takes its memory (the `m_cost` of the hash
//! it verifies) from a budget, [`crate::config::Config::password_memory`], and waits in line when
//! the budget is spent; the queue and the checks running are `/metrics` gauges.
//!
//! The checks run on a few threads of their own (as many as the budget holds default checks),
//! and each thread keeps its argon2 working memory from one check to the next while checks keep
//! coming, handing it back after a second without one. Allocating 19 MiB afresh per check let
//! the allocator hold several freed copies at once (measured: 40 sign-ins peaked at 86 MiB
//! with room for one check at a time); reused, the peak is the budget.

use std::sync::{Arc, Mutex, mpsc};

use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash, PasswordVerifier};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::metrics::Metrics;

/// What a check whose hash does not parse is charged: the default parameters' memory.
const DEFAULT_KIB: u32 = Params::DEFAULT_M_COST;

struct Check {
    hash: String,
    password: String,
    reply: oneshot::Sender<bool>,
    /// Released when the check is done.
    _memory: OwnedSemaphorePermit,
}

pub struct PasswordChecks {
    /// The budget in KiB, as permits.
    memory: Arc<Semaphore>,
    budget_kib: u32,
    metrics: Arc<Metrics>,
    queue: Mutex<mpsc::Sender<Check>>,
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
        let (queue, checks) = mpsc::channel::<Check>();
        let checks = Arc::new(Mutex::new(checks));
        let threads = (budget_kib / DEFAULT_KIB).clamp(1, 16);
        for i in 0..threads {
            let (checks, metrics) = (checks.clone(), metrics.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{i}"))
                .spawn(move || run(&checks, &metrics));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-check thread");
            }
        }
        PasswordChecks {
            memory: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            metrics,
            queue: Mutex::new(queue),
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
        let (reply, answer) = oneshot::channel();
        let check = Check {
            hash,
            password,
            reply,
            _memory: permit,
        };
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(check);
        // No thread to run it (none could be started): refuse rather than hang.
        sent.is_ok() && answer.await.unwrap_or(false)
    }
}

/// A check thread gives its working memory back after this long without a check.
const KEEP_MEMORY: Duration = Duration::from_secs(1);

/// One check thread: take the next check, run it, answer. Ends when the server drops its queue.
fn run(checks: &Mutex<mpsc::Receiver<Check>>, metrics: &Metrics) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let next = checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(KEEP_MEMORY);
        let check = match next {
            Ok(check) => check,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                memory = Vec::new();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        metrics.password_checks_running.inc();
        let ok = verify_with(&check.hash, &check.password, &mut memory);
        metrics.password_checks_running.dec();
        let _ = check.reply.send(ok);
    }
}

/// [`verify_now`] in `memory`, grown to what the hash's parameters need and kept for the next
/// check: what `PasswordVerifier::verify_password` does, without allocating the blocks itself.
/// argon2 writes every block before it reads it, so what a previous check left is never used.
fn verify_with(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let algorithm = Algorithm::try_from(parsed.algorithm);
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (algorithm, version, Params::try_from(&parsed))
    else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_ok()
        // Output's equality is constant-time.
        && Output::new(&out).is_ok_and(|out| out == expected)
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
    fn checks_in_reused_memory_agree_with_the_argon2_crate() {
        let mut memory = Vec::new();
        let hash = crate::auth::hash_password("correct horse");
        // Fill the memory with another check first: leftovers must not matter.
        let other = crate::auth::hash_password("battery staple");
        assert!(verify_with(&other, "battery staple", &mut memory));
        for (password, expected) in [("correct horse", true), ("correct horse ", false)] {
            assert_eq!(verify_with(&hash, password, &mut memory), expected);
            assert_eq!(verify_now(&hash, password), expected);
        }
        assert!(!verify_with("not a hash", "x", &mut memory));
        // Other parameters than the defaults (older or tuned hashes) verify too.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 3, 1, None).unwrap(),
        );
        let salt = argon2::password_hash::SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let tuned = argon2::password_hash::PasswordHasher::hash_password(&small, b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify_with(&tuned, "pw", &mut memory));
        assert!(!verify_with(&tuned, "pW", &mut memory));
    }

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
