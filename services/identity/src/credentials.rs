//! Password hashing with argon2id, off the async runtime and bounded in concurrency
//! (each hash holds `memory_kib` of memory). Unknown emails are checked against a dummy
//! hash with the same cost, so a login takes about as long whether the account exists.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;

#[derive(Clone)]
pub struct Hasher {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<String>,
}

impl Hasher {
    pub fn new(config: &PasswordConfig) -> anyhow::Result<Self> {
        let params = Params::new(config.memory_kib, config.iterations, config.parallelism, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash_with(&argon, "dummy password for timing equalisation")?;
        Ok(Self {
            argon,
            permits: Arc::new(Semaphore::new(config.max_concurrent_hashes.max(1))),
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || hash_with(&argon, &password)).await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no
    /// account, so both paths cost the same.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let argon = self.argon.clone();
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored).map(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await?
        .map_err(|e| anyhow::anyhow!("stored password hash unreadable: {e}"))?;
        Ok(exists && matches)
    }
}

fn hash_with(argon: &Argon2<'_>, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon.hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| anyhow::anyhow!("argon2: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_configured_cost_and_verify() {
        let cfg = PasswordConfig { memory_kib: 19 * 1024, iterations: 2, parallelism: 1, max_concurrent_hashes: 2 };
        let hasher = Hasher::new(&cfg).expect("hasher");
        let hash = hasher.hash("correct horse battery staple".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse battery staple".into(), Some(hash.clone())).await.expect("verify"));
        assert!(!hasher.verify("wrong horse battery staple".into(), Some(hash)).await.expect("verify"));
        assert!(!hasher.verify("correct horse battery staple".into(), None).await.expect("dummy"));
    }
}
