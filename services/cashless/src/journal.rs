//! The journal worker: chains what was booked since its last round, festival by
//! festival (one chainer per festival at a time, under its head's lock), and signs each
//! festival's chain when its day turns (in its time zone); organisers can close it on
//! request too.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::journal::{self, Link};
use festival_platform::clock::Clock;

use crate::keys::{FestivalKeys, Keys};
use crate::store;

/// Chains up to `batch` waiting transactions of `festival`; returns how many.
pub async fn chain_festival(pool: &PgPool, festival: Uuid, batch: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let (mut seq, mut head) = store::journal::lock_head(&mut tx, festival).await?;
    let records = store::journal::queued(&mut tx, festival, batch).await?;
    let mut links = Vec::with_capacity(records.len());
    for r in &records {
        seq += 1;
        let hash = journal::link(&head, r);
        links.push(Link { seq, transaction_id: r.id, prev_hash: head.to_vec(), hash: hash.to_vec() });
        head = hash;
    }
    store::journal::append(&mut tx, festival, &links).await?;
    tx.commit().await?;
    Ok(links.len())
}

/// Chains everything waiting, every festival, until the queue is empty.
pub async fn chain_all(pool: &PgPool, batch: i64) -> anyhow::Result<usize> {
    let mut total = 0;
    let festivals = store::journal::waiting_festivals(&mut *pool.acquire().await?).await?;
    for festival in festivals {
        // One festival's failure leaves the others' chains growing.
        loop {
            match chain_festival(pool, festival, batch).await {
                Ok(n) => {
                    total += n;
                    if (n as i64) < batch {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(%festival, error = %e, "chaining a festival's journal failed; retried next round");
                    break;
                }
            }
        }
    }
    Ok(total)
}

/// Chains the festival's waiting transactions, then signs the head.
pub async fn close(pool: &PgPool, keys: &Keys, festival: Uuid, at: DateTime<Utc>) -> anyhow::Result<journal::Closure> {
    while chain_festival(pool, festival, 10_000).await? == 10_000 {}
    let mut tx = pool.begin().await?;
    let (seq, head) = store::journal::lock_head(&mut tx, festival).await?;
    let at = at.trunc_subsecs(6);
    let signature = journal::sign_closure(&keys.journal, festival, seq, &head, at);
    store::journal::insert_closure(&mut tx, festival, seq, &head, at, &signature).await?;
    // A twin closed this head first: its closure is the one stored, and answered.
    let stored = store::journal::closure(&mut tx, festival, seq).await?;
    tx.commit().await?;
    stored.ok_or_else(|| anyhow::anyhow!("closure at {seq} vanished"))
}

/// Signs the chain of every festival whose day turned since its last closure (in its
/// time zone): each festival day ends closed, whoever asks for a closure besides.
pub async fn close_days(pool: &PgPool, keys: &FestivalKeys, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let due = store::journal::days_to_close(&mut *pool.acquire().await?, now).await?;
    for &festival in &due {
        let festival_keys = keys.get(&mut *pool.acquire().await?, festival).await?;
        let closure = close(pool, &festival_keys, festival, now).await?;
        tracing::info!(%festival, seq = closure.seq, "festival day closed");
    }
    Ok(due.len())
}

/// The worker's loop, until shutdown: chains what was booked, and closes each festival's
/// day once it turned.
pub async fn run(
    pool: PgPool,
    keys: Option<FestivalKeys>,
    clock: Clock,
    every: Duration,
    batch: i64,
    shutdown: CancellationToken,
) {
    loop {
        match chain_all(&pool, batch).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(chained = n, "journal chained"),
            Err(e) => tracing::warn!(error = %e, "journal round failed; retried next round"),
        }
        if let Some(keys) = &keys
            && let Err(e) = close_days(&pool, keys, clock.now()).await
        {
            tracing::warn!(error = %e, "closing festival days failed; retried next round");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
