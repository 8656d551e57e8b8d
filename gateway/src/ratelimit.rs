//! Per-client, per-route fixed-window rate limits in Redis, shared by every gateway
//! replica. If Redis is unreachable the gateway lets requests through (and logs it):
//! refusing every ticket buyer because a cache is down would be worse.

use deadpool_redis::redis;
use festival_platform::auth::Verifier;
use festival_platform::clock::Clock;
use festival_platform::redis::Redis;
use sha2::{Digest, Sha256};

use crate::config::RateLimitConfig;

pub enum Decision {
    Allow,
    /// Over budget: retry after this many seconds.
    Deny {
        retry_after: u64,
    },
}

#[derive(Clone)]
pub struct RateLimiter {
    redis: Redis,
    config: RateLimitConfig,
    clock: Clock,
    verifier: Verifier,
}

impl RateLimiter {
    /// Windows follow `clock` (the system clock, or a test's manual one); `verifier`
    /// recognises identity's tokens.
    pub fn new(redis: Redis, config: RateLimitConfig, clock: Clock, verifier: Verifier) -> Self {
        Self { redis, config, clock, verifier }
    }

    /// Who the client is: the account of a token that verifies, else the address. An
    /// unverified `Authorization` header counts for nothing, so made-up tokens cannot buy
    /// a fresh budget each.
    pub async fn client(&self, authorization: Option<&str>, ip: Option<std::net::IpAddr>) -> String {
        let token = authorization.and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        if self.config.enabled
            && let Some(token) = token
            && let Ok(caller) = self.verifier.verify(token).await
        {
            return format!("u{}", caller.user_id);
        }
        address_key(ip)
    }

    /// Counts one request of `client` on `route` and decides.
    pub async fn check(&self, client: &str, route: &str) -> Decision {
        if !self.config.enabled {
            return Decision::Allow;
        }
        let budget = self.config.routes.get(route).copied().unwrap_or(self.config.default_budget);
        let window = self.config.window_secs.max(1);
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        let slot = now / window;
        let key = self.redis.keys().key(&["gateway", "rl", client, &route_hash(route), &slot.to_string()]);
        let counted: Result<(u64,), _> = async {
            let mut conn =
                self.redis.pool.get().await.map_err(|e| redis::RedisError::from(std::io::Error::other(e)))?;
            redis::pipe().atomic().incr(&key, 1u64).expire(&key, window as i64).ignore().query_async(&mut conn).await
        }
        .await;
        match counted {
            Ok((count,)) if count > budget => Decision::Deny { retry_after: window - now % window },
            Ok(_) => Decision::Allow,
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable; allowing the request");
                Decision::Allow
            }
        }
    }
}

/// An anonymous client's key: its address.
pub fn address_key(ip: Option<std::net::IpAddr>) -> String {
    format!("ip{}", ip.map_or_else(|| "unknown".to_owned(), festival_platform::client_addr::bucket))
}

fn route_hash(route: &str) -> String {
    hex(&Sha256::digest(route.as_bytes()))[..16].to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_clients_are_keyed_by_address() {
        assert_eq!(address_key(Some("10.1.2.3".parse().expect("ip"))), "ip10.1.2.3");
        assert_eq!(address_key(None), "ipunknown");
    }
}
