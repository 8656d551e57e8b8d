//! Offline-verifiable credentials: tickets, and staff badges ([`badge`]). A credential is a
//! compact binary payload signed with a festival's Ed25519 key and written as base64url,
//! small enough for a QR code. A scanner holding only the public keys verifies it without
//! the network; only the festival's private key (never on a scanner) can mint one, so a
//! stolen scanner cannot forge tickets (the brief's HMAC could).
//!
//! Layout (version 1), 106 bytes, 142 characters:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version (1) |
//! | 1 | kind ([`Kind`]) |
//! | 16 | festival id |
//! | 16 | subject id (the ticket) |
//! | 4 | key id: the first 4 bytes of SHA-256 of the public key, big-endian |
//! | 4 | issue time, Unix seconds, big-endian |
//! | 64 | Ed25519 signature over everything before it |
//!
//! Decoding never panics and never allocates more than the longest valid input.

pub mod badge;
mod comb;

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 1 + 16 + 16 + 4 + 4;
const LEN: usize = PAYLOAD_LEN + 64;
/// base64url characters of a credential.
pub const ENCODED_LEN: usize = (LEN * 4).div_ceil(3);

/// What a credential admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ticket = 1,
    StaffBadge = 2,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Ticket),
            2 => Some(Self::StaffBadge),
            _ => None,
        }
    }
}

/// What a verified credential says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub kind: Kind,
    pub festival: Uuid,
    pub subject: Uuid,
    pub issued_at: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("not a credential (length, encoding, version or kind)")]
    Malformed,
    #[error("signed with a key this verifier does not know")]
    UnknownKey,
    #[error("the signature does not match")]
    BadSignature,
}

