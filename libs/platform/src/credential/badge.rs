//! Staff badges: the ticket credential's header, key ids and signature, with a body that
//! says what the badge lets its holder do, so a gate decides offline with the festival's
//! public keys alone (and the badge revocation list).
//!
//! Layout (version 2), 48 + zones + 64 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version (2) |
//! | 1 | kind ([`Kind::StaffBadge`]) |
//! | 16 | festival id |
//! | 16 | badge id |
//! | 4 | key id (as tickets) |
//! | 4 | issue time, Unix seconds |
//! | 4 | valid until, Unix seconds |
//! | 1 | festival role ([`Role`], by its place in [`ROLES`]) |
//! | 1 | number of zones, at most [`MAX_ZONES`] |
//! | 1 + n each | a zone: its length n (1 to [`MAX_ZONE_LEN`]), then n bytes of UTF-8 |
//! | 64 | Ed25519 signature over everything before it |
//!
//! Decoding never panics and reads at most [`MAX_ENCODED_LEN`] characters.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, Verifier as _};
use uuid::Uuid;

use super::{CredentialError, Issuer, Keyring, Kind};
use crate::auth::Role;

const VERSION: u8 = 2;
/// Header through the zone count.
const FIXED_LEN: usize = 1 + 1 + 16 + 16 + 4 + 4 + 4 + 1 + 1;
/// Zones a badge names at most.
pub const MAX_ZONES: usize = 16;
/// Bytes of one zone's name at most.
pub const MAX_ZONE_LEN: usize = 32;
const MAX_LEN: usize = FIXED_LEN + MAX_ZONES * (1 + MAX_ZONE_LEN) + 64;
/// base64url characters of the longest badge.
pub const MAX_ENCODED_LEN: usize = (MAX_LEN * 4).div_ceil(3);

/// The festival roles a badge can carry, in the order their byte names them.
pub const ROLES: [Role; 4] = [Role::Organizer, Role::Staff, Role::Cashier, Role::Security];

/// What a verified badge says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadgeClaims {
    pub festival: Uuid,
    pub badge: Uuid,
    pub issued_at: u32,
    pub valid_until: u32,
    pub role: Role,
    /// Where it lets its holder in; empty: nowhere beyond what the role itself opens.
    pub zones: Vec<String>,
}

/// Why a genuine badge does not open a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadgeRefusal {
    OtherFestival,
    Expired,
    Revoked,
    WrongZone,
}

impl BadgeClaims {
    /// Whether the badge opens `zone` of `festival` at `now` (Unix seconds), not revoked.
    /// An ORGANIZER's badge opens every zone.
    pub fn admits(&self, festival: Uuid, zone: &str, now: u32, revoked: bool) -> Result<(), BadgeRefusal> {
        if self.festival != festival {
            Err(BadgeRefusal::OtherFestival)
        } else if revoked {
            Err(BadgeRefusal::Revoked)
        } else if now > self.valid_until {
            Err(BadgeRefusal::Expired)
        } else if self.role != Role::Organizer && !self.zones.iter().any(|z| z == zone) {
            Err(BadgeRefusal::WrongZone)
        } else {
            Ok(())
        }
    }
}

/// A badge that cannot be written: a role that is not a festival role, too many zones, or
/// a zone empty or too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a badge carries a festival role and at most 16 zones of 1 to 32 bytes")]
pub struct UnwritableBadge;

