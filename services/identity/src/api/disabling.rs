//! Admins disable and enable accounts, and switch off a second factor whose holder lost
//! it. Disabling ends every session in the same
//! transaction; sign-in and refresh then answer ERR_2006, and services refuse the
//! sessions' access tokens within seconds (they poll ListRevokedSessions).

use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::identity::v1 as pb;

use super::IdentityApi;
use crate::domain::audit::AuditAction;
use crate::store;
use crate::store::audit::AuditRow;

/// Longest reason kept in the audit log.
const MAX_REASON: usize = 200;

impl IdentityApi {
    pub(super) async fn disable_account(
        &self,
        caller: Principal,
        req: pb::DisableAccountRequest,
    ) -> ApiResult<pb::AccountStatus> {
        caller.require_admin()?;
        let user_id = validate::uuid("user_id", &req.user_id)?;
        let reason = validate::required("reason", &req.reason, MAX_REASON)?;
        let reason = validate::plain_text("reason", reason, false)?;
        if user_id == caller.user_id {
            // An admin locking themselves out (perhaps the last admin) is never meant.
            return Err(ApiError::field(codes::VALIDATION_FAILED, "user_id", "cannot disable one's own account"));
        }
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let (user, changed) = store::users::set_disabled(&mut tx, user_id, Some(reason), now)
            .await?
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "user_id", "no such user"))?;
        if !changed {
            // Disabled already (its first time, reason and ended sessions stand).
            return Ok(pb::AccountStatus {
                user_id: user_id.to_string(),
                disabled: true,
                disable_time: user.disabled_at.map(timestamp),
                sessions_revoked: 0,
            });
        }
        let ended = store::sessions::revoke_all(&mut tx, user_id, "account_disabled").await?;
        Self::announce_revoked(&mut tx, user_id, &ended, "account_disabled").await?;
        self.revoke_badges_of(&mut tx, Some(caller.user_id), user_id, None, "account disabled").await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(user_id),
            detail: reason.to_owned(),
            ..AuditRow::new(AuditAction::AccountDisabled, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        tracing::info!(%user_id, sessions = ended.len(), "account disabled");
        Ok(pb::AccountStatus {
            user_id: user_id.to_string(),
            disabled: true,
            disable_time: user.disabled_at.map(timestamp),
            sessions_revoked: ended.len() as i32,
        })
    }

    pub(super) async fn enable_account(
        &self,
        caller: Principal,
        req: pb::EnableAccountRequest,
    ) -> ApiResult<pb::AccountStatus> {
        caller.require_admin()?;
        let user_id = validate::uuid("user_id", &req.user_id)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let (_, changed) = store::users::set_disabled(&mut tx, user_id, None, now)
            .await?
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "user_id", "no such user"))?;
        if !changed {
            return Ok(pb::AccountStatus { user_id: user_id.to_string(), ..Default::default() });
        }
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(user_id),
            ..AuditRow::new(AuditAction::AccountEnabled, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(pb::AccountStatus { user_id: user_id.to_string(), disabled: false, disable_time: None, sessions_revoked: 0 })
    }

    pub(super) async fn reset_account_mfa(
        &self,
        caller: Principal,
        req: pb::ResetAccountMfaRequest,
    ) -> ApiResult<pb::AccountStatus> {
        caller.require_admin()?;
        let user_id = validate::uuid("user_id", &req.user_id)?;
        let reason = validate::required("reason", &req.reason, MAX_REASON)?;
        let reason = validate::plain_text("reason", reason, false)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        let user = store::users::lock_live(&mut tx, user_id)
            .await?
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "user_id", "no such user"))?;
        store::mfa::lock_totp(&mut tx, user_id).await?;
        if !store::mfa::is_enabled(&mut tx, user_id).await? {
            return Err(ApiError::new(codes::MFA_NOT_ENABLED));
        }
        store::mfa::remove(&mut tx, user_id).await?;
        // Whoever holds a session now may be the one who took the factor: all end.
        let ended = store::sessions::revoke_all(&mut tx, user_id, "mfa_reset").await?;
        Self::announce_revoked(&mut tx, user_id, &ended, "mfa_reset").await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(user_id),
            detail: format!("reset by an admin: {reason}"),
            ..AuditRow::new(AuditAction::MfaDisabled, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(pb::AccountStatus {
            user_id: user_id.to_string(),
            disabled: user.disabled_at.is_some(),
            disable_time: user.disabled_at.map(timestamp),
            sessions_revoked: ended.len() as i32,
        })
    }
}
