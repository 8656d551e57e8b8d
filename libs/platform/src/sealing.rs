//! Private keys at rest: sealed with ChaCha20-Poly1305 under a service's sealing key
//! (`<SERVICE>__KEYS__SEALING_KEY`, base64 of 32 random bytes) before they are stored, and
//! bound to their key id so a sealed key cannot be swapped under another id. Identity's
//! token-signing keys and ticketing's festival keys use it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use crate::config::Secret;

/// Encrypts private keys at rest.
#[derive(Clone)]
pub struct Sealer(ChaCha20Poly1305);

impl Sealer {
    pub fn from_config(secret: &Secret) -> Result<Self, &'static str> {
        let bytes = STANDARD.decode(secret.expose().trim()).map_err(|_| "must be base64")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "must decode to exactly 32 bytes")?;
        Ok(Self(ChaCha20Poly1305::new(&key.into())))
    }

    /// `nonce || ciphertext`, bound to `kid`.
    pub fn seal(&self, plaintext: &[u8], kid: &str) -> anyhow::Result<Vec<u8>> {
        let nonce: [u8; 12] = rand::random();
        let ct = self
            .0
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: kid.as_bytes() })
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        Ok([nonce.as_slice(), &ct].concat())
    }

    pub fn open(&self, sealed: &[u8], kid: &str) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > 12, "sealed key too short");
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into()?;
        self.0
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: kid.as_bytes() })
            .map_err(|_| anyhow::anyhow!("cannot open key {kid}: wrong sealing key?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_kid() {
        let sealer = Sealer::from_config(&Secret::new(STANDARD.encode([3u8; 32]))).expect("key");
        let sealed = sealer.seal(b"private", "kid-1").expect("seal");
        assert_eq!(sealer.open(&sealed, "kid-1").expect("open"), b"private");
        assert!(sealer.open(&sealed, "kid-2").is_err());
        let other = Sealer::from_config(&Secret::new(STANDARD.encode([7u8; 32]))).expect("other");
        assert!(other.open(&sealed, "kid-1").is_err());
        assert!(Sealer::from_config(&Secret::new("too-short")).is_err());
    }
}
