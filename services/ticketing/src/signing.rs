//! The festivals' ticket-signing keys (Ed25519). A festival gets its first key when its
//! first ticket is issued; the private half is sealed at rest with the kit's [`Sealer`]
//! and never leaves this service, the public halves are published for scanners. Issuers
//! and keyrings are cached per festival: keys never change once made (a retired key
//! still verifies what it signed), so a cache only misses on a new key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use festival_platform::credential::{Issuer, Keyring, SealedKey};
use festival_platform::sealing::Sealer;
use sqlx::PgPool;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::store;

pub use festival_platform::credential::kid_text;

pub struct FestivalKeys {
    pool: PgPool,
    sealer: Sealer,
    issuers: RwLock<HashMap<Uuid, Issuer>>,
    /// Public keys per festival, and when they were loaded.
    keyrings: RwLock<HashMap<Uuid, (Keyring, Instant)>>,
}

/// A credential naming a key not (yet) known reloads its festival's keys at most this
/// often: forged key ids cost no more than one query per festival per interval.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Festivals whose public keys are cached at most (the cache starts over beyond).
const MAX_CACHED_FESTIVALS: usize = 10_000;

impl FestivalKeys {
    pub fn new(pool: PgPool, sealer: Sealer) -> Self {
        Self { pool, sealer, issuers: RwLock::default(), keyrings: RwLock::default() }
    }

    /// The festival's active key if this replica has it already (no query).
    pub async fn cached_issuer(&self, festival_id: Uuid) -> Option<Issuer> {
        self.issuers.read().await.get(&festival_id).cloned()
    }

    /// The festival's active key, made (once, whatever the number of replicas) if it has none.
    pub async fn issuer(&self, festival_id: Uuid) -> anyhow::Result<Issuer> {
        if let Some(issuer) = self.issuers.read().await.get(&festival_id) {
            return Ok(issuer.clone());
        }
        let mut tx = self.pool.begin().await?;
        store::keys::lock_festival(&mut tx, festival_id).await?;
        let issuer = match store::keys::active(&mut tx, festival_id).await? {
            Some(row) => self.open(&row)?,
            None => {
                let new = SealedKey::generate(&self.sealer)?;
                store::keys::insert(&mut tx, &new.kid, festival_id, &new.public_key, &new.sealed_private).await?;
                tracing::info!(%festival_id, kid = %new.kid, "created the festival's ticket-signing key");
                new.issuer
            }
        };
        tx.commit().await?;
        self.issuers.write().await.insert(festival_id, issuer.clone());
        Ok(issuer)
    }

    fn open(&self, row: &store::keys::KeyRow) -> anyhow::Result<Issuer> {
        SealedKey::open(&self.sealer, &row.kid, &row.sealed_private)
    }

    /// The festival's public keys, reloaded when `key_id` is not among them (at most every
    /// [`KEY_RELOAD_INTERVAL`] per festival, known or not).
    pub async fn keyring(&self, festival_id: Uuid, key_id: u32) -> anyhow::Result<Keyring> {
        if let Some((keyring, loaded)) = self.keyrings.read().await.get(&festival_id)
            && (keyring.get(key_id).is_some() || loaded.elapsed() < KEY_RELOAD_INTERVAL)
        {
            return Ok(keyring.clone());
        }
        let mut conn = self.pool.acquire().await?;
        let mut keyring = Keyring::default();
        for row in store::keys::of_festival(&mut conn, festival_id).await? {
            let bytes: [u8; 32] = row.public_key.as_slice().try_into()?;
            keyring.insert(ed25519_dalek::VerifyingKey::from_bytes(&bytes)?);
        }
        let mut cache = self.keyrings.write().await;
        if cache.len() >= MAX_CACHED_FESTIVALS {
            cache.clear();
        }
        cache.insert(festival_id, (keyring.clone(), Instant::now()));
        Ok(keyring)
    }
}
