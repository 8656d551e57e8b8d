//! Sessions: sign-in, refresh-token rotation with reuse detection, sign-out.

use std::net::IpAddr;

use festival_platform::auth::Principal;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use super::{IdentityApi, hashing_refused, parse_email};
use crate::domain::audit::{AuditAction, ip_prefix};
use crate::domain::password;
use crate::domain::session::{self, RefreshDecision, RefreshState};
use crate::store;
use crate::store::audit::AuditRow;

const MAX_TOKEN_LEN: usize = 512;
/// Longest device name a client may give its session.
pub(super) const MAX_DEVICE_NAME: usize = 100;

impl IdentityApi {
    pub(super) async fn login(&self, client: Option<IpAddr>, req: pb::LoginRequest) -> ApiResult<pb::TokenPair> {
        let email = parse_email(&req.email)?;
        validate::secret("password", &req.password, password::MAX_CHARS)?;
        let device_name = device_name(&req.device_name)?;
        let mut conn = self.pool.acquire().await?;
        let user = store::users::find_by_email(&mut conn, email.as_str()).await?;
        drop(conn);
        let mut attempt = self.guard.attempt(email.as_str(), user.as_ref().map(|u| u.id), client);
        self.guard.admit(&mut attempt).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self.hasher.verify(req.password.clone(), stored).await.map_err(hashing_refused)?;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            (_, known) => {
                // Whose account was tried, if it exists; never the email typed.
                let entry = AuditRow {
                    subject_id: known.map(|u| u.id),
                    ip_prefix: client.map(ip_prefix).unwrap_or_default(),
                    ..AuditRow::new(AuditAction::SignInFailed, self.clock.now())
                };
                store::audit::record(&mut *self.pool.acquire().await?, &entry).await?;
                return Err(ApiError::new(codes::INVALID_CREDENTIALS));
            }
        };
        self.guard.password_right(&attempt).await;
        let checked_hash = user.password_hash.clone();
        // The only moment the password is at hand: upgrade a hash made at an older cost.
        let rehashed = if self.hasher.needs_rehash(&user.password_hash) {
            Some(self.hasher.hash(req.password).await.map_err(hashing_refused)?)
        } else {
            None
        };
        let mut tx = self.pool.begin().await?;
        // Deleted meanwhile: no session for it.
        let user = store::users::lock_live(&mut tx, user.id).await?.ok_or(ApiError::new(codes::INVALID_CREDENTIALS))?;
        if user.password_hash != checked_hash {
            // Reset while this password was checked: it is no longer the account's.
            return Err(ApiError::new(codes::INVALID_CREDENTIALS));
        }
        if let Some(hash) = &rehashed {
            store::users::set_password_hash(&mut tx, user.id, hash).await?;
        }
        if user.disabled_at.is_some() {
            // The password was right: only now may the caller learn the account is disabled.
            let entry = AuditRow {
                subject_id: Some(user.id),
                ip_prefix: client.map(ip_prefix).unwrap_or_default(),
                detail: "account disabled".into(),
                ..AuditRow::new(AuditAction::SignInFailed, self.clock.now())
            };
            store::audit::record(&mut tx, &entry).await?;
            tx.commit().await?;
            return Err(ApiError::new(codes::ACCOUNT_DISABLED));
        }
        if store::mfa::is_enabled(&mut tx, user.id).await? {
            // No tokens yet: the second factor completes the sign-in (VerifyMfa). A right
            // password alone is recorded: stopping here is what a thief of it does.
            let pair = self.mfa_challenge(&mut tx, &user, device_name).await?;
            let entry = AuditRow {
                subject_id: Some(user.id),
                ip_prefix: client.map(ip_prefix).unwrap_or_default(),
                ..AuditRow::new(AuditAction::MfaChallenged, self.clock.now())
            };
            store::audit::record(&mut tx, &entry).await?;
            tx.commit().await?;
            return Ok(pair);
        }
        let session_id = Uuid::now_v7();
        let started_at = self.clock.now();
        let session = store::sessions::NewSession {
            id: session_id,
            user_id: user.id,
            started_at,
            mfa: false,
            ip_prefix: &client.map(ip_prefix).unwrap_or_default(),
            device_name,
        };
        store::sessions::create(&mut tx, &session).await?;
        let pair = self.issue_tokens(&mut tx, &user, session_id, started_at, false).await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: format!("session {session_id}"),
            ..AuditRow::new(AuditAction::SignIn, started_at)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        self.guard.remember_address(&attempt).await;
        if rehashed.is_some() {
            tracing::info!(user_id = %user.id, "password hash upgraded to the configured cost");
        }
        tracing::info!(user_id = %user.id, %session_id, "signed in");
        Ok(pair)
    }

    pub(super) async fn refresh(&self, req: pb::RefreshRequest) -> ApiResult<pb::TokenPair> {
        let token = refresh_token_of(&req.refresh_token)?;
        let hash = session::hash_refresh_token(token);
        let mut tx = self.pool.begin().await?;
        // The account first, then the token: the order deletion locks them in.
        let owner = store::sessions::owner_of_token(&mut tx, &hash)
            .await?
            .ok_or(ApiError::new(codes::INVALID_REFRESH_TOKEN))?;
        let user = store::users::lock_live(&mut tx, owner).await?.ok_or(ApiError::new(codes::INVALID_REFRESH_TOKEN))?;
        let found =
            store::sessions::lock_token(&mut tx, &hash).await?.ok_or(ApiError::new(codes::INVALID_REFRESH_TOKEN))?;
        let state = RefreshState {
            expires_at: found.expires_at,
            used: found.used_at.is_some(),
            session_revoked: found.session_revoked_at.is_some(),
            session_ends_at: self.session_end(found.session_started_at),
        };
        match session::decide(state, self.clock.now()) {
            RefreshDecision::Refuse => Err(ApiError::new(codes::INVALID_REFRESH_TOKEN)),
            RefreshDecision::SessionOver => Err(ApiError::new(codes::SESSION_REVOKED)
                .with_message("The session reached its maximum lifetime; sign in again")),
            RefreshDecision::ReuseDetected => {
                // The token leaked or was replayed: end the whole family, then refuse.
                Self::revoke_session(&mut tx, found.user_id, found.session_id, "refresh_token_reuse").await?;
                tx.commit().await?;
                tracing::warn!(user_id = %found.user_id, session_id = %found.session_id, "refresh token reuse: session revoked");
                Err(ApiError::new(codes::REFRESH_TOKEN_REUSED))
            }
            // Only a token that would rotate learns the account is disabled.
            RefreshDecision::Rotate if user.disabled_at.is_some() => Err(ApiError::new(codes::ACCOUNT_DISABLED)),
            RefreshDecision::Rotate => {
                // Test-only: widen the window between the check and the write, so the
                // race test's negative control (no lock) reliably interleaves.
                #[cfg(feature = "race-hooks")]
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                store::sessions::mark_used(&mut tx, &hash).await?;
                store::sessions::touch(&mut tx, found.session_id, self.clock.now()).await?;
                let pair = self
                    .issue_tokens(&mut tx, &user, found.session_id, found.session_started_at, found.session_mfa)
                    .await?;
                tx.commit().await?;
                Ok(pair)
            }
        }
    }

    pub(super) async fn logout(&self, req: pb::LogoutRequest) -> ApiResult<pb::LogoutResponse> {
        let token = refresh_token_of(&req.refresh_token)?;
        let mut tx = self.pool.begin().await?;
        // Unknown or already-ended sessions: nothing to do, same answer (idempotent).
        if let Some(found) = store::sessions::lock_token(&mut tx, &session::hash_refresh_token(token)).await? {
            Self::revoke_session(&mut tx, found.user_id, found.session_id, "logout").await?;
        }
        tx.commit().await?;
        Ok(pb::LogoutResponse {})
    }

    pub(super) async fn logout_all(
        &self,
        caller: Principal,
        _req: pb::LogoutAllRequest,
    ) -> ApiResult<pb::LogoutAllResponse> {
        let mut tx = self.pool.begin().await?;
        let ended = store::sessions::revoke_all(&mut tx, caller.user_id, "logout_all").await?;
        Self::announce_revoked(&mut tx, caller.user_id, &ended, "logout_all").await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            detail: format!("{} sessions", ended.len()),
            ..AuditRow::new(AuditAction::SignOutEverywhere, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(pb::LogoutAllResponse { sessions_revoked: ended.len() as i32 })
    }
}

/// The device name a client gave its session (trimmed; empty when none). Besides
/// control characters, invisible ones (bidirectional overrides, zero-width marks) are
/// refused: a name must read as what it is.
pub(super) fn device_name(raw: &str) -> ApiResult<&str> {
    let name = validate::max_len("device_name", raw.trim(), MAX_DEVICE_NAME)?;
    let name = validate::plain_text("device_name", name, false)?;
    let invisible =
        |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}');
    if name.chars().any(invisible) {
        return Err(ApiError::field(codes::VALIDATION_FAILED, "device_name", "must not contain invisible characters"));
    }
    Ok(name)
}

fn refresh_token_of(raw: &str) -> ApiResult<&str> {
    let token = validate::required("refresh_token", raw, MAX_TOKEN_LEN)?;
    if !token.starts_with(session::REFRESH_PREFIX) {
        return Err(ApiError::new(codes::INVALID_REFRESH_TOKEN));
    }
    Ok(token)
}
