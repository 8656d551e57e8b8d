//! Signing keys and access tokens. Ed25519 keys are generated here, sealed with the
//! kit's [`Sealer`] under the configured sealing key before they are stored, and
//! identified by their RFC 7638 thumbprint (`kid`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};

pub use festival_platform::sealing::Sealer;

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

    /// Signs access tokens and device tokens (their `token_use` tells them apart).
    pub fn sign(&self, claims: &impl serde::Serialize) -> anyhow::Result<String> {
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
    fn kids_are_stable_thumbprints() {
        let k = generate_key().expect("key");
        assert_eq!(k.kid, thumbprint(&k.public_key));
        assert_eq!(k.kid.len(), 43);
    }
}
