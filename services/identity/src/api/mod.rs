//! The gRPC surface: decode and validate, authorize, call the domain and the store,
//! encode. Every write and its event commit together.
//!
//! One module per area ([`accounts`], [`sessions`], [`my_sessions`], [`mfa`], [`oauth`], [`recovery`],
//! [`disabling`], [`memberships`], [`keys`], [`devices`], [`badges`], [`audit`]); this one
//! holds what they share and the tonic binding, [`convert`] the proto mapping.

mod accounts;
mod audit;
mod badges;
mod convert;
mod devices;
mod disabling;
mod keys;
mod memberships;
mod mfa;
mod my_sessions;
mod oauth;
mod recovery;
mod sessions;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use festival_platform::auth::{ACCESS_TOKEN_USE, AccessClaims, GateCaller, Principal, Verifier};
use festival_platform::clock::Clock;
use festival_platform::convert::timestamp;
use festival_platform::rpc::Authenticate;
use festival_platform::{ApiError, ApiResult, codes};
use festival_proto::identity::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tonic::Request;
use uuid::Uuid;

use crate::config::Config;
use crate::credentials::Hasher;
use crate::domain::email::Email;
use crate::domain::session;
use crate::events;
use crate::keyring::Keyring;
use crate::login_guard::LoginGuard;
use crate::store::{self, users::UserRow};
use convert::{membership_claims, to_user};

/// How recent a sign-in stands in for the password of an account without one.
pub const REAUTHENTICATION_WINDOW_SECS: i64 = 10 * 60;

pub struct IdentityApi {
    pool: PgPool,
    hasher: Hasher,
    guard: LoginGuard,
    keyring: Arc<Keyring>,
    verifier: Verifier,
    config: Arc<Config>,
    clock: Clock,
    mailer: Arc<dyn crate::mailer::Mailer>,
    providers: Arc<crate::oauth::Providers>,
}

/// What the API is made of (the service's `routes` puts it together).
pub struct Parts {
    pub pool: PgPool,
    pub hasher: Hasher,
    pub guard: LoginGuard,
    pub keyring: Arc<Keyring>,
    pub verifier: Verifier,
    pub config: Arc<Config>,
    pub clock: Clock,
    pub mailer: Arc<dyn crate::mailer::Mailer>,
    pub providers: Arc<crate::oauth::Providers>,
}

impl IdentityApi {
    pub fn new(p: Parts) -> Self {
        let Parts { pool, hasher, guard, keyring, verifier, config, clock, mailer, providers } = p;
        Self { pool, hasher, guard, keyring, verifier, config, clock, mailer, providers }
    }

    /// Starts a session (or continues one) with a new refresh token and an access token.
    /// The refresh token never outlives the session's absolute end. `mfa`: the session
    /// was started with a second factor (the token's `amr` says so).
    pub(super) async fn issue_tokens(
        &self,
        conn: &mut PgConnection,
        user: &UserRow,
        session_id: Uuid,
        session_started_at: DateTime<Utc>,
        mfa: bool,
    ) -> ApiResult<pb::TokenPair> {
        let now = self.clock.now();
        let refresh_token = session::new_refresh_token();
        let refresh_exp = session::refresh_token_expiry(
            now,
            Duration::seconds(self.config.tokens.refresh_ttl_secs),
            self.session_end(session_started_at),
        );
        store::sessions::add_refresh_token(conn, session_id, &session::hash_refresh_token(&refresh_token), refresh_exp)
            .await?;
        let memberships = store::memberships::of_user(conn, user.id).await?;
        let requiring_mfa = store::mfa::festivals_requiring_mfa(conn, user.id).await?;
        let access_exp = now + Duration::seconds(self.config.tokens.access_ttl_secs);
        let claims = AccessClaims {
            iss: self.config.common.auth.issuer.clone(),
            aud: self.config.common.auth.audience.clone(),
            sub: user.id,
            exp: access_exp.timestamp(),
            nbf: now.timestamp(),
            iat: now.timestamp(),
            jti: Uuid::now_v7(),
            sid: session_id,
            token_use: ACCESS_TOKEN_USE.into(),
            role: user.role,
            mem: membership_claims(&memberships, &requiring_mfa),
            amr: festival_platform::auth::amr(mfa),
        };
        let signer = self.keyring.signer().await.map_err(ApiError::internal)?;
        let access_token = signer.sign(&claims).map_err(ApiError::internal)?;
        Ok(pb::TokenPair {
            access_token,
            access_token_expire_time: Some(timestamp(access_exp)),
            refresh_token,
            refresh_token_expire_time: Some(timestamp(refresh_exp)),
            token_type: "Bearer".into(),
            user: Some(to_user(user, &memberships)),
            mfa_challenge: String::new(),
            mfa_challenge_expire_time: None,
        })
    }

    /// When a session started at `started_at` ends, whatever its tokens say.
    pub(super) fn session_end(&self, started_at: DateTime<Utc>) -> DateTime<Utc> {
        started_at + Duration::seconds(self.config.tokens.session_max_secs)
    }

