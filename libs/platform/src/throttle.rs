//! Throttling of guessed secrets (passwords now; one-time codes and wallet claim secrets
//! next): failures are counted per subject (an account, an address, a pair of both) in
//! Redis, and past a number of free failures each further one locks the subject for a
//! growing time.
//!
//! A lock is never permanent and nobody can stretch it: its length follows only the
//! failures counted in the current window (so it is capped by [`Policy::max_lock_secs`]),
//! attempts made while locked are refused before they are checked and are not counted,
//! and the window's failures are forgotten [`Policy::window_secs`] after its first one.
//! Locks are compared with the service's [`Clock`], so tests move time instead of
//! sleeping; Redis TTLs only collect the keys.
//!
//! If Redis cannot be reached the throttle lets attempts through (and logs it), like the
//! gateway's rate limiter: the hashing cost and the gateway still slow a guesser, and
//! refusing every sign-in because a cache is down would be worse.

use std::time::Duration;

use deadpool_redis::redis;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::redis::Redis;

/// How many failures a subject may make, and how long it is locked after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Failures in a window that cost nothing.
    pub free_failures: u32,
    /// The lock after the first failure beyond the free ones, in seconds; each further
    /// failure doubles it.
    pub first_lock_secs: u64,
    /// The longest lock, in seconds.
    pub max_lock_secs: u64,
    /// A window's failures are forgotten this long after its first one, in seconds.
    pub window_secs: u64,
}

impl Policy {
    /// The lock that the `failures`-th failure of a window earns: none while free, then
    /// `first · 2^k`, capped.
    pub fn lock_after(&self, failures: u64) -> Option<Duration> {
        let beyond = failures.checked_sub(u64::from(self.free_failures)).filter(|n| *n > 0)?;
        let doublings = u32::try_from(beyond - 1).unwrap_or(u32::MAX).min(63);
        let secs = self.first_lock_secs.saturating_mul(1u64 << doublings).min(self.max_lock_secs);
        (secs > 0).then(|| Duration::from_secs(secs))
    }
}

/// Who failed: a kind (`account`, `address`, …), an identifier that is not personal data
/// in clear (hash emails first), and the policy for that kind.
#[derive(Debug, Clone)]
pub struct Subject {
    pub kind: &'static str,
    pub id: String,
    pub policy: Policy,
}

impl Subject {
    pub fn new(kind: &'static str, id: impl Into<String>, policy: Policy) -> Self {
        Self { kind, id: id.into(), policy }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Open,
    /// Refused without checking the secret; retry after this many seconds.
    Locked {
        retry_after_secs: u64,
    },
}

/// One throttle per use (`login`, `totp`, …): its keys live under `throttle:<scope>:`.
#[derive(Clone)]
pub struct Throttle {
    redis: Redis,
    clock: Clock,
    scope: &'static str,
}

impl Throttle {
    pub fn new(redis: Redis, clock: Clock, scope: &'static str) -> Self {
        Self { redis, clock, scope }
    }

