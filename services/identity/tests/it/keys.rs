use festival_platform::auth::{IdentityKeySource, KeySource, PublicKey, Role, Verifier};
use festival_platform::clock::Clock;
use festival_proto::identity::v1 as pb;

use crate::helpers::*;

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("header").kid.expect("kid")
}

#[tokio::test]
async fn other_services_verify_access_tokens_with_the_published_keys() {
    let app = spawn().await;
    let mut c = client(&app);
    let (user, tokens) = signed_in(&mut c).await;

    let jwks = c.get_jwks(pb::GetJwksRequest {}).await.expect("jwks").into_inner();
    assert_eq!(jwks.keys.len(), 1);
    let key = &jwks.keys[0];
    assert_eq!(
        (key.kty.as_str(), key.crv.as_str(), key.alg.as_str(), key.r#use.as_str()),
        ("OKP", "Ed25519", "EdDSA", "sig")
    );
    assert_eq!(key.kid, kid_of(&tokens.access_token));

    // Exactly what another service does: fetch identity's keys over gRPC and verify locally.
    let source = IdentityKeySource::new(&format!("http://{}", app.addr)).expect("source");
    let verifier = Verifier::new(&app.config.common.auth, source);
    let principal = verifier.verify(&tokens.access_token).await.expect("verifies");
    assert_eq!(principal.user_id.to_string(), user.id);
    assert_eq!(principal.role, Role::User);
    let header = jsonwebtoken::decode_header(&tokens.access_token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
}

/// Another service's key source: identity's GetJwks, counting fetches.
#[derive(Clone)]
struct Counted {
    source: IdentityKeySource,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl KeySource for Counted {
    fn fetch(&self) -> futures::future::BoxFuture<'static, anyhow::Result<Vec<PublicKey>>> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.source.fetch()
    }
}

#[tokio::test]
async fn after_a_rotation_old_tokens_keep_verifying_and_new_ones_use_the_new_key() {
    use std::sync::atomic::Ordering;

    let app = spawn().await;
    let mut c = client(&app);
    let admin = signed_in_admin(&app, &mut c).await;
    let (_, fan) = signed_in(&mut c).await;
    let old_kid = kid_of(&fan.access_token);

    // Another service, running before the rotation, has already fetched the old key set.
    let clock = Clock::manual();
    let source = Counted {
        source: IdentityKeySource::new(&format!("http://{}", app.addr)).expect("source"),
        fetches: Default::default(),
    };
    let verifier = Verifier::with_clock(&app.config.common.auth, source.clone(), clock.clone());
    verifier.verify(&fan.access_token).await.expect("old token verifies elsewhere");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

    assert_eq!(code(c.rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, &fan.access_token)).await), "ERR_3001");
    let rotated = c
        .rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, &admin.access_token))
        .await
        .expect("rotate")
        .into_inner();
    assert_ne!(rotated.kid, old_kid);

    let jwks = c.get_jwks(pb::GetJwksRequest {}).await.expect("jwks").into_inner();
    let kids: Vec<&str> = jwks.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, vec![rotated.kid.as_str(), old_kid.as_str()], "new key first, old key still published");

    // The token signed before the rotation still works, everywhere, without a refetch.
    c.get_me(authed(pb::GetMeRequest {}, &fan.access_token)).await.expect("old token still valid");
    verifier.verify(&fan.access_token).await.expect("old token verifies elsewhere");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

    let renewed =
        c.refresh(pb::RefreshRequest { refresh_token: fan.refresh_token.clone() }).await.expect("refresh").into_inner();
    assert_eq!(kid_of(&renewed.access_token), rotated.kid);
    // Within the refetch interval the unknown kid is refused without asking identity...
    assert_eq!(verifier.verify(&renewed.access_token).await.expect_err("too soon").code.code, "ERR_2002");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    // ...and once it has passed, one refetch brings the new key.
    clock.advance(Verifier::MIN_REFRESH_INTERVAL);
    verifier.verify(&renewed.access_token).await.expect("new token verifies elsewhere after one refetch");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn private_keys_are_stored_sealed() {
    let app = spawn().await;
    let mut c = client(&app);
    signed_in(&mut c).await;
    let (public, sealed): (Vec<u8>, Vec<u8>) = sqlx::query_as("select public_key, sealed_private from signing_keys")
        .fetch_one(&app.pool)
        .await
        .expect("key row");
    assert_eq!(public.len(), 32);
    // A PKCS#8 Ed25519 key starts with this DER prefix; the sealed blob must not.
    let pkcs8_prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    assert!(!sealed.windows(pkcs8_prefix.len()).any(|w| w == pkcs8_prefix));
    // Nor the key itself: open it with the service's sealing key and look for its bytes.
    let kid: String = sqlx::query_scalar("select kid from signing_keys").fetch_one(&app.pool).await.expect("kid");
    let sealer = festival_identity::signing::Sealer::from_config(&app.config.keys.sealing_key).expect("sealer");
    let pkcs8 = sealer.open(&sealed, &kid).expect("opens with the right key and kid");
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(&pkcs8).expect("the sealed blob holds a PKCS#8 Ed25519 key");
    assert_eq!(key.verifying_key().to_bytes().as_slice(), public.as_slice(), "the private half of the published key");
    let secret = key.to_bytes();
    assert!(!sealed.windows(32).any(|w| w == secret), "the 32 secret bytes are not stored in the clear");
    assert!(!sealed.windows(pkcs8.len()).any(|w| w == pkcs8.as_slice()), "nor the PKCS#8 document");
    assert_eq!(sealed.len(), 12 + pkcs8.len() + 16, "nonce, ciphertext and tag");
}

