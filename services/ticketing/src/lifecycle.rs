//! The end of holds: released by their buyer, or expired. The worker gives expired holds'
//! stock back every `holds.sweep_interval_ms`, comparing with the service clock; a hold
//! found expired by a checkout is refused whether or not the sweep has run.

use std::time::Duration;

use festival_platform::clock::Clock;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::domain::status::HoldStatus;
use crate::stock;
use crate::store::{self, holds::HoldRow};

/// Ends a locked, active hold: its tickets go back to the quotas they came from, and its
/// promo codes get their uses back.
pub async fn end_hold(conn: &mut PgConnection, hold: &HoldRow, status: HoldStatus) -> Result<(), sqlx::Error> {
    // Codes before quotas: the order a new hold takes them in.
    store::promos::give_back(conn, hold.id).await?;
    let items = store::holds::items(conn, hold.id).await?;
    let taken: Vec<(&[uuid::Uuid], i64)> =
        items.iter().map(|i| (i.quota_ids.as_slice(), i64::from(i.quantity))).collect();
    stock::shift(conn, &taken, (-1, 0)).await?;
    store::holds::set_status(conn, hold.id, status, None).await
}

/// Expires what is due; returns how many holds it ended. Each hold ends in its own
/// transaction (so its quota locks are taken in id order and held briefly, never in a
/// cycle with a buyer's), and one that fails is logged and left for the next sweep
/// without holding the others back.
pub async fn sweep(pool: &PgPool, clock: &Clock) -> Result<usize, sqlx::Error> {
    let mut ended = 0;
    loop {
        let now = clock.now();
        let due = store::holds::expired(&mut *pool.acquire().await?, now, 200).await?;
        let mut failed = 0;
        for id in &due {
            match expire(pool, *id, now).await {
                Ok(true) => ended += 1,
                Ok(false) => {}
                Err(e) => {
                    failed += 1;
                    tracing::error!(hold_id = %id, error = %e, "could not expire a hold; retrying at the next sweep");
                }
            }
        }
        if due.len() < 200 || failed == due.len() {
            return Ok(ended);
        }
    }
}

/// Expires one hold if it is still active and due (a checkout may have won the lock).
async fn expire(pool: &PgPool, id: uuid::Uuid, now: chrono::DateTime<chrono::Utc>) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(hold) = store::holds::lock_unless_busy(&mut tx, id).await? else { return Ok(false) };
    if hold.status != HoldStatus::Active || hold.expires_at > now {
        return Ok(false);
    }
    end_hold(&mut tx, &hold, HoldStatus::Expired).await?;
    tx.commit().await?;
    Ok(true)
}

/// The worker: sweeps until shutdown.
pub async fn run(pool: PgPool, clock: Clock, every: Duration, shutdown: CancellationToken) {
    loop {
        match sweep(&pool, &clock).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(holds = n, "expired holds gave their tickets back"),
            Err(e) => tracing::warn!(error = %e, "hold expiry sweep failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
