//! Festival memberships: organisers grant and revoke festival roles and list the roster.

use festival_platform::auth::{Principal, Role};
use festival_platform::{ApiError, ApiResult, codes, page_token, validate};
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

use super::IdentityApi;
use super::convert::to_membership;
use crate::domain::audit::AuditAction;
use crate::events;
use crate::store;
use crate::store::audit::AuditRow;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

impl IdentityApi {
    pub(super) async fn grant_membership(
        &self,
        caller: Principal,
        req: pb::GrantMembershipRequest,
    ) -> ApiResult<pb::Membership> {
        let (festival_id, user_id, role) = membership_target(&req.festival_id, &req.user_id, req.role)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        if store::users::find(&mut tx, user_id).await?.is_none() {
            return Err(ApiError::field(codes::NOT_FOUND, "user_id", "no such user"));
        }
        let (row, new) = store::memberships::grant(&mut tx, festival_id, user_id, role, caller.user_id).await?;
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
            let entry = AuditRow {
                actor_id: Some(caller.user_id),
                subject_id: Some(user_id),
                festival_id: Some(festival_id),
                detail: pb::Role::from(role).as_str_name().to_owned(),
                ..AuditRow::new(AuditAction::RoleGranted, self.clock.now())
            };
            store::audit::record(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(to_membership(&row))
    }

    pub(super) async fn revoke_membership(
        &self,
        caller: Principal,
        req: pb::RevokeMembershipRequest,
    ) -> ApiResult<pb::RevokeMembershipResponse> {
        let (festival_id, user_id, role) = membership_target(&req.festival_id, &req.user_id, req.role)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        if !store::memberships::revoke(&mut tx, festival_id, user_id, role).await? {
            return Err(ApiError::new(codes::NOT_FOUND).with_message("No such membership"));
        }
        // Its badges go with it (a badge being issued meanwhile holds the membership row).
        self.revoke_badges_of(&mut tx, Some(caller.user_id), user_id, Some((festival_id, role)), "role revoked")
            .await?;
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
        let entry = AuditRow {
            actor_id: Some(caller.user_id),
            subject_id: Some(user_id),
            festival_id: Some(festival_id),
            detail: pb::Role::from(role).as_str_name().to_owned(),
            ..AuditRow::new(AuditAction::RoleRevoked, self.clock.now())
        };
        store::audit::record(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(pb::RevokeMembershipResponse {})
    }

    pub(super) async fn list_memberships(
        &self,
        caller: Principal,
        req: pb::ListMembershipsRequest,
    ) -> ApiResult<pb::ListMembershipsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        festival_platform::rpc::record_festival(festival_id);
        let page_size = validate::page_size("page_size", req.page_size, DEFAULT_PAGE, MAX_PAGE)?;
        let scope = format!("identity.ListMemberships:{festival_id}");
        let after: Option<(Uuid, String)> = page_token::decode(&scope, &req.page_token)?;
        caller.require(festival_id, Role::Organizer)?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::memberships::of_festival(&mut conn, festival_id, after, i64::from(page_size) + 1).await?;
        let next_page_token =
            page_token::next_page(&mut rows, page_size as usize, &scope, |r| (r.user_id, r.role.as_str()));
        Ok(pb::ListMembershipsResponse { memberships: rows.iter().map(to_membership).collect(), next_page_token })
    }
}

fn membership_target(festival_id: &str, user_id: &str, role: i32) -> ApiResult<(Uuid, Uuid, Role)> {
    let festival_id = validate::uuid("festival_id", festival_id)?;
    festival_platform::rpc::record_festival(festival_id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_festival_roles_can_be_granted() {
        let (f, u) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        assert!(membership_target(&f, &u, pb::Role::Cashier as i32).is_ok());
        assert_eq!(membership_target(&f, &u, pb::Role::Admin as i32).unwrap_err().code, codes::ROLE_NOT_GRANTABLE);
        assert_eq!(membership_target(&f, &u, 42).unwrap_err().code, codes::UNKNOWN_ENUM_VALUE);
        assert_eq!(membership_target("nope", &u, 2).unwrap_err().code, codes::MALFORMED_ID);
    }

    #[test]
    fn roster_page_tokens_round_trip_and_others_are_refused() {
        let id = Uuid::now_v7();
        let scope = format!("identity.ListMemberships:{}", Uuid::now_v7());
        let token = page_token::encode(&scope, &(id, "STAFF"));
        let decoded: Option<(Uuid, String)> = page_token::decode(&scope, &token).expect("valid");
        assert_eq!(decoded, Some((id, "STAFF".to_owned())));
        let first: Option<(Uuid, String)> = page_token::decode(&scope, "").expect("first page");
        assert_eq!(first, None);
        assert_eq!(page_token::decode::<(Uuid, String)>(&scope, "!!!").unwrap_err().code, codes::INVALID_PAGE_TOKEN);
        let other_festival = format!("identity.ListMemberships:{}", Uuid::now_v7());
        assert_eq!(
            page_token::decode::<(Uuid, String)>(&other_festival, &token).unwrap_err().code,
            codes::INVALID_PAGE_TOKEN
        );
    }
}
