//! Typed, layered configuration: built-in defaults that work on a developer machine,
//! then an optional TOML file (`FESTIVAL_CONFIG_FILE`), then environment variables —
//! `FESTIVAL__…` for values every service shares, `<SERVICE>__…` for one service
//! (`IDENTITY__DATABASE__URL`), `__` separating nesting levels. `FESTIVAL_ENV` selects the
//! environment and `OTEL_EXPORTER_OTLP_ENDPOINT` the trace exporter, as usual.
//!
//! In `production`, [`CommonConfig::validate`] and each service's own checks refuse
//! missing or weak secrets at start-up with a message naming the environment variable.

use std::fmt;
use std::net::SocketAddr;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Where the process runs. Production turns on the secret checks and turns off reflection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Test,
    Production,
}

/// A secret value: never printed by `Debug`/`Display`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "Secret(<empty>)" } else { "Secret(<redacted>)" })
    }
}

/// Settings every service has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommonConfig {
    /// Set from `FESTIVAL_ENV`: development (default), test or production.
    pub env: Environment,
    /// Service name: database name suffix, event subjects, telemetry resource.
    pub service: String,
    pub grpc: GrpcConfig,
    pub metrics: MetricsConfig,
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrpcConfig {
    /// Address the gRPC server binds; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// gRPC reflection (v1 and v1alpha). Default: on, except in production.
    pub reflection: Option<bool>,
    /// Deadline applied to calls that send none, in milliseconds.
    pub default_timeout_ms: u64,
    /// Largest request or response message, in bytes.
    pub max_message_bytes: usize,
    /// After SIGTERM: how long health reports NOT_SERVING before the listener closes,
    /// so load balancers stop sending new calls, in milliseconds.
    pub drain_grace_ms: u64,
    /// Proxies in front of this server that append the address they saw to
    /// `X-Forwarded-For` (the gateway counts as one). 0: the peer is the client. Only
    /// ever count proxies every call passes through: a client that can reach the
    /// server around them writes that header itself.
    #[serde(default)]
    pub trusted_proxy_hops: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsConfig {
    /// Serve the Prometheus `/metrics` endpoint.
    pub enabled: bool,
    /// Address of the `/metrics` endpoint.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of this service's own database.
    pub url: Secret,
    pub max_connections: u32,
    /// Create the database when it does not exist. Default: on, except in production.
    pub create_if_missing: Option<bool>,
    /// Run pending migrations when the server starts (`migrate` runs them alone).
    pub migrate_on_start: bool,
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NatsConfig {
    /// One server, `nats://host:4222` or `tls://host:4222` (TLS required).
    pub url: String,
    /// Prepended to every subject and stream name: isolates tests and tenants of a shared NATS.
    pub subject_prefix: String,
    /// JetStream stream replicas (R3 for money streams in production clusters).
    pub stream_replicas: usize,
    /// How consumers retry a failing event and when they give up on it.
    pub delivery: DeliveryConfig,
    /// This service's NATS user: the server's permissions for it decide what it may
    /// publish and subscribe to (only its own subjects), which is what stops forged
    /// events. Empty: connect without credentials (development). Required in production.
    #[serde(default)]
    pub user: String,
    /// The password of `user`. Required in production.
    #[serde(default)]
    pub password: Secret,
    /// Refuse to talk to NATS without TLS, whatever the URL's scheme. Production needs
    /// this or a `tls://` URL.
    #[serde(default)]
    pub require_tls: bool,
    /// PEM file of the CA that signed the NATS server's certificate, added to the
    /// system's roots (for a private CA).
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl NatsConfig {
    /// True when the connection is TLS: a `tls://` URL or `require_tls`.
    pub fn tls(&self) -> bool {
        self.require_tls || self.url.trim().to_ascii_lowercase().starts_with("tls://")
    }
}

/// Retry and dead-letter policy of event consumers.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DeliveryConfig {
    /// Deliveries of one event before it is moved to the dead-letter subject
    /// (`festival.deadletter.<consumer>`) and the consumer goes on with the next.
    pub max_deliveries: u64,
    /// Delay before the first redelivery of a failed event, doubling each time, in ms.
    pub retry_backoff_ms: u64,
    /// Longest delay between two deliveries, in ms.
    pub max_backoff_ms: u64,
    /// How long JetStream waits for an acknowledgement before redelivering, in seconds.
    pub ack_wait_secs: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self { max_deliveries: 5, retry_backoff_ms: 500, max_backoff_ms: 30_000, ack_wait_secs: 30 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisConfig {
    /// `redis://:password@host:6379` (or `redis://user:password@…`). The redis client is
    /// built without TLS, so `rediss://` cannot connect: reach a TLS Redis through a
    /// TLS-terminating sidecar on localhost.
    pub url: String,
    /// Prepended to every key.
    pub key_prefix: String,
}

impl RedisConfig {
    /// The production rule for a Redis URL, for any process that uses one (`key` names
    /// the variable that sets it, e.g. `GATEWAY__REDIS__URL`): a password is required,
    /// and `rediss://` is refused because this build cannot speak TLS to Redis.
    pub fn validate_production(&self, key: &str) -> Result<(), ConfigError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err(ConfigError::Missing { key: key.into() });
        }
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
        if scheme == "rediss" || scheme == "valkeys" {
            return Err(ConfigError::Invalid {
                key: key.into(),
                reason: "TLS to Redis (rediss://) is not built into this release: use redis:// to a \
                         TLS-terminating sidecar on localhost (see docs/DEPLOYMENT.md)"
                    .into(),
            });
        }
        // `redis://:password@host`, or `redis+unix:///path?pass=password` for a socket.
        let has_password =
            url_password(url).is_some_and(|p| !p.is_empty()) || query_param(url, "pass").is_some_and(|p| !p.is_empty());
        if !has_password {
            return Err(ConfigError::Weak {
                key: key.into(),
                reason: "has no password (redis://:PASSWORD@host:6379)".into(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthConfig {
    /// `iss` of identity's access tokens.
    pub issuer: String,
    /// `aud` of identity's access tokens.
    pub audience: String,
    /// gRPC address of the identity service, from which public keys (JWKS) are fetched.
    pub identity_url: String,
    /// Allowed clock skew when checking `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
    /// Longest access-token lifetime accepted (`exp - iat`), in seconds: a token minted
    /// with a stolen or misconfigured key for a year is refused. Identity's
    /// `tokens.access_ttl_secs` must not exceed it.
    pub max_token_lifetime_secs: u64,
    /// How often the key set is fetched again and replaced whole, in seconds, so a key
    /// identity stopped publishing (retired, or revoked after a leak) stops verifying.
    pub keys_refresh_secs: u64,
    /// How often every service asks identity which sessions ended (ListRevokedSessions),
    /// in seconds: a sign-out, a revoked session or a disabled account stops its access
    /// tokens everywhere within about this time. 0: never (tokens live until they expire).
    pub session_revocations_poll_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelemetryConfig {
    /// `json` (default) or `pretty`.
    pub log_format: String,
    /// `tracing` filter directives (`RUST_LOG` wins when set).
    pub log_level: String,
    /// OTLP/gRPC endpoint for traces; set from `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
}

/// The password of the development database role; refused in production.
pub const DEV_DATABASE_PASSWORD: &str = "festival";

impl CommonConfig {
    /// Defaults that work against `scripts/up`'s local PostgreSQL, NATS and Redis.
    pub fn local_defaults(service: &str, grpc_port: u16) -> Self {
        Self {
            env: Environment::Development,
            service: service.to_owned(),
            grpc: GrpcConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], grpc_port)),
                reflection: None,
                default_timeout_ms: 10_000,
                max_message_bytes: 4 * 1024 * 1024,
                drain_grace_ms: 2_000,
                trusted_proxy_hops: 0,
            },
            metrics: MetricsConfig { enabled: true, listen: SocketAddr::from(([127, 0, 0, 1], grpc_port + 1000)) },
            database: DatabaseConfig {
                url: Secret::new(format!(
                    "postgres://festival:{DEV_DATABASE_PASSWORD}@127.0.0.1:5432/festival_{service}"
                )),
                max_connections: 20,
                create_if_missing: None,
                migrate_on_start: true,
                acquire_timeout_ms: 5_000,
            },
            nats: NatsConfig {
                url: "nats://127.0.0.1:4222".into(),
                subject_prefix: String::new(),
                stream_replicas: 1,
                delivery: DeliveryConfig::default(),
                user: String::new(),
                password: Secret::default(),
                require_tls: false,
                ca_file: None,
            },
            redis: RedisConfig { url: "redis://127.0.0.1:6379".into(), key_prefix: String::new() },
            auth: AuthConfig {
                issuer: "festival-identity".into(),
                audience: "festival".into(),
                identity_url: "http://127.0.0.1:50051".into(),
                leeway_secs: 30,
                max_token_lifetime_secs: 15 * 60,
                keys_refresh_secs: 300,
                session_revocations_poll_secs: 2,
            },
            telemetry: TelemetryConfig { log_format: "json".into(), log_level: "info".into(), otlp_endpoint: None },
        }
    }

    pub fn is_production(&self) -> bool {
        self.env == Environment::Production
    }

    pub fn reflection_enabled(&self) -> bool {
        self.grpc.reflection.unwrap_or(!self.is_production())
    }

    pub fn create_database_if_missing(&self) -> bool {
        self.database.create_if_missing.unwrap_or(!self.is_production())
    }

    /// The environment variable that sets `path` (`database.url` → `IDENTITY__DATABASE__URL`).
    pub fn env_var(&self, path: &str) -> String {
        env_var(&self.service, path)
    }

    /// Refuses production start-up with development credentials or without transport
    /// security: PostgreSQL without TLS, NATS without credentials or TLS, Redis without
    /// a password.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.service.is_empty() {
            return Err(ConfigError::Invalid { key: self.env_var("service"), reason: "must not be empty".into() });
        }
        if self.is_production() {
            self.validate_database()?;
            self.validate_nats()?;
            self.redis.validate_production(&self.env_var("redis.url"))?;
        }
        Ok(())
    }

    fn validate_database(&self) -> Result<(), ConfigError> {
        let key = self.env_var("database.url");
        let url = self.database.url.expose();
        if url.is_empty() {
            return Err(ConfigError::Missing { key });
        }
        if url.contains(&format!(":{DEV_DATABASE_PASSWORD}@")) || !url.contains('@') {
            return Err(ConfigError::Weak { key, reason: "uses the development password or none".into() });
        }
        let ssl_mode =
            query_param(url, "sslmode").or_else(|| query_param(url, "ssl-mode")).map(|m| m.to_ascii_lowercase());
        if !matches!(ssl_mode.as_deref(), Some("require" | "verify-ca" | "verify-full")) {
            return Err(ConfigError::Invalid {
                key,
                reason: "must ask for TLS in production: add `?sslmode=verify-full` (or `verify-ca`, `require`)".into(),
            });
        }
        Ok(())
    }

    fn validate_nats(&self) -> Result<(), ConfigError> {
        if self.nats.user.trim().is_empty() {
            return Err(ConfigError::Missing { key: self.env_var("nats.user") });
        }
        if self.nats.password.is_empty() {
            return Err(ConfigError::Missing { key: self.env_var("nats.password") });
        }
        if !self.nats.tls() {
            return Err(ConfigError::Invalid {
                key: self.env_var("nats.url"),
                reason: format!("must be tls://… in production (or set {}=true)", self.env_var("nats.require_tls")),
            });
        }
        Ok(())
    }
}

/// The password of a URL's user info (`scheme://user:password@host`), percent-encoded
/// as written; `None` without one.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, _host) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

/// The last value of a URL query parameter (`?sslmode=require`), as written.
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query.rsplit('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// `service` + `a.b` → `SERVICE__A__B`.
pub fn env_var(service: &str, path: &str) -> String {
    format!("{}__{}", service.to_uppercase(), path.replace('.', "__").to_uppercase())
}

/// Checks a secret in production: present, at least `min_len` characters, not a known
/// development value. Outside production every value is accepted.
pub fn require_strong_secret(
    common: &CommonConfig,
    path: &str,
    secret: &Secret,
    min_len: usize,
    dev_value: &str,
) -> Result<(), ConfigError> {
    if !common.is_production() {
        return Ok(());
    }
    let key = common.env_var(path);
    if secret.is_empty() {
        return Err(ConfigError::Missing { key });
    }
    if secret.expose() == dev_value {
        return Err(ConfigError::Weak { key, reason: "is the development default".into() });
    }
    if secret.expose().len() < min_len {
        return Err(ConfigError::Weak { key, reason: format!("is shorter than {min_len} characters") });
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {key} is required in production")]
    Missing { key: String },
    #[error("configuration: {key} is too weak for production: it {reason}")]
    Weak { key: String, reason: String },
    #[error("configuration: {key} is invalid: {reason}")]
    Invalid { key: String, reason: String },
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
}

/// A service's whole configuration: the common part plus its own settings.
pub trait ServiceConfig: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static {
    fn common(&self) -> &CommonConfig;
    fn common_mut(&mut self) -> &mut CommonConfig;
    /// The service's own production checks (secrets); the common ones run too.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Loads a service's configuration: `defaults`, then the TOML file named by
/// `FESTIVAL_CONFIG_FILE`, then `FESTIVAL__*`, then `<SERVICE>__*`, then `FESTIVAL_ENV`
/// and `OTEL_EXPORTER_OTLP_ENDPOINT`; then validates it.
pub fn load<C: ServiceConfig>(defaults: C) -> Result<C, ConfigError> {
    let service = defaults.common().service.clone();
    let config: C = load_layers(&service, defaults)?;
    config.common().validate()?;
    config.validate()?;
    Ok(config)
}

/// The layering alone, for processes whose configuration is not a [`ServiceConfig`]
/// (the gateway): `defaults`, `FESTIVAL_CONFIG_FILE`, `FESTIVAL__*`, `<SERVICE>__*`,
/// `FESTIVAL_ENV` (key `env`), `OTEL_EXPORTER_OTLP_ENDPOINT` (key `telemetry.otlp_endpoint`).
pub fn load_layers<C: Serialize + DeserializeOwned>(service: &str, defaults: C) -> Result<C, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Ok(path) = std::env::var("FESTIVAL_CONFIG_FILE") {
        figment = figment.merge(Toml::file(path));
    }
    figment = figment
        .merge(Env::prefixed("FESTIVAL__").split("__"))
        .merge(Env::prefixed(&format!("{}__", service.to_uppercase())).split("__"))
        .merge(Env::raw().only(&["FESTIVAL_ENV"]).map(|_| "env".into()))
        .merge(Env::raw().only(&["OTEL_EXPORTER_OTLP_ENDPOINT"]).map(|_| "telemetry.otlp_endpoint".into()));
    Ok(figment.extract().map_err(Box::new)?)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure type, not ours
mod tests {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Demo {
        #[serde(flatten)]
        common: CommonConfig,
        token: Secret,
    }

    impl ServiceConfig for Demo {
        fn common(&self) -> &CommonConfig {
            &self.common
        }
        fn common_mut(&mut self) -> &mut CommonConfig {
            &mut self.common
        }
        fn validate(&self) -> Result<(), ConfigError> {
            require_strong_secret(&self.common, "token", &self.token, 32, "dev-token")
        }
    }

    fn demo() -> Demo {
        Demo { common: CommonConfig::local_defaults("demo", 50999), token: Secret::new("dev-token") }
    }

    #[test]
    fn defaults_work_locally_and_env_overrides_them() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DEMO__GRPC__LISTEN", "0.0.0.0:7000");
            jail.set_env("FESTIVAL__NATS__URL", "nats://nats:4222");
            let c = load(demo()).expect("loads");
            assert_eq!(c.common.grpc.listen.port(), 7000);
            assert_eq!(c.common.nats.url, "nats://nats:4222");
            assert_eq!(c.common.env, Environment::Development);
            assert!(c.common.reflection_enabled());
            Ok(())
        });
    }

    /// A production environment whose transport settings pass (database, NATS, Redis).
    fn production_transport(jail: &mut figment::Jail) {
        jail.set_env("FESTIVAL_ENV", "production");
        jail.set_env("DEMO__DATABASE__URL", "postgres://demo:s3cr3t-Long@db:5432/festival_demo?sslmode=verify-full");
        jail.set_env("FESTIVAL__NATS__URL", "tls://nats.messaging:4222");
        jail.set_env("DEMO__NATS__USER", "demo");
        jail.set_env("DEMO__NATS__PASSWORD", "a-long-nats-password");
        jail.set_env("FESTIVAL__REDIS__URL", "redis://:a-long-redis-password@redis:6379");
    }

    /// The message of the start-up refusal, which must name `key`.
    fn refusal(key: &str) -> String {
        let err = load(demo()).expect_err("refused");
        let message = err.to_string();
        assert!(message.contains(key), "{message} should name {key}");
        message
    }

    #[test]
    fn production_refuses_weak_secrets_naming_the_variable() {
        figment::Jail::expect_with(|jail| {
            production_transport(jail);
            jail.set_env("DEMO__DATABASE__URL", "postgres://festival:festival@db/festival_demo?sslmode=require");
            let err = load(demo()).expect_err("dev database password refused");
            assert!(err.to_string().contains("DEMO__DATABASE__URL"), "{err}");

            jail.set_env("DEMO__DATABASE__URL", "postgres://festival:s3cr3t-Long@db/festival_demo?sslmode=require");
            let err = load(demo()).expect_err("dev token refused");
            assert!(err.to_string().contains("DEMO__TOKEN"), "{err}");

            jail.set_env("DEMO__TOKEN", "short");
            let err = load(demo()).expect_err("short token refused");
            assert!(err.to_string().contains("shorter than 32"), "{err}");

            jail.set_env("DEMO__TOKEN", "a-long-enough-production-secret-value-0123456789");
            let c = load(demo()).expect("strong secrets accepted");
            assert!(!c.common.reflection_enabled(), "reflection is off in production by default");
            Ok(())
        });
    }

    #[test]
    fn production_refuses_postgresql_without_tls() {
        figment::Jail::expect_with(|jail| {
            production_transport(jail);
            jail.set_env("DEMO__TOKEN", "a-long-enough-production-secret-value-0123456789");
            jail.set_env("DEMO__DATABASE__URL", "postgres://demo:s3cr3t-Long@db:5432/festival_demo");
            assert!(refusal("DEMO__DATABASE__URL").contains("sslmode"));
            for weak in ["disable", "allow", "prefer"] {
                jail.set_env(
                    "DEMO__DATABASE__URL",
                    format!("postgres://demo:s3cr3t-Long@db/festival_demo?sslmode={weak}"),
                );
                refusal("DEMO__DATABASE__URL");
            }
            for strong in ["require", "verify-ca", "VERIFY-FULL"] {
                jail.set_env(
                    "DEMO__DATABASE__URL",
                    format!("postgres://demo:s3cr3t-Long@db/festival_demo?application_name=demo&sslmode={strong}"),
                );
                load(demo()).expect("TLS to PostgreSQL accepted");
            }
            jail.set_env("DEMO__DATABASE__URL", "postgres://demo:s3cr3t-Long@db/festival_demo?ssl-mode=verify-full");
            load(demo()).expect("sqlx's other spelling accepted");
            Ok(())
        });
    }

    #[test]
    fn production_refuses_nats_without_credentials() {
        figment::Jail::expect_with(|jail| {
            production_transport(jail);
            jail.set_env("DEMO__TOKEN", "a-long-enough-production-secret-value-0123456789");
            jail.set_env("DEMO__NATS__USER", "");
            assert!(refusal("DEMO__NATS__USER").contains("required in production"));
            jail.set_env("DEMO__NATS__USER", "demo");
            jail.set_env("DEMO__NATS__PASSWORD", "");
            assert!(refusal("DEMO__NATS__PASSWORD").contains("required in production"));
            Ok(())
        });
    }

    #[test]
    fn production_refuses_nats_without_tls() {
        figment::Jail::expect_with(|jail| {
            production_transport(jail);
            jail.set_env("DEMO__TOKEN", "a-long-enough-production-secret-value-0123456789");
            jail.set_env("FESTIVAL__NATS__URL", "nats://nats.messaging:4222");
            assert!(refusal("DEMO__NATS__URL").contains("DEMO__NATS__REQUIRE_TLS"));
            jail.set_env("FESTIVAL__NATS__REQUIRE_TLS", "true");
            jail.set_env("FESTIVAL__NATS__CA_FILE", "/etc/festival/tls/ca.crt");
            let c = load(demo()).expect("nats:// with TLS required accepted");
            assert!(c.common.nats.tls());
            assert_eq!(c.common.nats.ca_file.as_deref(), Some("/etc/festival/tls/ca.crt"));
            Ok(())
        });
    }

    #[test]
    fn production_refuses_redis_without_a_password() {
        figment::Jail::expect_with(|jail| {
            production_transport(jail);
            jail.set_env("DEMO__TOKEN", "a-long-enough-production-secret-value-0123456789");
            jail.set_env("FESTIVAL__REDIS__URL", "redis://redis:6379");
            assert!(refusal("DEMO__REDIS__URL").contains("no password"));
            jail.set_env("FESTIVAL__REDIS__URL", "redis://festival@redis:6379");
            refusal("DEMO__REDIS__URL");
            jail.set_env("FESTIVAL__REDIS__URL", "redis://festival:@redis:6379/0");
            refusal("DEMO__REDIS__URL");
            jail.set_env("FESTIVAL__REDIS__URL", "rediss://:a-long-redis-password@redis:6380");
            assert!(refusal("DEMO__REDIS__URL").contains("sidecar"), "no TLS in this build: say how instead");
            jail.set_env("DEMO__REDIS__URL", "redis://festival:a-long-redis-password@127.0.0.1:6379/2");
            load(demo()).expect("a service's own URL with a user and password accepted");
            Ok(())
        });
    }

    #[test]
    fn production_with_transport_security_starts_and_development_is_unchanged() {
        figment::Jail::expect_with(|jail| {
            production_transport(jail);
            jail.set_env("DEMO__TOKEN", "a-long-enough-production-secret-value-0123456789");
            let c = load(demo()).expect("a production configuration that passes");
            assert_eq!(c.common.nats.user, "demo");
            assert_eq!(c.common.nats.password.expose(), "a-long-nats-password");
            assert!(c.common.nats.tls() && !c.common.nats.require_tls);
            assert!(!format!("{c:?}").contains("a-long-nats-password"), "the NATS password never prints");

            // Outside production the same gaps are fine: local defaults, no credentials, no TLS.
            jail.clear_env();
            let c = load(demo()).expect("development defaults");
            assert!(c.common.nats.user.is_empty() && c.common.nats.password.is_empty() && !c.common.nats.tls());
            jail.set_env("FESTIVAL_ENV", "test");
            jail.set_env("DEMO__REDIS__URL", "redis://127.0.0.1:6379");
            jail.set_env("DEMO__DATABASE__URL", "postgres://festival:festival@127.0.0.1:5432/festival_demo");
            load(demo()).expect("test environment unchanged");
            Ok(())
        });
    }

    #[test]
    fn config_files_without_the_transport_keys_still_parse() {
        let nats: NatsConfig = Figment::from(Toml::string(
            "url = \"nats://nats:4222\"\nsubject_prefix = \"\"\nstream_replicas = 1\n\
             [delivery]\nmax_deliveries = 5\nretry_backoff_ms = 500\nmax_backoff_ms = 30000\nack_wait_secs = 30\n",
        ))
        .extract()
        .expect("an older [nats] table parses");
        assert!(nats.user.is_empty() && nats.password.is_empty() && !nats.require_tls && nats.ca_file.is_none());
    }

    #[test]
    fn gateway_style_redis_check_names_the_given_variable() {
        let redis = RedisConfig { url: "redis://redis:6379".into(), key_prefix: String::new() };
        let err = redis.validate_production("GATEWAY__REDIS__URL").expect_err("no password");
        assert!(err.to_string().contains("GATEWAY__REDIS__URL"), "{err}");
        let redis =
            RedisConfig { url: "redis+unix:///run/redis.sock?pass=a-long-password".into(), key_prefix: String::new() };
        redis.validate_production("GATEWAY__REDIS__URL").expect("a unix socket with a password");
    }

    #[test]
    fn url_parts() {
        assert_eq!(url_password("redis://:pw@h:6379/0"), Some("pw"));
        assert_eq!(url_password("redis://u:p%40ss@h"), Some("p%40ss"));
        assert_eq!(url_password("redis://h:6379/0?x=a@b"), None, "an @ after the authority is not user info");
        assert_eq!(url_password("redis://u@h"), None);
        assert_eq!(query_param("postgres://h/db?a=1&sslmode=require#x", "sslmode"), Some("require"));
        assert_eq!(query_param("postgres://h/db?sslmode=disable&sslmode=verify-full", "sslmode"), Some("verify-full"));
        assert_eq!(query_param("postgres://h/db", "sslmode"), None);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
