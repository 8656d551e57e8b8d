//! Cashless' configuration: the common part, the key that seals the festivals' master
//! and journal keys at rest, the journal's chaining and closing intervals, the live
//! takings streams, and where payments opens online top-ups' checkouts.

use festival_platform::config::{CommonConfig, ConfigError, Secret, ServiceConfig, require_strong_secret};
use serde::{Deserialize, Serialize};

/// Development value of `CASHLESS__KEYS__SEALING_KEY`; refused in production.
pub const DEV_SEALING_KEY: &str = "Y2FzaGxlc3MtZGV2LWtleS1kby1ub3QtdXNlLWluLXA=";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub keys: KeyConfig,
    pub journal: JournalConfig,
    /// The live takings streams (`CASHLESS__LIVE__*`).
    #[serde(default)]
    pub live: festival_platform::live::LiveConfig,
    /// Online top-ups' checkouts at the payments service (`CASHLESS__PAYMENTS__*`; the
    /// return pages may name `{WALLET_ID}`).
    pub payments: festival_platform::payments::PaymentsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyConfig {
    /// base64 of 32 random bytes; seals the festivals' wristband master keys and journal
    /// signing keys in the database.
    pub sealing_key: Secret,
}

/// The journal worker (`CASHLESS__JOURNAL__*`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct JournalConfig {
    /// How often new transactions are hash-chained, in milliseconds.
    pub chain_interval_ms: u64,
    /// Most transactions chained per festival and round.
    pub chain_batch: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            common: CommonConfig::local_defaults("cashless", 50055),
            keys: KeyConfig { sealing_key: Secret::new(DEV_SEALING_KEY) },
            journal: JournalConfig { chain_interval_ms: 500, chain_batch: 5_000 },
            // Each stream reads a day's takings: every 2 s, five per festival and replica.
            live: festival_platform::live::LiveConfig {
                watch_interval_ms: 2_000,
                watch_max_secs: 15 * 60,
                max_watchers_per_festival: 5,
            },
            payments: festival_platform::payments::PaymentsConfig::local("wallets/{WALLET_ID}"),
        }
    }
}

impl ServiceConfig for Config {
    fn common(&self) -> &CommonConfig {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonConfig {
        &mut self.common
    }
    fn validate(&self) -> Result<(), ConfigError> {
        self.payments.validate(&self.common)?;
        require_strong_secret(&self.common, "keys.sealing_key", &self.keys.sealing_key, 44, DEV_SEALING_KEY)?;
        festival_platform::sealing::Sealer::from_config(&self.keys.sealing_key).map_err(|reason| {
            ConfigError::Invalid { key: self.common.env_var("keys.sealing_key"), reason: reason.into() }
        })?;
        if !(1..=100_000).contains(&self.journal.chain_batch) {
            return Err(ConfigError::Invalid {
                key: self.common.env_var("journal.chain_batch"),
                reason: "must be between 1 and 100000".into(),
            });
        }
        if let Some((field, reason)) = self.live.problem() {
            return Err(ConfigError::Invalid {
                key: self.common.env_var(&format!("live.{field}")),
                reason: reason.into(),
            });
        }
        Ok(())
    }
}
