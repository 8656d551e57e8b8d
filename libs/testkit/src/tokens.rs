//! A test token issuer: a fixed Ed25519 key whose public half is served over gRPC as
//! identity's `GetJwks`, so a service under test verifies tokens exactly as in production
//! (its real `IdentityKeySource`, pointed at [`TestIssuer::url`]) while the test mints
//! tokens for any role and membership, without running identity or touching its tables.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use festival_platform::auth::{
    ACCESS_TOKEN_USE, AccessClaims, DEVICE_TOKEN_USE, DeviceClaims, DeviceLevel, MembershipClaim, Role,
};
use festival_platform::config::AuthConfig;
use festival_proto::identity::v1 as pb;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

/// Seed of the issuer's key: fixed, so failures reproduce; worthless outside tests.
const SEED: [u8; 32] = *b"festival-test-issuer-fixed-seed!";
/// The key id the issuer's tokens and JWKS carry.
pub const TEST_KID: &str = "festival-test-issuer";

/// Mints access tokens with a fixed key and serves that key as a JWKS, and the sessions
/// a test ended as identity's ListRevokedSessions.
#[derive(Clone)]
pub struct TestIssuer {
    addr: SocketAddr,
    key: EncodingKey,
    issuer: String,
    audience: String,
    kid: Arc<str>,
    ended: Ended,
}

/// Sessions a test ended, with when.
type Ended = Arc<std::sync::Mutex<Vec<(Uuid, i64)>>>;

/// Who a token speaks for.
#[derive(Debug, Clone)]
pub struct Grant {
    pub user_id: Uuid,
    pub role: Role,
    pub memberships: Vec<(Uuid, Role)>,
}

impl TestIssuer {
    /// Starts the JWKS endpoint on a free port. Tokens use the platform's default issuer
    /// and audience (what services under test expect).
    pub async fn start() -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(&SEED);
        let public = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
        let der = signing.to_pkcs8_der().expect("pkcs8");
        let jwks = pb::Jwks {
            keys: vec![pb::Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: public,
                kid: TEST_KID.into(),
                alg: "EdDSA".into(),
                r#use: "sig".into(),
            }],
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let ended = Ended::default();
        let server = tonic::transport::Server::builder().add_service(JwksService(Arc::new(jwks), ended.clone()));
        tokio::spawn(server.serve_with_incoming(incoming));
        let defaults = festival_platform::config::CommonConfig::local_defaults("test", 50999).auth;
        Self::with(addr, EncodingKey::from_ed_der(der.as_bytes()), &defaults, ended)
    }

    fn with(addr: SocketAddr, key: EncodingKey, auth: &AuthConfig, ended: Ended) -> Self {
        Self { addr, key, issuer: auth.issuer.clone(), audience: auth.audience.clone(), kid: TEST_KID.into(), ended }
    }

    /// Ends the session `token` was minted for, as identity does on a sign-out: the next
    /// ListRevokedSessions lists it.
    pub fn end_session_of(&self, token: &str) {
        let payload = token.split('.').nth(1).expect("a JWT");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("claims");
        let sid = claims["sid"].as_str().and_then(|s| s.parse().ok()).expect("sid");
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).push((sid, chrono::Utc::now().timestamp()));
    }

    /// The URL to put in a service's `auth.identity_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token valid for 15 minutes.
    pub fn token(&self, grant: &Grant) -> String {
        self.token_valid_for(grant, chrono::TimeDelta::minutes(15))
    }

    /// A token that expires `ttl` from now (negative: already expired).
    pub fn token_valid_for(&self, grant: &Grant, ttl: chrono::TimeDelta) -> String {
        self.mint(grant, ttl, false, &[])
    }

    /// A token as identity mints it when the festivals in `requiring` require a second
    /// factor of their staff: `mfa` says whether the session was started with one.
    pub fn token_with_mfa(&self, grant: &Grant, mfa: bool, requiring: &[Uuid]) -> String {
        self.mint(grant, chrono::TimeDelta::minutes(15), mfa, requiring)
    }

    fn mint(&self, grant: &Grant, ttl: chrono::TimeDelta, mfa: bool, requiring: &[Uuid]) -> String {
        let now = chrono::Utc::now();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.user_id,
            exp: (now + ttl).timestamp(),
            nbf: now.timestamp().min((now + ttl).timestamp()),
            iat: now.timestamp(),
            jti: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            token_use: ACCESS_TOKEN_USE.into(),
            role: grant.role,
            mem: grant
                .memberships
                .iter()
                .map(|&(fid, role)| MembershipClaim { fid, role, mfa: requiring.contains(&fid) })
                .collect(),
            amr: festival_platform::auth::amr(mfa),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.to_string());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }

    /// A device token, as identity issues one to a paired device: `key` is the device's
    /// own signing key, whose public half the token binds.
    pub fn device(
        &self,
        device_id: Uuid,
        festival_id: Uuid,
        gate: &str,
        level: DeviceLevel,
        key: &ed25519_dalek::SigningKey,
    ) -> String {
        let now = chrono::Utc::now();
        let claims = DeviceClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: device_id,
            exp: (now + chrono::TimeDelta::minutes(10)).timestamp(),
            nbf: now.timestamp(),
            iat: now.timestamp(),
            jti: Uuid::now_v7(),
            token_use: DEVICE_TOKEN_USE.into(),
            fid: festival_id,
            gate: gate.into(),
            lvl: level,
            dkey: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.to_string());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }

    /// A plain account's token (role USER, no memberships); returns (user id, token).
    pub fn user(&self) -> (Uuid, String) {
        let user_id = Uuid::now_v7();
        (user_id, self.token(&Grant { user_id, role: Role::User, memberships: Vec::new() }))
    }

    /// A platform ADMIN's token.
    pub fn admin(&self) -> String {
        self.token(&Grant { user_id: Uuid::now_v7(), role: Role::Admin, memberships: Vec::new() })
    }

    /// A token for `user_id` holding `role` at `festival_id`.
    pub fn member(&self, user_id: Uuid, festival_id: Uuid, role: Role) -> String {
        self.token(&Grant { user_id, role: Role::User, memberships: vec![(festival_id, role)] })
    }
}

