//! The end of holds: released by their buyer, or expired. The worker gives expired holds'
//! stock back every `holds.sweep_interval_ms`, comparing with the service clock; a hold
//! found expired by a checkout is refused whether or not the sweep has run. Then it
//! offers what is free to the waiting list, first come first served, then tickets handed
//! back for resale (see `resale`), and settles the orders of cancelled festivals (see
//! `cancellation`).

use std::time::Duration;

use festival_platform::clock::Clock;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use festival_proto::ticketing::v1 as pb;

use crate::domain::sale::{in_window, total};
use crate::domain::status::{HoldStatus, festival_on_sale};
use crate::stock::{self, Shortage};
use crate::store::{self, holds::HoldRow, holds::ItemRow, vouchers::VoucherRow, waitlist::WaitingStatus};

/// Ends a locked, active hold: its tickets go back to the quotas they came from (or to
/// its partner voucher's reservation while the voucher is open), and its promo codes get
/// their uses back.
pub async fn end_hold(conn: &mut PgConnection, hold: &HoldRow, status: HoldStatus) -> Result<(), sqlx::Error> {
    // Codes, then the voucher, then quotas: the order every command takes them in.
    store::promos::give_back(conn, hold.id).await?;
    let items = store::holds::items(conn, hold.id).await?;
    let back_to_voucher = match hold.voucher_id {
        Some(voucher) => store::vouchers::give_back(conn, voucher, items.iter().map(|i| i.quantity).sum()).await?,
        None => false,
    };
    if !back_to_voucher {
        let taken: Vec<(&[uuid::Uuid], i64)> =
            items.iter().map(|i| (i.quota_ids.as_slice(), i64::from(i.quantity))).collect();
        stock::shift(conn, &taken, (-1, 0)).await?;
    }
    store::holds::set_status(conn, hold.id, status, None).await
}

/// Closes a locked, open voucher: the places it still reserves go back to the public
/// (those in its buyers' open holds when the holds end unsold).
pub async fn close_voucher(
    conn: &mut PgConnection,
    voucher: &VoucherRow,
    at: DateTime<Utc>,
) -> Result<VoucherRow, sqlx::Error> {
    let rest = i64::from(voucher.max_uses - voucher.used);
    stock::shift(conn, &[(voucher.quota_ids.as_slice(), rest)], (-1, 0)).await?;
    store::vouchers::close(conn, voucher.id, at).await
}

/// Closes the vouchers past their end, each in its own transaction (one that fails is
/// logged and left for the next sweep); returns how many.
pub async fn close_expired_vouchers(pool: &PgPool, clock: &Clock) -> Result<usize, sqlx::Error> {
    let now = clock.now();
    let due = store::vouchers::expired(&mut *pool.acquire().await?, now, 200).await?;
    let mut closed = 0;
    for id in due {
        match close_expired(pool, id, now).await {
            Ok(true) => closed += 1,
            Ok(false) => {}
            Err(e) => tracing::error!(voucher_id = %id, error = %e, "could not close an expired voucher; retrying"),
        }
    }
    Ok(closed)
}