/// The key id of a public key.
pub fn key_id(public_key: &VerifyingKey) -> u32 {
    let digest = Sha256::digest(public_key.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// How a key id is written (the 4 bytes a credential carries, in hex).
pub fn kid_text(key_id: u32) -> String {
    format!("{key_id:08x}")
}

/// A new festival key, its private half sealed for storage under its key id (tickets in
/// ticketing, badges in identity keep theirs this way).
pub struct SealedKey {
    pub issuer: Issuer,
    pub kid: String,
    pub public_key: [u8; 32],
    pub sealed_private: Vec<u8>,
}

impl SealedKey {
    pub fn generate(sealer: &crate::sealing::Sealer) -> anyhow::Result<Self> {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let kid = kid_text(key_id(&key.verifying_key()));
        let sealed_private = sealer.seal(key.as_bytes(), &kid)?;
        Ok(Self { public_key: key.verifying_key().to_bytes(), issuer: Issuer::new(key), kid, sealed_private })
    }

    /// The issuer of a stored key.
    pub fn open(sealer: &crate::sealing::Sealer, kid: &str, sealed_private: &[u8]) -> anyhow::Result<Issuer> {
        let secret: [u8; 32] = sealer
            .open(sealed_private, kid)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("festival key {kid} is not 32 bytes"))?;
        Ok(Issuer::new(SigningKey::from_bytes(&secret)))
    }
}

/// A festival's private key, minting credentials.
#[derive(Clone)]
pub struct Issuer {
    key: SigningKey,
    key_id: u32,
}

impl Issuer {
    pub fn new(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id }
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let mut bytes = [0u8; LEN];
        bytes[0] = VERSION;
        bytes[1] = claims.kind as u8;
        bytes[2..18].copy_from_slice(claims.festival.as_bytes());
        bytes[18..34].copy_from_slice(claims.subject.as_bytes());
        bytes[34..38].copy_from_slice(&self.key_id.to_be_bytes());
        bytes[38..42].copy_from_slice(&claims.issued_at.to_be_bytes());
        let signature = self.key.sign(&bytes[..PAYLOAD_LEN]);
        bytes[PAYLOAD_LEN..].copy_from_slice(&signature.to_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// A credential read but not yet verified: which key it names, so a verifier can fetch it.
#[derive(Debug, Clone, Copy)]
pub struct Unverified {
    bytes: [u8; LEN],
}

impl Unverified {
    /// Parses the text of a QR code. Refuses anything that is not exactly one credential.
    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        let text = text.trim();
        if text.len() != ENCODED_LEN {
            return Err(CredentialError::Malformed);
        }
        let mut bytes = [0u8; LEN];
        let written = URL_SAFE_NO_PAD.decode_slice(text, &mut bytes).map_err(|_| CredentialError::Malformed)?;
        if written != LEN || bytes[0] != VERSION || Kind::from_byte(bytes[1]).is_none() {
            return Err(CredentialError::Malformed);
        }
        Ok(Self { bytes })
    }

    pub fn key_id(&self) -> u32 {
        u32::from_be_bytes([self.bytes[34], self.bytes[35], self.bytes[36], self.bytes[37]])
    }

    /// The festival it claims (before verification: only to pick keys or refuse early).
    pub fn claimed_festival(&self) -> Uuid {
        Uuid::from_bytes(self.bytes[2..18].try_into().unwrap_or_default())
    }

    /// Checks the signature with `key` (which must be the key named by [`key_id`]).
    ///
    /// RFC 8032's check (canonical `S`, cofactorless equation), not dalek's
    /// `verify_strict`: its extra small-order checks guard against keys an attacker
    /// chooses, and these keys are the festival's own. It is about 15 % faster, which a
    /// scanner verifying at a gate in a rush feels.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Claims, CredentialError> {
        if key_id(key) != self.key_id() {
            return Err(CredentialError::UnknownKey);
        }
        key.verify(self.payload(), &self.signature()).map_err(|_| CredentialError::BadSignature)?;
        Ok(self.claims())
    }

    fn payload(&self) -> &[u8] {
        &self.bytes[..PAYLOAD_LEN]
    }

    fn signature_bytes(&self) -> &[u8; 64] {
        self.bytes[PAYLOAD_LEN..].try_into().unwrap_or(&[0; 64])
    }

    fn signature(&self) -> Signature {
        Signature::from_bytes(self.signature_bytes())
    }

    fn claims(&self) -> Claims {
        let b = &self.bytes;
        Claims {
            kind: Kind::from_byte(b[1]).unwrap_or(Kind::Ticket),
            festival: Uuid::from_bytes(b[2..18].try_into().unwrap_or_default()),
            subject: Uuid::from_bytes(b[18..34].try_into().unwrap_or_default()),
            issued_at: u32::from_be_bytes([b[38], b[39], b[40], b[41]]),
        }
    }
}

/// Keys a keyring keeps [precomputed tables](Keyring::precompute) for, at most.
pub const MAX_PRECOMPUTED_KEYS: usize = 8;

/// The public keys a scanner holds, by key id.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: HashMap<u32, VerifyingKey>,
    /// Tables of some keys, for twice as fast verification (see [`Keyring::precompute`]).
    tables: HashMap<u32, Arc<comb::Tables>>,
    precomputing: bool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("keys", &self.keys).field("precomputed", &self.tables.len()).finish()
    }
}

impl Keyring {
    pub fn insert(&mut self, key: VerifyingKey) {
        let id = key_id(&key);
        self.keys.insert(id, key);
        if self.tables.get(&id).is_some_and(|t| t.key() == &key) {
            return;
        }
        self.tables.remove(&id);
        if self.precomputing
            && self.tables.len() < MAX_PRECOMPUTED_KEYS
            && let Some(tables) = comb::Tables::new(key)
        {
            self.tables.insert(id, Arc::new(tables));
        }
    }

    /// Precomputes tables for its keys (and those inserted later, up to
    /// [`MAX_PRECOMPUTED_KEYS`]) that make each single verification about twice as fast,
    /// for about 1.3 MB and 1.6 ms per key: for a scanner, which holds a few keys and
    /// verifies every code at its gate. A server caching many festivals' keys does not.
    pub fn precompute(&mut self) {
        self.precomputing = true;
        for key in self.keys.values().copied().collect::<Vec<_>>() {
            self.insert(key);
        }
    }

    pub fn get(&self, key_id: u32) -> Option<&VerifyingKey> {
        self.keys.get(&key_id)
    }

    /// Parses and verifies a credential with the key it names.
    pub fn verify(&self, text: &str) -> Result<Claims, CredentialError> {
        let credential = Unverified::parse(text)?;
        self.verify_parsed(&credential)
    }

    fn verify_parsed(&self, credential: &Unverified) -> Result<Claims, CredentialError> {
        let id = credential.key_id();
        match self.tables.get(&id) {
            Some(tables) if tables.verify(credential.payload(), credential.signature_bytes()) => {
                Ok(credential.claims())
            }
            Some(_) => Err(CredentialError::BadSignature),
            None => credential.verify(self.get(id).ok_or(CredentialError::UnknownKey)?),
        }
    }

