//! An offline till: how a cashless terminal keeps charging wristbands when its network
//! drops, from the snapshot cashless gave it (`GetTerminalSnapshot`).
//!
//! It checks each tap as the service would (the band's AES-CMAC over the charge's
//! offline challenge, under the band's key diversified from the festival's master key),
//! refuses blocked bands, caps what one band spends here between two syncs at the
//! festival's offline limit (so a cloned band costs at most that per terminal it visits),
//! numbers each charge and keeps it for upload. [`Till::upload`] signs the kept charges
//! with the device's key; [`Till::settle`] forgets those the service has answered. The
//! app owns the timer and the network; a real terminal also journals the kept charges to
//! storage before it answers a tap, and keeps the master key in its secure element.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey};
use festival_platform::convert::timestamp;
use festival_platform::nfc::{self, MasterKey, Uid};
use festival_proto::cashless::v1 as pb;
use prost::Message as _;
use uuid::Uuid;

/// Why a till refuses a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TillRefusal {
    /// The band is on the snapshot's blocked list.
    Blocked,
    /// The band's proof does not verify: a cloned UID, or a misread.
    BadTap,
    /// The band would spend more here than the offline limit until the next sync.
    OverOfflineLimit,
    /// Not a positive amount.
    BadAmount,
    /// The product's age level is above the band's (or the band's wearer was never
    /// verified): the same refusal as online (ERR_8019).
    AgeRestricted,
}

impl std::fmt::Display for TillRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TillRefusal::Blocked => "wristband blocked",
            TillRefusal::BadTap => "wristband tap could not be verified",
            TillRefusal::OverOfflineLimit => "offline limit reached: top up or pay at a connected till",
            TillRefusal::BadAmount => "not an amount",
            TillRefusal::AgeRestricted => "age-restricted: this wristband's wearer was not verified old enough",
        })
    }
}

/// A snapshot the till cannot charge from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSnapshot(pub String);

/// A terminal charging without the network.
pub struct Till {
    festival: Uuid,
    device: Uuid,
    vendor: String,
    key: SigningKey,
    currency: String,
    master: MasterKey,
    offline_limit: i64,
    blocked: HashSet<String>,
    /// Each band's verified age level (16 or 18); others have none.
    ages: HashMap<String, i32>,
    next: i64,
    spent: HashMap<String, i64>,
    kept: Vec<pb::OfflineCharge>,
}

