//! Hostile tokens against the platform kit's verifier. Keys are generated here; the key
//! source is a static JWKS, as identity would publish it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use festival_platform::auth::{ACCESS_TOKEN_USE, AccessClaims, KeySource, MembershipClaim, PublicKey, Role, Verifier};
use festival_platform::codes;
use festival_platform::config::CommonConfig;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

struct StaticKeys(Vec<PublicKey>);

impl KeySource for StaticKeys {
    fn fetch(&self) -> BoxFuture<'static, anyhow::Result<Vec<PublicKey>>> {
        let keys = self.0.clone();
        Box::pin(async move { Ok(keys) })
    }
}

struct Key {
    kid: String,
    signing: ed25519_dalek::SigningKey,
}

impl Key {
    fn new(kid: &str) -> Self {
        Self { kid: kid.into(), signing: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng) }
    }
    fn public(&self) -> PublicKey {
        PublicKey { kid: self.kid.clone(), x: URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes()) }
    }
    fn sign(&self, claims: &serde_json::Value) -> String {
        let der = self.signing.to_pkcs8_der().expect("pkcs8");
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).expect("sign")
    }
}

fn claims(offset_exp: i64, offset_nbf: i64, token_use: &str) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    serde_json::to_value(AccessClaims {
        iss: "festival-identity".into(),
        aud: "festival".into(),
        sub: Uuid::now_v7(),
        exp: now + offset_exp,
        nbf: now + offset_nbf,
        iat: now,
        jti: Uuid::now_v7(),
        sid: Uuid::now_v7(),
        token_use: token_use.into(),
        role: Role::User,
        mem: vec![MembershipClaim::new(Uuid::from_u128(1), Role::Cashier)],
        amr: vec![],
    })
    .expect("claims")
}

fn verifier(keys: Vec<PublicKey>) -> Verifier {
    Verifier::new(&CommonConfig::local_defaults("test", 50999).auth, StaticKeys(keys))
}

fn b64(json: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

async fn refused(v: &Verifier, token: &str) -> &'static str {
    v.verify(token).await.expect_err("token must be refused").code.code
}

#[tokio::test]
async fn a_genuine_token_is_accepted_with_its_memberships() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    let principal = v.verify(&key.sign(&claims(900, 0, ACCESS_TOKEN_USE))).await.expect("valid");
    assert_eq!(principal.role, Role::User);
    assert!(principal.has(Uuid::from_u128(1), Role::Cashier));
    assert!(!principal.has(Uuid::from_u128(2), Role::Cashier));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": "k1"});
    let token = format!("{}.{}.", b64(&header), b64(&claims(900, 0, ACCESS_TOKEN_USE)));
    assert_eq!(refused(&v, &token).await, codes::INVALID_TOKEN.code);
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let key = Key::new("k1");
    let public = key.public();
    let v = verifier(vec![public.clone()]);
    // The classic key-confusion attack: use the published key as an HMAC secret.
    for secret in [public.x.as_bytes().to_vec(), key.signing.verifying_key().to_bytes().to_vec()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let token =
            jsonwebtoken::encode(&header, &claims(900, 0, ACCESS_TOKEN_USE), &EncodingKey::from_secret(&secret))
                .expect("sign");
        assert_eq!(refused(&v, &token).await, codes::INVALID_TOKEN.code);
    }
}

#[tokio::test]
async fn an_unknown_kid_is_refused_after_a_refetch() {
    let known = Key::new("k1");
    let stranger = Key::new("k-unknown");
    let v = verifier(vec![known.public()]);
    assert_eq!(refused(&v, &stranger.sign(&claims(900, 0, ACCESS_TOKEN_USE))).await, codes::INVALID_TOKEN.code);
    // A token without any kid is refused too.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = None;
    let der = known.signing.to_pkcs8_der().expect("pkcs8");
    let token =
        jsonwebtoken::encode(&header, &claims(900, 0, ACCESS_TOKEN_USE), &EncodingKey::from_ed_der(der.as_bytes()))
            .expect("sign");
    assert_eq!(refused(&v, &token).await, codes::INVALID_TOKEN.code);
}

#[tokio::test]
async fn a_key_signed_by_someone_else_under_a_known_kid_is_refused() {
    let real = Key::new("k1");
    let forger = Key::new("k1");
    let v = verifier(vec![real.public()]);
    assert_eq!(refused(&v, &forger.sign(&claims(900, 0, ACCESS_TOKEN_USE))).await, codes::INVALID_TOKEN.code);
}

