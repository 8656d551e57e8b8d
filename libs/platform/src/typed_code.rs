//! Codes people read out, type or scan: device pairing codes now, partner vouchers next.
//! 16 characters of Crockford's base32 (80 random bits) in four groups of four; stored
//! only as a hash.

use sha2::{Digest, Sha256};

/// Crockford's base32: no I, L, O or U, so a code read aloud or typed is not misread.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_CHARS: usize = 16;

/// A new code: 16 characters (80 random bits) in four groups of four.
pub fn new_code() -> String {
    let bytes: [u8; CODE_CHARS] = rand::random();
    // 256 is a multiple of 32: every character is equally likely.
    let chars: Vec<char> = bytes.iter().map(|b| char::from(ALPHABET[usize::from(b % 32)])).collect();
    chars.chunks(4).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// A typed code as its canonical characters: case, spaces and dashes ignored, the
/// letters Crockford reads as digits (O → 0, I and L → 1) mapped. `None` when it cannot
/// be a code at all.
pub fn normalize(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
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

/// What is stored of a code: its SHA-256. 80 random bits are out of reach of guessing
/// online and of brute force from a stolen hash, so no stretching is needed.
pub fn hash(canonical: &str) -> Vec<u8> {
    Sha256::digest(canonical.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_80_bits_in_four_groups_and_read_back_however_typed() {
        let code = new_code();
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(code.split('-').count(), 4);
        let canonical = normalize(&code).expect("own code");
        assert_eq!(canonical.len(), 16);
        assert_eq!(normalize(&code.to_lowercase().replace('-', " ")), Some(canonical.clone()));
        assert_ne!(new_code(), code, "random codes");
        assert_eq!(hash(&canonical).len(), 32);
    }

    #[test]
    fn lookalike_letters_read_as_digits_and_junk_is_refused() {
        assert_eq!(normalize("oooo-iiii-llll-0000").as_deref(), Some("0000111111110000"));
        assert_eq!(normalize("ABCD-EFGH-JKMN-PQR"), None, "too short");
        assert_eq!(normalize("ABCD-EFGH-JKMN-PQRU"), None, "U is not Crockford");
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("ÄBCD-EFGH-JKMN-PQRS"), None);
        assert_eq!(normalize(&"-".repeat(100_000)), None);
    }
}