    /// [`verify`](Self::verify) for many credentials at once (an offline scanner's upload,
    /// a downloaded ticket list), answering for each in order. The well-formed ones are
    /// checked together by Ed25519 batch verification, about twice as fast per
    /// credential; if the batch fails, each is checked alone to tell which.
    pub fn verify_many<'t>(&self, texts: impl IntoIterator<Item = &'t str>) -> Vec<Result<Claims, CredentialError>> {
        let read: Vec<Result<(Unverified, &VerifyingKey), CredentialError>> = texts
            .into_iter()
            .map(|text| {
                let credential = Unverified::parse(text)?;
                let key = self.get(credential.key_id()).ok_or(CredentialError::UnknownKey)?;
                Ok((credential, key))
            })
            .collect();
        let ready: Vec<&(Unverified, &VerifyingKey)> = read.iter().filter_map(|r| r.as_ref().ok()).collect();
        let all_genuine = ready.len() > 1 && {
            let messages: Vec<&[u8]> = ready.iter().map(|(c, _)| c.payload()).collect();
            let signatures: Vec<Signature> = ready.iter().map(|(c, _)| c.signature()).collect();
            let keys: Vec<VerifyingKey> = ready.iter().map(|(_, k)| **k).collect();
            ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
        };
        read.into_iter()
            .map(|r| {
                let (credential, _) = r?;
                if all_genuine { Ok(credential.claims()) } else { self.verify_parsed(&credential) }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(seed: u8) -> Issuer {
        Issuer::new(SigningKey::from_bytes(&[seed; 32]))
    }

    fn claims() -> Claims {
        Claims { kind: Kind::Ticket, festival: Uuid::now_v7(), subject: Uuid::now_v7(), issued_at: 1_800_000_000 }
    }

    #[test]
    fn a_credential_verifies_with_the_public_key_alone() {
        let issuer = issuer(7);
        let claims = claims();
        let text = issuer.issue(&claims);
        assert_eq!(text.len(), ENCODED_LEN);
        let mut keyring = Keyring::default();
        keyring.insert(issuer.verifying_key());
        assert_eq!(keyring.verify(&text), Ok(claims));
    }

    /// With the plain check and with a scanner's precomputed tables.
    #[test]
    fn a_bit_flipped_anywhere_is_refused() {
        let issuer = issuer(7);
        let mut plain = Keyring::default();
        plain.insert(issuer.verifying_key());
        let mut tables = plain.clone();
        tables.precompute();
        assert_eq!((plain.tables.len(), tables.tables.len()), (0, 1));
        let claims = claims();
        let bytes = URL_SAFE_NO_PAD.decode(issuer.issue(&claims)).expect("base64");
        for keyring in [&plain, &tables] {
            assert_eq!(keyring.verify(&URL_SAFE_NO_PAD.encode(&bytes)), Ok(claims));
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut tampered = bytes.clone();
                    tampered[i] ^= 1 << bit;
                    let verdict = keyring.verify(&URL_SAFE_NO_PAD.encode(&tampered));
                    assert!(verdict.is_err(), "byte {i} bit {bit} flipped was accepted by {keyring:?}");
                }
            }
        }
    }

    #[test]
    fn another_festivals_key_is_unknown_and_garbage_is_malformed() {
        let (ours, theirs) = (issuer(7), issuer(8));
        let mut keyring = Keyring::default();
        keyring.insert(ours.verifying_key());
        assert_eq!(keyring.verify(&theirs.issue(&claims())), Err(CredentialError::UnknownKey));
        let valid = ours.issue(&claims());
        for garbage in
            ["", "abc", &valid[..ENCODED_LEN - 1], &format!("{valid}A"), &"!".repeat(ENCODED_LEN), &"A".repeat(100_000)]
        {
            assert_eq!(keyring.verify(garbage), Err(CredentialError::Malformed), "{garbage:.20}");
        }
        // A key named by the credential but another key given: refused, not verified.
        let unverified = Unverified::parse(&valid).expect("parses");
        assert_eq!(unverified.verify(&theirs.verifying_key()), Err(CredentialError::UnknownKey));
    }

    #[test]
    fn many_at_once_answer_as_each_alone() {
        let (ours, theirs) = (issuer(7), issuer(8));
        let mut keyring = Keyring::default();
        keyring.insert(ours.verifying_key());
        let genuine: Vec<String> = (0..40).map(|_| ours.issue(&claims())).collect();
        let one: Vec<&str> = genuine.iter().map(String::as_str).collect();
        let all = keyring.verify_many(one.iter().copied());
        assert_eq!(all.len(), 40);
        assert!(all.iter().all(Result::is_ok), "a batch of genuine credentials verifies");
        // One forged signature among them: the batch fails, each is told apart.
        let mut forged = URL_SAFE_NO_PAD.decode(&genuine[3]).expect("base64");
        forged[LEN - 1] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(forged);
        let foreign = theirs.issue(&claims());
        let mut mixed: Vec<&str> = one.clone();
        mixed[3] = &forged;
        mixed[7] = &foreign;
        mixed[9] = "garbage";
        let answers = keyring.verify_many(mixed.iter().copied());
        let alone: Vec<_> = mixed.iter().map(|t| keyring.verify(t)).collect();
        assert_eq!(answers, alone);
        assert_eq!(answers[3], Err(CredentialError::BadSignature));
        assert_eq!(answers[7], Err(CredentialError::UnknownKey));
        assert_eq!(answers[9], Err(CredentialError::Malformed));
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 37);
        assert!(keyring.verify_many([]).is_empty());
    }

    /// `S + l`: the same point, but not canonical, which RFC 8032 refuses.
    fn plus_group_order(s: &[u8]) -> Vec<u8> {
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        s.iter()
            .zip(L)
            .map(|(a, b)| {
                let sum = u16::from(*a) + u16::from(b) + carry;
                carry = sum >> 8;
                (sum & 0xff) as u8
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The precomputed tables answer exactly as ed25519-dalek's check: for genuine
        /// credentials of random keys, any bit flipped, a non-canonical `S`, a random
        /// signature.
        #[test]
        fn precomputed_tables_answer_exactly_as_the_plain_check(
            seed in proptest::array::uniform32(proptest::num::u8::ANY),
            subject in proptest::array::uniform16(proptest::num::u8::ANY),
            flip in proptest::option::of((0..LEN, 0..8u8)),
            random_signature in proptest::array::uniform32(proptest::num::u8::ANY),
            how in 0..4u8,
        ) {
            let issuer = Issuer::new(SigningKey::from_bytes(&seed));
            let claims = Claims { subject: Uuid::from_bytes(subject), ..claims() };
            let mut bytes = URL_SAFE_NO_PAD.decode(issuer.issue(&claims)).expect("base64");
            match (how, flip) {
                (1, Some((i, bit))) => bytes[i] ^= 1 << bit,
                (2, _) => {
                    let s = plus_group_order(&bytes[LEN - 32..]);
                    bytes[LEN - 32..].copy_from_slice(&s);
                }
                (3, _) => {
                    bytes[PAYLOAD_LEN..PAYLOAD_LEN + 32].copy_from_slice(&random_signature);
                    bytes[LEN - 32..].copy_from_slice(&random_signature);
                }
                _ => {}
            }
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            let mut plain = Keyring::default();
            plain.insert(issuer.verifying_key());
            let mut fast = plain.clone();
            fast.precompute();
            let expected = plain.verify(&text);
            proptest::prop_assert_eq!(fast.verify(&text), expected);
            if how == 0 || (how == 1 && flip.is_none()) {
                proptest::prop_assert_eq!(expected, Ok(claims));
            }
            if how == 2 {
                proptest::prop_assert!(expected.is_err(), "a non-canonical S is refused");
            }
        }

        #[test]
        fn random_text_never_panics_and_never_verifies(text in "\\PC{0,300}") {
            let mut keyring = Keyring::default();
            keyring.insert(issuer(7).verifying_key());
            proptest::prop_assert!(keyring.verify(&text).is_err());
        }

        #[test]
        fn random_bytes_of_the_right_length_never_verify(bytes in proptest::collection::vec(proptest::num::u8::ANY, LEN)) {
            let mut keyring = Keyring::default();
            keyring.insert(issuer(7).verifying_key());
            proptest::prop_assert!(keyring.verify(&URL_SAFE_NO_PAD.encode(&bytes)).is_err());
        }
    }
}
