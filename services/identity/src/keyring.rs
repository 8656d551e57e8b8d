//! The signing keys: one active signer, older keys still published until every token
//! they signed has expired. The first replica to start creates the first key; rotation
//! retires the active key and creates the next under an advisory lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::RwLock;

use crate::domain::session::key_still_published;
use crate::signing::{self, Sealer, Signer};
use crate::store;
use festival_platform::auth::{KeySource, PublicKey};

pub struct Keyring {
    pool: PgPool,
    sealer: Sealer,
    access_ttl: chrono::Duration,
    signer_cache: Duration,
    leeway: chrono::Duration,
    cached: RwLock<Option<(Signer, Instant)>>,
    /// Bumped by every rotation or revocation: a signer loaded before one is not cached.
    generation: std::sync::atomic::AtomicU64,
}

impl Keyring {
    pub fn new(pool: PgPool, sealer: Sealer, access_ttl_secs: i64, signer_cache_secs: i64, leeway_secs: u64) -> Self {
        Self {
            pool,
            sealer,
            access_ttl: chrono::Duration::seconds(access_ttl_secs),
            signer_cache: Duration::from_secs(signer_cache_secs.max(0) as u64),
            leeway: chrono::Duration::seconds(leeway_secs as i64),
            cached: RwLock::new(None),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// What seals secrets at rest (signing keys here, TOTP secrets in the MFA store).
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Creates the first key if there is none.
    pub async fn ensure_active(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        store::keys::lock(&mut tx).await?;
        if store::keys::active(&mut tx).await?.is_none() {
            let kid = self.insert_new(&mut tx).await?;
            tracing::info!(%kid, "created the first signing key");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Retires the active key and starts signing with a new one. Returns the new kid.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        let mut tx = self.pool.begin().await?;
        store::keys::lock(&mut tx).await?;
        store::keys::retire_active(&mut tx).await?;
        let kid = self.insert_new(&mut tx).await?;
        tx.commit().await?;
        self.forget_signer().await;
        tracing::info!(%kid, "rotated the signing key");
        Ok(kid)
    }

    /// Revokes `kid` now; if it was the active key a new one takes over. Returns the
    /// active kid afterwards, or `None` when `kid` is unknown or already revoked.
    pub async fn revoke(
        &self,
        conn: &mut sqlx::PgConnection,
        kid: &str,
        reason: &str,
    ) -> anyhow::Result<Option<String>> {
        store::keys::lock(conn).await?;
        let Some(was_active) = store::keys::revoke(conn, kid, reason).await? else {
            return Ok(None);
        };
        if was_active {
            self.insert_new(conn).await?;
        }
        let active = store::keys::active(conn).await?.ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        Ok(Some(active.kid))
    }

    /// Drops the cached signer, so the next token is signed with the key the database
    /// names active (after a revocation, on every replica).
    pub async fn forget_signer(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *self.cached.write().await = None;
    }

    async fn insert_new(&self, conn: &mut sqlx::PgConnection) -> anyhow::Result<String> {
        let key = signing::generate_key()?;
        let sealed = self.sealer.seal(&key.pkcs8, &key.kid)?;
        store::keys::insert(conn, &key.kid, &key.public_key, &sealed).await?;
        Ok(key.kid)
    }

    /// The active signer, reloaded from the database at most every `signer_cache`.
    pub async fn signer(&self) -> anyhow::Result<Signer> {
        if let Some((signer, loaded)) = self.cached.read().await.as_ref()
            && loaded.elapsed() < self.signer_cache
        {
            return Ok(signer.clone());
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let mut conn = self.pool.acquire().await?;
        let row = store::keys::active(&mut conn).await?.ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let pkcs8 = self.sealer.open(&row.sealed_private, &row.kid)?;
        let signer = Signer::from_pkcs8(row.kid, &pkcs8);
        let mut cached = self.cached.write().await;
        // A rotation or revocation since this load began: do not cache what it replaced.
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
            *cached = Some((signer.clone(), Instant::now()));
        }
        Ok(signer)
    }

    /// Public keys that may still verify a live token.
    pub async fn published(&self) -> anyhow::Result<Vec<PublicKey>> {
        let now = Utc::now();
        let cache = chrono::Duration::from_std(self.signer_cache)?;
        let horizon = now - self.access_ttl - cache - self.leeway;
        let mut conn = self.pool.acquire().await?;
        let rows = store::keys::published(&mut conn, horizon).await?;
        Ok(rows
            .into_iter()
            .filter(|r| key_still_published(r.retired_at, now, self.access_ttl, cache, self.leeway))
            .map(|r| PublicKey { kid: r.kid, x: signing::jwk_x(&r.public_key) })
            .collect())
    }
}

/// Identity verifies its own tokens from its own key table.
pub struct LocalKeys(pub Arc<Keyring>);

impl KeySource for LocalKeys {
    fn fetch(&self) -> BoxFuture<'static, anyhow::Result<Vec<PublicKey>>> {
        let keyring = self.0.clone();
        Box::pin(async move { keyring.published().await })
    }
}