#[tokio::test]
async fn an_emergency_revocation_stops_the_key_in_identity_and_other_services_at_once() {
    use festival_proto::Event as _;

    let app = spawn().await;
    let mut c = client(&app);
    let admin_email = new_email();
    register(&mut c, &admin_email).await;
    make_admin(&app, &admin_email).await;
    let admin = login(&mut c, &admin_email).await;
    let (_, fan) = signed_in(&mut c).await;
    let leaked = kid_of(&fan.access_token);

    // Another service's verifier, following revocations as every service does.
    let verifier = Verifier::new(
        &app.config.common.auth,
        IdentityKeySource::new(&format!("http://{}", app.addr)).expect("source"),
    );
    verifier.verify(&fan.access_token).await.expect("trusted before");
    let nats = async_nats::connect(festival_testkit::nats_url()).await.expect("nats");
    let stop = tokio_util::sync::CancellationToken::new();
    let follower = verifier.clone();
    festival_platform::auth::revocations::watch(
        nats.clone(),
        app.naming().subject(pb::SigningKeyRevoked::SUBJECT),
        stop.clone(),
        move |kids: Vec<String>| {
            let verifier = follower.clone();
            async move { verifier.follow_revocation(&kids).await }
        },
    )
    .await
    .expect("watch");
    nats.flush().await.expect("subscribed");

    let revoke = |kid: &str, token: &str| {
        authed(pb::RevokeSigningKeyRequest { kid: kid.into(), reason: "found in a leaked backup".into() }, token)
    };
    assert_eq!(code(c.revoke_signing_key(revoke(&leaked, &fan.access_token)).await), "ERR_3001", "admins only");
    let active =
        c.revoke_signing_key(revoke(&leaked, &admin.access_token)).await.expect("revoke").into_inner().active_kid;
    assert_ne!(active, leaked, "the active key was revoked, a new one signs");
    let published: Vec<String> =
        c.get_jwks(pb::GetJwksRequest {}).await.expect("jwks").into_inner().keys.into_iter().map(|k| k.kid).collect();
    assert_eq!(published, vec![active.clone()], "the revoked key left the JWKS at once");

    // Identity refuses its tokens at once; the other service as soon as it hears the announcement.
    assert_eq!(code(c.get_me(authed(pb::GetMeRequest {}, &fan.access_token)).await), "ERR_2002");
    let refused = festival_testkit::eventually(std::time::Duration::from_secs(10), || async {
        verifier.verify(&fan.access_token).await.is_err()
    })
    .await;
    assert!(refused, "the other service still trusts the revoked key");
    assert_eq!(verifier.verify(&fan.access_token).await.err().map(|e| e.code.code), Some("ERR_2002"));

    // Signing in again gets a token of the new key, trusted everywhere.
    let again = login(&mut c, &admin_email).await;
    assert_eq!(kid_of(&again.access_token), active);
    let trusted = festival_testkit::eventually(std::time::Duration::from_secs(10), || async {
        verifier.verify(&again.access_token).await.is_ok()
    })
    .await;
    assert!(trusted, "the new key is trusted once the key set is refetched");
    assert_eq!(code(c.revoke_signing_key(revoke(&leaked, &again.access_token)).await), "ERR_4000", "once");
    assert_eq!(code(c.revoke_signing_key(revoke("no-such-kid", &again.access_token)).await), "ERR_4000");

    let event = app.last_event::<pb::SigningKeyRevoked>().await;
    assert_eq!((event.kid.as_str(), event.reason.as_str()), (leaked.as_str(), "found in a leaked backup"));
    stop.cancel();
    app.stop().await;
}