    /// The account's password, asked again before a change a stolen access token alone
    /// must not make (deleting the account, putting a second factor on it, linking a
    /// provider); guesses are throttled like sign-ins. Wrong: ERR_2001. An account with
    /// no password (made by a provider) shows instead a session started in the last
    /// [`REAUTHENTICATION_WINDOW_SECS`] (else ERR_2027: sign in with the provider again).
    pub(super) async fn password_asked_again(
        &self,
        caller: &Principal,
        client: Option<std::net::IpAddr>,
        password: String,
    ) -> ApiResult<UserRow> {
        if !password.is_empty() {
            festival_platform::validate::secret("password", &password, crate::domain::password::MAX_CHARS)?;
        }
        let mut conn = self.pool.acquire().await?;
        let user =
            store::users::find(&mut conn, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        if user.password_hash.is_empty() {
            let started = store::sessions::live_started_at(&mut conn, caller.session_id).await?;
            let recent = Duration::seconds(REAUTHENTICATION_WINDOW_SECS);
            return match started {
                Some(at) if at + recent >= self.clock.now() => Ok(user),
                _ => Err(ApiError::new(codes::REAUTHENTICATION_REQUIRED)),
            };
        }
        drop(conn);
        if password.is_empty() {
            return Err(ApiError::field(codes::REQUIRED_FIELD, "password", "the account's password, asked again"));
        }
        let mut attempt = self.guard.attempt(&user.email, Some(user.id), client);
        self.guard.admit(&mut attempt).await?;
        if !self.hasher.verify(password, Some(user.password_hash.clone())).await.map_err(hashing_refused)? {
            return Err(ApiError::field(codes::INVALID_CREDENTIALS, "password", "is not the account's password"));
        }
        // Right: the attempt is given back, as a sign-in's (else every change asked for
        // would count against the account and its network as a failure).
        self.guard.password_right(&attempt).await;
        Ok(user)
    }

    /// Announces ended sessions (`SessionRevoked`, through the outbox with the change).
    pub(super) async fn announce_revoked(
        conn: &mut PgConnection,
        user_id: Uuid,
        sessions: &[Uuid],
        reason: &str,
    ) -> ApiResult<()> {
        for session_id in sessions {
            events::publish(
                conn,
                &pb::SessionRevoked {
                    user_id: user_id.to_string(),
                    session_id: session_id.to_string(),
                    reason: reason.into(),
                },
            )
            .await?;
        }
        Ok(())
    }

    pub(super) async fn revoke_session(
        conn: &mut PgConnection,
        user_id: Uuid,
        session_id: Uuid,
        reason: &str,
    ) -> ApiResult<bool> {
        let revoked = store::sessions::revoke(conn, session_id, reason).await?;
        if revoked {
            Self::announce_revoked(conn, user_id, &[session_id], reason).await?;
        }
        Ok(revoked)
    }
}

impl Authenticate for IdentityApi {
    /// The caller, from a verified access token whose session is still live, with roles
    /// read fresh from the database (identity is the authority on them).
    async fn caller<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<Principal> {
        let principal = self.verifier.authenticate(request).await?;
        let mut conn = self.pool.acquire().await?;
        let Some(mfa) = store::sessions::live_mfa(&mut conn, principal.session_id).await? else {
            return Err(ApiError::new(codes::SESSION_REVOKED));
        };
        let user = store::users::find(&mut conn, principal.user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let memberships = store::memberships::of_user(&mut conn, user.id).await?;
        let requiring_mfa = store::mfa::festivals_requiring_mfa(&mut conn, user.id).await?;
        Ok(Principal {
            user_id: user.id,
            session_id: principal.session_id,
            role: user.role,
            memberships: membership_claims(&memberships, &requiring_mfa),
            mfa,
        })
    }

    async fn gate_caller<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<GateCaller> {
        self.gate_caller_of(request).await
    }
}

impl IdentityApi {
    /// A gate's caller: a person as [`Authenticate::caller`] reads them, or a paired
    /// device whose token checks out and that identity has not revoked since.
    async fn gate_caller_of<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<GateCaller> {
        match self.verifier.authenticate_gate(request).await? {
            GateCaller::Person(_) => self.caller(request).await.map(GateCaller::Person),
            GateCaller::Device(device) => {
                let mut conn = self.pool.acquire().await?;
                let live = store::devices::find(&mut conn, device.id).await?.is_some_and(|d| d.revoked_at.is_none());
                if !live {
                    return Err(ApiError::new(codes::DEVICE_REVOKED));
                }
                Ok(GateCaller::Device(device))
            }
        }
    }
}

fn parse_email(raw: &str) -> ApiResult<Email> {
    festival_platform::validate::email("email", raw)
}

/// A hashing failure: ERR_1012 when the hasher is saturated (retry shortly), else internal.
fn hashing_refused(e: anyhow::Error) -> ApiError {
    if e.is::<crate::credentials::Busy>() { ApiError::new(codes::SERVER_BUSY) } else { ApiError::internal(e) }
}

festival_platform::bind_rpcs! {
    IdentityApi => pb::identity_service_server::IdentityService {
        public_addr register(pb::RegisterRequest) -> pb::RegisterResponse;
        public_addr login(pb::LoginRequest) -> pb::TokenPair;
        public_addr verify_mfa(pb::VerifyMfaRequest) -> pb::TokenPair;
        public refresh(pb::RefreshRequest) -> pb::TokenPair;
        public logout(pb::LogoutRequest) -> pb::LogoutResponse;
        public_addr request_password_reset(pb::RequestPasswordResetRequest) -> pb::RequestPasswordResetResponse;
        public_addr reset_password(pb::ResetPasswordRequest) -> pb::ResetPasswordResponse;
        auth_addr request_email_verification(pb::RequestEmailVerificationRequest) -> pb::RequestEmailVerificationResponse;
        public verify_email(pb::VerifyEmailRequest) -> pb::VerifyEmailResponse;
        auth logout_all(pb::LogoutAllRequest) -> pb::LogoutAllResponse;
        auth get_me(pb::GetMeRequest) -> pb::User;
        auth update_me(pb::UpdateMeRequest) -> pb::User;
        auth_addr delete_me(pb::DeleteMeRequest) -> pb::DeleteMeResponse;
        auth export_my_data(pb::ExportMyDataRequest) -> pb::MyData;
        public get_jwks(pb::GetJwksRequest) -> pb::Jwks;
        public list_revoked_sessions(pb::ListRevokedSessionsRequest) -> pb::ListRevokedSessionsResponse;
        auth list_my_sessions(pb::ListMySessionsRequest) -> pb::ListMySessionsResponse;
        auth revoke_my_session(pb::RevokeMySessionRequest) -> pb::RevokeMySessionResponse;
        auth revoke_other_sessions(pb::RevokeOtherSessionsRequest) -> pb::RevokeOtherSessionsResponse;
        auth disable_account(pb::DisableAccountRequest) -> pb::AccountStatus;
        auth enable_account(pb::EnableAccountRequest) -> pb::AccountStatus;
        auth reset_account_mfa(pb::ResetAccountMfaRequest) -> pb::AccountStatus;
        auth issue_badge(pb::IssueBadgeRequest) -> pb::Badge;
        auth list_badges(pb::ListBadgesRequest) -> pb::ListBadgesResponse;
        auth revoke_badge(pb::RevokeBadgeRequest) -> pb::Badge;
        auth list_my_badges(pb::ListMyBadgesRequest) -> pb::ListBadgesResponse;
        public get_badge_keys(pb::GetBadgeKeysRequest) -> pb::BadgeKeys;
        gate list_revoked_badges(pb::ListRevokedBadgesRequest) -> pb::ListRevokedBadgesResponse;
        auth rotate_signing_key(pb::RotateSigningKeyRequest) -> pb::RotateSigningKeyResponse;
        auth revoke_signing_key(pb::RevokeSigningKeyRequest) -> pb::RevokeSigningKeyResponse;
        auth grant_membership(pb::GrantMembershipRequest) -> pb::Membership;
        auth revoke_membership(pb::RevokeMembershipRequest) -> pb::RevokeMembershipResponse;
        auth list_memberships(pb::ListMembershipsRequest) -> pb::ListMembershipsResponse;
        auth create_device(pb::CreateDeviceRequest) -> pb::CreateDeviceResponse;
        auth list_devices(pb::ListDevicesRequest) -> pb::ListDevicesResponse;
        auth revoke_device(pb::RevokeDeviceRequest) -> pb::Device;
        public pair_device(pb::PairDeviceRequest) -> pb::Device;
        public issue_device_token(pb::IssueDeviceTokenRequest) -> pb::DeviceToken;
        auth list_audit_entries(pb::ListAuditEntriesRequest) -> pb::ListAuditEntriesResponse;
        auth_addr enrol_mfa(pb::EnrolMfaRequest) -> pb::MfaEnrolment;
        auth confirm_mfa(pb::ConfirmMfaRequest) -> pb::MfaRecoveryCodes;
        auth_addr disable_mfa(pb::DisableMfaRequest) -> pb::DisableMfaResponse;
        auth get_security_policy(pb::GetSecurityPolicyRequest) -> pb::SecurityPolicy;
        auth set_security_policy(pb::SetSecurityPolicyRequest) -> pb::SecurityPolicy;
        public_addr start_o_auth_login(pb::StartOAuthLoginRequest) -> pb::OAuthAuthorization;
        public_addr complete_o_auth_login(pb::CompleteOAuthLoginRequest) -> pb::TokenPair;
        auth_addr start_o_auth_link(pb::StartOAuthLinkRequest) -> pb::OAuthAuthorization;
        auth_addr complete_o_auth_link(pb::CompleteOAuthLinkRequest) -> pb::LoginMethods;
        auth list_login_methods(pb::ListLoginMethodsRequest) -> pb::LoginMethods;
        auth_addr unlink_o_auth_identity(pb::UnlinkOAuthIdentityRequest) -> pb::LoginMethods;
    }
}
