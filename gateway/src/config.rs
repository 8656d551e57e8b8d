//! Gateway configuration (`GATEWAY__*`, layered like every service's; see docs/CONFIGURATION.md).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use festival_platform::config::{AuthConfig, ConfigError, Environment, RedisConfig, TelemetryConfig, load_layers};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub env: Environment,
    /// HTTP/1.1 and HTTP/2 (h2c) listen address: REST, gRPC-web and gRPC on one port.
    pub listen: SocketAddr,
    /// Upstream name (a service's package segment) → gRPC URL.
    pub upstreams: BTreeMap<String, String>,
    /// Value of the `X-API-Version` response header.
    pub api_version: String,
    /// gRPC methods only services call each other with, never served to clients
    /// (`/package.Service/Method`): a payment's checkout is opened by the service that
    /// owns what is paid for, never by a client with its own amount.
    pub internal_methods: Vec<String>,
    pub cors: CorsConfig,
    pub limits: LimitsConfig,
    pub rate_limit: RateLimitConfig,
    pub cookies: CookieConfig,
    pub redis: RedisConfig,
    pub telemetry: TelemetryConfig,
    /// How the gateway recognises identity's access tokens (the same settings as the
    /// services'); it verifies them only to key rate limits by account.
    pub auth: AuthConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorsConfig {
    /// Origins allowed to call with credentials (browsers). Empty: no CORS headers.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitsConfig {
    /// Largest REST request body.
    pub max_body_bytes: usize,
    /// Deadline of a REST call, sent upstream as `grpc-timeout` (streams are not limited).
    pub request_timeout_ms: u64,
    /// Interval of SSE comments and WebSocket pings on live streams.
    pub stream_heartbeat_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Length of a fixed window.
    pub window_secs: u64,
    /// Requests per client per route per window, unless the route has its own budget.
    pub default_budget: u64,
    /// Per-route budgets, keyed `"POST /v1/auth/login"` (REST template) or
    /// `"/festival.identity.v1.IdentityService/Login"` (gRPC path).
    pub routes: BTreeMap<String, u64>,
    /// Proxies in front of the gateway that append to `X-Forwarded-For` (an ingress: 1).
    /// The client is the address that many hops back from the connection's peer; 0 (no
    /// proxy) uses the peer and ignores the header, which clients can write.
    pub trusted_proxy_hops: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CookieConfig {
    /// `Secure` attribute (browsers accept Secure cookies from http://localhost too).
    pub secure: bool,
    pub access_name: String,
    pub refresh_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            upstreams: BTreeMap::from([
                ("identity".to_owned(), "http://127.0.0.1:50051".to_owned()),
                ("program".to_owned(), "http://127.0.0.1:50052".to_owned()),
                ("ticketing".to_owned(), "http://127.0.0.1:50053".to_owned()),
                ("payments".to_owned(), "http://127.0.0.1:50054".to_owned()),
                ("cashless".to_owned(), "http://127.0.0.1:50055".to_owned()),
            ]),
            api_version: "1".into(),
            internal_methods: vec![
                "/festival.payments.v1.PaymentsService/CreateCheckout".into(),
                // Services poll it; clients have no business reading who signed out when.
                "/festival.identity.v1.IdentityService/ListRevokedSessions".into(),
            ],
            cors: CorsConfig {
                allowed_origins: vec![
                    "http://localhost:3000".into(),
                    "http://127.0.0.1:3000".into(),
                    "http://localhost:5173".into(),
                ],
            },
            limits: LimitsConfig {
                max_body_bytes: 1024 * 1024,
                request_timeout_ms: 15_000,
                stream_heartbeat_ms: 15_000,
            },
            rate_limit: RateLimitConfig {
                enabled: true,
                window_secs: 60,
                default_budget: 600,
                routes: BTreeMap::from([
                    ("POST /v1/auth/login".to_owned(), 20),
                    ("POST /v1/auth/register".to_owned(), 10),
                    ("POST /v1/auth/mfa".to_owned(), 20),
                    ("POST /v1/auth/password-reset".to_owned(), 10),
                    ("POST /v1/auth/password-reset:confirm".to_owned(), 10),
                    ("POST /v1/auth/email:verify".to_owned(), 10),
                    ("POST /v1/auth/oauth/{provider}:start".to_owned(), 20),
                    ("POST /v1/auth/oauth/{provider}:complete".to_owned(), 20),
                    ("/festival.identity.v1.IdentityService/Login".to_owned(), 20),
                    ("/festival.identity.v1.IdentityService/VerifyMfa".to_owned(), 20),
                    ("/festival.identity.v1.IdentityService/RequestPasswordReset".to_owned(), 10),
                    ("/festival.identity.v1.IdentityService/ResetPassword".to_owned(), 10),
                    ("/festival.identity.v1.IdentityService/VerifyEmail".to_owned(), 10),
                    ("/festival.identity.v1.IdentityService/Register".to_owned(), 10),
                    ("/festival.identity.v1.IdentityService/StartOAuthLogin".to_owned(), 20),
                    ("/festival.identity.v1.IdentityService/CompleteOAuthLogin".to_owned(), 20),
                    // Stripe delivers many webhooks from a few addresses during an on-sale
                    // rush; the default budget per client would drop them.
                    ("POST /webhooks/stripe".to_owned(), 60_000),
                ]),
                trusted_proxy_hops: 0,
            },
            cookies: CookieConfig {
                secure: true,
                access_name: "__Host-festival_at".into(),
                refresh_name: "__Host-festival_rt".into(),
            },
            redis: RedisConfig { url: "redis://127.0.0.1:6379".into(), key_prefix: String::new() },
            telemetry: TelemetryConfig { log_format: "json".into(), log_level: "info".into(), otlp_endpoint: None },
            auth: festival_platform::config::CommonConfig::local_defaults("gateway", 0).auth,
        }
    }
}

