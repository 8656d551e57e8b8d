//! The gRPC surface: decode and validate, authorize, call the domain and the store,
//! encode. Every write and its event commit together.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use festival_platform::auth::{ACCESS_TOKEN_USE, AccessClaims, MembershipClaim, Principal, Role, Verifier};
use festival_platform::convert::timestamp;
use festival_platform::error::is_unique_violation;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::identity::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::config::Config;
use crate::credentials::Hasher;
use crate::domain::email::{Email, EmailError};
use crate::domain::password::{self, PasswordRule};
use crate::domain::profile::{self, Language};
use crate::domain::session::{self, RefreshDecision, RefreshState};
use crate::events;
use crate::keyring::Keyring;
use crate::store::{self, memberships::MembershipRow, users::UserRow};

const MAX_TOKEN_LEN: usize = 512;
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

pub struct IdentityApi {
    pool: PgPool,
    hasher: Hasher,
    keyring: Arc<Keyring>,
    verifier: Verifier,
    config: Arc<Config>,
}

impl IdentityApi {
    pub fn new(pool: PgPool, hasher: Hasher, keyring: Arc<Keyring>, verifier: Verifier, config: Arc<Config>) -> Self {
        Self { pool, hasher, keyring, verifier, config }
    }

    // ---- helpers ---------------------------------------------------------------------