impl Till {
    /// A till charging from `snapshot`, signing its uploads with the device's `key`.
    pub fn from_snapshot(snapshot: &pb::TerminalSnapshot, key: SigningKey) -> Result<Self, BadSnapshot> {
        let bad = |what: &str| BadSnapshot(what.to_owned());
        let festival = Uuid::parse_str(&snapshot.festival_id).map_err(|_| bad("festival id"))?;
        let device = Uuid::parse_str(&snapshot.device_id).map_err(|_| bad("device id"))?;
        let hex = &snapshot.master_key_hex;
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| bad("master key"))?;
        let master = MasterKey::from_bytes(&bytes).map_err(|_| bad("master key"))?;
        Ok(Self {
            festival,
            device,
            vendor: snapshot.vendor_id.clone(),
            key,
            currency: snapshot.currency.clone(),
            master,
            offline_limit: snapshot.offline_limit_minor,
            blocked: snapshot.blocked_uids.iter().cloned().collect(),
            ages: ages(snapshot),
            next: snapshot.next_sequence.max(1),
            spent: HashMap::new(),
            kept: Vec::new(),
        })
    }

    /// The challenge the band must answer for the next charge of `amount`.
    pub fn challenge(&self, amount_minor: i64) -> [u8; 16] {
        nfc::offline_challenge(
            self.festival.as_bytes(),
            self.device.as_bytes(),
            self.next,
            amount_minor,
            &self.currency,
        )
    }

    /// Charges `amount` to the band `uid` that answered [`Till::challenge`] with `proof`;
    /// returns the charge's sequence number.
    pub fn charge(
        &mut self,
        uid: &Uid,
        amount_minor: i64,
        proof: &[u8],
        at: DateTime<Utc>,
    ) -> Result<i64, TillRefusal> {
        self.charge_product(uid, amount_minor, 0, proof, at)
    }

    /// [`Till::charge`] for a product of age level `min_age` (0: none): refused to a band
    /// whose verified level is below it.
    pub fn charge_product(
        &mut self,
        uid: &Uid,
        amount_minor: i64,
        min_age: i32,
        proof: &[u8],
        at: DateTime<Utc>,
    ) -> Result<i64, TillRefusal> {
        if amount_minor <= 0 {
            return Err(TillRefusal::BadAmount);
        }
        let hex = uid.to_hex();
        if self.blocked.contains(&hex) {
            return Err(TillRefusal::Blocked);
        }
        if min_age > 0 && self.ages.get(&hex).copied().unwrap_or(0) < min_age {
            return Err(TillRefusal::AgeRestricted);
        }
        let challenge = self.challenge(amount_minor);
        self.master.wristband_key(uid).verify(&challenge, proof).map_err(|_| TillRefusal::BadTap)?;
        let spent = self.spent.entry(hex.clone()).or_insert(0);
        if spent.saturating_add(amount_minor) > self.offline_limit {
            return Err(TillRefusal::OverOfflineLimit);
        }
        *spent += amount_minor;
        let sequence = self.next;
        self.next += 1;
        self.kept.push(pb::OfflineCharge {
            sequence,
            uid: hex,
            amount_minor,
            currency: self.currency.clone(),
            charged_at: Some(timestamp(at)),
            tap_proof: proof.iter().map(|b| format!("{b:02x}")).collect(),
            min_age: min_age.max(0),
        });
        Ok(sequence)
    }

    /// Charges kept for upload.
    pub fn kept(&self) -> &[pb::OfflineCharge] {
        &self.kept
    }

    /// An upload of the kept charges (at most `max`), signed with the device's key.
    pub fn upload(&self, max: usize) -> pb::UploadOfflineChargesRequest {
        let batch = pb::OfflineChargeBatch {
            festival_id: self.festival.to_string(),
            device_id: self.device.to_string(),
            charges: self.kept.iter().take(max).cloned().collect(),
            vendor_id: self.vendor.clone(),
        }
        .encode_to_vec();
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(&batch).to_bytes());
        pb::UploadOfflineChargesRequest { festival_id: self.festival.to_string(), batch, signature }
    }

    /// Forgets the charges the service answered (booked, duplicates, flagged or refused:
    /// each is on record there).
    pub fn settle(&mut self, answer: &pb::UploadOfflineChargesResponse) {
        let answered: HashSet<i64> = answer.results.iter().map(|r| r.sequence).collect();
        self.kept.retain(|c| !answered.contains(&c.sequence));
    }

    /// Takes a fresh snapshot's blocked list, age levels and limit, starting the offline
    /// limit over; sequence numbers go on.
    pub fn refresh(&mut self, snapshot: &pb::TerminalSnapshot) {
        self.blocked = snapshot.blocked_uids.iter().cloned().collect();
        self.ages = ages(snapshot);
        self.offline_limit = snapshot.offline_limit_minor;
        self.next = self.next.max(snapshot.next_sequence);
        self.spent.clear();
    }
}

