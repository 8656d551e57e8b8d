//! A gate's offline check of staff badges: the festival's badge keys and revocation list
//! (identity's `GetBadgeKeys` and `ListRevokedBadges`) and the zone the gate guards. A
//! badge opens it when its signature checks out with the public keys alone, it is the
//! festival's, not revoked, not past its end, and names the zone (an organiser's opens
//! every zone).

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use festival_platform::credential::Keyring;
use festival_platform::credential::badge::{BadgeClaims, BadgeRefusal};
use festival_proto::identity::v1 as pb;
use uuid::Uuid;

/// Why a badge does not open the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadgeDenied {
    /// Not a badge signed by one of the festival's badge keys.
    Forged,
    Refused(BadgeRefusal),
}

/// What a gate keeps to check badges offline.
#[derive(Debug, Clone)]
pub struct BadgeGate {
    festival: Uuid,
    zone: String,
    keys: Keyring,
    revoked: HashSet<Uuid>,
}

/// Identity's answer held a key that is not an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("badge key {0} is not an Ed25519 public key")]
pub struct BadKey(pub String);

impl BadgeGate {
    /// A gate guarding `zone` of `festival`, from identity's keys and revocation list.
    pub fn new(
        festival: Uuid,
        zone: &str,
        keys: &pb::BadgeKeys,
        revoked: &pb::ListRevokedBadgesResponse,
    ) -> Result<Self, BadKey> {
        let mut keyring = Keyring::default();
        keyring.precompute();
        for key in &keys.keys {
            let bytes: [u8; 32] = URL_SAFE_NO_PAD
                .decode(&key.public_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| BadKey(key.kid.clone()))?;
            keyring.insert(VerifyingKey::from_bytes(&bytes).map_err(|_| BadKey(key.kid.clone()))?);
        }
        // Zones are written lower case (identity lower-cases them at issue).
        let mut gate =
            Self { festival, zone: zone.trim().to_ascii_lowercase(), keys: keyring, revoked: HashSet::new() };
        gate.refresh_revoked(revoked);
        Ok(gate)
    }

    /// Replaces the revocation list with a newer one.
    pub fn refresh_revoked(&mut self, revoked: &pb::ListRevokedBadgesResponse) {
        self.revoked = revoked.badge_ids.iter().filter_map(|id| id.parse().ok()).collect();
    }

    /// Checks a badge's text at `now` (Unix seconds).
    pub fn check(&self, text: &str, now: u32) -> Result<BadgeClaims, BadgeDenied> {
        let claims = self.keys.verify_badge(text).map_err(|_| BadgeDenied::Forged)?;
        let revoked = self.revoked.contains(&claims.badge);
        claims.admits(self.festival, &self.zone, now, revoked).map_err(BadgeDenied::Refused)?;
        Ok(claims)
    }
}
