//! Mapping between rows and protos.

use festival_platform::auth::MembershipClaim;
use festival_platform::convert::timestamp;
use festival_proto::identity::v1 as pb;

use crate::domain::profile::Language;
use crate::store::{memberships::MembershipRow, sessions::SessionRow, users::UserRow};

/// The memberships a token carries, each marked when its festival requires a second
/// factor of its staff.
pub(super) fn membership_claims(rows: &[MembershipRow], requiring_mfa: &[uuid::Uuid]) -> Vec<MembershipClaim> {
    rows.iter()
        .map(|m| MembershipClaim { fid: m.festival_id, role: m.role, mfa: requiring_mfa.contains(&m.festival_id) })
        .collect()
}

pub(super) fn to_membership(m: &MembershipRow) -> pb::Membership {
    pb::Membership {
        festival_id: m.festival_id.to_string(),
        user_id: m.user_id.to_string(),
        role: pb::Role::from(m.role) as i32,
        granted_by: m.granted_by.to_string(),
        create_time: Some(timestamp(m.created_at)),
    }
}

pub(super) fn to_user(u: &UserRow, memberships: &[MembershipRow]) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        language: Language::from_code(&u.language).unwrap_or(Language::DEFAULT).to_proto() as i32,
        role: pb::Role::from(u.role) as i32,
        memberships: memberships.iter().map(to_membership).collect(),
        create_time: Some(timestamp(u.created_at)),
        update_time: Some(timestamp(u.updated_at)),
        email_verified: u.email_verified_at.is_some(),
    }
}

pub(super) fn to_session_record(s: &SessionRow) -> pb::SessionRecord {
    pb::SessionRecord {
        id: s.id.to_string(),
        create_time: Some(timestamp(s.created_at)),
        revoke_time: s.revoked_at.map(timestamp),
        revoke_reason: s.revoked_reason.clone().unwrap_or_default(),
        last_refresh_time: s.last_refreshed_at.map(timestamp),
        device_name: s.device_name.clone(),
        ip_prefix: s.ip_prefix.clone(),
    }
}

pub(super) fn to_linked_identity(l: &crate::store::oauth::IdentityRow) -> pb::LinkedIdentity {
    pb::LinkedIdentity {
        provider: l.provider.name().into(),
        email: l.email.clone(),
        link_time: Some(timestamp(l.linked_at)),
        last_use_time: l.last_used_at.map(timestamp),
        unlink_time: l.unlinked_at.map(timestamp),
    }
}

pub(super) fn to_device(d: &crate::store::devices::DeviceRow) -> pb::Device {
    use crate::store::devices::DeviceStatus;
    use base64::Engine as _;
    use festival_platform::auth::DeviceLevel;
    pb::Device {
        id: d.id.to_string(),
        festival_id: d.festival_id.to_string(),
        name: d.name.clone(),
        gate: d.gate.clone(),
        level: match d.level {
            DeviceLevel::Steward => pb::DeviceLevel::Steward,
            DeviceLevel::Supervisor => pb::DeviceLevel::Supervisor,
        } as i32,
        status: match d.status {
            DeviceStatus::Pending => pb::DeviceStatus::Pending,
            DeviceStatus::Active => pb::DeviceStatus::Active,
            DeviceStatus::Revoked => pb::DeviceStatus::Revoked,
        } as i32,
        public_key: d
            .public_key
            .as_deref()
            .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k))
            .unwrap_or_default(),
        create_time: Some(timestamp(d.created_at)),
        pairing_expire_time: (d.status == DeviceStatus::Pending).then(|| timestamp(d.pairing_expires_at)),
        pair_time: d.paired_at.map(timestamp),
        revoke_time: d.revoked_at.map(timestamp),
    }
}
