//! Local verification of identity's access tokens: EdDSA only, `kid` required, keys from
//! identity's JWKS cached in memory and refetched when an unknown `kid` shows up (at most
//! once per [`Verifier::MIN_REFRESH_INTERVAL`], so a flood of made-up kids cannot turn
//! into a flood of key fetches).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use tokio::sync::{Mutex, RwLock};

use super::claims::{ACCESS_TOKEN_USE, AccessClaims, DEVICE_TOKEN_USE, DeviceClaims};
use super::principal::{Device, GateCaller, Principal};
use crate::clock::Clock;
use crate::codes;
use crate::config::AuthConfig;
use crate::error::{ApiError, ApiResult};
use festival_proto::identity::v1 as pb;

/// An Ed25519 public key as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// base64url (no padding) of the 32-byte key: the JWK `x`.
    pub x: String,
}

/// Where the verifier gets its keys: identity's GetJwks, or identity's own key store.
pub trait KeySource: Send + Sync + 'static {
    fn fetch(&self) -> BoxFuture<'static, anyhow::Result<Vec<PublicKey>>>;

    /// Sessions ended after `since` (Unix seconds; `None`: all the source still lists),
    /// or `None` when this source keeps no such list.
    fn revoked_sessions(&self, since: Option<i64>) -> BoxFuture<'static, anyhow::Result<Option<RevokedSessions>>> {
        let _ = since;
        Box::pin(async { Ok(None) })
    }
}

/// Pages of ended sessions one poll reads at most (200,000 sessions).
const MAX_REVOKED_PAGES: usize = 20;

/// Sessions that ended: their access tokens are refused from then on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedSessions {
    /// (session id, when it ended, Unix seconds).
    pub sessions: Vec<(uuid::Uuid, i64)>,
    /// The source's time of the answer (Unix seconds).
    pub as_of: i64,
}

/// Fetches keys from the identity service over gRPC.
#[derive(Clone)]
pub struct IdentityKeySource {
    client: pb::identity_service_client::IdentityServiceClient<tonic::transport::Channel>,
}

impl IdentityKeySource {
    /// Connects lazily: services start even while identity is not up yet.
    pub fn new(identity_url: &str) -> anyhow::Result<Self> {
        let channel = tonic::transport::Endpoint::from_shared(identity_url.to_owned())?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Self { client: pb::identity_service_client::IdentityServiceClient::new(channel) })
    }
}

impl KeySource for IdentityKeySource {
    fn fetch(&self) -> BoxFuture<'static, anyhow::Result<Vec<PublicKey>>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let jwks = client.get_jwks(pb::GetJwksRequest {}).await?.into_inner();
            Ok(jwks
                .keys
                .into_iter()
                .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
                .map(|k| PublicKey { kid: k.kid, x: k.x })
                .collect())
        })
    }

    /// Follows identity's pages (10,000 sessions each) up to [`MAX_REVOKED_PAGES`] per
    /// poll; beyond that the answer stops at the last session read, and the next poll
    /// goes on from there.
    fn revoked_sessions(&self, since: Option<i64>) -> BoxFuture<'static, anyhow::Result<Option<RevokedSessions>>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let mut request = pb::ListRevokedSessionsRequest {
                since: since.map(|s| prost_types::Timestamp { seconds: s, nanos: 0 }),
                ..Default::default()
            };
            let mut out = RevokedSessions::default();
            for page in 0..MAX_REVOKED_PAGES {
                let answer = client.list_revoked_sessions(request.clone()).await?.into_inner();
                if page == 0 {
                    out.as_of = answer.as_of.map_or(0, |t| t.seconds);
                }
                let last = answer.sessions.last().cloned();
                out.sessions.extend(
                    answer
                        .sessions
                        .into_iter()
                        .filter_map(|s| Some((s.session_id.parse().ok()?, s.revoke_time?.seconds))),
                );
                match last {
                    Some(last) if answer.more => {
                        if page + 1 == MAX_REVOKED_PAGES {
                            // Not all read: the next poll starts from the last one read.
                            out.as_of = last.revoke_time.as_ref().map_or(out.as_of, |t| t.seconds.min(out.as_of));
                        }
                        request = pb::ListRevokedSessionsRequest {
                            since: last.revoke_time,
                            after_session_id: last.session_id,
                        };
                    }
                    _ => break,
                }
            }
            Ok(Some(out))
        })
    }
}

