//! Devices' rules: pairing codes (what an organiser reads out or shows as a QR code) and
//! the proof a paired device signs to get a token.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a pairing code works.
pub const PAIRING_TTL: Duration = Duration::minutes(15);
/// How far a proof's signing time may be from the server's clock.
pub const PROOF_WINDOW: Duration = Duration::seconds(60);

/// Crockford's base32: no I, L, O or U, so a code read aloud or typed is not misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_CHARS: usize = 16;

/// A new pairing code: 16 characters (80 random bits) in four groups of four.
pub fn new_pairing_code() -> String {
    let bytes: [u8; CODE_CHARS] = rand::random();
    let chars: Vec<char> = bytes.iter().map(|b| char::from(ALPHABET[usize::from(b % 32)])).collect();
    chars.chunks(4).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// A typed code as its canonical characters: case, spaces and dashes ignored, the
/// letters Crockford reads as digits (O → 0, I and L → 1) mapped. `None` when it cannot
/// be a code at all.
pub fn normalize_pairing_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    (code.len() == CODE_CHARS && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// What is stored of a code: its SHA-256 (80 random bits, looked up by equality; no
/// stretching needed for a code that also expires in 15 minutes and works once).
pub fn hash_pairing_code(canonical: &str) -> Vec<u8> {
    Sha256::digest(canonical.as_bytes()).to_vec()
}

/// The text a device signs with its key to ask for a token.
pub fn token_proof_message(device_id: Uuid, signed_at: i64) -> String {
    format!("festival-device-token:v1:{device_id}:{signed_at}")
}

/// A proof signed at `signed_at` is fresh at `now`: within [`PROOF_WINDOW`] either way.
pub fn proof_is_fresh(signed_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - signed_at).abs() <= PROOF_WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_80_bits_in_four_groups_and_read_back_however_typed() {
        let code = new_pairing_code();
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(code.split('-').count(), 4);
        let canonical = normalize_pairing_code(&code).expect("own code");
        assert_eq!(canonical.len(), 16);
        assert_eq!(normalize_pairing_code(&code.to_lowercase().replace('-', " ")), Some(canonical.clone()));
        assert_ne!(new_pairing_code(), code, "random codes");
    }

    #[test]
    fn lookalike_letters_read_as_digits_and_junk_is_refused() {
        assert_eq!(normalize_pairing_code("oooo-iiii-llll-0000").as_deref(), Some("0000111111110000"));
        assert_eq!(normalize_pairing_code("ABCD-EFGH-JKMN-PQR"), None, "too short");
        assert_eq!(normalize_pairing_code("ABCD-EFGH-JKMN-PQRU"), None, "U is not Crockford");
        assert_eq!(normalize_pairing_code(""), None);
        assert_eq!(normalize_pairing_code("ÄBCD-EFGH-JKMN-PQRS"), None);
    }

    #[test]
    fn a_proof_is_fresh_for_a_minute_either_way() {
        let now = Utc::now();
        assert!(proof_is_fresh(now - Duration::seconds(60), now));
        assert!(proof_is_fresh(now + Duration::seconds(60), now));
        assert!(!proof_is_fresh(now - Duration::seconds(61), now));
        assert!(!proof_is_fresh(now + Duration::seconds(61), now));
    }
}
