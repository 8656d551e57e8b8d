use festival_platform::auth::{IdentityKeySource, Role, Verifier};
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

#[tokio::test]
async fn after_a_rotation_old_tokens_keep_verifying_and_new_ones_use_the_new_key() {
    let app = spawn().await;
    let mut c = client(&app);
    let admin = signed_in_admin(&app, &mut c).await;
    let (_, fan) = signed_in(&mut c).await;
    let old_kid = kid_of(&fan.access_token);

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

    // The token signed before the rotation still works, everywhere.
    c.get_me(authed(pb::GetMeRequest {}, &fan.access_token)).await.expect("old token still valid");
    let verifier = Verifier::new(
        &app.config.common.auth,
        IdentityKeySource::new(&format!("http://{}", app.addr)).expect("source"),
    );
    verifier.verify(&fan.access_token).await.expect("old token verifies elsewhere");

    let renewed =
        c.refresh(pb::RefreshRequest { refresh_token: fan.refresh_token.clone() }).await.expect("refresh").into_inner();
    assert_eq!(kid_of(&renewed.access_token), rotated.kid);
    verifier
        .verify(&renewed.access_token)
        .await
        .expect("new token verifies elsewhere (unknown kid triggers a refetch)");
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
}
