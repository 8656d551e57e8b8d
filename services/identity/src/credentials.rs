//! Password hashing with argon2id, off the async runtime and bounded in concurrency
//! (each hash holds `memory_kib` of memory). Unknown emails are checked against a dummy
//! hash with the same cost, so a login takes about as long whether the account exists.
//!
//! The permits travel into the blocking job: a request cancelled while its hash runs does
//! not free the slot until the hash is done, so cancelled logins cannot pile up hashes
//! (and memory) beyond the limit. Waiting is bounded too: when the queue is full a call
//! is refused at once ([`Busy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::PasswordConfig;

/// Too many hashes running and waiting: the caller should retry shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("password hashing is saturated")
    }
}

impl std::error::Error for Busy {}

#[derive(Clone)]
pub struct Hasher {
    argon: Argon2<'static>,
    /// Hashes running at once.
    running: Arc<Semaphore>,
    /// Hashes running or waiting.
    admitted: Arc<Semaphore>,
    dummy_hash: Arc<String>,
    stats: Arc<Stats>,
}

/// How many hashes run now, and the most that ever ran at once (tests read it).
#[derive(Debug, Default)]
pub struct Stats {
    pub now: AtomicUsize,
    pub peak: AtomicUsize,
}

/// The slots a hash holds until it is done, wherever its caller went.
struct Slots {
    _running: OwnedSemaphorePermit,
    _admitted: OwnedSemaphorePermit,
    stats: Arc<Stats>,
}

impl Slots {
    fn enter(running: OwnedSemaphorePermit, admitted: OwnedSemaphorePermit, stats: Arc<Stats>) -> Self {
        let now = stats.now.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak.fetch_max(now, Ordering::SeqCst);
        Self { _running: running, _admitted: admitted, stats }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        self.stats.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hasher {
    pub fn new(config: &PasswordConfig) -> anyhow::Result<Self> {
        let params = Params::new(config.memory_kib, config.iterations, config.parallelism, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash_with(&argon, "dummy password for timing equalisation")?;
        let running = config.max_concurrent_hashes.max(1);
        Ok(Self {
            argon,
            running: Arc::new(Semaphore::new(running)),
            admitted: Arc::new(Semaphore::new(running + config.max_queued_hashes)),
            dummy_hash: Arc::new(dummy_hash),
            stats: Arc::default(),
        })
    }

    /// Running and peak hash counts.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Waits for a slot (refusing at once when too many already wait) and runs `job` on
    /// the blocking pool holding it. The slot is released when the job ends, not when the
    /// caller gives up.
    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| Busy)?;
        let running = self.running.clone().acquire_owned().await?;
        let slots = Slots::enter(running, admitted, self.stats.clone());
        Ok(tokio::task::spawn_blocking(move || {
            let _slots = slots;
            job()
        })
        .await?)
    }

    /// PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let argon = self.argon.clone();
        self.run(move || hash_with(&argon, &password)).await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no
    /// account or it has no password (made by a sign-in provider: stored empty), so
    /// every path costs the same.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let argon = self.argon.clone();
        let stored = stored.filter(|hash| !hash.is_empty());
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(move || {
                PasswordHash::new(&stored).map(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
            })
            .await?
            .map_err(|e| anyhow::anyhow!("stored password hash unreadable: {e}"))?;
        Ok(exists && matches)
    }
}

impl Hasher {
    /// Whether a stored hash was made with another algorithm or cost than the configured
    /// one (the cost was raised since): it is replaced at the next successful sign-in.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else { return true };
        let Ok(params) = Params::try_from(&parsed) else { return true };
        let current = self.argon.params();
        parsed.algorithm != Algorithm::Argon2id.ident()
            || (params.m_cost(), params.t_cost(), params.p_cost())
                != (current.m_cost(), current.t_cost(), current.p_cost())
    }
}

fn hash_with(argon: &Argon2<'_>, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon.hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_configured_cost_and_verify() {
        let cfg = PasswordConfig {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: 2,
            max_queued_hashes: 4,
        };
        let hasher = Hasher::new(&cfg).expect("hasher");
        let hash = hasher.hash("correct horse battery staple".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse battery staple".into(), Some(hash.clone())).await.expect("verify"));
        assert!(!hasher.verify("wrong horse battery staple".into(), Some(hash)).await.expect("verify"));
        assert!(!hasher.verify("correct horse battery staple".into(), None).await.expect("dummy"));
        assert!(!hasher.needs_rehash(&hasher.hash("another password".into()).await.expect("hash")));
        let cheaper = Hasher::new(&PasswordConfig { memory_kib: 8 * 1024, iterations: 1, ..cfg }).expect("hasher");
        let old = cheaper.hash("correct horse battery staple".into()).await.expect("hash");
        assert!(hasher.needs_rehash(&old), "a cost raised since: rehash");
        assert!(hasher.needs_rehash("$2b$12$not-argon2"), "another algorithm: rehash");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancelled_calls_never_run_more_hashes_than_the_limit_and_a_full_queue_refuses() {
        let cfg = PasswordConfig {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: 2,
            max_queued_hashes: 3,
        };
        let hasher = Hasher::new(&cfg).expect("hasher");
        let stored = hasher.hash("correct horse battery staple".into()).await.expect("hash");
        // A flood of logins whose clients give up almost at once, as with a 1 ms deadline.
        for _ in 0..40 {
            let call = hasher.verify("guess".into(), Some(stored.clone()));
            let finished = tokio::time::timeout(std::time::Duration::from_millis(1), call).await;
            assert!(finished.is_err(), "a verify cannot finish in 1 ms: {finished:?}");
        }
        let done = {
            let stats = hasher.stats();
            let mut waited = 0;
            while stats.now.load(Ordering::SeqCst) > 0 && waited < 1_000 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                waited += 1;
            }
            stats.now.load(Ordering::SeqCst) == 0
        };
        assert!(done, "the abandoned hashes finished");
        let peak = hasher.stats().peak.load(Ordering::SeqCst);
        assert!((1..=2).contains(&peak), "at most 2 hashes ran at once, saw {peak}");
        assert!(
            hasher.verify("correct horse battery staple".into(), Some(stored)).await.expect("verify"),
            "and it serves again"
        );
    }
}
