//! Mailed links: resetting a forgotten password and verifying an address. A request
//! answers the same whether the address has an account (no enumeration) and mails in the
//! background (its time does not tell either); a link is spent once, expires, and only
//! the newest of its kind works. A reset ends every session.

use std::net::IpAddr;

use chrono::Duration;
use festival_platform::auth::Principal;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::identity::v1 as pb;

use super::{IdentityApi, hashing_refused, parse_email};
use crate::domain::audit::{AuditAction, ip_prefix};
use crate::domain::email_token::{self, Purpose};
use crate::domain::password;
use crate::mailer::Mail;
use crate::store;
use crate::store::audit::AuditRow;
use crate::store::users::UserRow;

/// Longest token read (anything longer is no token of ours).
const MAX_TOKEN_LEN: usize = 128;

impl IdentityApi {
    pub(super) async fn request_password_reset(
        &self,
        client: Option<IpAddr>,
        req: pb::RequestPasswordResetRequest,
    ) -> ApiResult<pb::RequestPasswordResetResponse> {
        let email = parse_email(&req.email)?;
        self.guard.admit_mail(email.as_str(), client).await?;
        let mut tx = self.pool.begin().await?;
        let user = match store::users::find_by_email(&mut tx, email.as_str()).await? {
            Some(user) if user.disabled_at.is_none() => user,
            // Unknown or disabled: the same answer, nothing sent.
            _ => return Ok(pb::RequestPasswordResetResponse {}),
        };
        let ttl = Duration::seconds(self.config.mail.reset_ttl_secs);
        let token = self.new_link(&mut tx, &user, Purpose::PasswordReset, ttl).await?;
        let entry = AuditRow {
            subject_id: Some(user.id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            ..AuditRow::new(AuditAction::PasswordResetRequested, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        let link = email_token::link(&self.config.mail.reset_link, &token);
        let (subject, body) = email_token::reset_mail(&link, ttl.num_minutes());
        self.mail_in_background(Mail { to: user.email, subject, body });
        Ok(pb::RequestPasswordResetResponse {})
    }

    pub(super) async fn reset_password(
        &self,
        client: Option<IpAddr>,
        req: pb::ResetPasswordRequest,
    ) -> ApiResult<pb::ResetPasswordResponse> {
        let token = link_token(&req.token, Purpose::PasswordReset)?;
        validate::secret("new_password", &req.new_password, password::MAX_CHARS)?;
        let hash = email_token::hash_token(token);
        let mut conn = self.pool.acquire().await?;
        // A live link first: a dead one costs no password hash.
        let owner = store::email_tokens::live_owner(&mut conn, &hash, Purpose::PasswordReset, self.clock.now())
            .await?
            .ok_or(ApiError::new(codes::LINK_INVALID))?;
        let user = store::users::find(&mut conn, owner).await?.ok_or(ApiError::new(codes::LINK_INVALID))?;
        drop(conn);
        let email = parse_email(&user.email)?;
        super::accounts::check_password(&req.new_password, Some(&email))?;
        let new_hash = self.hasher.hash(req.new_password).await.map_err(hashing_refused)?;

        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        // The row itself is about to change: locked for that, so a second click waits
        // its turn (and finds the link spent) and a racing sign-in sees the new hash.
        let user = store::users::lock_for_change(&mut tx, owner).await?.ok_or(ApiError::new(codes::LINK_INVALID))?;
        let found = store::email_tokens::lock(&mut tx, &hash, Purpose::PasswordReset)
            .await?
            .ok_or(ApiError::new(codes::LINK_INVALID))?;
        if found.expires_at <= now || found.email != user.email {
            return Err(ApiError::new(codes::LINK_INVALID));
        }
        if user.disabled_at.is_some() {
            return Err(ApiError::new(codes::ACCOUNT_DISABLED));
        }
        store::email_tokens::spend(&mut tx, &hash).await?;
        store::users::set_password_hash(&mut tx, user.id, &new_hash).await?;
        // Whoever knew the old password is signed out everywhere, sign-ins waiting for
        // their second factor included.
        let ended = store::sessions::revoke_all(&mut tx, user.id, "password_reset").await?;
        Self::announce_revoked(&mut tx, user.id, &ended, "password_reset").await?;
        store::mfa::delete_challenges(&mut tx, user.id).await?;
        // The link reached the mailbox: the address is the holder's.
        store::users::mark_email_verified(&mut tx, user.id, &user.email, now).await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ip_prefix: client.map(ip_prefix).unwrap_or_default(),
            detail: format!("{} sessions ended", ended.len()),
            ..AuditRow::new(AuditAction::PasswordReset, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "password reset");
        Ok(pb::ResetPasswordResponse { sessions_revoked: ended.len() as i32 })
    }

    pub(super) async fn request_email_verification(
        &self,
        caller: Principal,
        client: Option<IpAddr>,
        _req: pb::RequestEmailVerificationRequest,
    ) -> ApiResult<pb::RequestEmailVerificationResponse> {
        let mut tx = self.pool.begin().await?;
        let user =
            store::users::lock_live(&mut tx, caller.user_id).await?.ok_or(ApiError::new(codes::ACCOUNT_DISABLED))?;
        if user.email_verified_at.is_some() {
            return Ok(pb::RequestEmailVerificationResponse { already_verified: true });
        }
        self.guard.admit_mail(&user.email, client).await?;
        let mail = self.verification(&mut tx, &user).await?;
        tx.commit().await?;
        self.mail_in_background(mail);
        Ok(pb::RequestEmailVerificationResponse { already_verified: false })
    }

    pub(super) async fn verify_email(&self, req: pb::VerifyEmailRequest) -> ApiResult<pb::VerifyEmailResponse> {
        let token = link_token(&req.token, Purpose::EmailVerification)?;
        let hash = email_token::hash_token(token);
        let now = self.clock.now();
        let mut conn = self.pool.acquire().await?;
        let owner = store::email_tokens::live_owner(&mut conn, &hash, Purpose::EmailVerification, now)
            .await?
            .ok_or(ApiError::new(codes::LINK_INVALID))?;
        drop(conn);
        let mut tx = self.pool.begin().await?;
        let user = store::users::lock_for_change(&mut tx, owner).await?.ok_or(ApiError::new(codes::LINK_INVALID))?;
        let found = store::email_tokens::lock(&mut tx, &hash, Purpose::EmailVerification)
            .await?
            .ok_or(ApiError::new(codes::LINK_INVALID))?;
        // Sent to another address than the account's now: it proves nothing about this one.
        if found.expires_at <= now || found.email != user.email {
            return Err(ApiError::new(codes::LINK_INVALID));
        }
        store::email_tokens::spend(&mut tx, &hash).await?;
        store::users::mark_email_verified(&mut tx, user.id, &user.email, now).await?;
        let entry = AuditRow {
            actor_id: Some(user.id),
            subject_id: Some(user.id),
            ..AuditRow::new(AuditAction::EmailVerified, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(pb::VerifyEmailResponse { user_id: user.id.to_string() })
    }

    /// A verification link for the account's address (a new account, or asked), stored
    /// with the caller's transaction; mailed once it commits.
    pub(super) async fn verification(&self, conn: &mut sqlx::PgConnection, user: &UserRow) -> ApiResult<Mail> {
        let ttl = Duration::seconds(self.config.mail.verification_ttl_secs);
        let token = self.new_link(conn, user, Purpose::EmailVerification, ttl).await?;
        let link = email_token::link(&self.config.mail.verification_link, &token);
        let (subject, body) = email_token::verification_mail(&link);
        Ok(Mail { to: user.email.clone(), subject, body })
    }

    /// A new link's token, stored (hashed) in place of the user's earlier unused one.
    async fn new_link(
        &self,
        conn: &mut sqlx::PgConnection,
        user: &UserRow,
        purpose: Purpose,
        ttl: Duration,
    ) -> ApiResult<String> {
        let token = email_token::new_token(purpose);
        let expires_at = self.clock.now() + ttl;
        store::email_tokens::replace(conn, &email_token::hash_token(&token), user.id, purpose, &user.email, expires_at)
            .await?;
        Ok(token)
    }

    /// Sends after the answer: how long the relay takes tells nobody whether an account
    /// exists. A failure is logged; the holder asks again.
    pub(super) fn mail_in_background(&self, mail: Mail) {
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            let subject = mail.subject.clone();
            if let Err(e) = mailer.send(mail).await {
                tracing::warn!(error = %format_args!("{e:#}"), %subject, "mail not sent");
            }
        });
    }
}

/// A link's token of `purpose`, or ERR_2017 for any other text.
fn link_token(raw: &str, purpose: Purpose) -> ApiResult<&str> {
    let token = validate::required("token", raw, MAX_TOKEN_LEN)?;
    if !token.starts_with(purpose.prefix()) {
        return Err(ApiError::new(codes::LINK_INVALID));
    }
    Ok(token)
}