#[tokio::test]
async fn expired_tokens_get_their_own_code() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    // Beyond the 30 s leeway.
    assert_eq!(refused(&v, &key.sign(&claims(-120, -1000, ACCESS_TOKEN_USE))).await, codes::TOKEN_EXPIRED.code);
}

#[tokio::test]
async fn tokens_not_yet_valid_are_refused() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    assert_eq!(refused(&v, &key.sign(&claims(3600, 600, ACCESS_TOKEN_USE))).await, codes::INVALID_TOKEN.code);
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    let token = key.sign(&claims(900, 0, ACCESS_TOKEN_USE));
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    payload["role"] = "ADMIN".into();
    let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_eq!(refused(&v, &forged).await, codes::INVALID_TOKEN.code);
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    // Signed by the real key but minted for another use.
    assert_eq!(refused(&v, &key.sign(&claims(900, 0, "refresh"))).await, codes::INVALID_TOKEN.code);
    // Identity's actual refresh tokens are opaque strings.
    assert_eq!(refused(&v, "rt_3q2-7wEjvYkzKx1pP1kH2w0cS9d0a1b2c3d4e5f6g7h").await, codes::INVALID_TOKEN.code);
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_refused() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    let mut c = claims(900, 0, ACCESS_TOKEN_USE);
    c["iss"] = "someone-else".into();
    assert_eq!(refused(&v, &key.sign(&c)).await, codes::INVALID_TOKEN.code);
    let mut c = claims(900, 0, ACCESS_TOKEN_USE);
    c["aud"] = "another-platform".into();
    assert_eq!(refused(&v, &key.sign(&c)).await, codes::INVALID_TOKEN.code);
}

#[tokio::test]
async fn garbage_is_refused_without_panicking() {
    let v = verifier(vec![Key::new("k1").public()]);
    for token in ["", ".", "..", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.", &"x".repeat(10_000)] {
        assert_eq!(refused(&v, token).await, codes::INVALID_TOKEN.code, "{token:.20}");
    }
}

/// Keys that can change (a rotation at identity), counting fetches.
#[derive(Clone, Default)]
struct RotatingKeys {
    keys: std::sync::Arc<std::sync::Mutex<Vec<PublicKey>>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl KeySource for RotatingKeys {
    fn fetch(&self) -> BoxFuture<'static, anyhow::Result<Vec<PublicKey>>> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let keys = self.keys.lock().expect("keys").clone();
        Box::pin(async move { Ok(keys) })
    }
}

#[tokio::test]
async fn unknown_kids_refetch_the_keys_at_most_once_per_interval() {
    use festival_platform::clock::Clock;
    use std::sync::atomic::Ordering;

    let (old, new) = (Key::new("k-old"), Key::new("k-new"));
    let source = RotatingKeys::default();
    source.keys.lock().expect("keys").push(old.public());
    let clock = Clock::manual();
    let v = Verifier::with_clock(&CommonConfig::local_defaults("test", 50999).auth, source.clone(), clock.clone());
    v.verify(&old.sign(&claims(900, 0, ACCESS_TOKEN_USE))).await.expect("first use fetches the keys");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

    // Identity rotates: a token under the new kid arrives before the interval has passed.
    source.keys.lock().expect("keys").insert(0, new.public());
    let fresh = new.sign(&claims(900, 0, ACCESS_TOKEN_USE));
    assert_eq!(refused(&v, &fresh).await, codes::INVALID_TOKEN.code, "no refetch within the interval");
    for _ in 0..50 {
        assert_eq!(refused(&v, &Key::new("made-up").sign(&claims(900, 0, ACCESS_TOKEN_USE))).await, "ERR_2002");
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1, "a flood of unknown kids costs no fetch");

    clock.advance(Verifier::MIN_REFRESH_INTERVAL);
    v.verify(&fresh).await.expect("after the interval one refetch finds the new key");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    v.verify(&fresh).await.expect("and it stays known");
    v.verify(&old.sign(&claims(900, 0, ACCESS_TOKEN_USE))).await.expect("the old key is still published");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2, "known kids never refetch");
}

#[tokio::test]
async fn a_token_living_longer_than_identity_issues_them_is_refused() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    v.verify(&key.sign(&claims(900, 0, ACCESS_TOKEN_USE))).await.expect("15 minutes is the normal lifetime");
    assert_eq!(refused(&v, &key.sign(&claims(365 * 24 * 3600, 0, ACCESS_TOKEN_USE))).await, "ERR_2002");
    assert_eq!(refused(&v, &key.sign(&claims(900 + 31, 0, ACCESS_TOKEN_USE))).await, "ERR_2002", "beyond the leeway");
}

