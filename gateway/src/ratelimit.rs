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

/// The client's address behind `trusted_hops` proxies that each append the address they
/// saw to `X-Forwarded-For`: walking back from the connection's peer (the last proxy),
/// skip the trusted hops; what is left of the header is written by the client and is
/// never believed. With 0 trusted hops the peer is the client.
pub fn client_ip(
    headers: &http::HeaderMap,
    peer: Option<std::net::IpAddr>,
    trusted_hops: usize,
) -> Option<std::net::IpAddr> {
    if trusted_hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    // The chain as the last proxy sees it: every forwarded address, then the peer. The
    // peer is the first trusted hop; the client is `trusted_hops` further back.
    let back = trusted_hops.min(forwarded.len());
    match forwarded.len().checked_sub(back) {
        Some(i) if back > 0 => forwarded.get(i).and_then(|a| a.parse().ok()).or(peer),
        _ => peer,
    }
}

/// An anonymous client's key: its address.
pub fn address_key(ip: Option<std::net::IpAddr>) -> String {
    format!("ip{}", ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()))
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

    fn headers(xff: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn the_client_is_the_rightmost_address_the_trusted_proxies_did_not_write() {
        let ingress: Option<std::net::IpAddr> = Some("10.0.0.5".parse().expect("ip"));
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().expect("ip"));
        // No proxy: the header is the client's own words.
        assert_eq!(client_ip(&headers(&["1.2.3.4"]), ingress, 0), ingress);
        // One ingress: it appended the client's address; what the client wrote before it is ignored.
        assert_eq!(client_ip(&headers(&["6.6.6.6, 203.0.113.7"]), ingress, 1), ip("203.0.113.7"));
        assert_eq!(client_ip(&headers(&["6.6.6.6", "203.0.113.7"]), ingress, 1), ip("203.0.113.7"));
        // Two hops (CDN, then ingress).
        assert_eq!(client_ip(&headers(&["6.6.6.6, 203.0.113.7, 198.51.100.2"]), ingress, 2), ip("203.0.113.7"));
        // A request that did not pass the proxies (no header) is keyed by its peer.
        assert_eq!(client_ip(&headers(&[]), ingress, 1), ingress);
        assert_eq!(client_ip(&headers(&["not an address"]), ingress, 1), ingress);
    }
}