/// Serves `festival.identity.v1.IdentityService/GetJwks` and `ListRevokedSessions`, and
/// nothing else.
#[derive(Clone)]
struct JwksService(Arc<pb::Jwks>, Ended);

impl tonic::server::NamedService for JwksService {
    const NAME: &'static str = "festival.identity.v1.IdentityService";
}

struct GetJwks(Arc<pb::Jwks>);

impl tonic::server::UnaryService<pb::GetJwksRequest> for GetJwks {
    type Response = pb::Jwks;
    type Future = BoxFuture<'static, Result<tonic::Response<pb::Jwks>, tonic::Status>>;
    fn call(&mut self, _request: tonic::Request<pb::GetJwksRequest>) -> Self::Future {
        let jwks = (*self.0).clone();
        Box::pin(async move { Ok(tonic::Response::new(jwks)) })
    }
}

struct ListRevoked(Ended);

impl tonic::server::UnaryService<pb::ListRevokedSessionsRequest> for ListRevoked {
    type Response = pb::ListRevokedSessionsResponse;
    type Future = BoxFuture<'static, Result<tonic::Response<pb::ListRevokedSessionsResponse>, tonic::Status>>;
    fn call(&mut self, request: tonic::Request<pb::ListRevokedSessionsRequest>) -> Self::Future {
        let since = request.into_inner().since.map_or(i64::MIN, |t| t.seconds);
        let sessions = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, at)| *at >= since)
            .map(|(id, at)| pb::RevokedSession {
                session_id: id.to_string(),
                revoke_time: Some(prost_types::Timestamp { seconds: *at, nanos: 0 }),
            })
            .collect();
        let as_of = Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp(), nanos: 0 });
        Box::pin(
            async move { Ok(tonic::Response::new(pb::ListRevokedSessionsResponse { sessions, as_of, more: false })) },
        )
    }
}

impl<B> tower::Service<http::Request<B>> for JwksService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (jwks, ended) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            // One codec per method: a codec is typed by its messages.
            Ok(match request.uri().path() {
                "/festival.identity.v1.IdentityService/GetJwks" => {
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::default()).unary(GetJwks(jwks), request).await
                }
                "/festival.identity.v1.IdentityService/ListRevokedSessions" => {
                    tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                        .unary(ListRevoked(ended), request)
                        .await
                }
                _ => tonic::Status::unimplemented("the test issuer serves only GetJwks and ListRevokedSessions")
                    .into_http(),
            })
        })
    }
}
