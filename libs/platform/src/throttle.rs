//! Throttling of guessed secrets (passwords now; one-time codes and wallet claim secrets
//! next): attempts are counted per subject (an account, an address, a pair of both) in
//! Redis **before** the secret is checked, so guesses sent together cannot slip through
//! together. Past a number of free attempts in a window, an attempt goes ahead only by
//! taking the subject's lock, which then holds every other attempt off for a time that
//! doubles with each attempt; a right secret forgets the count.
//!
//! A lock is never permanent and nobody can stretch it: its length follows only the
//! attempts counted in the current window (capped by [`Policy::max_lock_secs`]), attempts
//! made while locked are refused before they are counted, and the window's count is
//! forgotten [`Policy::window_secs`] after its first attempt. Check, count and lock happen
//! in one Lua script, atomically. Locks are compared with the service's [`Clock`], so
//! tests move time instead of sleeping; Redis TTLs only collect the keys.
//!
//! If Redis cannot be reached the throttle lets attempts through (and logs it), like the
//! gateway's rate limiter: the hashing cost and the gateway still slow a guesser, and
//! refusing every sign-in because a cache is down would be worse.

use std::time::Duration;

use deadpool_redis::redis;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::redis::Redis;

/// How many attempts a subject may make, and how long it is locked after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Attempts in a window that go ahead freely (a right secret gives them back).
    pub free_attempts: u32,
    /// The lock taken by the first attempt beyond the free ones, in seconds; each further
    /// attempt doubles it.
    pub first_lock_secs: u64,
    /// The longest lock, in seconds.
    pub max_lock_secs: u64,
    /// A window's attempts are forgotten this long after its first one, in seconds.
    pub window_secs: u64,
}

impl Policy {
    /// The lock that the `attempts`-th attempt of a window takes: none while free, then
    /// `first · 2^k`, capped. (The Lua script applies the same rule.)
    pub fn lock_after(&self, attempts: u64) -> Option<Duration> {
        let beyond = attempts.checked_sub(u64::from(self.free_attempts)).filter(|n| *n > 0)?;
        let doublings = u32::try_from(beyond - 1).unwrap_or(u32::MAX).min(40);
        let secs = self.first_lock_secs.saturating_mul(1u64 << doublings).min(self.max_lock_secs);
        (secs > 0).then(|| Duration::from_secs(secs))
    }
}

/// Who attempts: a kind (`account`, `address`, …), an identifier that is not personal
/// data in clear (hash emails with a key first), and the policy for that kind.
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
    /// Go ahead and check the secret.
    Open,
    /// Refused without checking the secret; retry after this many seconds.
    Locked { retry_after_secs: u64 },
}

/// KEYS: (count, lock) per subject, gated ones first. ARGV: now (ms), the number of gated
/// subjects, then per subject: window (s), free attempts, first lock (ms), longest lock
/// (ms). Returns {1, 0, locks taken} to go ahead, or {0, wait in ms, 0} when refused.
const ATTEMPT_SCRIPT: &str = r#"
local now = tonumber(ARGV[1])
local gated = tonumber(ARGV[2])
local subjects = #KEYS / 2
local wait = 0
for i = 1, gated do
  local until_ms = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if until_ms > now then wait = math.max(wait, until_ms - now) end
end
if wait > 0 then return {0, wait, 0} end
local proceed = 1
local locked = 0
for i = 1, subjects do
  local count_key, lock_key = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 2 + (i - 1) * 4
  local window = tonumber(ARGV[base + 1])
  local free = tonumber(ARGV[base + 2])
  local first = tonumber(ARGV[base + 3])
  local longest = tonumber(ARGV[base + 4])
  local n = redis.call('INCR', count_key)
  if n == 1 then redis.call('EXPIRE', count_key, window) end
  if n > free then
    local lock = math.min(first * 2 ^ math.min(n - free - 1, 40), longest)
    local until_ms = tonumber(redis.call('GET', lock_key) or '0')
    if until_ms > now then
      if i <= gated then
        proceed = 0
        wait = math.max(wait, until_ms - now)
      end
    else
      redis.call('SET', lock_key, string.format('%d', now + lock), 'PX', string.format('%d', lock + window * 1000))
      locked = locked + 1
    end
  end