impl Issuer {
    /// Signs a badge.
    pub fn issue_badge(&self, claims: &BadgeClaims) -> Result<String, UnwritableBadge> {
        let role = ROLES.iter().position(|r| *r == claims.role).ok_or(UnwritableBadge)?;
        if claims.zones.len() > MAX_ZONES || claims.zones.iter().any(|z| z.is_empty() || z.len() > MAX_ZONE_LEN) {
            return Err(UnwritableBadge);
        }
        let mut bytes = Vec::with_capacity(MAX_LEN);
        bytes.push(VERSION);
        bytes.push(Kind::StaffBadge as u8);
        bytes.extend_from_slice(claims.festival.as_bytes());
        bytes.extend_from_slice(claims.badge.as_bytes());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&claims.issued_at.to_be_bytes());
        bytes.extend_from_slice(&claims.valid_until.to_be_bytes());
        bytes.push(role as u8);
        bytes.push(claims.zones.len() as u8);
        for zone in &claims.zones {
            bytes.push(zone.len() as u8);
            bytes.extend_from_slice(zone.as_bytes());
        }
        let signature = self.key.sign(&bytes);
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl Keyring {
    /// Parses and verifies a badge with the festival key it names.
    /// With [precomputed tables](Keyring::precompute) when it has them, as tickets.
    pub fn verify_badge(&self, text: &str) -> Result<BadgeClaims, CredentialError> {
        let (claims, key_id, payload, signature) = parse(text)?;
        let genuine = match self.tables.get(&key_id) {
            Some(tables) => tables.verify(&payload, &signature.to_bytes()),
            None => {
                let key = self.get(key_id).ok_or(CredentialError::UnknownKey)?;
                if super::key_id(key) != key_id {
                    return Err(CredentialError::UnknownKey);
                }
                key.verify(&payload, &signature).is_ok()
            }
        };
        if genuine { Ok(claims) } else { Err(CredentialError::BadSignature) }
    }
}

/// The claims, key id, signed bytes and signature of a badge's text, unverified.
fn parse(text: &str) -> Result<(BadgeClaims, u32, Vec<u8>, Signature), CredentialError> {
    let text = text.trim();
    if text.len() > MAX_ENCODED_LEN {
        return Err(CredentialError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| CredentialError::Malformed)?;
    if bytes.len() < FIXED_LEN + 64 || bytes[0] != VERSION || bytes[1] != Kind::StaffBadge as u8 {
        return Err(CredentialError::Malformed);
    }
    let (payload, signature) = bytes.split_at(bytes.len() - 64);
    let mut r = Reader(payload);
    let (_, _) = (r.byte()?, r.byte()?);
    let festival = Uuid::from_bytes(r.array()?);
    let badge = Uuid::from_bytes(r.array()?);
    let key_id = u32::from_be_bytes(r.array()?);
    let issued_at = u32::from_be_bytes(r.array()?);
    let valid_until = u32::from_be_bytes(r.array()?);
    let role = *ROLES.get(usize::from(r.byte()?)).ok_or(CredentialError::Malformed)?;
    let count = usize::from(r.byte()?);
    if count > MAX_ZONES {
        return Err(CredentialError::Malformed);
    }
    let mut zones = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(r.byte()?);
        if len == 0 || len > MAX_ZONE_LEN {
            return Err(CredentialError::Malformed);
        }
        let zone = std::str::from_utf8(r.take(len)?).map_err(|_| CredentialError::Malformed)?;
        zones.push(zone.to_owned());
    }
    if !r.0.is_empty() {
        return Err(CredentialError::Malformed);
    }
    let signature = Signature::from_bytes(signature.try_into().map_err(|_| CredentialError::Malformed)?);
    let claims = BadgeClaims { festival, badge, issued_at, valid_until, role, zones };
    Ok((claims, key_id, payload.to_vec(), signature))
}

/// Reads a payload front to back, refusing to run past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CredentialError> {
        if self.0.len() < n {
            return Err(CredentialError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, CredentialError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CredentialError> {
        self.take(N)?.try_into().map_err(|_| CredentialError::Malformed)
    }
}

/// The key id a badge names, to fetch its key before verifying (`None`: not a badge).
pub fn badge_key_id(text: &str) -> Option<u32> {
    parse(text).ok().map(|(_, id, _, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn issuer(seed: u8) -> Issuer {
        Issuer::new(SigningKey::from_bytes(&[seed; 32]))
    }

    fn claims() -> BadgeClaims {
        BadgeClaims {
            festival: Uuid::from_u128(7),
            badge: Uuid::from_u128(42),
            issued_at: 1_800_000_000,
            valid_until: 1_800_600_000,
            role: Role::Security,
            zones: vec!["backstage".into(), "north-gate".into()],
        }
    }

    fn keyring(issuer: &Issuer) -> Keyring {
        let mut keyring = Keyring::default();
        keyring.insert(issuer.verifying_key());
        keyring
    }

    #[test]
    fn a_badge_verifies_with_the_public_key_alone_and_says_where_it_opens() {
        let issuer = issuer(1);
        let text = issuer.issue_badge(&claims()).expect("writable");
        assert!(text.len() < 200, "QR-sized: {}", text.len());
        let read = keyring(&issuer).verify_badge(&text).expect("genuine");
        assert_eq!(read, claims());
        assert_eq!(badge_key_id(&text), Some(issuer.key_id()));
        let (festival, now) = (Uuid::from_u128(7), 1_800_000_100);
        assert_eq!(read.admits(festival, "backstage", now, false), Ok(()));
        assert_eq!(read.admits(festival, "main-stage-pit", now, false), Err(BadgeRefusal::WrongZone));
        assert_eq!(read.admits(Uuid::from_u128(8), "backstage", now, false), Err(BadgeRefusal::OtherFestival));
        assert_eq!(read.admits(festival, "backstage", 1_800_600_001, false), Err(BadgeRefusal::Expired));
        assert_eq!(read.admits(festival, "backstage", now, true), Err(BadgeRefusal::Revoked));
        let organiser = BadgeClaims { role: Role::Organizer, zones: vec![], ..claims() };
        assert_eq!(organiser.admits(festival, "anywhere", now, false), Ok(()));
    }

    #[test]
    fn a_bit_flipped_anywhere_another_key_or_a_ticket_is_refused() {
        let issuer = issuer(1);
        let text = issuer.issue_badge(&claims()).expect("writable");
        let bytes = URL_SAFE_NO_PAD.decode(&text).expect("base64");
        let keys = keyring(&issuer);
        assert!(!bytes.is_empty());
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                assert!(keys.verify_badge(&URL_SAFE_NO_PAD.encode(&flipped)).is_err(), "byte {i} bit {bit}");
            }
        }
        assert_eq!(keyring(&self::issuer(2)).verify_badge(&text), Err(CredentialError::UnknownKey));
        let ticket = issuer.issue(&super::super::Claims {
            kind: Kind::Ticket,
            festival: Uuid::from_u128(7),
            subject: Uuid::from_u128(1),
            issued_at: 1,
        });
        assert_eq!(keys.verify_badge(&ticket), Err(CredentialError::Malformed), "a ticket is no badge");
        assert_eq!(keys.verify(&text).err(), Some(CredentialError::Malformed), "nor a badge a ticket");
    }

    #[test]
    fn unwritable_badges_are_refused_before_signing() {
        let issuer = issuer(1);
        for bad in [
            BadgeClaims { role: Role::User, ..claims() },
            BadgeClaims { role: Role::Admin, ..claims() },
            BadgeClaims { zones: vec![String::new()], ..claims() },
            BadgeClaims { zones: vec!["z".repeat(33)], ..claims() },
            BadgeClaims { zones: (0..17).map(|i| format!("zone-{i}")).collect(), ..claims() },
        ] {
            assert_eq!(issuer.issue_badge(&bad), Err(UnwritableBadge), "{bad:?}");
        }
        let mut fast = keyring(&issuer);
        fast.precompute();
        let text = issuer.issue_badge(&claims()).expect("writable");
        assert_eq!(fast.verify_badge(&text), Ok(claims()), "precomputed tables answer the same");
        let mut forged = URL_SAFE_NO_PAD.decode(&text).expect("base64");
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(fast.verify_badge(&URL_SAFE_NO_PAD.encode(&forged)), Err(CredentialError::BadSignature));
        let widest = BadgeClaims { zones: (0..16).map(|i| format!("{i:0>32}")).collect(), ..claims() };
        let text = issuer.issue_badge(&widest).expect("the widest badge");
        assert_eq!(text.len(), MAX_ENCODED_LEN);
        assert_eq!(keyring(&issuer).verify_badge(&text).expect("verifies"), widest);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn random_text_never_panics_and_never_verifies(text in "\\PC{0,900}") {
            let issuer = issuer(1);
            proptest::prop_assert!(keyring(&issuer).verify_badge(&text).is_err());
        }

        #[test]
        fn random_bytes_after_a_badge_header_never_panic_or_verify(
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..700)
        ) {
            let issuer = issuer(1);
            let mut bytes = vec![VERSION, Kind::StaffBadge as u8];
            bytes.extend_from_slice(&tail);
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            proptest::prop_assert!(keyring(&issuer).verify_badge(&text).is_err());
        }
    }
}
