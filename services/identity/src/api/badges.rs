//! Staff badges: organisers issue and revoke them for the festival's members; holders
//! show them; gates check them offline with the festival's badge keys and revocation list
//! (the ticket credential's format and mechanism, from the platform kit).

use chrono::{DateTime, Utc};
use festival_platform::auth::{GateCaller, Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::credential::badge::BadgeClaims;
use festival_platform::credential::{Issuer, SealedKey};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, page_token, qr, validate};
use festival_proto::identity::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::IdentityApi;
use crate::domain::audit::AuditAction;
use crate::domain::badge::{self, BadgeRule};
use crate::store;
use crate::store::audit::AuditRow;
use crate::store::badges::BadgeRow;

/// Longest revocation reason kept.
const MAX_REASON: usize = 200;

impl IdentityApi {
    pub(super) async fn issue_badge(&self, caller: Principal, req: pb::IssueBadgeRequest) -> ApiResult<pb::Badge> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let user_id = validate::uuid("user_id", &req.user_id)?;
        let role = validate::known_enum::<pb::Role>("role", req.role, false)?
            .and_then(|r| Role::try_from(r).ok())
            .ok_or_else(|| ApiError::field(codes::REQUIRED_FIELD, "role", "is required"))?;
        let role = badge::role(role).map_err(refusal)?;
        let zones = badge::zones(&req.zones).map_err(refusal)?;
        let now = self.clock.now();
        let valid_until = validate::required_timestamp("valid_until", &req.valid_until)?;
        let valid_until = badge::valid_until(valid_until, now).map_err(refusal)?;
        caller.require(festival_id, Role::Organizer)?;

        let mut tx = self.pool.begin().await?;
        // The holder's account, locked against deletion or disabling until the badge is in.
        let holder = store::users::lock_live(&mut tx, user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "user_id", "no such user"))?;
        if !store::memberships::lock_held(&mut tx, festival_id, holder.id, role).await? {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "role", "the user does not hold this role here"));
        }
        // Bounded: a lost badge is revoked and replaced, never piled up (the revocation
        // list every gate downloads stays small and whole).
        if store::badges::live_count(&mut tx, festival_id, holder.id, role, now).await? >= badge::MAX_LIVE_PER_ROLE {
            return Err(ApiError::field(
                codes::VALIDATION_FAILED,
                "user_id",
                "holds the most live badges for this role here; revoke one first",
            ));
        }
        let issuer = self.badge_issuer(&mut tx, festival_id).await?;
        let id = Uuid::now_v7();
        let claims = BadgeClaims {
            festival: festival_id,
            badge: id,
            issued_at: unix(now),
            valid_until: unix(valid_until),
            role,
            zones: zones.clone(),
        };
        let credential = issuer.issue_badge(&claims).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        let row = store::badges::insert(
            &mut tx,
            &store::badges::NewBadge {
                id,
                festival_id,
                user_id,
                role,
                zones: &zones,
                credential: &credential,
                issued_by: caller.user_id,
                issued_at: now,
                valid_until,
            },
        )
        .await?;
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(user_id),
            festival_id: Some(festival_id),
            detail: format!("badge {id}, {}, zones {}", role.as_str(), zones.join(" ")),
            ..AuditRow::new(AuditAction::BadgeIssued, now)
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        to_badge(&row, true)
    }

    pub(super) async fn list_badges(
        &self,
        caller: Principal,
        req: pb::ListBadgesRequest,
    ) -> ApiResult<pb::ListBadgesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let size = validate::page_size("page_size", req.page_size, 50, 200)?;
        caller.require(festival_id, Role::Organizer)?;
        let scope = format!("identity.ListBadges:{festival_id}");
        let after = page_token::decode(&scope, &req.page_token)?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::badges::page(&mut conn, festival_id, after, i64::from(size) + 1).await?;
        let next_page_token = page_token::next_page(&mut rows, size as usize, &scope, |r| (r.issued_at, r.id));
        let badges = rows.iter().map(|r| to_badge(r, false)).collect::<ApiResult<_>>()?;
        Ok(pb::ListBadgesResponse { badges, next_page_token })
    }

    pub(super) async fn revoke_badge(&self, caller: Principal, req: pb::RevokeBadgeRequest) -> ApiResult<pb::Badge> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let badge_id = validate::uuid("badge_id", &req.badge_id)?;
        let reason = validate::required("reason", &req.reason, MAX_REASON)?;
        let reason = validate::plain_text("reason", reason, false)?;
        caller.require(festival_id, Role::Organizer)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        // Another festival's badge, an unknown or an already revoked one: not found.
        let row = store::badges::revoke(&mut tx, festival_id, badge_id, reason, now)
            .await?
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        Self::audit_badges_revoked(&mut tx, Some(caller.user_id), std::slice::from_ref(&row), reason, now).await?;
        tx.commit().await?;
        to_badge(&row, false)
    }

    pub(super) async fn list_my_badges(
        &self,
        caller: Principal,
        _req: pb::ListMyBadgesRequest,
    ) -> ApiResult<pb::ListBadgesResponse> {
        let mut conn = self.pool.acquire().await?;
        let rows = store::badges::live_of_user(&mut conn, caller.user_id, self.clock.now()).await?;
        let badges = rows.iter().map(|r| to_badge(r, true)).collect::<ApiResult<_>>()?;
        Ok(pb::ListBadgesResponse { badges, next_page_token: String::new() })
    }

    pub(super) async fn get_badge_keys(&self, req: pb::GetBadgeKeysRequest) -> ApiResult<pb::BadgeKeys> {
        use base64::Engine as _;
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let mut conn = self.pool.acquire().await?;
        let keys = store::badges::keys_of_festival(&mut conn, festival_id).await?;
        Ok(pb::BadgeKeys {
            keys: keys
                .iter()
                .map(|k| pb::BadgeKey {
                    kid: k.kid.clone(),
                    public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&k.public_key),
                    create_time: Some(timestamp(k.created_at)),
                })
                .collect(),
        })
    }

    pub(super) async fn list_revoked_badges(
        &self,
        caller: GateCaller,
        req: pb::ListRevokedBadgesRequest,
    ) -> ApiResult<pb::ListRevokedBadgesResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, &[Role::Security, Role::Staff, Role::Organizer])?;
        let mut conn = self.pool.acquire().await?;
        let ids = store::badges::revoked_ids(&mut conn, festival_id, self.clock.now()).await?;
        Ok(pb::ListRevokedBadgesResponse { badge_ids: ids.iter().map(ToString::to_string).collect() })
    }

    /// The festival's badge-signing key, made (once, whatever the number of replicas) at
    /// its first badge.
    async fn badge_issuer(&self, conn: &mut PgConnection, festival_id: Uuid) -> ApiResult<Issuer> {
        store::badges::lock_festival_keys(conn, festival_id).await?;
        let sealer = self.keyring.sealer();
        if let Some(key) = store::badges::keys_of_festival(conn, festival_id).await?.first() {
            return SealedKey::open(sealer, &key.kid, &key.sealed_private).map_err(ApiError::internal);
        }
        let new = SealedKey::generate(sealer).map_err(ApiError::internal)?;
        store::badges::insert_key(conn, festival_id, &new.kid, &new.public_key, &new.sealed_private).await?;
        tracing::info!(%festival_id, kid = %new.kid, "created the festival's badge-signing key");
        Ok(new.issuer)
    }

    /// Revokes a user's badges with what ended their standing (a role revoked: that
    /// festival and role; an account disabled or deleted: all), audited.
    pub(super) async fn revoke_badges_of(
        &self,
        conn: &mut PgConnection,
        actor: Option<Uuid>,
        user_id: Uuid,
        scope: Option<(Uuid, Role)>,
        reason: &str,
    ) -> ApiResult<()> {
        let now = self.clock.now();
        let rows = store::badges::revoke_of_user(conn, user_id, scope, reason, now).await?;
        Self::audit_badges_revoked(conn, actor, &rows, reason, now).await
    }

    async fn audit_badges_revoked(
        conn: &mut PgConnection,
        actor: Option<Uuid>,
        rows: &[BadgeRow],
        reason: &str,
        at: DateTime<Utc>,
    ) -> ApiResult<()> {
        for row in rows {
            let entry = AuditRow {
                actor_id: actor,
                subject_id: Some(row.user_id),
                festival_id: Some(row.festival_id),
                detail: format!("badge {}: {reason}", row.id),
                ..AuditRow::new(AuditAction::BadgeRevoked, at)
            };
            store::audit::record(conn, &entry).await?;
        }
        Ok(())
    }
}