fn ages(snapshot: &pb::TerminalSnapshot) -> HashMap<String, i32> {
    snapshot.band_ages.iter().map(|b| (b.uid.to_ascii_uppercase(), b.level)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use festival_platform::nfc::SoftBand;

    fn till(master: &MasterKey, blocked: Vec<String>) -> Till {
        let snapshot = pb::TerminalSnapshot {
            festival_id: Uuid::new_v4().to_string(),
            device_id: Uuid::new_v4().to_string(),
            currency: "EUR".into(),
            master_key_hex: master.as_bytes().iter().map(|b| format!("{b:02X}")).collect(),
            offline_limit_minor: 3_000,
            blocked_uids: blocked,
            next_sequence: 7,
            ..Default::default()
        };
        Till::from_snapshot(&snapshot, SigningKey::from_bytes(&[3; 32])).expect("till")
    }

    #[test]
    fn a_till_charges_genuine_taps_up_to_the_offline_limit_and_numbers_them() {
        let master = MasterKey::generate();
        let band = SoftBand::random(&master);
        let mut till = till(&master, vec![]);
        let now = Utc::now();
        let tap = |till: &Till, amount| band.tap(&till.challenge(amount));
        let p = tap(&till, 2_000);
        assert_eq!(till.charge(&band.uid, 2_000, &p, now), Ok(7));
        let p = tap(&till, 1_000);
        assert_eq!(till.charge(&band.uid, 1_000, &p, now), Ok(8));
        let p = tap(&till, 1);
        assert_eq!(till.charge(&band.uid, 1, &p, now), Err(TillRefusal::OverOfflineLimit));
        // A proof made for another amount, or by a clone without the key.
        let p = tap(&till, 500);
        let clone = SoftBand::issue(&MasterKey::generate(), band.uid.clone());
        assert_eq!(till.charge(&band.uid, 600, &p, now), Err(TillRefusal::BadTap));
        assert_eq!(till.charge(&clone.uid, 1, &clone.tap(&till.challenge(1)), now), Err(TillRefusal::BadTap));
        assert_eq!(till.kept().iter().map(|c| c.sequence).collect::<Vec<_>>(), vec![7, 8]);
        let upload = till.upload(100);
        let batch = pb::OfflineChargeBatch::decode(upload.batch.as_slice()).expect("batch");
        assert_eq!(batch.charges.len(), 2);
        till.settle(&pb::UploadOfflineChargesResponse {
            results: vec![pb::OfflineChargeResult { sequence: 7, ..Default::default() }],
            ..Default::default()
        });
        assert_eq!(till.kept().len(), 1);
    }

    #[test]
    fn a_blocked_band_is_refused_offline() {
        let master = MasterKey::generate();
        let band = SoftBand::random(&master);
        let mut till = till(&master, vec![band.uid.to_hex()]);
        let p = band.tap(&till.challenge(100));
        assert_eq!(till.charge(&band.uid, 100, &p, Utc::now()), Err(TillRefusal::Blocked));
        assert!(till.kept().is_empty());
    }

    #[test]
    fn an_age_restricted_product_needs_the_bands_verified_level_offline_too() {
        let master = MasterKey::generate();
        let (adult, teen, unverified) =
            (SoftBand::random(&master), SoftBand::random(&master), SoftBand::random(&master));
        let mut till = till(&master, vec![]);
        let mut snapshot = pb::TerminalSnapshot {
            offline_limit_minor: 3_000,
            band_ages: vec![
                pb::BandAge { uid: adult.uid.to_hex(), level: 18 },
                pb::BandAge { uid: teen.uid.to_hex(), level: 16 },
            ],
            ..Default::default()
        };
        till.refresh(&snapshot);
        let now = Utc::now();
        let sell = |till: &mut Till, band: &SoftBand, level| {
            let p = band.tap(&till.challenge(100));
            till.charge_product(&band.uid, 100, level, &p, now)
        };
        assert_eq!(sell(&mut till, &adult, 18), Ok(7), "spirits for an adult");
        assert_eq!(sell(&mut till, &teen, 18), Err(TillRefusal::AgeRestricted));
        assert_eq!(sell(&mut till, &teen, 16), Ok(8), "beer at 16");
        assert_eq!(sell(&mut till, &unverified, 16), Err(TillRefusal::AgeRestricted), "never verified");
        assert_eq!(sell(&mut till, &unverified, 0), Ok(9), "no level, no check");
        let levels: Vec<i32> = till.kept().iter().map(|c| c.min_age).collect();
        assert_eq!(levels, vec![18, 16, 0], "each kept charge says its level, for the service to check again");
        // The next sync's snapshot replaces the levels.
        snapshot.band_ages.clear();
        till.refresh(&snapshot);
        assert_eq!(sell(&mut till, &adult, 18), Err(TillRefusal::AgeRestricted));
    }
}