    fn key(&self, subject: &Subject, what: &str) -> String {
        self.redis.keys().key(&["throttle", self.scope, subject.kind, &subject.id, what])
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Whether any of `subjects` is locked now (the longest wait wins).
    pub async fn check(&self, subjects: &[Subject]) -> Verdict {
        if subjects.is_empty() {
            return Verdict::Open;
        }
        let keys: Vec<String> = subjects.iter().map(|s| self.key(s, "lock")).collect();
        let until: Vec<Option<i64>> = match self.query(redis::cmd("MGET").arg(&keys)).await {
            Ok(until) => until,
            Err(e) => {
                tracing::warn!(error = %e, scope = self.scope, "throttle unavailable; allowing the attempt");
                return Verdict::Open;
            }
        };
        let now = self.now_ms();
        match until.into_iter().flatten().filter(|until| *until > now).max() {
            Some(until) => Verdict::Locked { retry_after_secs: u64::try_from(until - now).unwrap_or(0).div_ceil(1000) },
            None => Verdict::Open,
        }
    }

    /// Counts a failure against each subject and locks those past their free failures.
    pub async fn record_failure(&self, subjects: &[Subject]) {
        for subject in subjects {
            if let Err(e) = self.fail(subject).await {
                tracing::warn!(error = %e, scope = self.scope, kind = subject.kind, "throttle unavailable; failure not counted");
            }
        }
    }

    async fn fail(&self, subject: &Subject) -> redis::RedisResult<()> {
        let count = self.key(subject, "n");
        let window = subject.policy.window_secs.max(1);
        let (failures,): (u64,) = self
            .query(redis::pipe().atomic().incr(&count, 1u64).cmd("EXPIRE").arg(&count).arg(window).arg("NX").ignore())
            .await?;
        if let Some(lock) = subject.policy.lock_after(failures) {
            let lock_ms = i64::try_from(lock.as_millis()).unwrap_or(i64::MAX);
            let until = self.now_ms().saturating_add(lock_ms);
            // The key outlives the lock by the window, so a test's manual clock decides.
            let ttl_ms = lock_ms.saturating_add(i64::try_from(window).unwrap_or(0).saturating_mul(1000));
            self.query::<()>(redis::cmd("SET").arg(self.key(subject, "lock")).arg(until).arg("PX").arg(ttl_ms)).await?;
            tracing::info!(scope = self.scope, kind = subject.kind, failures, lock_secs = lock.as_secs(), "locked");
            metrics::counter!("festival_throttle_locks_total", "scope" => self.scope, "kind" => subject.kind)
                .increment(1);
        }
        Ok(())
    }

    /// Forgets a subject's failures and lock (after it proved the secret).
    pub async fn forget(&self, subject: &Subject) {
        let keys = [self.key(subject, "n"), self.key(subject, "lock")];
        if let Err(e) = self.query::<()>(redis::cmd("DEL").arg(&keys)).await {
            tracing::warn!(error = %e, scope = self.scope, "throttle unavailable; failures not forgotten");
        }
    }

    /// Remembers `subject` for `ttl` (e.g. an address an account signed in from).
    pub async fn remember(&self, subject: &Subject, ttl: Duration) {
        let ttl = ttl.as_secs().max(1);
        if let Err(e) =
            self.query::<()>(redis::cmd("SET").arg(self.key(subject, "known")).arg(1).arg("EX").arg(ttl)).await
        {
            tracing::warn!(error = %e, scope = self.scope, "throttle unavailable; not remembered");
        }
    }

    /// Whether `subject` was remembered (false when Redis cannot say).
    pub async fn remembers(&self, subject: &Subject) -> bool {
        self.query::<bool>(redis::cmd("EXISTS").arg(self.key(subject, "known"))).await.unwrap_or(false)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &impl Queryable) -> redis::RedisResult<T> {
        let mut conn = self.redis.pool.get().await.map_err(|e| redis::RedisError::from(std::io::Error::other(e)))?;
        cmd.run(&mut conn).await
    }
}

/// A command or a pipeline.
trait Queryable {
    fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut deadpool_redis::Connection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send;
}

impl Queryable for redis::Cmd {
    fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut deadpool_redis::Connection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(conn)
    }
}

impl Queryable for redis::Pipeline {
    fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut deadpool_redis::Connection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { free_failures: 3, first_lock_secs: 2, max_lock_secs: 60, window_secs: 3600 };

    #[test]
    fn free_failures_cost_nothing_then_the_lock_doubles_up_to_the_cap() {
        let locks: Vec<Option<u64>> = (0..=12).map(|n| POLICY.lock_after(n).map(|d| d.as_secs())).collect();
        assert_eq!(
            locks,
            [
                None,
                None,
                None,
                None,
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60),
                Some(60),
                Some(60),
                Some(60)
            ]
        );
        assert_eq!(POLICY.lock_after(u64::MAX).map(|d| d.as_secs()), Some(60), "no overflow");
    }
}