#[tokio::test]
async fn a_key_identity_stops_publishing_stops_verifying_at_the_next_refresh() {
    use festival_platform::clock::Clock;
    let (leaked, fresh) = (Key::new("k-leaked"), Key::new("k-fresh"));
    let source = RotatingKeys::default();
    source.keys.lock().expect("keys").extend([leaked.public(), fresh.public()]);
    let clock = Clock::manual();
    let config = CommonConfig::local_defaults("test", 50999).auth;
    let v = Verifier::with_clock(&config, source.clone(), clock.clone());
    let token = leaked.sign(&claims(900, 0, ACCESS_TOKEN_USE));
    v.verify(&token).await.expect("published: accepted");

    // Identity revokes the leaked key: it is no longer in the JWKS.
    source.keys.lock().expect("keys").retain(|k| k.kid != "k-leaked");
    v.verify(&token).await.expect("until the next refresh the cached set still has it");
    clock.advance(std::time::Duration::from_secs(config.keys_refresh_secs));
    assert_eq!(refused(&v, &token).await, "ERR_2002", "the refreshed set replaced the old one whole");
    v.verify(&fresh.sign(&claims(900, 0, ACCESS_TOKEN_USE))).await.expect("the other key still verifies");
}

#[tokio::test]
async fn a_token_verified_before_is_refused_once_its_key_is_dropped() {
    let (key, other) = (Key::new("k1"), Key::new("k2"));
    let v = verifier(vec![key.public(), other.public()]);
    let token = key.sign(&claims(900, 0, ACCESS_TOKEN_USE));
    let kept = other.sign(&claims(900, 0, ACCESS_TOKEN_USE));
    for _ in 0..2 {
        v.verify(&token).await.expect("verified, then answered from the verified tokens");
        v.verify(&kept).await.expect("verified");
    }
    v.forget_keys(&["k1".to_owned()]).await;
    assert_eq!(refused(&v, &token).await, "ERR_2002", "no verified token outlives its key");
    v.verify(&kept).await.expect("another key's token is checked again and still verifies");
    // A refresh brings k1 back (the static source still publishes it): trusted again.
    assert!(v.refresh(true).await);
    v.verify(&token).await.expect("published again");
}

#[tokio::test]
async fn a_verified_token_keeps_being_checked_for_its_kind() {
    let key = Key::new("k1");
    let v = verifier(vec![key.public()]);
    let refresh = key.sign(&claims(900, 0, "refresh"));
    for _ in 0..2 {
        assert_eq!(refused(&v, &refresh).await, "ERR_2002");
    }
    assert!(v.verify_device(&key.sign(&claims(900, 0, ACCESS_TOKEN_USE))).await.is_err(), "not a device token");
}

/// Keys plus a list of ended sessions, as identity serves both.
struct KeysAndEnded(Vec<PublicKey>, std::sync::Arc<std::sync::Mutex<Vec<(Uuid, i64)>>>);

impl KeySource for KeysAndEnded {
    fn fetch(&self) -> BoxFuture<'static, anyhow::Result<Vec<PublicKey>>> {
        let keys = self.0.clone();
        Box::pin(async move { Ok(keys) })
    }

    fn revoked_sessions(
        &self,
        _since: Option<i64>,
    ) -> BoxFuture<'static, anyhow::Result<Option<festival_platform::auth::RevokedSessions>>> {
        let sessions = self.1.lock().expect("lock").clone();
        let as_of = chrono::Utc::now().timestamp();
        Box::pin(async move { Ok(Some(festival_platform::auth::RevokedSessions { sessions, as_of })) })
    }
}

#[tokio::test]
async fn a_token_of_an_ended_session_is_refused_once_the_list_says_so_even_remembered() {
    let key = Key::new("k1");
    let ended = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let v = Verifier::new(
        &CommonConfig::local_defaults("test", 50999).auth,
        KeysAndEnded(vec![key.public()], ended.clone()),
    );
    let claims = claims(900, 0, ACCESS_TOKEN_USE);
    let sid: Uuid = claims["sid"].as_str().expect("sid").parse().expect("uuid");
    let token = key.sign(&claims);
    let other = key.sign(&self::claims(900, 0, ACCESS_TOKEN_USE));
    assert!(v.refresh_revoked_sessions().await, "the source keeps a list");
    v.verify(&token).await.expect("live, and now remembered");
    ended.lock().expect("lock").push((sid, chrono::Utc::now().timestamp()));
    v.verify(&token).await.expect("not yet polled");
    assert!(v.refresh_revoked_sessions().await);
    assert_eq!(refused(&v, &token).await, codes::SESSION_REVOKED.code);
    v.verify(&other).await.expect("another session goes on");
}