    /// The caller, from a verified access token whose session is still live, with roles
    /// read fresh from the database (identity is the authority on them).
    async fn caller<T>(&self, request: &Request<T>) -> ApiResult<Principal> {
        let principal = self.verifier.authenticate(request).await?;
        let mut conn = self.pool.acquire().await?;
        if !store::sessions::is_live(&mut conn, principal.session_id).await? {
            return Err(ApiError::new(codes::SESSION_REVOKED));
        }
        let user =
            store::users::find(&mut conn, principal.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let memberships = store::memberships::of_user(&mut conn, user.id).await?;
        Ok(Principal {
            user_id: user.id,
            session_id: principal.session_id,
            role: Role::parse(&user.role).unwrap_or(Role::User),
            memberships: membership_claims(&memberships),
        })
    }

    /// Starts a session (or continues one) with a new refresh token and an access token.
    async fn issue_tokens(
        &self,
        conn: &mut PgConnection,
        user: &UserRow,
        session_id: Uuid,
    ) -> ApiResult<pb::TokenPair> {
        let now = Utc::now();
        let refresh_token = session::new_refresh_token();
        let refresh_exp = now + Duration::seconds(self.config.tokens.refresh_ttl_secs);
        store::sessions::add_refresh_token(conn, session_id, &session::hash_refresh_token(&refresh_token), refresh_exp)
            .await?;
        let memberships = store::memberships::of_user(conn, user.id).await?;
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
            role: Role::parse(&user.role).unwrap_or(Role::User),
            mem: membership_claims(&memberships),
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
        })
    }

    async fn revoke_session(conn: &mut PgConnection, user_id: Uuid, session_id: Uuid, reason: &str) -> ApiResult<bool> {
        let revoked = store::sessions::revoke(conn, session_id, reason).await?;
        if revoked {
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
        Ok(revoked)
    }

    // ---- RPCs ------------------------------------------------------------------------

    async fn register(&self, req: pb::RegisterRequest) -> ApiResult<pb::RegisterResponse> {
        let email = parse_email(&req.email)?;
        check_password(&req.password, Some(&email))?;
        let display_name = match validate::optional("display_name", &req.display_name, profile::MAX_DISPLAY_NAME)? {
            Some(name) => profile::display_name(name)
                .map_err(|d| ApiError::field(codes::INVALID_DISPLAY_NAME, "display_name", d))?,
            None => email.local_part().to_owned(),
        };
        let language = language_of(req.language)?.unwrap_or(Language::DEFAULT);

        let password_hash = self.hasher.hash(req.password).await.map_err(ApiError::internal)?;
        let mut tx = self.pool.begin().await?;
        let user = store::users::insert(
            &mut tx,
            &store::users::NewUser {
                id: Uuid::now_v7(),
                email: email.as_str(),
                password_hash: &password_hash,
                display_name: &display_name,
                language: language.code(),
            },
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e, store::users::EMAIL_UNIQUE) {
                ApiError::field(codes::EMAIL_TAKEN, "email", "is already registered")
            } else {
                e.into()
            }
        })?;
        events::publish(
            &mut tx,
            &pb::UserRegistered { user_id: user.id.to_string(), language: language.to_proto() as i32 },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "account registered");
        Ok(pb::RegisterResponse { user: Some(to_user(&user, &[])) })
    }

    async fn login(&self, req: pb::LoginRequest) -> ApiResult<pb::TokenPair> {
        let email = parse_email(&req.email)?;
        validate::required("password", &req.password, password::MAX_CHARS)?;
        let mut conn = self.pool.acquire().await?;
        let user = store::users::find_by_email(&mut conn, email.as_str()).await?;
        drop(conn);
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self.hasher.verify(req.password, stored).await.map_err(ApiError::internal)?;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => return Err(ApiError::new(codes::INVALID_CREDENTIALS)),
        };
        let mut tx = self.pool.begin().await?;
        let session_id = Uuid::now_v7();
        store::sessions::create(&mut tx, session_id, user.id).await?;
        let pair = self.issue_tokens(&mut tx, &user, session_id).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, %session_id, "signed in");
        Ok(pair)
    }

    async fn refresh(&self, req: pb::RefreshRequest) -> ApiResult<pb::TokenPair> {
        let token = refresh_token_of(&req.refresh_token)?;
        let hash = session::hash_refresh_token(token);
        let mut tx = self.pool.begin().await?;
        let found =
            store::sessions::lock_token(&mut tx, &hash).await?.ok_or(ApiError::new(codes::INVALID_REFRESH_TOKEN))?;
        let state = RefreshState {
            expires_at: found.expires_at,
            used: found.used_at.is_some(),
            session_revoked: found.session_revoked_at.is_some(),
        };
        match session::decide(state, Utc::now()) {
            RefreshDecision::Refuse => Err(ApiError::new(codes::INVALID_REFRESH_TOKEN)),
            RefreshDecision::ReuseDetected => {
                // The token leaked or was replayed: end the whole family, then refuse.
                Self::revoke_session(&mut tx, found.user_id, found.session_id, "refresh_token_reuse").await?;
                tx.commit().await?;
                tracing::warn!(user_id = %found.user_id, session_id = %found.session_id, "refresh token reuse: session revoked");
                Err(ApiError::new(codes::REFRESH_TOKEN_REUSED))
            }
            RefreshDecision::Rotate => {
                let user =
                    store::users::find(&mut tx, found.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
                store::sessions::mark_used(&mut tx, &hash).await?;
                let pair = self.issue_tokens(&mut tx, &user, found.session_id).await?;
                tx.commit().await?;
                Ok(pair)
            }
        }
    }

    async fn logout(&self, req: pb::LogoutRequest) -> ApiResult<pb::LogoutResponse> {
        let token = refresh_token_of(&req.refresh_token)?;
        let mut tx = self.pool.begin().await?;
        // Unknown or already-ended sessions: nothing to do, same answer (idempotent).
        if let Some(found) = store::sessions::lock_token(&mut tx, &session::hash_refresh_token(token)).await? {
            Self::revoke_session(&mut tx, found.user_id, found.session_id, "logout").await?;
        }
        tx.commit().await?;
        Ok(pb::LogoutResponse {})
    }

    async fn logout_all(&self, caller: Principal) -> ApiResult<pb::LogoutAllResponse> {
        let mut tx = self.pool.begin().await?;
        let ended = store::sessions::revoke_all(&mut tx, caller.user_id, "logout_all").await?;
        for session_id in &ended {
            events::publish(
                &mut tx,
                &pb::SessionRevoked {
                    user_id: caller.user_id.to_string(),
                    session_id: session_id.to_string(),
                    reason: "logout_all".into(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(pb::LogoutAllResponse { sessions_revoked: ended.len() as i32 })
    }

    async fn get_me(&self, caller: Principal) -> ApiResult<pb::User> {
        let mut conn = self.pool.acquire().await?;
        let user =
            store::users::find(&mut conn, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let memberships = store::memberships::of_user(&mut conn, user.id).await?;
        Ok(to_user(&user, &memberships))
    }

    async fn update_me(&self, caller: Principal, req: pb::UpdateMeRequest) -> ApiResult<pb::User> {
        let display_name = match validate::optional("display_name", &req.display_name, profile::MAX_DISPLAY_NAME)? {
            Some(name) => Some(
                profile::display_name(name)
                    .map_err(|d| ApiError::field(codes::INVALID_DISPLAY_NAME, "display_name", d))?,
            ),
            None => None,
        };
        let language = language_of(req.language)?;
        if display_name.is_none() && language.is_none() {
            return Err(ApiError::new(codes::REQUIRED_FIELD)
                .with_message("Nothing to update")
                .with_violation("display_name", "set display_name or language"));
        }
        let mut tx = self.pool.begin().await?;
        let user = store::users::update_profile(
            &mut tx,
            caller.user_id,
            display_name.as_deref(),
            language.map(Language::code),
        )
        .await?
        .ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        let user_language = Language::from_code(&user.language).unwrap_or(Language::DEFAULT);
        events::publish(
            &mut tx,
            &pb::UserUpdated { user_id: user.id.to_string(), language: user_language.to_proto() as i32 },
        )
        .await?;
        let memberships = store::memberships::of_user(&mut tx, user.id).await?;
        tx.commit().await?;
        Ok(to_user(&user, &memberships))
    }

    async fn delete_me(&self, caller: Principal) -> ApiResult<pb::DeleteMeResponse> {
        let mut tx = self.pool.begin().await?;
        if !store::users::soft_delete(&mut tx, caller.user_id).await? {
            return Err(ApiError::new(codes::ACCOUNT_DISABLED));
        }
        let user_id = caller.user_id.to_string();
        for session_id in store::sessions::revoke_all(&mut tx, caller.user_id, "account_deleted").await? {
            events::publish(
                &mut tx,
                &pb::SessionRevoked {
                    user_id: user_id.clone(),
                    session_id: session_id.to_string(),
                    reason: "account_deleted".into(),
                },
            )
            .await?;
        }
        for m in store::memberships::revoke_all_of_user(&mut tx, caller.user_id).await? {
            events::publish(
                &mut tx,
                &pb::MembershipRevoked {
                    festival_id: m.festival_id.to_string(),
                    user_id: user_id.clone(),
                    role: role_to_proto(&m.role) as i32,
                    revoked_by: user_id.clone(),
                },
            )
            .await?;
        }
        events::publish(&mut tx, &pb::UserDeleted { user_id }).await?;
        tx.commit().await?;
        tracing::info!(user_id = %caller.user_id, "account deleted");
        Ok(pb::DeleteMeResponse {})
    }

    async fn get_jwks(&self) -> ApiResult<pb::Jwks> {
        let keys = self.keyring.published().await.map_err(ApiError::internal)?;
        Ok(pb::Jwks {
            keys: keys
                .into_iter()
                .map(|k| pb::Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: k.x,
                    kid: k.kid,
                    alg: "EdDSA".into(),
                    r#use: "sig".into(),
                })
                .collect(),
        })
    }

    async fn rotate_signing_key(&self, caller: Principal) -> ApiResult<pb::RotateSigningKeyResponse> {
        caller.require_admin()?;
        let kid = self.keyring.rotate().await.map_err(ApiError::internal)?;
        self.verifier.refresh(true).await;
        Ok(pb::RotateSigningKeyResponse { kid })
    }

    async fn grant_membership(&self, caller: Principal, req: pb::GrantMembershipRequest) -> ApiResult<pb::Membership> {
        let (festival_id, user_id, role) = membership_target(&req.festival_id, &req.user_id, req.role)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        if store::users::find(&mut tx, user_id).await?.is_none() {
            return Err(ApiError::field(codes::NOT_FOUND, "user_id", "no such user"));
        }
        let (row, new) =
            store::memberships::grant(&mut tx, festival_id, user_id, role.as_str(), caller.user_id).await?;
        if new {
            events::publish(
                &mut tx,
                &pb::MembershipGranted {
                    festival_id: festival_id.to_string(),
                    user_id: user_id.to_string(),
                    role: pb::Role::from(role) as i32,
                    granted_by: caller.user_id.to_string(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(to_membership(&row))
    }

    async fn revoke_membership(
        &self,
        caller: Principal,
        req: pb::RevokeMembershipRequest,
    ) -> ApiResult<pb::RevokeMembershipResponse> {
        let (festival_id, user_id, role) = membership_target(&req.festival_id, &req.user_id, req.role)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        if !store::memberships::revoke(&mut tx, festival_id, user_id, role.as_str()).await? {
            return Err(ApiError::new(codes::NOT_FOUND).with_message("No such membership"));
        }
        events::publish(
            &mut tx,
            &pb::MembershipRevoked {
                festival_id: festival_id.to_string(),
                user_id: user_id.to_string(),
                role: pb::Role::from(role) as i32,
                revoked_by: caller.user_id.to_string(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(pb::RevokeMembershipResponse {})
    }

    async fn list_memberships(
        &self,
        caller: Principal,
        req: pb::ListMembershipsRequest,
    ) -> ApiResult<pb::ListMembershipsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        let page_size = validate::page_size("page_size", req.page_size, DEFAULT_PAGE, MAX_PAGE)?;
        let after = decode_cursor(&req.page_token)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::memberships::of_festival(&mut conn, festival_id, after, i64::from(page_size) + 1).await?;
        let next_page_token = if rows.len() > page_size as usize {
            rows.truncate(page_size as usize);
            rows.last().map(|r| encode_cursor(r.user_id, &r.role)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListMembershipsResponse { memberships: rows.iter().map(to_membership).collect(), next_page_token })
    }
}

// ---- validation and mapping ----------------------------------------------------------

fn parse_email(raw: &str) -> ApiResult<Email> {
    Email::parse(raw).map_err(|e| {
        let code = match e {
            EmailError::Empty => codes::REQUIRED_FIELD,
            EmailError::TooLong => codes::FIELD_TOO_LONG,
            EmailError::Malformed => codes::INVALID_EMAIL,
        };
        ApiError::field(code, "email", e.describe())
    })
}

fn check_password(raw: &str, email: Option<&Email>) -> ApiResult<()> {
    if raw.is_empty() {
        return Err(ApiError::field(codes::REQUIRED_FIELD, "password", "is required"));
    }
    password::check(raw, email).map_err(|rule| {
        let code = if rule == PasswordRule::MaxLength { codes::FIELD_TOO_LONG } else { codes::WEAK_PASSWORD };
        ApiError::field(code, "password", rule.describe()).with_metadata("rule", rule.name())
    })
}

fn language_of(value: i32) -> ApiResult<Option<Language>> {
    Ok(validate::known_enum::<pb::Language>("language", value, true)?.and_then(Language::from_proto))
}

fn refresh_token_of(raw: &str) -> ApiResult<&str> {
    let token = validate::required("refresh_token", raw, MAX_TOKEN_LEN)?;
    if !token.starts_with(session::REFRESH_PREFIX) {
        return Err(ApiError::new(codes::INVALID_REFRESH_TOKEN));
    }
    Ok(token)
}

fn membership_target(festival_id: &str, user_id: &str, role: i32) -> ApiResult<(Uuid, Uuid, Role)> {
    let festival_id = validate::uuid("festival_id", festival_id)?;
    let user_id = validate::uuid("user_id", user_id)?;
    let role = validate::known_enum::<pb::Role>("role", role, false)?
        .and_then(|r| Role::try_from(r).ok())
        .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "role", "is required"))?;
    if !role.is_festival_role() {
        return Err(ApiError::field(
            codes::ROLE_NOT_GRANTABLE,
            "role",
            "must be ORGANIZER, STAFF, CASHIER or SECURITY",
        ));
    }
    Ok((festival_id, user_id, role))
}

fn encode_cursor(user_id: Uuid, role: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{user_id}:{role}"))
}

fn decode_cursor(token: &str) -> ApiResult<Option<(Uuid, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::field(codes::INVALID_PAGE_TOKEN, "page_token", "is not a token this API issued");
    let text = URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(bad)?;
    let (user, role) = text.split_once(':').ok_or_else(bad)?;
    let user = Uuid::parse_str(user).map_err(|_| bad())?;
    Role::parse(role).ok_or_else(bad)?;
    Ok(Some((user, role.to_owned())))
}

fn role_to_proto(role: &str) -> pb::Role {
    Role::parse(role).map(pb::Role::from).unwrap_or(pb::Role::Unspecified)
}

fn membership_claims(rows: &[MembershipRow]) -> Vec<MembershipClaim> {
    rows.iter().filter_map(|m| Role::parse(&m.role).map(|role| MembershipClaim { fid: m.festival_id, role })).collect()
}

fn to_membership(m: &MembershipRow) -> pb::Membership {
    pb::Membership {
        festival_id: m.festival_id.to_string(),
        user_id: m.user_id.to_string(),
        role: role_to_proto(&m.role) as i32,
        granted_by: m.granted_by.to_string(),
        create_time: Some(timestamp(m.created_at)),
    }
}

fn to_user(u: &UserRow, memberships: &[MembershipRow]) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        language: Language::from_code(&u.language).unwrap_or(Language::DEFAULT).to_proto() as i32,
        role: role_to_proto(&u.role) as i32,
        memberships: memberships.iter().map(to_membership).collect(),
        create_time: Some(timestamp(u.created_at)),
        update_time: Some(timestamp(u.updated_at)),
    }
}

// ---- tonic glue ----------------------------------------------------------------------

type RpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::identity_service_server::IdentityService for IdentityApi {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> RpcResult<pb::RegisterResponse> {
        Ok(Response::new(self.register(request.into_inner()).await?))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> RpcResult<pb::TokenPair> {
        Ok(Response::new(self.login(request.into_inner()).await?))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> RpcResult<pb::TokenPair> {
        Ok(Response::new(self.refresh(request.into_inner()).await?))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> RpcResult<pb::LogoutResponse> {
        Ok(Response::new(self.logout(request.into_inner()).await?))
    }

    async fn logout_all(&self, request: Request<pb::LogoutAllRequest>) -> RpcResult<pb::LogoutAllResponse> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.logout_all(caller).await?))
    }

    async fn get_me(&self, request: Request<pb::GetMeRequest>) -> RpcResult<pb::User> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.get_me(caller).await?))
    }

    async fn update_me(&self, request: Request<pb::UpdateMeRequest>) -> RpcResult<pb::User> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.update_me(caller, request.into_inner()).await?))
    }

    async fn delete_me(&self, request: Request<pb::DeleteMeRequest>) -> RpcResult<pb::DeleteMeResponse> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.delete_me(caller).await?))
    }

    async fn get_jwks(&self, _request: Request<pb::GetJwksRequest>) -> RpcResult<pb::Jwks> {
        Ok(Response::new(self.get_jwks().await?))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> RpcResult<pb::RotateSigningKeyResponse> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.rotate_signing_key(caller).await?))
    }

    async fn grant_membership(&self, request: Request<pb::GrantMembershipRequest>) -> RpcResult<pb::Membership> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.grant_membership(caller, request.into_inner()).await?))
    }

    async fn revoke_membership(
        &self,
        request: Request<pb::RevokeMembershipRequest>,
    ) -> RpcResult<pb::RevokeMembershipResponse> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.revoke_membership(caller, request.into_inner()).await?))
    }

    async fn list_memberships(
        &self,
        request: Request<pb::ListMembershipsRequest>,
    ) -> RpcResult<pb::ListMembershipsResponse> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.list_memberships(caller, request.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_cursors_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id, "STAFF")).ok(), Some(Some((id, "STAFF".to_owned()))));
        assert_eq!(decode_cursor("").ok(), Some(None));
        assert_eq!(decode_cursor("!!!").unwrap_err().code, codes::INVALID_PAGE_TOKEN);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:STAFF")).unwrap_err().code, codes::INVALID_PAGE_TOKEN);
    }

    #[test]
    fn only_festival_roles_can_be_granted() {
        let (f, u) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        assert!(membership_target(&f, &u, pb::Role::Cashier as i32).is_ok());
        assert_eq!(membership_target(&f, &u, pb::Role::Admin as i32).unwrap_err().code, codes::ROLE_NOT_GRANTABLE);
        assert_eq!(membership_target(&f, &u, 42).unwrap_err().code, codes::UNKNOWN_ENUM_VALUE);
        assert_eq!(membership_target("nope", &u, 2).unwrap_err().code, codes::MALFORMED_ID);
    }
}
