//! Session control: a user sees where they are signed in and ends sessions; services
//! learn within seconds which sessions ended (their access tokens are refused).

use chrono::Duration;
use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::identity::v1 as pb;

use super::IdentityApi;
use crate::domain::audit::AuditAction;
use crate::store;
use crate::store::audit::AuditRow;

/// Ended sessions per answer (about 0.6 MB).
const REVOKED_PAGE: i64 = 10_000;

impl IdentityApi {
    pub(super) async fn list_my_sessions(
        &self,
        caller: Principal,
        _req: pb::ListMySessionsRequest,
    ) -> ApiResult<pb::ListMySessionsResponse> {
        let started_after = self.clock.now() - Duration::seconds(self.config.tokens.session_max_secs);
        let mut conn = self.pool.acquire().await?;
        let rows = store::sessions::live_of_user(&mut conn, caller.user_id, started_after).await?;
        let sessions = rows
            .into_iter()
            .map(|s| pb::ActiveSession {
                id: s.id.to_string(),
                create_time: Some(timestamp(s.created_at)),
                last_use_time: Some(timestamp(s.last_used_at.unwrap_or(s.created_at))),
                ip_prefix: s.ip_prefix,
                device_name: s.device_name,
                current: s.id == caller.session_id,
                mfa: s.mfa,
            })
            .collect();
        Ok(pb::ListMySessionsResponse { sessions })
    }

    pub(super) async fn revoke_my_session(
        &self,
        caller: Principal,
        req: pb::RevokeMySessionRequest,
    ) -> ApiResult<pb::RevokeMySessionResponse> {
        let session_id = validate::uuid("session_id", &req.session_id)?;
        let mut tx = self.pool.begin().await?;
        // Someone else's session, or one already ended: not found either way.
        if !store::sessions::revoke_own(&mut tx, caller.user_id, session_id, "revoked").await? {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        Self::announce_revoked(&mut tx, caller.user_id, &[session_id], "revoked").await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            detail: format!("session {session_id}"),
            ..AuditRow::new(AuditAction::SessionRevoked, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(pb::RevokeMySessionResponse {})
    }

    pub(super) async fn revoke_other_sessions(
        &self,
        caller: Principal,
        _req: pb::RevokeOtherSessionsRequest,
    ) -> ApiResult<pb::RevokeOtherSessionsResponse> {
        let mut tx = self.pool.begin().await?;
        let ended =
            store::sessions::revoke_all_but(&mut tx, caller.user_id, caller.session_id, "logout_others").await?;
        Self::announce_revoked(&mut tx, caller.user_id, &ended, "logout_others").await?;
        if ended.is_empty() {
            return Ok(pb::RevokeOtherSessionsResponse { sessions_revoked: 0 });
        }
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            detail: format!("{} other sessions", ended.len()),
            ..AuditRow::new(AuditAction::SessionRevoked, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(pb::RevokeOtherSessionsResponse { sessions_revoked: ended.len() as i32 })
    }

    /// What services poll: sessions ended since `since`, on the database's clock (the one
    /// that stamps revocations), never further back than an access token lives (with the
    /// verifiers' leeway): older tokens are dead anyway. Paged, so a mass sign-out cannot
    /// make an answer too large to deliver.
    pub(super) async fn list_revoked_sessions(
        &self,
        req: pb::ListRevokedSessionsRequest,
    ) -> ApiResult<pb::ListRevokedSessionsResponse> {
        let since = validate::timestamp("since", &req.since)?;
        let after = match req.after_session_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("after_session_id", raw)?),
        };
        let mut conn = self.pool.acquire().await?;
        let now = store::sessions::db_now(&mut conn).await?;
        let window = Duration::seconds(self.config.tokens.access_ttl_secs)
            + Duration::seconds(self.config.common.auth.leeway_secs as i64);
        let earliest = now - window;
        let (since, after) = match since {
            Some(s) if s >= earliest => (s, after),
            // Before the window: from its start (a page cursor there means nothing).
            _ => (earliest, None),
        };
        let mut rows = store::sessions::revoked_since(&mut conn, since, after, REVOKED_PAGE + 1).await?;
        let more = rows.len() > REVOKED_PAGE as usize;
        rows.truncate(REVOKED_PAGE as usize);
        Ok(pb::ListRevokedSessionsResponse {
            sessions: rows
                .into_iter()
                .map(|(id, at)| pb::RevokedSession { session_id: id.to_string(), revoke_time: Some(timestamp(at)) })
                .collect(),
            as_of: Some(timestamp(now)),
            more,
        })
    }
}
