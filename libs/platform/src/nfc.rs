//! NFC wristbands for cashless payment.
//!
//! A band's UID is never trusted on its own: it goes out in clear during anticollision, any
//! phone reads it, and "magic" cards or emulators present whatever UID they are told to. A UID
//! names a band; it proves nothing. What proves a band is its key: every band holds its own
//! AES-128 key, diversified from the festival's master key with NXP AN10922 (the scheme MIFARE
//! DESFire EV2/EV3 deployments use). Nobody stores per-band keys, and a key pulled out of one
//! band opens that band only.
//!
//! A tap is a proof. The terminal derives a [`challenge`] from the payment it is about to make
//! and the band answers with its AES-CMAC over it, so the proof is bound to that one payment:
//! it cannot be moved to another amount, currency, terminal or festival, and replaying it only
//! repeats an idempotency key the service already deduplicates. The payment service checks
//! proofs online by re-deriving the band key; a terminal checks them offline the same way.
//!
//! To check offline, a terminal holds the festival's master key, as a DESFire reader holds it
//! in its SAM. Whoever reads that key out of a stolen terminal can derive every band key of
//! the festival and forge taps for any band until the master key is rotated and the bands are
//! re-personalised. Keep it in a secure element where the terminal has one; one master key per
//! festival bounds a theft to one festival.

