//! Personal calendar feeds: the secret in the URL is the credential, since calendar apps
//! cannot sign in. It carries 256 random bits and is stored only as its SHA-256 digest
//! (a fast hash is enough for a secret nobody can guess), so a leaked database opens no
//! feed; the URL is shown once, when issued.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// Random bytes in a feed secret.
const SECRET_BYTES: usize = 32;

/// A new secret, URL-safe.
pub fn new_secret() -> String {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    URL_SAFE_NO_PAD.encode(secret)
}

/// What is stored and looked up.
pub fn secret_digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_unique_and_stored_as_a_digest_that_is_not_the_secret() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 43, "256 bits in unpadded base64url");
        assert_ne!(a, b);
        assert_eq!(secret_digest(&a), secret_digest(&a));
        assert_ne!(secret_digest(&a), secret_digest(&b));
        assert_ne!(secret_digest(&a), a.as_bytes());
    }
}