fn unix(t: DateTime<Utc>) -> u32 {
    u32::try_from(t.timestamp().max(0)).unwrap_or(u32::MAX)
}

fn refusal(rule: BadgeRule) -> ApiError {
    let (field, why) = match rule {
        BadgeRule::NotAFestivalRole => ("role", "a festival role: ORGANIZER, STAFF, CASHIER or SECURITY"),
        BadgeRule::TooManyZones => ("zones", "at most 16"),
        BadgeRule::BadZone => ("zones", "each 1 to 32 of A-Z a-z 0-9 - _ ."),
        BadgeRule::BadEnd => ("valid_until", "in the future, at most a year ahead"),
    };
    ApiError::field(codes::VALIDATION_FAILED, field, why)
}

/// A badge as its organiser or holder sees it; the credential and its QR code only when
/// `with_credential` (issuing, the holder's own list).
fn to_badge(row: &BadgeRow, with_credential: bool) -> ApiResult<pb::Badge> {
    let (credential, qr_svg) = if with_credential {
        let matrix =
            qr::Matrix::of(&row.credential).map_err(|e| ApiError::internal(anyhow::anyhow!("QR code: {e:?}")))?;
        (row.credential.clone(), qr::svg(&matrix))
    } else {
        (String::new(), String::new())
    };
    Ok(pb::Badge {
        id: row.id.to_string(),
        festival_id: row.festival_id.to_string(),
        user_id: row.user_id.to_string(),
        role: pb::Role::from(row.role) as i32,
        zones: row.zones.clone(),
        issue_time: Some(timestamp(row.issued_at)),
        valid_until: Some(timestamp(row.valid_until)),
        revoke_time: row.revoked_at.map(timestamp),
        revoke_reason: row.revoke_reason.clone().unwrap_or_default(),
        credential,
        qr_svg,
    })
}