async fn close_expired(pool: &PgPool, id: uuid::Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(voucher) = store::vouchers::lock(&mut tx, id).await? else { return Ok(false) };
    if voucher.closed_at.is_some() {
        return Ok(false);
    }
    close_voucher(&mut tx, &voucher, now).await?;
    tx.commit().await?;
    Ok(true)
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

/// What serving the head of a category's line did.
enum Served {
    /// The first in line got an offer (or was passed over for good): serve the next.
    Next,
    /// Nobody waiting, or not enough free for the first in line: the line waits.
    Stop,
}

/// Offers what is free to the waiting lists; returns how many offers it made. Offers
/// whose hold ended are settled first (bought or expired), and lines that can no longer
/// be served (sale ended, festival cancelled) expire.
pub async fn offer_waiting(pool: &PgPool, clock: &Clock, offer_ttl: TimeDelta) -> Result<usize, sqlx::Error> {
    {
        let mut conn = pool.acquire().await?;
        store::waitlist::settle_offers(&mut conn).await?;
        store::waitlist::expire_closed(&mut conn, clock.now()).await?;
    }
    let mut offered = 0;
    for category in store::waitlist::waiting_categories(&mut *pool.acquire().await?, 100).await? {
        loop {
            match serve_head(pool, clock, category, offer_ttl).await {
                Ok((Served::Next, made)) => offered += usize::from(made),
                Ok((Served::Stop, _)) => break,
                Err(e) => {
                    tracing::error!(category_id = %category, error = %e, "could not serve the waiting list; retrying later");
                    break;
                }
            }
        }
    }
    Ok(offered)
}

/// Serves the first in a category's line, in one transaction: a hold in their name for
/// their quantity, taken from the quotas like any hold (so an offer never exceeds a
/// quota), expiring after `offer_ttl` but never after the sale window, and not
/// extendable. First come, first served: if the first cannot be served, nobody behind is.
async fn serve_head(
    pool: &PgPool,
    clock: &Clock,
    category_id: uuid::Uuid,
    offer_ttl: TimeDelta,
) -> Result<(Served, bool), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The head another worker holds is waited for, not passed over; never long.
    sqlx::query("set local lock_timeout = '500ms'").execute(&mut *tx).await?;
    let Some((entry_id, user_id, quantity)) = store::waitlist::lock_head(&mut tx, category_id, None).await? else {
        return Ok((Served::Stop, false));
    };
    let Some(category) = store::categories::find(&mut tx, category_id).await? else { return Ok((Served::Stop, false)) };
    let Some(festival) = store::festivals::find(&mut tx, category.festival_id).await? else {
        return Ok((Served::Stop, false));
    };
    let now = clock.now();
    if !festival_on_sale(festival.status) || !in_window(now, category.sale_start, category.sale_end) {
        return Ok((Served::Stop, false));
    }
    if !store::categories::account_may_take(&mut tx, &category, user_id, quantity).await? {
        // They bought elsewhere meanwhile: the place goes to the next in line.
        store::waitlist::set_status(&mut tx, entry_id, WaitingStatus::Expired).await?;
        tx.commit().await?;
        return Ok((Served::Next, false));
    }
    let plan = match stock::Plan::new(&mut tx, &[(category_id, quantity)]).await? {
        Ok(plan) => plan,
        Err(Shortage) => return Ok((Served::Stop, false)),
    };
    let Some(total) = total([(category.price_minor, quantity)]) else { return Ok((Served::Stop, false)) };
    let expires_at = category.sale_end.map_or(now + offer_ttl, |end| end.min(now + offer_ttl));
    let hold = HoldRow {
        id: uuid::Uuid::now_v7(),
        festival_id: category.festival_id,
        user_id,
        status: HoldStatus::Active,
        total_minor: total,
        discount_minor: 0,
        currency: festival.currency.clone(),
        expires_at,
        // An offer is not extended: it would outlive its window, and the next in line waits.
        extended: true,
        order_id: None,
        for_ticket_id: None,
        voucher_id: None,
        resale_id: None,
    };
    let item = ItemRow {
        category_id,
        quantity,
        unit_price_minor: category.price_minor,
        net_unit_price_minor: category.price_minor,
        quota_ids: plan.quotas_of.get(&category_id).cloned().unwrap_or_default(),
    };
    store::holds::insert(&mut tx, &hold, std::slice::from_ref(&item)).await?;
    store::waitlist::offer(&mut tx, entry_id, hold.id, now).await?;
    crate::events::publish(
        &mut tx,
        &pb::WaitingListOffered {
            entry_id: entry_id.to_string(),
            festival_id: category.festival_id.to_string(),
            category_id: category_id.to_string(),
            user_id: user_id.to_string(),
            hold_id: hold.id.to_string(),
            quantity,
            expire_time: Some(festival_platform::convert::timestamp(expires_at)),
        },
    )
    .await?;
    // The stock last, guarded: a rush that took it first leaves the line waiting.
    if let Err(Shortage) = plan.take_and_commit(tx, false).await? {
        return Ok((Served::Stop, false));
    }
    Ok((Served::Next, true))
}

/// The worker: sweeps expired holds, then serves the waiting lists, until shutdown.
pub async fn run(pool: PgPool, clock: Clock, every: Duration, offer_ttl: TimeDelta, shutdown: CancellationToken) {
    loop {
        match sweep(&pool, &clock).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(holds = n, "expired holds gave their tickets back"),
            Err(e) => tracing::warn!(error = %e, "hold expiry sweep failed; retrying"),
        }
        match close_expired_vouchers(&pool, &clock).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(vouchers = n, "expired vouchers freed their places"),
            Err(e) => tracing::warn!(error = %e, "voucher expiry failed; retrying"),
        }
        match offer_waiting(&pool, &clock, offer_ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(offers = n, "waiting-list offers made"),
            Err(e) => tracing::warn!(error = %e, "waiting-list offers failed; retrying"),
        }
        match crate::resale::offer_listed(&pool, &clock, offer_ttl).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(offers = n, "resold tickets offered to the waiting lists"),
            Err(e) => tracing::warn!(error = %e, "resale offers failed; retrying"),
        }
        match crate::cancellation::settle_due(&pool, clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "orders of cancelled festivals cancelled and refunded"),
            Err(e) => tracing::warn!(error = %e, "cancelled festivals' orders could not be settled; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
