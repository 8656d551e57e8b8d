//! The bearer secrets identity hands out (refresh tokens, MFA challenges, mailed links,
//! provider sign-ins' states and bindings): 256 random bits, base64url, after a prefix
//! that says what the secret is for, so one kind is never taken for another. Only a
//! SHA-256 of one is stored: with 256 bits of entropy no salt or stretching is needed,
//! and a database leak leaks no usable secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A new secret: `prefix`, then 256 random bits in base64url (43 characters).
pub fn new(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_stored_hashed() {
        let (a, b) = (new("rt_"), new("rt_"));
        assert!(a.starts_with("rt_") && a.len() == 3 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 32);
    }
}