struct Inner {
    source: Box<dyn KeySource>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_fetch: Mutex<Option<Instant>>,
    validation: Validation,
    clock: Clock,
    max_lifetime: i64,
    refresh_every: Duration,
    leeway: u64,
    verified: VerifiedTokens,
    revoked: std::sync::RwLock<Revoked>,
}

/// The sessions known to have ended, by id, with when (Unix seconds); and the source's
/// time of the last answer, from which the next poll asks.
#[derive(Debug, Default)]
struct Revoked {
    sessions: HashMap<uuid::Uuid, i64>,
    as_of: Option<i64>,
}

impl Revoked {
    /// Polls ask again from this far before the last answer: a session ended by a
    /// transaction that started before the answer but committed after it is not missed.
    const OVERLAP_SECS: i64 = 30;

    /// Adds an answer and forgets sessions ended longer ago than `keep_secs` before it
    /// (their tokens have expired anyway).
    fn merge(&mut self, answer: RevokedSessions, keep_secs: i64) {
        self.sessions.extend(answer.sessions);
        let horizon = answer.as_of.saturating_sub(keep_secs);
        self.sessions.retain(|_, at| *at >= horizon);
        self.as_of = Some(answer.as_of);
    }

    fn since(&self) -> Option<i64> {
        self.as_of.map(|t| t - Self::OVERLAP_SECS)
    }
}

/// Tokens whose signature already checked out, by their exact text. A scanner or a till
/// sends the same token with every request while it lives, and the Ed25519 check is the
/// costliest step of a scan. A hit still checks the token's times and kind; the cache is
/// emptied whenever a key is dropped or the key set is replaced (a revoked key's tokens
/// stop at once), and when it is full.
#[derive(Default)]
struct VerifiedTokens(std::sync::Mutex<Cached>);

/// The verified tokens, and how many times the key set changed: a token checked against a
/// key set that changed meanwhile is not kept.
#[derive(Default)]
struct Cached {
    generation: u64,
    tokens: HashMap<Arc<str>, Arc<serde_json::Value>>,
}

impl VerifiedTokens {
    /// Enough for every live token of a busy festival's devices and staff.
    const CAPACITY: usize = 10_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, token: &str) -> Option<Arc<serde_json::Value>> {
        self.lock().tokens.get(token).cloned()
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps a token verified against the key set of `generation`, if it is still current.
    fn insert(&self, token: &str, claims: Arc<serde_json::Value>, generation: u64) {
        let mut cached = self.lock();
        if cached.generation != generation {
            return;
        }
        if cached.tokens.len() >= Self::CAPACITY {
            cached.tokens.clear();
        }
        cached.tokens.insert(token.into(), claims);
    }

    /// The key set changed: every token is checked again.
    fn clear(&self) {
        let mut cached = self.lock();
        cached.generation += 1;
        cached.tokens.clear();
    }
}