end
if proceed == 0 then return {0, wait, 0} end
return {1, 0, locked}
"#;

/// KEYS: a count. Takes one attempt off it, never below zero.
const REFUND_SCRIPT: &str = r#"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return n
"#;

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

    /// One attempt: refused when a `gated` subject is locked; otherwise counted against
    /// `gated` and `counted` alike. A gated subject past its free attempts lets this
    /// attempt go ahead only by taking its lock (which then holds everyone else off); a
    /// counted one past them is locked for those that are gated by it, without holding
    /// this attempt.
    pub async fn attempt(&self, gated: &[Subject], counted: &[Subject]) -> Verdict {
        let mut script = redis::cmd("EVAL");
        script.arg(ATTEMPT_SCRIPT).arg(2 * (gated.len() + counted.len()));
        for subject in gated.iter().chain(counted) {
            script.arg(self.key(subject, "n")).arg(self.key(subject, "lock"));
        }
        script.arg(self.clock.now().timestamp_millis()).arg(gated.len());
        for subject in gated.iter().chain(counted) {
            let p = subject.policy;
            script
                .arg(p.window_secs.max(1))
                .arg(p.free_attempts)
                .arg(p.first_lock_secs.saturating_mul(1000))
                .arg(p.max_lock_secs.saturating_mul(1000));
        }
        match self.query::<(i64, i64, i64)>(&script).await {
            Ok((1, _, locked)) => {
                if locked > 0 {
                    metrics::counter!("festival_throttle_locks_total", "scope" => self.scope)
                        .increment(locked.unsigned_abs());
                }
                Verdict::Open
            }
            Ok((_, wait_ms, _)) => Verdict::Locked { retry_after_secs: wait_ms.unsigned_abs().div_ceil(1000).max(1) },
            Err(e) => {
                tracing::warn!(error = %e, scope = self.scope, "throttle unavailable; allowing the attempt");
                Verdict::Open
            }
        }
    }

    /// Gives one counted attempt back (a right secret that should not use up a shared
    /// budget, e.g. an address many people sign in from).
    pub async fn refund(&self, subject: &Subject) {
        let mut script = redis::cmd("EVAL");
        script.arg(REFUND_SCRIPT).arg(1).arg(self.key(subject, "n"));
        if let Err(e) = self.query::<i64>(&script).await {
            tracing::warn!(error = %e, scope = self.scope, "throttle unavailable; attempt not refunded");
        }
    }

    /// Forgets a subject's attempts and lock (it proved the secret).
    pub async fn forget(&self, subject: &Subject) {
        let mut del = redis::cmd("DEL");
        del.arg(self.key(subject, "n")).arg(self.key(subject, "lock"));
        if let Err(e) = self.query::<()>(&del).await {
            tracing::warn!(error = %e, scope = self.scope, "throttle unavailable; attempts not forgotten");
        }
    }

    /// Remembers `subject` for `ttl` (e.g. an address an account signed in from).
    pub async fn remember(&self, subject: &Subject, ttl: Duration) {
        let mut set = redis::cmd("SET");
        set.arg(self.key(subject, "known")).arg(1).arg("EX").arg(ttl.as_secs().max(1));
        if let Err(e) = self.query::<()>(&set).await {
            tracing::warn!(error = %e, scope = self.scope, "throttle unavailable; not remembered");
        }
    }

    /// Whether `subject` was remembered (false when Redis cannot say).
    pub async fn remembers(&self, subject: &Subject) -> bool {
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.key(subject, "known"));
        self.query::<bool>(&exists).await.unwrap_or(false)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self.redis.pool.get().await.map_err(|e| redis::RedisError::from(std::io::Error::other(e)))?;
        cmd.query_async(&mut conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { free_attempts: 3, first_lock_secs: 2, max_lock_secs: 60, window_secs: 3600 };

    #[test]
    fn free_attempts_cost_nothing_then_the_lock_doubles_up_to_the_cap() {
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