impl Config {
    pub fn load() -> Result<Self, ConfigError> {
        let config: Config = load_layers("gateway", Config::default())?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid { key: key.into(), reason: reason.into() };
        if self.env == Environment::Production {
            if !self.cookies.secure {
                return Err(invalid("GATEWAY__COOKIES__SECURE", "must be true in production"));
            }
            if self.cors.allowed_origins.iter().any(|o| o == "*" || o.starts_with("http://")) {
                return Err(invalid("GATEWAY__CORS__ALLOWED_ORIGINS", "production origins must be https and explicit"));
            }
            self.redis.validate_production("GATEWAY__REDIS__URL")?;
        }
        // Browsers drop `__Host-` cookies that are not Secure.
        if !self.cookies.secure
            && [&self.cookies.access_name, &self.cookies.refresh_name].iter().any(|n| n.starts_with("__Host-"))
        {
            return Err(invalid("GATEWAY__COOKIES__SECURE", "`__Host-` cookie names need Secure cookies"));
        }
        if self.upstreams.is_empty() {
            return Err(invalid("GATEWAY__UPSTREAMS__<NAME>", "at least one upstream is needed"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> Config {
        let mut config = Config { env: Environment::Production, ..Config::default() };
        config.cors.allowed_origins = vec!["https://tickets.festival.example".into()];
        config.redis.url = "redis://:a-long-redis-password@redis:6379".into();
        config
    }

    #[test]
    fn production_refuses_insecure_cookies_and_redis_without_a_password() {
        assert!(production().validate().is_ok());
        let mut no_password = production();
        no_password.redis.url = "redis://redis:6379".into();
        assert!(no_password.validate().expect_err("refused").to_string().contains("GATEWAY__REDIS__URL"));
        let mut insecure = production();
        insecure.cookies.secure = false;
        assert!(insecure.validate().expect_err("refused").to_string().contains("GATEWAY__COOKIES__SECURE"));
        let mut host_cookies_over_http = Config::default();
        host_cookies_over_http.cookies.secure = false;
        assert!(host_cookies_over_http.validate().is_err(), "__Host- names need Secure, in any environment");
    }
}
