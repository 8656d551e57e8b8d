//! Ticketing's configuration: the common part, hold times, the key that seals festival
//! signing keys at rest, and per-festival limits.

use festival_platform::config::{CommonConfig, ConfigError, Secret, ServiceConfig, require_strong_secret};
pub use festival_platform::payments::PaymentsConfig;
use serde::{Deserialize, Serialize};

/// Development value of `TICKETING__KEYS__SEALING_KEY`; refused in production.
pub const DEV_SEALING_KEY: &str = "dGlja2V0aW5nLWRldi1rZXktZG8tbm90LXVzZS0wMDE=";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: CommonConfig,
    pub holds: HoldConfig,
    pub keys: KeyConfig,
    pub limits: Limits,
    pub gates: GatesConfig,
    pub waitlist: WaitlistConfig,
    pub wallet: WalletConfig,
    /// Online payment of holds through the payments service (`TICKETING__PAYMENTS__*`).
    pub payments: PaymentsConfig,
}

/// Wallet passes (`TICKETING__WALLET__*`). Google Wallet is on when `google_issuer_id`
/// is set: the issuer's number from the Google Pay & Wallet console, the service account
/// that may issue for it, and that account's private key (PEM, as in its JSON key file).
/// Apple Wallet is on when `apple_pass_type_id` is set: the pass type and team from the
/// Apple developer account, the pass type's certificate and RSA private key, and Apple's
/// WWDR intermediate certificate (all PEM).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct WalletConfig {
    pub google_issuer_id: String,
    pub google_service_account: String,
    pub google_private_key: Secret,
    pub apple_pass_type_id: String,
    pub apple_team_id: String,
    pub apple_certificate: String,
    pub apple_private_key: Secret,
    pub apple_wwdr_certificate: String,
}

/// The waiting list (`TICKETING__WAITLIST__*`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WaitlistConfig {
    /// How long an offer (a hold in the person's name) waits to be checked out, in
    /// seconds; never past the category's sale window.
    pub offer_ttl_secs: i64,
}

/// The live check-in counter (`TICKETING__GATES__*`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct GatesConfig {
    /// How often a watched festival's counts are read, in milliseconds (at least 100).
    pub watch_interval_ms: u64,
    /// How long one watch stream lives, in seconds: the caller's token was checked when
    /// it opened, so it must not outlive it by much.
    pub watch_max_secs: u64,
    /// Live counters open at once per festival, per replica (each reads the counts on
    /// its own).
    pub max_watchers_per_festival: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct HoldConfig {
    /// How long a hold keeps its tickets, in seconds (15 minutes); extending adds as much once.
    pub ttl_secs: i64,
    /// How often the worker gives expired holds' tickets back, in milliseconds.
    pub sweep_interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyConfig {
    /// base64 of 32 random bytes; seals the festivals' ticket-signing keys in the database.
    pub sealing_key: Secret,
}

/// How much one festival or one request may hold (`TICKETING__LIMITS__*`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    pub categories: i64,
    pub quotas: i64,
    /// The largest quota.
    pub quota_size: i64,
    /// The highest price, in minor units.
    pub price_minor: i64,
    /// Tickets in one order or hold item.
    pub quantity: i32,
    /// Items (categories) in one hold.
    pub hold_items: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            common: CommonConfig::local_defaults("ticketing", 50053),
            holds: HoldConfig { ttl_secs: 15 * 60, sweep_interval_ms: 1_000 },
            keys: KeyConfig { sealing_key: Secret::new(DEV_SEALING_KEY) },
            limits: Limits {
                categories: 200,
                quotas: 200,
                quota_size: 1_000_000,
                price_minor: 10_000_000,
                quantity: 100,
                hold_items: 10,
            },
            gates: GatesConfig { watch_interval_ms: 1_000, watch_max_secs: 15 * 60, max_watchers_per_festival: 20 },
            waitlist: WaitlistConfig { offer_ttl_secs: 3_600 },
            wallet: WalletConfig::default(),
            payments: PaymentsConfig::local("orders/{ORDER_ID}"),
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
        require_strong_secret(&self.common, "keys.sealing_key", &self.keys.sealing_key, 44, DEV_SEALING_KEY)?;
        festival_platform::sealing::Sealer::from_config(&self.keys.sealing_key).map_err(|reason| {
            ConfigError::Invalid { key: self.common.env_var("keys.sealing_key"), reason: reason.into() }
        })?;
        if self.holds.ttl_secs < 60 || self.holds.ttl_secs > 24 * 3600 {
            return Err(ConfigError::Invalid {
                key: self.common.env_var("holds.ttl_secs"),
                reason: "must be between 60 and 86400".into(),
            });
        }
        if self.gates.watch_max_secs == 0 || self.gates.watch_max_secs > 3600 {
            return Err(ConfigError::Invalid {
                key: self.common.env_var("gates.watch_max_secs"),
                reason: "must be between 1 and 3600".into(),
            });
        }
        crate::wallet::GoogleWallet::from_config(&self.wallet)
            .map_err(|reason| ConfigError::Invalid { key: self.common.env_var("wallet"), reason })?;
        crate::wallet::AppleWallet::from_config(&self.wallet)
            .map_err(|reason| ConfigError::Invalid { key: self.common.env_var("wallet"), reason })?;
        self.payments.validate(&self.common)?;
        if self.waitlist.offer_ttl_secs < 60 || self.waitlist.offer_ttl_secs > 7 * 24 * 3600 {
            return Err(ConfigError::Invalid {
                key: self.common.env_var("waitlist.offer_ttl_secs"),
                reason: "must be between 60 and 604800".into(),
            });
        }
        Ok(())
    }
}
