//! The sign-in providers, seen from identity: the consent page's URL, and what a code
//! says of the provider's account. Google is OpenID Connect (the ID token in the token
//! answer, checked against Google's published keys); GitHub is OAuth 2 (the account and
//! its primary address from its API). The rules live in [`crate::domain::oauth`].

pub mod client;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::config::{OAuthConfig, ProviderConfig};
use crate::domain::oauth::{
    self, Authorize, Expected, GithubEmail, GithubUser, IdTokenClaims, Provider, ProviderAccount,
};
use client::{Answer, HttpClient, USER_AGENT};

/// Why a provider's answer is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The provider refused the code (spent, expired, a wrong PKCE verifier, another
    /// client's): ERR_2019.
    Refused(String),
    /// The ID token failed a check (signature, issuer, audience, expiry, nonce): ERR_2020.
    IdToken(String),
    /// No usable answer (unreachable, a server error, garbage): ERR_2026.
    Unavailable(String),
}

/// Both providers, their client and Google's keys.
pub struct Providers {
    http: HttpClient,
    google: ProviderConfig,
    github: ProviderConfig,
    google_keys: KeyCache,
    leeway_secs: i64,
}

impl Providers {
    pub fn new(config: &OAuthConfig, leeway_secs: u64) -> Self {
        Self {
            http: HttpClient::new(Duration::from_secs(config.request_timeout_secs)),
            google: config.google.clone(),
            github: config.github.clone(),
            google_keys: KeyCache::new(config.google.jwks_url.clone()),
            leeway_secs: i64::try_from(leeway_secs).unwrap_or(60),
        }
    }

    /// The provider's configuration, if it is on.
    pub fn config(&self, provider: Provider) -> Option<&ProviderConfig> {
        let config = match provider {
            Provider::Google => &self.google,
            Provider::Github => &self.github,
        };
        config.enabled().then_some(config)
    }

    /// The consent page for a flow; `None` when the provider is off.
    pub fn authorization_url(
        &self,
        provider: Provider,
        state: &str,
        code_verifier: &str,
        nonce: &str,
    ) -> Option<String> {
        let config = self.config(provider)?;
        Some(oauth::authorization_url(&Authorize {
            endpoint: &config.authorize_url,
            client_id: &config.client_id,
            redirect_uri: &config.redirect_uri,
            scopes: &config.scopes,
            state,
            code_challenge: &oauth::code_challenge(code_verifier),
            nonce: (provider == Provider::Google).then_some(nonce),
        }))
    }

    /// Exchanges the code (with the flow's PKCE verifier) and says whose account it is.
    /// `now`: seconds since the epoch, the service's clock.
    pub async fn account(
        &self,
        provider: Provider,
        code: &str,
        code_verifier: &str,
        nonce: &str,
        now: i64,
    ) -> Result<ProviderAccount, Failure> {
        let config = self.config(provider).ok_or_else(|| Failure::Unavailable("provider off".into()))?;
        let tokens = self.exchange(config, code, code_verifier).await?;
        match provider {
            Provider::Google => {
                let id_token = tokens.id_token.ok_or_else(|| Failure::Unavailable("no ID token".into()))?;
                self.google_account(config, &id_token, nonce, now).await
            }
            Provider::Github => self.github_account(&tokens.access_token).await,
        }
    }

    /// The token endpoint: the code and the verifier for the provider's tokens.
    async fn exchange(&self, config: &ProviderConfig, code: &str, code_verifier: &str) -> Result<Tokens, Failure> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &config.redirect_uri)
            .append_pair("client_id", &config.client_id)
            .append_pair("client_secret", config.client_secret.expose())
            .append_pair("code_verifier", code_verifier)
            .finish();
        let request = http::Request::post(&config.token_url)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| Failure::Unavailable(format!("token request: {e}")))?;
        let answer = self.send(request).await?;
        if answer.status.is_server_error() {
            return Err(Failure::Unavailable(format!("token endpoint answered {}", answer.status)));
        }
        // GitHub answers a refused code with 200 and an `error` field; others with 400.
        let parsed: TokenAnswer = serde_json::from_slice(&answer.body).unwrap_or_default();
        if let Some(error) = parsed.error.filter(|e| !e.is_empty()) {
            return Err(Failure::Refused(error));
        }
        if answer.status.is_client_error() {
            return Err(Failure::Refused(format!("token endpoint answered {}", answer.status)));
        }
        if !answer.status.is_success() {
            return Err(Failure::Unavailable(format!("token endpoint answered {}", answer.status)));
        }
        let access_token = parsed.access_token.ok_or_else(|| Failure::Unavailable("no access token".into()))?;
        Ok(Tokens { access_token, id_token: parsed.id_token })
    }

    async fn google_account(
        &self,
        config: &ProviderConfig,
        id_token: &str,
        nonce: &str,
        now: i64,
    ) -> Result<ProviderAccount, Failure> {
        let bad = |why: &str| Failure::IdToken(why.to_owned());
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| bad("malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(bad("algorithm"));
        }
        let kid = header.kid.ok_or_else(|| bad("no key id"))?;
        let key = self.google_keys.key(&self.http, &kid).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        // Times, audience and issuer are checked below, on the service's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => bad("signature"),
                _ => bad("malformed"),
            })?
            .claims;
        let expected = Expected {
            issuer: &config.issuer,
            client_id: &config.client_id,
            nonce,
            now,
            leeway_secs: self.leeway_secs,
        };
        oauth::check_id_token(&claims, &expected).map_err(bad)
    }

    async fn github_account(&self, access_token: &str) -> Result<ProviderAccount, Failure> {
        let user: GithubUser = self.get_json(&self.github.user_url, access_token).await?;
        let emails: Vec<GithubEmail> = self.get_json(&self.github.emails_url, access_token).await?;
        oauth::github_account(&user, &emails).map_err(|why| Failure::Unavailable(why.to_owned()))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str, access_token: &str) -> Result<T, Failure> {
        let request = http::Request::get(url)
            .header(http::header::AUTHORIZATION, format!("Bearer {access_token}"))
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(Full::default())
            .map_err(|e| Failure::Unavailable(format!("request: {e}")))?;
        let answer = self.send(request).await?;
        if !answer.status.is_success() {
            return Err(Failure::Unavailable(format!("{url} answered {}", answer.status)));
        }
        serde_json::from_slice(&answer.body).map_err(|e| Failure::Unavailable(format!("{url}: {e}")))
    }

    async fn send(&self, request: http::Request<Full<Bytes>>) -> Result<Answer, Failure> {
        self.http.send(request).await.map_err(|e| Failure::Unavailable(format!("{e:#}")))
    }
}

