//! The claims inside an access token and the roles they carry.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use festival_proto::identity::v1 as pb;

/// `token_use` of access tokens; anything else (a refresh or ID token) is refused.
pub const ACCESS_TOKEN_USE: &str = "access";

/// `token_use` of device tokens: accepted only where a device may act (gates, terminals),
/// never where a person's access token is asked for.
pub const DEVICE_TOKEN_USE: &str = "device";

/// Roles from the brief. `Admin` and `User` are global; the others are held per festival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Admin,
    Organizer,
    Staff,
    Cashier,
    Security,
    User,
}

impl Role {
    pub const ALL: [Role; 6] = [Role::Admin, Role::Organizer, Role::Staff, Role::Cashier, Role::Security, Role::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Organizer => "ORGANIZER",
            Role::Staff => "STAFF",
            Role::Cashier => "CASHIER",
            Role::Security => "SECURITY",
            Role::User => "USER",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Roles that can be granted at a festival through a membership.
    pub fn is_festival_role(self) -> bool {
        matches!(self, Role::Organizer | Role::Staff | Role::Cashier | Role::Security)
    }
}

/// A stored role name that is none of the roles (a bug or a bad migration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role")]
pub struct UnknownRole(pub String);

/// How rows decode a role column: an unknown name fails at the store boundary.
impl TryFrom<String> for Role {
    type Error = UnknownRole;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Role::parse(&s).ok_or(UnknownRole(s))
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => pb::Role::Admin,
            Role::Organizer => pb::Role::Organizer,
            Role::Staff => pb::Role::Staff,
            Role::Cashier => pb::Role::Cashier,
            Role::Security => pb::Role::Security,
            Role::User => pb::Role::User,
        }
    }
}

impl TryFrom<pb::Role> for Role {
    type Error = ();
    fn try_from(r: pb::Role) -> Result<Self, ()> {
        Ok(match r {
            pb::Role::Unspecified => return Err(()),
            pb::Role::Admin => Role::Admin,
            pb::Role::Organizer => Role::Organizer,
            pb::Role::Staff => Role::Staff,
            pb::Role::Cashier => Role::Cashier,
            pb::Role::Security => Role::Security,
            pb::Role::User => Role::User,
        })
    }
}

/// One festival role in a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipClaim {
    /// Festival id.
    pub fid: Uuid,
    pub role: Role,
    /// The festival requires its staff to sign in with a second factor: the role holds
    /// only in a token whose session did (see [`AccessClaims::amr`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub mfa: bool,
}

impl MembershipClaim {
    pub fn new(fid: Uuid, role: Role) -> Self {
        Self { fid, role, mfa: false }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `amr` value (RFC 8176) of a session started with a second factor.
pub const AMR_MFA: &str = "mfa";

/// The `amr` of a session started with a password, and a one-time code when `mfa`.
pub fn amr(mfa: bool) -> Vec<String> {
    let mut methods = vec!["pwd".to_owned()];
    if mfa {
        methods.extend(["otp".to_owned(), AMR_MFA.to_owned()]);
    }
    methods
}

/// The payload of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: Uuid,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: Uuid,
    /// Session (refresh-token family) the token was minted for.
    pub sid: Uuid,
    /// Always [`ACCESS_TOKEN_USE`] for access tokens.
    pub token_use: String,
    /// Global role.
    pub role: Role,
    /// Festival memberships at minting time.
    #[serde(default)]
    pub mem: Vec<MembershipClaim>,
    /// How the session was authenticated (RFC 8176): `pwd`, plus `otp` and [`AMR_MFA`]
    /// when a second factor was given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// What a paired device may do at its gate: stewards scan, supervisors also check in by
/// hand and override a refusal with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeviceLevel {
    Steward,
    Supervisor,
}

impl DeviceLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceLevel::Steward => "STEWARD",
            DeviceLevel::Supervisor => "SUPERVISOR",
        }
    }

    pub fn parse(s: &str) -> Option<DeviceLevel> {
        [DeviceLevel::Steward, DeviceLevel::Supervisor].into_iter().find(|l| l.as_str() == s)
    }
}

impl TryFrom<String> for DeviceLevel {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeviceLevel::parse(&s).ok_or(s)
    }
}

/// The payload of a device token: one device, one festival, one gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceClaims {
    pub iss: String,
    pub aud: String,
    /// Device id.
    pub sub: Uuid,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: Uuid,
    /// Always [`DEVICE_TOKEN_USE`].
    pub token_use: String,
    /// The festival the device works for.
    pub fid: Uuid,
    pub gate: String,
    pub lvl: DeviceLevel,
    /// The device's own Ed25519 public key (base64url): what it signs offline work with
    /// (scan uploads), bound to the device by identity's signature on this token.
    pub dkey: String,
}
