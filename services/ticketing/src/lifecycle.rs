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

/// Ends a locked, active hold: its tickets go back to their quotas.
pub async fn end_hold(conn: &mut PgConnection, hold: &HoldRow, status: HoldStatus) -> Result<(), sqlx::Error> {
    let lines: Vec<_> = store::holds::items(conn, hold.id).await?.iter().map(|i| (i.category_id, i.quantity)).collect();
    stock::shift(conn, &lines, (-1, 0)).await?;
    store::holds::set_status(conn, hold.id, status, None).await
}

/// Expires what is due, in batches; returns how many holds it ended.
pub async fn sweep(pool: &PgPool, clock: &Clock) -> Result<usize, sqlx::Error> {
    let mut ended = 0;
    loop {
        let mut tx = pool.begin().await?;
        let due = store::holds::lock_expired(&mut tx, clock.now(), 200).await?;
        for hold in &due {
            end_hold(&mut tx, hold, HoldStatus::Expired).await?;
        }
        tx.commit().await?;
        ended += due.len();
        if due.len() < 200 {
            return Ok(ended);
        }
    }
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