/// Verifies access tokens. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl Verifier {
    pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

    pub fn new(config: &AuthConfig, source: impl KeySource) -> Self {
        Self::with_clock(config, source, Clock::system())
    }

    /// A verifier whose refetch interval runs on `clock` (tests use a manual one).
    pub fn with_clock(config: &AuthConfig, source: impl KeySource, clock: Clock) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway_secs;
        Self {
            inner: Arc::new(Inner {
                source: Box::new(source),
                keys: RwLock::new(HashMap::new()),
                last_fetch: Mutex::new(None),
                validation,
                clock,
                max_lifetime: i64::try_from(config.max_token_lifetime_secs.saturating_add(config.leeway_secs))
                    .unwrap_or(i64::MAX),
                refresh_every: Duration::from_secs(config.keys_refresh_secs.max(1)),
                leeway: config.leeway_secs,
                verified: VerifiedTokens::default(),
                revoked: std::sync::RwLock::default(),
            }),
        }
    }

    /// Verifies a bearer token and returns the caller.
    pub async fn verify(&self, token: &str) -> ApiResult<Principal> {
        let claims: AccessClaims = self.verified_claims(token, ACCESS_TOKEN_USE).await?;
        self.live(claims)
    }

    /// The caller of a token whose session has not ended (ERR_2005 once it has).
    fn live(&self, claims: AccessClaims) -> ApiResult<Principal> {
        if self.session_ended(claims.sid) {
            return Err(ApiError::new(codes::SESSION_REVOKED));
        }
        Ok(claims.into())
    }

    /// Whether the session is known to have ended (a stream opened with its token checks
    /// this as it goes).
    pub fn session_ended(&self, session_id: uuid::Uuid) -> bool {
        self.inner.revoked.read().unwrap_or_else(|e| e.into_inner()).sessions.contains_key(&session_id)
    }

    /// Asks the key source which sessions ended since the last answer (see
    /// [`KeySource::revoked_sessions`]); their tokens are refused from then on. Returns
    /// whether the source answered.
    pub async fn refresh_revoked_sessions(&self) -> bool {
        let since = self.inner.revoked.read().unwrap_or_else(|e| e.into_inner()).since();
        match self.inner.source.revoked_sessions(since).await {
            Ok(Some(answer)) => {
                // Kept while a token of the session can live, with margin for a refresh
                // that committed a little after the revocation's stamp and for clocks.
                let keep = self.inner.max_lifetime.saturating_add(2 * Revoked::OVERLAP_SECS);
                self.inner.revoked.write().unwrap_or_else(|e| e.into_inner()).merge(answer, keep);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %format_args!("{e:#}"), "could not fetch the ended sessions");
                false
            }
        }
    }

    /// Polls the ended sessions every `every` until `shutdown` (the first poll at once).
    pub fn follow_session_revocations(&self, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
        let verifier = self.clone();
        tokio::spawn(async move {
            loop {
                verifier.refresh_revoked_sessions().await;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    /// Verifies a device token (identity's, `token_use` "device") and returns the device.
    pub async fn verify_device(&self, token: &str) -> ApiResult<Device> {
        let claims: DeviceClaims = self.verified_claims(token, DEVICE_TOKEN_USE).await?;
        Device::try_from(claims).map_err(|()| invalid())
    }

    /// Verifies the bearer token of a request where a person or a paired device may act:
    /// the token's own `token_use` (under identity's signature) says which it is.
    pub async fn authenticate_gate<T>(&self, request: &tonic::Request<T>) -> ApiResult<GateCaller> {
        let token = bearer_token(request.metadata()).ok_or_else(|| ApiError::new(codes::UNAUTHENTICATED))?;
        let claims: serde_json::Value = self.verified_claims(token, "").await?;
        match claims.get("token_use").and_then(|u| u.as_str()) {
            Some(ACCESS_TOKEN_USE) => {
                let claims = serde_json::from_value::<AccessClaims>(claims).map_err(|_| invalid())?;
                self.live(claims).map(GateCaller::Person)
            }
            Some(DEVICE_TOKEN_USE) => serde_json::from_value::<DeviceClaims>(claims)
                .ok()
                .and_then(|c| Device::try_from(c).ok())
                .map(GateCaller::Device)
                .ok_or_else(invalid),
            _ => Err(invalid()),
        }
    }

    /// The claims of a token signed by one of identity's keys, unexpired, of `token_use`
    /// (any, when empty: the caller tells the kinds apart) and no longer-lived than
    /// identity issues them.
    async fn verified_claims<C: serde::de::DeserializeOwned + TokenUse>(
        &self,
        token: &str,
        token_use: &str,
    ) -> ApiResult<C> {
        if self.keys_are_stale().await {
            // Not forced: of many requests noticing at once, one fetches. If identity is
            // unreachable the last key set stays in use until a fetch succeeds.
            self.refresh(false).await;
        }
        let claims = match self.inner.verified.get(token) {
            Some(claims) => {
                check_times(&claims, jsonwebtoken::get_current_timestamp(), self.inner.leeway)?;
                claims
            }
            None => {
                let generation = self.inner.verified.generation();
                let claims = Arc::new(self.verify_signature(token).await?);
                self.inner.verified.insert(token, claims.clone(), generation);
                claims
            }
        };
        let claims = C::deserialize(&*claims).map_err(|_| invalid())?;
        let (use_, iat, exp) = claims.token_use_and_times().ok_or_else(invalid)?;
        if !token_use.is_empty() && use_ != token_use {
            return Err(invalid());
        }
        // However it was signed, no token lives longer than identity issues them.
        if exp.saturating_sub(iat) > self.inner.max_lifetime {
            return Err(invalid());
        }
        Ok(claims)
    }

    /// The claims of a token signed by one of identity's keys and within its times.
    async fn verify_signature(&self, token: &str) -> ApiResult<serde_json::Value> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        let key = match self.key(&kid).await {
            Some(key) => key,
            None => {
                self.refresh(false).await;
                self.key(&kid).await.ok_or_else(invalid)?
            }
        };
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &self.inner.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => ApiError::new(codes::TOKEN_EXPIRED),
                    _ => invalid(),
                }
            })?;
        Ok(data.claims)
    }

    /// Verifies the `authorization: Bearer …` metadata of a request.
    pub async fn authenticate<T>(&self, request: &tonic::Request<T>) -> ApiResult<Principal> {
        let token = bearer_token(request.metadata()).ok_or_else(|| ApiError::new(codes::UNAUTHENTICATED))?;
        self.verify(token).await
    }

    /// Refetches the key set (`force` skips the rate limit, e.g. right after a rotation).
    /// Returns whether the key set was replaced.
    pub async fn refresh(&self, force: bool) -> bool {
        let mut last = self.inner.last_fetch.lock().await;
        let now = self.inner.clock.instant();
        if !force && last.is_some_and(|t| now.saturating_duration_since(t) < Self::MIN_REFRESH_INTERVAL) {
            return false;
        }
        *last = Some(now);
        match self.inner.source.fetch().await {
            Ok(keys) => {
                let mut map = HashMap::new();
                for k in keys {
                    match DecodingKey::from_ed_components(&k.x) {
                        Ok(key) => {
                            map.insert(k.kid, key);
                        }
                        Err(e) => {
                            tracing::warn!(kid = %k.kid, error = %e, "ignoring malformed public key")
                        }
                    }
                }
                *self.inner.keys.write().await = map;
                self.inner.verified.clear();
                true
            }
            Err(e) => {
                tracing::warn!(error = %format_args!("{e:#}"), "could not fetch signing keys");
                false
            }
        }
    }

    /// After a revocation announcement: stops trusting the announced key ids at once (a
    /// forged announcement costs a refetch when the key is next seen), then refetches the
    /// key set as soon as the refetch rate limit allows, retrying with back-off until a
    /// fetch succeeds (up to about five minutes; the timer refresh goes on after that).
    pub async fn follow_revocation(&self, kids: &[String]) {
        self.forget_keys(kids).await;
        let since = self.inner.last_fetch.lock().await.map(|t| self.inner.clock.instant().saturating_duration_since(t));
        if let Some(wait) = since.and_then(|since| Self::MIN_REFRESH_INTERVAL.checked_sub(since)) {
            tokio::time::sleep(wait).await;
        }
        let mut backoff = Self::MIN_REFRESH_INTERVAL;
        for _ in 0..10 {
            if self.refresh(true).await {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
        tracing::error!("could not refetch signing keys after a revocation; the timer refresh will retry");
    }

    /// Stops trusting these key ids until a fetch brings them back.
    pub async fn forget_keys(&self, kids: &[String]) {
        let mut keys = self.inner.keys.write().await;
        for kid in kids {
            keys.remove(kid);
        }
        self.inner.verified.clear();
    }

    /// The key set was never fetched, or not for `keys_refresh_secs`.
    async fn keys_are_stale(&self) -> bool {
        let last = *self.inner.last_fetch.lock().await;
        last.is_none_or(|t| self.inner.clock.instant().saturating_duration_since(t) >= self.inner.refresh_every)
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.inner.keys.read().await.get(kid).cloned()
    }
}

/// The fields every kind of token is checked on, whatever else it carries.
trait TokenUse {
    fn token_use_and_times(&self) -> Option<(&str, i64, i64)>;
}

impl TokenUse for AccessClaims {
    fn token_use_and_times(&self) -> Option<(&str, i64, i64)> {
        Some((&self.token_use, self.iat, self.exp))
    }
}

impl TokenUse for DeviceClaims {
    fn token_use_and_times(&self) -> Option<(&str, i64, i64)> {
        Some((&self.token_use, self.iat, self.exp))
    }
}

impl TokenUse for serde_json::Value {
    fn token_use_and_times(&self) -> Option<(&str, i64, i64)> {
        Some((self.get("token_use")?.as_str()?, self.get("iat")?.as_i64()?, self.get("exp")?.as_i64()?))
    }
}

/// A cached token's `exp` and `nbf` at `now` (Unix seconds), checked as its signature
/// check did the first time.
fn check_times(claims: &serde_json::Value, now: u64, leeway: u64) -> ApiResult<()> {
    let time = |name: &str| claims.get(name).and_then(serde_json::Value::as_u64).ok_or_else(invalid);
    if time("exp")? < now.saturating_sub(leeway) {
        return Err(ApiError::new(codes::TOKEN_EXPIRED));
    }
    if time("nbf")? > now.saturating_add(leeway) {
        return Err(invalid());
    }
    Ok(())
}

fn invalid() -> ApiError {
    ApiError::new(codes::INVALID_TOKEN)
}

/// The token of an `authorization: Bearer <token>` header, if any.
pub fn bearer_token(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_sessions_are_kept_while_their_tokens_can_live_and_polls_overlap() {
        let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let mut revoked = Revoked::default();
        assert_eq!(revoked.since(), None, "the first poll asks for the whole window");
        revoked.merge(RevokedSessions { sessions: vec![(a, 1_000)], as_of: 1_010 }, 900);
        assert_eq!(revoked.since(), Some(1_010 - Revoked::OVERLAP_SECS));
        revoked.merge(RevokedSessions { sessions: vec![(a, 1_000), (b, 1_500)], as_of: 1_600 }, 900);
        assert_eq!(revoked.sessions.len(), 2, "a repeated answer changes nothing");
        revoked.merge(RevokedSessions { sessions: vec![], as_of: 1_901 }, 900);
        assert!(!revoked.sessions.contains_key(&a), "older than a token lives: forgotten");
        assert!(revoked.sessions.contains_key(&b));
    }

    #[test]
    fn a_cached_token_expires_and_matures_on_time() {
        let claims = serde_json::json!({"exp": 1_000, "nbf": 100});
        let code = |now| check_times(&claims, now, 30).err().map(|e| e.code.code);
        assert_eq!(code(500), None);
        assert_eq!(code(1_030), None, "within the leeway");
        assert_eq!(code(1_031), Some("ERR_2007"), "expired gets its own code");
        assert_eq!(code(70), None, "within the leeway");
        assert_eq!(code(69), Some("ERR_2002"), "not yet valid");
        let code = check_times(&serde_json::json!({"exp": "soon", "nbf": 100}), 500, 30).err().map(|e| e.code.code);
        assert_eq!(code, Some("ERR_2002"), "times that are not numbers");
    }
}
