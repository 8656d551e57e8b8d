//! The authenticated caller and the authorization checks every RPC makes.

use uuid::Uuid;

use super::claims::{AccessClaims, MembershipClaim, Role};
use crate::codes;
use crate::error::{ApiError, ApiResult};

/// Who is calling, as proven by a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
    pub memberships: Vec<MembershipClaim>,
}

impl From<AccessClaims> for Principal {
    fn from(c: AccessClaims) -> Self {
        Self { user_id: c.sub, session_id: c.sid, role: c.role, memberships: c.mem }
    }
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// True when the caller holds `role` at `festival`. ADMINs hold every role everywhere;
    /// a festival's ORGANIZER holds every festival role there.
    pub fn has(&self, festival: Uuid, role: Role) -> bool {
        self.is_admin()
            || self.memberships.iter().any(|m| m.fid == festival && (m.role == role || m.role == Role::Organizer))
    }

    /// Fails with ERR_3002 (no role at all at that festival) or ERR_3001 (not this role).
    pub fn require(&self, festival: Uuid, role: Role) -> ApiResult<()> {
        self.require_any(festival, &[role])
    }

    /// Like [`Principal::require`], accepting any of `roles`.
    pub fn require_any(&self, festival: Uuid, roles: &[Role]) -> ApiResult<()> {
        if roles.iter().any(|r| self.has(festival, *r)) {
            return Ok(());
        }
        if self.memberships.iter().any(|m| m.fid == festival) {
            Err(ApiError::new(codes::INSUFFICIENT_PERMISSIONS))
        } else {
            Err(ApiError::new(codes::NOT_A_MEMBER))
        }
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::new(codes::INSUFFICIENT_PERMISSIONS)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, memberships: &[(Uuid, Role)]) -> Principal {
        Principal {
            user_id: Uuid::nil(),
            session_id: Uuid::nil(),
            role,
            memberships: memberships.iter().map(|&(fid, role)| MembershipClaim { fid, role }).collect(),
        }
    }

    #[test]
    fn an_organizer_of_one_festival_has_no_power_at_another() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let org = caller(Role::User, &[(a, Role::Organizer)]);
        assert!(org.require(a, Role::Organizer).is_ok());
        assert!(org.require(a, Role::Cashier).is_ok(), "organizers hold every festival role");
        assert_eq!(org.require(b, Role::Organizer).unwrap_err().code, codes::NOT_A_MEMBER);
    }

    #[test]
    fn staff_cannot_act_as_organizer_and_admins_can_do_anything() {
        let f = Uuid::from_u128(7);
        let staff = caller(Role::User, &[(f, Role::Staff)]);
        assert_eq!(staff.require(f, Role::Organizer).unwrap_err().code, codes::INSUFFICIENT_PERMISSIONS);
        assert!(staff.require_any(f, &[Role::Organizer, Role::Staff]).is_ok());
        assert!(caller(Role::Admin, &[]).require(f, Role::Organizer).is_ok());
        assert!(staff.require_admin().is_err());
    }
}
