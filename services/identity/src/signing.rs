//! Signing keys and access tokens. Ed25519 keys are generated here, sealed with
//! ChaCha20-Poly1305 under the configured sealing key before they are stored, and
//! identified by their RFC 7638 thumbprint (`kid`).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use festival_platform::auth::AccessClaims;
use festival_platform::config::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};

/// Encrypts private keys at rest.
#[derive(Clone)]
pub struct Sealer(ChaCha20Poly1305);

impl Sealer {
    pub fn from_config(secret: &Secret) -> Result<Self, &'static str> {
        let bytes = STANDARD.decode(secret.expose().trim()).map_err(|_| "must be base64")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "must decode to exactly 32 bytes")?;
        Ok(Self(ChaCha20Poly1305::new(&key.into())))
    }

    /// `nonce || ciphertext`, bound to `kid` so a sealed key cannot be swapped under another id.
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
            .map_err(|_| anyhow::anyhow!("cannot open signing key {kid}: wrong sealing key?"))
    }
}

/// A freshly generated key pair.
pub struct NewKey {
    pub kid: String,
    pub public_key: [u8; 32],
    pub pkcs8: Vec<u8>,
}

pub fn generate_key() -> anyhow::Result<NewKey> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let public_key = key.verifying_key().to_bytes();
    let pkcs8 = key.to_pkcs8_der().map_err(|e| anyhow::anyhow!("pkcs8: {e}"))?.as_bytes().to_vec();
    Ok(NewKey { kid: thumbprint(&public_key), public_key, pkcs8 })
}

/// base64url of a public key: the JWK `x`.
pub fn jwk_x(public_key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(public_key)
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key.
pub fn thumbprint(public_key: &[u8]) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, jwk_x(public_key));
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The key currently signing access tokens.
#[derive(Clone)]
pub struct Signer {
    pub kid: String,
    key: EncodingKey,
}

impl Signer {
    pub fn from_pkcs8(kid: String, pkcs8: &[u8]) -> Self {
        Self { kid, key: EncodingKey::from_ed_der(pkcs8) }
    }

    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_kid() {
        let sealer = Sealer::from_config(&Secret::new(crate::config::DEV_SEALING_KEY)).expect("dev key");
        let sealed = sealer.seal(b"private", "kid-1").expect("seal");
        assert_eq!(sealer.open(&sealed, "kid-1").expect("open"), b"private");
        assert!(sealer.open(&sealed, "kid-2").is_err());
        let other = Sealer::from_config(&Secret::new(STANDARD.encode([7u8; 32]))).expect("other");
        assert!(other.open(&sealed, "kid-1").is_err());
        assert!(Sealer::from_config(&Secret::new("too-short")).is_err());
    }

    #[test]
    fn kids_are_stable_thumbprints() {
        let k = generate_key().expect("key");
        assert_eq!(k.kid, thumbprint(&k.public_key));
        assert_eq!(k.kid.len(), 43);
    }
}