use std::fmt;

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit};
use cmac::{Cmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

pub const KEY_LEN: usize = 16;
/// A proof is the full AES-CMAC tag: nothing is truncated, so forging one is a 2^-128 guess.
pub const PROOF_LEN: usize = 16;

/// AID of the platform's wristband application, as it enters the AN10922 input. Changing it
/// changes every band key.
pub const APP_AID: [u8; 3] = [0xF5, 0x1E, 0x57];
/// AN10922 system identifier of the platform. At 17 bytes, a 10-byte UID ‖ AID ‖ it still fits
/// the scheme's 31-byte input, so wristband keys never depend on truncation.
pub const SYSTEM_ID: &[u8] = b"festival-cashless";

const BLOCK: usize = 16;
/// AN10922's diversification input M is at most 31 bytes: 0x01 ‖ M fills two AES blocks.
const MAX_DIV_INPUT: usize = 31;
/// AN10922's constant for an AES-128 key.
const DIV_AES128: u8 = 0x01;
const TAP_DOMAIN: &[u8] = b"festival-tap/v1";
const BIND_DOMAIN: &[u8] = b"festival-bind/v1";
const OFFLINE_DOMAIN: &[u8] = b"festival-offline-tap/v1";

const _: () = assert!(10 + APP_AID.len() + SYSTEM_ID.len() <= MAX_DIV_INPUT);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NfcError {
    #[error("a band UID is 4, 7 or 10 bytes, written as hex")]
    BadUid,
    #[error("an AES-128 key is 16 bytes")]
    BadKey,
    #[error("the tap proof does not match this band and payment")]
    BadProof,
}

/// A band's UID: 4, 7 or 10 bytes (ISO 14443-3 single/double/triple size). Parsed from hex
/// (upper or lower case, no separators), displayed as upper-case hex. A DESFire band with
/// random ID shows a fresh 4-byte UID per session: diversify with its real UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uid(Vec<u8>);

impl Uid {
    pub fn parse(hex: &str) -> Result<Self, NfcError> {
        Self::from_bytes(&decode_hex(hex).ok_or(NfcError::BadUid)?)
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, NfcError> {
        match b.len() {
            4 | 7 | 10 => Ok(Self(b.to_vec())),
            _ => Err(NfcError::BadUid),
        }
    }

    /// A random 7-byte UID starting with 0x04, NXP's manufacturer code, like real bands.
    pub fn random() -> Self {
        let mut uid = [0x04u8; 7];
        OsRng.fill_bytes(&mut uid[1..]);
        Self(uid.to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A festival's master key (its diversification key). Debug does not print it.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl MasterKey {
    pub fn from_bytes(b: &[u8]) -> Result<Self, NfcError> {
        <[u8; KEY_LEN]>::try_from(b).map(Self).map_err(|_| NfcError::BadKey)
    }

    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// AN10922 AES-128 diversification (§2.2): M = UID ‖ AID (3 bytes) ‖ system identifier;
    /// returns the band key. AN10922 caps M at 31 bytes: a longer M (a system identifier over
    /// 18 bytes) is cut to 31, so bytes past that point do not change the key.
    pub fn band_key(&self, uid: &Uid, aid: [u8; 3], system_id: &[u8]) -> BandKey {
        let m: Vec<u8> = uid.as_bytes().iter().chain(&aid).chain(system_id).take(MAX_DIV_INPUT).copied().collect();
        BandKey(diversify(&self.0, &m))
    }

    /// The key of the band's festival wristband application: [`APP_AID`] and [`SYSTEM_ID`].
    pub fn wristband_key(&self, uid: &Uid) -> BandKey {
        self.band_key(uid, APP_AID, SYSTEM_ID)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// One band's AES-128 key. The band holds it; the service and offline terminals re-derive it.
#[derive(Clone)]
pub struct BandKey([u8; KEY_LEN]);

impl BandKey {
    /// A band key as an encoder received it (`ProvisionWristband`).
    pub fn from_bytes(b: &[u8]) -> Result<Self, NfcError> {
        b.try_into().map(Self).map_err(|_| NfcError::BadKey)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn mac(&self, challenge: &[u8; 16]) -> Cmac<Aes128> {
        let mut mac = <Cmac<Aes128> as Mac>::new((&self.0).into());
        mac.update(challenge);
        mac
    }

    /// What the band answers to a tap: AES-CMAC over the challenge.
    pub fn proof(&self, challenge: &[u8; 16]) -> [u8; PROOF_LEN] {
        self.mac(challenge).finalize().into_bytes().into()
    }

    /// Checks a proof in constant time; a proof of any other length fails.
    pub fn verify(&self, challenge: &[u8; 16], proof: &[u8]) -> Result<(), NfcError> {
        self.mac(challenge).verify_slice(proof).map_err(|_| NfcError::BadProof)
    }
}

impl fmt::Debug for BandKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BandKey(..)")
    }
}

/// The challenge a terminal derives from what it is about to charge, so a proof is bound to
/// one payment. Terminals in any language must reproduce it byte for byte: the first 16 bytes
/// of SHA-256(`festival-tap/v1` ‖ for each of festival id, terminal id, idempotency key (UTF-8),
/// amount (i64 big-endian), currency (UTF-8): its length as u64 big-endian ‖ its bytes).
pub fn challenge(
    festival: &[u8; 16],
    terminal: &[u8; 16],
    idempotency_key: &str,
    amount_minor: i64,
    currency: &str,
) -> [u8; 16] {
    let amount = amount_minor.to_be_bytes();
    let fields: [&[u8]; 5] = [festival, terminal, idempotency_key.as_bytes(), &amount, currency.as_bytes()];
    let mut hash = Sha256::new();
    hash.update(TAP_DOMAIN);
    for field in fields {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash.finalize()[..16]);
    out
}

/// The challenge of a charge a terminal makes offline, bound to its sequence number (its
/// own domain: an offline proof never pays online, nor the reverse).
pub fn offline_challenge(
    festival: &[u8; 16],
    terminal: &[u8; 16],
    sequence: i64,
    amount_minor: i64,
    currency: &str,
) -> [u8; 16] {
    let (sequence, amount) = (sequence.to_be_bytes(), amount_minor.to_be_bytes());
    let fields: [&[u8]; 5] = [festival, terminal, &sequence, &amount, currency.as_bytes()];
    let mut hash = Sha256::new();
    hash.update(OFFLINE_DOMAIN);
    for field in fields {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash.finalize()[..16]);
    out
}

/// The challenge a band answers to be bound to a wallet: it proves the band is in the
/// binder's hand (a UID read from afar binds nothing). Its own domain, so no charge's
/// proof ever binds a band and no binding proof ever pays.
pub fn bind_challenge(festival: &[u8; 16], wallet: &[u8; 16]) -> [u8; 16] {
    let mut hash = Sha256::new();
    hash.update(BIND_DOMAIN);
    hash.update(festival);
    hash.update(wallet);
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash.finalize()[..16]);
    out
}

/// A software wristband for tests, benchmarks and the demo: holds its UID and its diversified
/// key, answers taps.
#[derive(Clone, Debug)]
pub struct SoftBand {
    pub uid: Uid,
    key: BandKey,
}

impl SoftBand {
    pub fn issue(master: &MasterKey, uid: Uid) -> Self {
        Self { key: master.wristband_key(&uid), uid }
    }

    /// A band whose key an encoder wrote (from `ProvisionWristband`).
    pub fn personalised(uid: Uid, key: BandKey) -> Self {
        Self { uid, key }
    }

    /// A band with a random UID.
    pub fn random(master: &MasterKey) -> Self {
        Self::issue(master, Uid::random())
    }

    pub fn tap(&self, challenge: &[u8; 16]) -> [u8; PROOF_LEN] {
        self.key.proof(challenge)
    }
}

/// AN10922 AES-128: CMAC over D = 0x01 ‖ M padded to exactly two blocks. Unlike standard CMAC,
/// a D of 16 bytes or fewer still takes two blocks; the last is masked with K1 only when M is
/// a full 31 bytes (no padding), else with K2. Implemented by hand because the cmac crate
/// cannot pad to two blocks.
fn diversify(master: &[u8; KEY_LEN], m: &[u8]) -> [u8; KEY_LEN] {
    debug_assert!(m.len() <= MAX_DIV_INPUT);
    cmac_padded(master, &[&[DIV_AES128][..], m].concat(), 2)
}

/// AES-CMAC (RFC 4493) of `msg` padded to `blocks` blocks (at least one, and enough to hold it):
/// 0x80 then zeros and the K2 mask if padding was added, else the K1 mask. With `blocks` the
/// fewest that hold the message (one for an empty one), this is standard CMAC.
fn cmac_padded(key: &[u8; KEY_LEN], msg: &[u8], blocks: usize) -> [u8; BLOCK] {
    let len = blocks * BLOCK;
    debug_assert!(blocks > 0 && msg.len() <= len);
    let cipher = Aes128::new(key.into());
    let mut l = aes::Block::default();
    cipher.encrypt_block(&mut l);
    let k1 = dbl(&l.into());
    let k2 = dbl(&k1);
    let mut buf = msg.to_vec();
    let last_mask = if buf.len() == len {
        k1
    } else {
        buf.push(0x80);
        buf.resize(len, 0);
        k2
    };
    let mut state = aes::Block::default();
    for (i, block) in buf.chunks_exact(BLOCK).enumerate() {
        let mask = if i == blocks - 1 { last_mask } else { [0; BLOCK] };
        for ((s, b), k) in state.iter_mut().zip(block).zip(mask) {
            *s ^= b ^ k;
        }
        cipher.encrypt_block(&mut state);
    }
    state.into()
}

/// Doubling in GF(2^128), RFC 4493's subkey step, without branching on key material.
fn dbl(b: &[u8; BLOCK]) -> [u8; BLOCK] {
    let v = u128::from_be_bytes(*b);
    ((v << 1) ^ (0x87 & 0u128.wrapping_sub(v >> 127))).to_be_bytes()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let pairs = s.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs.map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?)).collect()
}

fn encode_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    b.iter().flat_map(|&x| [DIGITS[usize::from(x >> 4)], DIGITS[usize::from(x & 0x0F)]]).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        decode_hex(s).expect("test hex")
    }

    fn key(s: &str) -> [u8; 16] {
        hex(s).try_into().expect("16-byte test key")
    }

    fn std_cmac(k: &[u8; 16], msg: &[u8]) -> [u8; 16] {
        let mut mac = <Cmac<Aes128> as Mac>::new(k.into());
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn an10922_vector() {
        // AN10922 §2.2.1, also libfreefare's test: AID 3042F5, system identifier "NXP Abu".
        let master = MasterKey::from_bytes(&hex("00112233445566778899AABBCCDDEEFF")).expect("key");
        let uid = Uid::parse("04782E21801D80").expect("uid");
        let band = master.band_key(&uid, [0x30, 0x42, 0xF5], b"NXP Abu");
        assert_eq!(encode_hex(band.as_bytes()), "A8DD63A3B89D54B37CA802473FDA9175");
    }

    #[test]
    fn short_input_is_still_padded_to_two_blocks() {
        // AN10957's vector (libfreefare's short-M test): 0x01 ‖ M fits in one block.
        let master = key("F3F9377698707B688EAF84ABE39E3791");
        let m = hex("04DEADBEEFFEED");
        assert_eq!(encode_hex(&diversify(&master, &m)), "0BB408BAFF98B6EE9F2E1585777F6A51");
        assert_ne!(diversify(&master, &m), std_cmac(&master, &[&[DIV_AES128][..], &m[..]].concat()));
    }

    #[test]
    fn full_31_byte_input_takes_k1_like_standard_cmac() {
        let master = key("00112233445566778899AABBCCDDEEFF");
        let m = [0xAA; MAX_DIV_INPUT];
        assert_eq!(diversify(&master, &m), std_cmac(&master, &[&[DIV_AES128][..], &m[..]].concat()));
    }

    #[test]
    fn rfc4493_vectors() {
        let k = key("2B7E151628AED2A6ABF7158809CF4F3C");
        let m = hex("6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E5130C81C46A35CE411");
        for (len, blocks, tag) in [
            (0, 1, "BB1D6929E95937287FA37D129B756746"),
            (16, 1, "070A16B46B4D4144F79BDD9DD04A287C"),
            (40, 3, "DFA66747DE9AE63030CA32611497C827"),
        ] {
            assert_eq!(encode_hex(&cmac_padded(&k, &m[..len], blocks)), tag);
            assert_eq!(encode_hex(&std_cmac(&k, &m[..len])), tag);
        }
    }

    #[test]
    fn uid_parsing() {
        for ok in ["04a1b2c3", "04782E21801D80", "0102030405060708090a"] {
            let uid = Uid::parse(ok).expect("valid uid");
            assert_eq!(uid.to_string(), ok.to_uppercase());
            assert_eq!(Uid::from_bytes(uid.as_bytes()), Ok(uid));
        }
        for bad in ["", "0102030405", "04782E21801D8", "04782E21801D8G", "04:78:2E:21", "04é2E21"] {
            assert_eq!(Uid::parse(bad), Err(NfcError::BadUid), "{bad}");
        }
        assert_eq!(Uid::from_bytes(&[4; 5]), Err(NfcError::BadUid));
        assert_eq!(MasterKey::from_bytes(&[0; 15]).map(|_| ()), Err(NfcError::BadKey));
    }

    #[test]
    fn each_band_and_festival_gets_its_own_key() {
        let master = MasterKey::generate();
        let a = Uid::parse("04782E21801D80").expect("uid");
        let b = Uid::parse("04782E21801D81").expect("uid");
        assert_ne!(master.wristband_key(&a).as_bytes(), master.wristband_key(&b).as_bytes());
        assert_ne!(master.wristband_key(&a).as_bytes(), MasterKey::generate().wristband_key(&a).as_bytes());
    }

    #[test]
    fn a_proof_verifies_only_for_its_band_and_payment() {
        let master = MasterKey::generate();
        let (band, other) = (SoftBand::random(&master), SoftBand::random(&master));
        assert_eq!(band.uid.as_bytes()[0], 0x04);
        let key = master.wristband_key(&band.uid);
        let pay = |amount| challenge(&[1; 16], &[2; 16], "idem-1", amount, "EUR");
        let proof = band.tap(&pay(1250));
        assert_eq!(key.verify(&pay(1250), &proof), Ok(()));
        assert_eq!(key.verify(&pay(1251), &proof), Err(NfcError::BadProof));
        assert_eq!(key.verify(&pay(1250), &other.tap(&pay(1250))), Err(NfcError::BadProof));
        let mut flipped = proof;
        flipped[7] ^= 0x01;
        assert_eq!(key.verify(&pay(1250), &flipped), Err(NfcError::BadProof));
        assert_eq!(key.verify(&pay(1250), &proof[..8]), Err(NfcError::BadProof));
    }

    #[test]
    fn challenge_binds_every_field() {
        let base = challenge(&[1; 16], &[2; 16], "idem-1", 1250, "EUR");
        assert_eq!(base, challenge(&[1; 16], &[2; 16], "idem-1", 1250, "EUR"));
        for changed in [
            challenge(&[9; 16], &[2; 16], "idem-1", 1250, "EUR"),
            challenge(&[1; 16], &[9; 16], "idem-1", 1250, "EUR"),
            challenge(&[1; 16], &[2; 16], "idem-2", 1250, "EUR"),
            challenge(&[1; 16], &[2; 16], "idem-1", 1251, "EUR"),
            challenge(&[1; 16], &[2; 16], "idem-1", 1250, "USD"),
        ] {
            assert_ne!(base, changed);
        }
    }

    #[test]
    fn long_diversification_input_is_cut_at_31_bytes() {
        let master = MasterKey::generate();
        let uid = Uid::parse("04782E21801D80").expect("uid");
        let long = [b'x'; MAX_DIV_INPUT - 7 - 3];
        let a = master.band_key(&uid, APP_AID, &[&long[..], &b"a"[..]].concat());
        assert_eq!(a.as_bytes(), master.band_key(&uid, APP_AID, &[&long[..], &b"b"[..]].concat()).as_bytes());
    }

    #[test]
    fn debug_does_not_print_keys() {
        let master = MasterKey::generate();
        let band = SoftBand::random(&master);
        let band_key = master.wristband_key(&band.uid);
        for (shown, secret) in [
            (format!("{master:?}"), master.as_bytes()),
            (format!("{band_key:?}"), band_key.as_bytes()),
            (format!("{band:?}"), band_key.as_bytes()),
        ] {
            assert!(!shown.to_uppercase().contains(&encode_hex(secret)), "{shown}");
            assert!(!shown.contains(&format!("{secret:?}")), "{shown}");
        }
    }
}
