//! Claim codes of anonymous wallets: 60 random bits in Crockford base32, printed on the
//! box office's receipt, kept only as a hash (the code's entropy makes a slow hash
//! pointless: guessing one is 2^60 tries, each needing the band's UID too).

use rand::Rng;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new code as printed, `XXXX-XXXX-XXXX`, and what is stored of it.
pub fn new_code() -> (String, Vec<u8>) {
    let mut rng = rand::thread_rng();
    let canonical: String = (0..12).map(|_| ALPHABET[rng.gen_range(0..32)] as char).collect();
    let printed = [&canonical[0..4], &canonical[4..8], &canonical[8..12]].join("-");
    let stored = hash(&canonical);
    (printed, stored)
}

/// A code as typed, in canonical form: case, spaces and dashes ignored, the letters
/// Crockford reads as digits (O, I, L) read as them. None: not a code.
pub fn normalise(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(12);
    for c in typed.chars().filter(|c| !c.is_whitespace() && *c != '-') {
        let c = match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c if ALPHABET.contains(&(c as u8)) && c.is_ascii() => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == 12).then_some(out)
}

/// What is stored of a code.
pub fn hash(canonical: &str) -> Vec<u8> {
    Sha256::digest(canonical.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_reads_back_however_it_is_typed() {
        let (code, stored) = new_code();
        assert_eq!(code.len(), 14);
        let canonical = normalise(&code).expect("its own form");
        assert_eq!(hash(&canonical), stored, "what is stored is the printed code's hash");
        assert_eq!(normalise(&code.to_lowercase().replace('-', " ")), Some(canonical.clone()));
        assert_eq!(normalise("oil0-1111-2222"), Some("011011112222".into()), "O, I, L read as digits");
        assert_eq!(normalise("ABCD-EFGH-JKM"), None, "too short");
        assert_eq!(normalise("ABCD-EFGH-JKMU"), None, "U is not Crockford's");
        assert_eq!(hash(&canonical).len(), 32);
        assert_ne!(new_code().0, new_code().0);
    }
}
