//! Each festival's two secrets: the wristband master key (AES-128, from which every
//! band's own key is diversified) and the journal's Ed25519 signing key. Made together
//! the first time a festival needs one (whatever the number of replicas: the insert
//! decides), sealed at rest with the kit's [`Sealer`], cached per festival: they never
//! change once made.

use std::collections::HashMap;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use festival_platform::nfc::MasterKey;
use festival_platform::sealing::Sealer;
use sqlx::PgConnection;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::store;

/// A festival's keys, opened.
#[derive(Clone)]
pub struct Keys {
    pub master: MasterKey,
    pub journal: SigningKey,
}

pub struct FestivalKeys {
    sealer: Sealer,
    cache: RwLock<HashMap<Uuid, Arc<Keys>>>,
}

/// Festivals cached at most (the cache starts over beyond).
const MAX_CACHED: usize = 10_000;

fn kid(festival: Uuid, what: &str) -> String {
    format!("cashless-{what}-{festival}")
}

impl FestivalKeys {
    pub fn new(sealer: Sealer) -> Self {
        Self { sealer, cache: RwLock::default() }
    }

    /// The festival's keys, made if it has none yet, read on the caller's connection (a
    /// handler holding one never waits for a second: a cold start of 32 charges at once
    /// would otherwise exhaust the pool).
    pub async fn get(&self, conn: &mut PgConnection, festival: Uuid) -> anyhow::Result<Arc<Keys>> {
        if let Some(keys) = self.cache.read().await.get(&festival) {
            return Ok(keys.clone());
        }
        let row = match store::keys::find(&mut *conn, festival).await? {
            Some(row) => row,
            None => {
                let master = MasterKey::generate();
                let journal = SigningKey::generate(&mut rand::rngs::OsRng);
                let sealed_master = self.sealer.seal(master.as_bytes(), &kid(festival, "master"))?;
                let sealed_journal = self.sealer.seal(journal.as_bytes(), &kid(festival, "journal"))?;
                let public = journal.verifying_key().to_bytes();
                // A twin replica's insert may win: then its keys are the festival's.
                store::keys::insert(&mut *conn, festival, &sealed_master, &sealed_journal, &public).await?;
                store::keys::find(&mut *conn, festival)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("festival keys vanished"))?
            }
        };
        let master = MasterKey::from_bytes(&self.sealer.open(&row.master_key_sealed, &kid(festival, "master"))?)
            .map_err(anyhow::Error::msg)?;
        let journal_bytes: [u8; 32] = self
            .sealer
            .open(&row.journal_key_sealed, &kid(festival, "journal"))?
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("a journal key is 32 bytes"))?;
        let keys = Arc::new(Keys { master, journal: SigningKey::from_bytes(&journal_bytes) });
        let mut cache = self.cache.write().await;
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(festival, keys.clone());
        Ok(keys)
    }
}
