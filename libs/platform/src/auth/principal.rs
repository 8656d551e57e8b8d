//! The authenticated caller and the authorization checks every RPC makes.

use uuid::Uuid;

use super::claims::{AMR_MFA, AccessClaims, DeviceClaims, DeviceLevel, MembershipClaim, Role};
use crate::codes;
use crate::error::{ApiError, ApiResult};

/// Who is calling, as proven by a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
    pub memberships: Vec<MembershipClaim>,
    /// The session was started with a second factor.
    pub mfa: bool,
}

impl From<AccessClaims> for Principal {
    fn from(c: AccessClaims) -> Self {
        let mfa = c.amr.iter().any(|m| m == AMR_MFA);
        Self { user_id: c.sub, session_id: c.sid, role: c.role, memberships: c.mem, mfa }
    }
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// True when the caller holds `role` at `festival`. ADMINs hold every role everywhere;
    /// a festival's ORGANIZER holds every festival role there. At a festival that requires
    /// a second factor of its staff, a role holds only when the session was started with
    /// one.
    pub fn has(&self, festival: Uuid, role: Role) -> bool {
        self.is_admin() || self.memberships_granting(festival, role).any(|m| !m.mfa || self.mfa)
    }

    fn memberships_granting(&self, festival: Uuid, role: Role) -> impl Iterator<Item = &MembershipClaim> {
        self.memberships.iter().filter(move |m| m.fid == festival && (m.role == role || m.role == Role::Organizer))
    }

    /// Fails with ERR_3002 (no role at all at that festival), ERR_3001 (not this role) or
    /// ERR_2012 (the role, but the festival requires a second factor the session lacks).
    pub fn require(&self, festival: Uuid, role: Role) -> ApiResult<()> {
        self.require_any(festival, &[role])
    }

    /// Like [`Principal::require`], accepting any of `roles`.
    pub fn require_any(&self, festival: Uuid, roles: &[Role]) -> ApiResult<()> {
        if roles.iter().any(|r| self.has(festival, *r)) {
            return Ok(());
        }
        if roles.iter().any(|r| self.memberships_granting(festival, *r).next().is_some()) {
            return Err(ApiError::new(codes::MFA_REQUIRED));
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

/// A paired device, as proven by a verified device token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub gate: String,
    pub level: DeviceLevel,
    /// The device's Ed25519 public key, bound to it by identity.
    pub public_key: [u8; 32],
}

impl TryFrom<DeviceClaims> for Device {
    type Error = ();
    fn try_from(c: DeviceClaims) -> Result<Self, ()> {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c.dkey.as_bytes()).map_err(|_| ())?;
        Ok(Self {
            id: c.sub,
            festival_id: c.fid,
            gate: c.gate,
            level: c.lvl,
            public_key: key.try_into().map_err(|_| ())?,
        })
    }
}

/// Who acts at a gate: a person with a festival role, or a paired device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateCaller {
    Person(Principal),
    Device(Device),
}

impl GateCaller {
    /// A person needs one of `roles` at `festival`; a device must be paired to `festival`
    /// (ERR_3002 otherwise: a device of festival A is a stranger at festival B).
    pub fn require(&self, festival: Uuid, roles: &[Role]) -> ApiResult<()> {
        match self {
            GateCaller::Person(p) => p.require_any(festival, roles),
            GateCaller::Device(d) if d.festival_id == festival => Ok(()),
            GateCaller::Device(_) => Err(ApiError::new(codes::NOT_A_MEMBER)),
        }
    }

    /// May check in by hand and override a refusal: a supervisor device, or a person
    /// holding `role` (e.g. ORGANIZER) at `festival`.
    pub fn is_supervisor(&self, festival: Uuid, role: Role) -> bool {
        match self {
            GateCaller::Person(p) => p.has(festival, role),
            GateCaller::Device(d) => d.festival_id == festival && d.level == DeviceLevel::Supervisor,
        }
    }

    /// The device, when the caller is one.
    pub fn device(&self) -> Option<&Device> {
        match self {
            GateCaller::Device(d) => Some(d),
            GateCaller::Person(_) => None,
        }
    }

    /// The id recorded as the actor: the person's or the device's.
    pub fn actor_id(&self) -> Uuid {
        match self {
            GateCaller::Person(p) => p.user_id,
            GateCaller::Device(d) => d.id,
        }
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
            memberships: memberships.iter().map(|&(fid, role)| MembershipClaim::new(fid, role)).collect(),
            mfa: false,
        }
    }

    #[test]
    fn a_festival_requiring_mfa_refuses_its_staff_without_it_and_only_there() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut cashier = caller(Role::User, &[(a, Role::Cashier), (b, Role::Cashier)]);
        cashier.memberships[0].mfa = true;
        assert_eq!(cashier.require(a, Role::Cashier).unwrap_err().code, codes::MFA_REQUIRED);
        assert!(!cashier.has(a, Role::Cashier));
        assert!(cashier.require(b, Role::Cashier).is_ok(), "festival B does not require it");
        assert_eq!(cashier.require(a, Role::Organizer).unwrap_err().code, codes::INSUFFICIENT_PERMISSIONS);
        cashier.mfa = true;
        assert!(cashier.require(a, Role::Cashier).is_ok());
        assert!(cashier.has(a, Role::Cashier));
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

    #[test]
    fn a_device_acts_only_at_its_own_festival_and_only_a_supervisor_overrides() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let device = |level| {
            GateCaller::Device(Device {
                id: Uuid::from_u128(9),
                festival_id: a,
                gate: "north".into(),
                level,
                public_key: [0; 32],
            })
        };
        let steward = device(DeviceLevel::Steward);
        assert!(steward.require(a, &[Role::Security]).is_ok());
        assert_eq!(steward.require(b, &[Role::Security]).unwrap_err().code, codes::NOT_A_MEMBER);
        assert!(!steward.is_supervisor(a, Role::Organizer));
        assert!(device(DeviceLevel::Supervisor).is_supervisor(a, Role::Organizer));
        assert!(!device(DeviceLevel::Supervisor).is_supervisor(b, Role::Organizer));
        let security = GateCaller::Person(caller(Role::User, &[(a, Role::Security)]));
        assert!(security.require(a, &[Role::Security]).is_ok());
        assert!(!security.is_supervisor(a, Role::Organizer));
    }
}
