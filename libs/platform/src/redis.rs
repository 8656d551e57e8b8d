//! Redis for the services that need it (rate limits, short-lived holds, counters, caches):
//! a pool and a key namer that puts the deployment prefix in front of every key, so tests
//! and co-hosted deployments never see each other's keys.

use deadpool_redis::{Config, Pool, Runtime};

use crate::config::RedisConfig;

/// A connection pool plus the key prefix.
#[derive(Clone)]
pub struct Redis {
    pub pool: Pool,
    keys: Keys,
}

impl Redis {
    /// Creates the pool (connections are opened lazily).
    pub fn connect(config: &RedisConfig) -> anyhow::Result<Self> {
        let pool = Config::from_url(&config.url).create_pool(Some(Runtime::Tokio1))?;
        Ok(Self { pool, keys: Keys::new(&config.key_prefix) })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// `PING`: the readiness check for services that depend on Redis.
    pub async fn ping(&self) -> bool {
        match self.pool.get().await {
            Ok(mut conn) => deadpool_redis::redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok(),
            Err(_) => false,
        }
    }
}

/// Builds prefixed keys: `keys.key(&["ticketing", "hold", id])` → `<prefix>ticketing:hold:<id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    pub fn key(&self, parts: &[&str]) -> String {
        format!("{}{}", self.prefix, parts.join(":"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_prefix() {
        assert_eq!(Keys::new("t1:").key(&["ticketing", "hold", "42"]), "t1:ticketing:hold:42");
        assert_eq!(Keys::default().key(&["a"]), "a");
    }
}