struct Tokens {
    access_token: String,
    id_token: Option<String>,
}

#[derive(Default, Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A provider's signing keys (its JWKS), fetched when first needed, again after an hour,
/// and again when a token names a key not seen yet — at most once a minute for that, so
/// tokens with made-up key ids cannot make identity hammer the provider. A failed fetch
/// keeps the keys it had, for a day at most (and is not retried for a minute, failed or
/// not): a provider's hiccup does not stop sign-ins with keys already known.
struct KeyCache {
    url: String,
    keys: RwLock<Option<Fetched>>,
    /// Held while fetching; when a fetch was last tried.
    fetching: Mutex<Option<Instant>>,
}

struct Fetched {
    keys: HashMap<String, DecodingKey>,
    /// When these keys were fetched.
    at: Instant,
}

impl KeyCache {
    const FRESH_FOR: Duration = Duration::from_secs(3600);
    const REFETCH_AFTER: Duration = Duration::from_secs(60);
    const STALE_FOR: Duration = Duration::from_secs(24 * 3600);

    fn new(url: String) -> Self {
        Self { url, keys: RwLock::new(None), fetching: Mutex::new(None) }
    }

    async fn key(&self, http: &HttpClient, kid: &str) -> Result<DecodingKey, Failure> {
        if let Some(key) = self.cached(kid, Self::FRESH_FOR).await {
            return Ok(key);
        }
        let mut last_try = self.fetching.lock().await;
        // Fetched meanwhile, or tried so lately that an unknown key stays unknown.
        if let Some(key) = self.cached(kid, Self::FRESH_FOR).await {
            return Ok(key);
        }
        if !last_try.is_some_and(|at| at.elapsed() < Self::REFETCH_AFTER) {
            *last_try = Some(Instant::now());
            match self.fetch(http).await {
                Ok(keys) => *self.keys.write().await = Some(Fetched { keys, at: Instant::now() }),
                Err(failure) => {
                    if self.keys.read().await.is_none() {
                        return Err(failure);
                    }
                    tracing::warn!(?failure, "provider keys not refetched; the known ones stay");
                }
            }
        }
        // Keys up to a day old still verify while no fresh set can be had.
        self.cached(kid, Self::STALE_FOR).await.ok_or_else(|| Failure::IdToken("unknown key".into()))
    }

    async fn cached(&self, kid: &str, fresh_for: Duration) -> Option<DecodingKey> {
        let keys = self.keys.read().await;
        keys.as_ref().filter(|f| f.at.elapsed() < fresh_for).and_then(|f| f.keys.get(kid).cloned())
    }

    async fn fetch(&self, http: &HttpClient) -> Result<HashMap<String, DecodingKey>, Failure> {
        let request = http::Request::get(&self.url)
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(Full::default())
            .map_err(|e| Failure::Unavailable(format!("key request: {e}")))?;
        let answer = http.send(request).await.map_err(|e| Failure::Unavailable(format!("keys: {e:#}")))?;
        if !answer.status.is_success() {
            return Err(Failure::Unavailable(format!("keys answered {}", answer.status)));
        }
        let set: RawKeySet =
            serde_json::from_slice(&answer.body).map_err(|e| Failure::Unavailable(format!("keys: {e}")))?;
        Ok(signing_keys(&set))
    }
}

/// A key set read key by key: one key of a kind this build does not know leaves the
/// others usable.
#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

/// The RSA signature keys of a key set, by key id (others are not for ID tokens).
fn signing_keys(set: &RawKeySet) -> HashMap<String, DecodingKey> {
    set.keys
        .iter()
        .filter_map(|raw| serde_json::from_value::<Jwk>(raw.clone()).ok())
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter(|jwk| matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature)))
        .filter(|jwk| matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)))
        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(&jwk).ok()?)))
        .collect()
}
