//! Face-value resale, the workflow. A listed ticket stays valid and its place taken
//! until it is bought: the worker ([`offer_listed`]) offers it to the first in its
//! category's waiting list as a hold of one ticket at the listing's price that takes no
//! stock, and paying that hold ([`deliver`], from `fulfil::deliver_hold`, free or by
//! card) hands the place over: the seller's ticket is revoked (replaced by the buyer's,
//! which takes over its quotas, so the counters never move) and the seller's payout is
//! approved as a refund of their order, paid back by its payment method like any
//! approved refund (`refund.approved`: payments refunds card orders).
//!
//! Locks: the seller's order, then the listing, then the seller's ticket, the order a
//! cancellation takes (order, then tickets); the worker takes a listing, then a waiting
//! entry, never an order.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use festival_platform::clock::Clock;
use festival_platform::credential::Issuer;
use festival_platform::{ApiError, ApiResult, codes};
use festival_proto::ticketing::v1 as pb;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::resale::still_for_sale;
use crate::domain::status::{HoldStatus, OrderStatus, TicketStatus};
use crate::fulfil::{self, TicketLine};
use crate::store::{
    self,
    holds::{HoldRow, ItemRow},
    orders::OrderRow,
    refunds::{RefundRow, RefundStatus},
    resale::{ListingRow, ResaleStatus},
    tickets::TicketRow,
    waitlist::WaitingStatus,
};
use crate::{events, lifecycle};

/// Listings looked at per round.
const BATCH: i64 = 100;

/// Offers listed tickets to the waiting lists and ends the listings that can no longer
/// be sold; returns how many offers it made. Offers whose hold ended unsold go back on
/// the list first. Each listing is served in its own transaction; one that fails is
/// logged and left for the next round.
pub async fn offer_listed(pool: &PgPool, clock: &Clock, offer_ttl: TimeDelta) -> Result<usize, sqlx::Error> {
    let due = {
        let mut conn = pool.acquire().await?;
        store::resale::relist_lapsed(&mut conn, clock.now()).await?;
        store::resale::due(&mut conn, clock.now(), BATCH).await?
    };
    let mut offered = 0;
    for id in due {
        match serve(pool, clock.now(), id, offer_ttl).await {
            Ok(made) => offered += usize::from(made),
            Err(e) => tracing::error!(listing_id = %id, error = %e, "could not offer a resold ticket; retrying later"),
        }
    }
    Ok(offered)
}

/// Offers one listing to the first in line who may take it (not its seller), or ends it
/// if it can no longer be sold. `true` when an offer was made.
async fn serve(pool: &PgPool, now: DateTime<Utc>, id: Uuid, offer_ttl: TimeDelta) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The worker gives way: a late payment's delivery holds its buyer's purchase lock and
    // then waits for the listing; this waits for no lock long enough to deadlock with it.
    sqlx::query("set local lock_timeout = '500ms'").execute(&mut *tx).await?;
    if !store::resale::lock_unless_busy(&mut tx, id).await? {
        return Ok(false);
    }
    let listing = store::resale::find(&mut tx, id).await?;
    let Some(listing) = listing.filter(|l| matches!(l.status, ResaleStatus::Listed | ResaleStatus::Offered)) else {
        return Ok(false);
    };
    let ticket = store::tickets::find_by_id(&mut tx, listing.ticket_id).await?;
    let festival = store::festivals::find(&mut tx, listing.festival_id).await?;
    let category = store::categories::find(&mut tx, listing.category_id).await?;
    let (Some(ticket), Some(category)) = (ticket, category) else { return Ok(false) };
    let enabled = store::resale::policy(&mut tx, listing.festival_id).await?.is_some_and(|p| p.enabled);
    let facts = festival.as_ref().map(|f| (f.status, f.start_time));
    let verdict = still_for_sale(ticket.status, facts, category.sale_end, category.transfer_cutoff, now)
        .and(if enabled { Ok(()) } else { Err("Resale was turned off at this festival") });
    if let Err(reason) = verdict {
        // An offer ends with its listing, unless its buyer is paying now (that payment
        // is refused and refunded, and the listing ends once the hold has).
        if listing.status == ResaleStatus::Offered {
            let Some(hold_id) = listing.hold_id else { return Ok(false) };
            match store::holds::lock_unless_busy(&mut tx, hold_id).await? {
                None => return Ok(false),
                Some(hold) if hold.status == HoldStatus::Active && hold.order_id.is_some() => return Ok(false),
                Some(hold) if hold.status == HoldStatus::Active => {
                    lifecycle::end_hold(&mut tx, &hold, HoldStatus::Released).await?;
                    store::waitlist::requeue_offer(&mut tx, hold.id).await?;
                }
                Some(_) => {}
            }
        }
        store::resale::end(&mut tx, id, ResaleStatus::Ended, Some(reason), now).await?;
        tx.commit().await?;
        return Ok(false);
    }
    let Some(festival) = festival.filter(|_| listing.status == ResaleStatus::Listed) else { return Ok(false) };
    let buyer = loop {
        let Some((entry, user, _)) =
            store::waitlist::lock_head(&mut tx, category.id, Some(listing.seller_user_id)).await?
        else {
            tx.commit().await?; // lines that bought elsewhere were passed over
            return Ok(false);
        };
        if store::categories::account_may_take(&mut tx, &category, user, 1).await? {
            break (entry, user);
        }
        // They bought elsewhere meanwhile: the ticket goes to the next in line.
        store::waitlist::set_status(&mut tx, entry, WaitingStatus::Expired).await?;
    };
    // Never past the sale, the transfer deadline or the festival's start.
    let expires_at = [Some(now + offer_ttl), category.sale_end, category.transfer_cutoff, festival.start_time]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + offer_ttl);
    let hold = HoldRow {
        id: Uuid::now_v7(),
        festival_id: listing.festival_id,
        user_id: buyer.1,
        status: HoldStatus::Active,
        total_minor: listing.price_minor,
        discount_minor: 0,
        currency: listing.currency.clone(),
        expires_at,
        extended: true,
        order_id: None,
        for_ticket_id: None,
        voucher_id: None,
        resale_id: Some(listing.id),
    };
    let item = ItemRow {
        category_id: category.id,
        quantity: 1,
        unit_price_minor: listing.price_minor,
        net_unit_price_minor: listing.price_minor,
        // The place is the seller's ticket's: the hold takes no stock.
        quota_ids: Vec::new(),
    };
    store::holds::insert(&mut tx, &hold, std::slice::from_ref(&item)).await?;
    store::resale::offer(&mut tx, id, hold.id, now).await?;
    store::waitlist::offer(&mut tx, buyer.0, hold.id, now).await?;
    events::publish(
        &mut tx,
        &pb::WaitingListOffered {
            entry_id: buyer.0.to_string(),
            festival_id: listing.festival_id.to_string(),
            category_id: category.id.to_string(),
            user_id: buyer.1.to_string(),
            hold_id: hold.id.to_string(),
            quantity: 1,
            expire_time: Some(festival_platform::convert::timestamp(expires_at)),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

fn unavailable(why: &str) -> ApiError {
    ApiError::new(codes::RESALE_UNAVAILABLE).with_message(why)
}

/// Delivers a paid resale hold's order: the buyer's ticket (with the seller's quotas),
/// the seller's revoked, the listing SOLD, the seller's payout approved. Refused with
/// `ERR_6022` when the listing went to someone else (the hold lapsed and it was offered
/// again), was withdrawn or ended, or the seller's ticket or order is no longer valid:
/// a card payment is then refunded in full (`card_orders`). The caller marks the hold
/// checked out and publishes `order.paid`.
pub async fn deliver(
    conn: &mut PgConnection,
    issuer: &Issuer,
    now: DateTime<Utc>,
    hold: &HoldRow,
    order: &OrderRow,
    listing_id: Uuid,
) -> ApiResult<Vec<TicketRow>> {
    let seen = store::resale::find(conn, listing_id).await?.ok_or_else(|| unavailable("No such listing"))?;
    // The guard: the seller's order and ticket locked, the ticket replaced only while
    // unused. The test-only race-hooks build reads them unlocked, pauses and replaces
    // whatever it finds, so its negative control sees a cancellation free the place the
    // buyer is given.
    let guarded = !cfg!(feature = "race-hooks");
    let seller_order = if guarded {
        store::orders::lock(conn, seen.order_id).await?
    } else {
        store::orders::find(conn, seen.order_id).await?
    };
    let listing = store::resale::lock(conn, listing_id).await?.ok_or_else(|| unavailable("No such listing"))?;
    let ours = match listing.status {
        ResaleStatus::Offered => listing.hold_id == Some(hold.id),
        // The offer lapsed while the buyer paid, and nobody else has it yet.
        ResaleStatus::Listed => true,
        ResaleStatus::Sold | ResaleStatus::Withdrawn | ResaleStatus::Ended => false,
    };
    if !ours {
        return Err(unavailable("The ticket went to someone else, or is no longer for sale"));
    }
    let Some(seller_order) = seller_order.filter(|o| o.status == OrderStatus::Paid) else {
        return Err(unavailable("The ticket's order was cancelled"));
    };
    let ticket = if guarded {
        store::tickets::lock(conn, listing.ticket_id).await?
    } else {
        store::tickets::find_by_id(conn, listing.ticket_id).await?
    };
    let ticket = ticket
        .filter(|t| t.status == TicketStatus::Sold)
        .ok_or_else(|| unavailable("The ticket is no longer valid"))?;
    #[cfg(feature = "race-hooks")]
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Everything an offer needs, again: the sweep or the worker may not have run since
    // the festival started or the sale or the cut-off passed.
    let festival = store::festivals::find(conn, listing.festival_id).await?;
    let category = store::categories::find(conn, listing.category_id).await?;
    let (sale_end, cutoff) = category.map_or((Some(now), None), |c| (c.sale_end, c.transfer_cutoff));
    let facts = festival.map(|f| (f.status, f.start_time));
    still_for_sale(ticket.status, facts, sale_end, cutoff, now).map_err(unavailable)?;
    if store::tickets::live_children(conn, &[ticket.id]).await?.iter().any(|c| c.status == TicketStatus::Sold) {
        return Err(unavailable("The ticket has an add-on since it was listed"));
    }
    let line = TicketLine {
        category_id: ticket.category_id,
        quantity: 1,
        unit_price_minor: listing.price_minor,
        quota_ids: ticket.quota_ids.clone(),
    };
    let tickets =
        fulfil::issue_tickets(conn, issuer, now, order, &[line], order.buyer_user_id, hold.total_minor).await?;
    let new_ticket = tickets.first().ok_or_else(|| ApiError::internal(anyhow::anyhow!("no ticket issued")))?;
    if !store::tickets::replace(conn, ticket.id, new_ticket.id, guarded).await? {
        return Err(ApiError::new(codes::CONCURRENT_UPDATE));
    }
    store::resale::sold(conn, listing.id, new_ticket.id, now).await?;
    pay_out(conn, &listing, &seller_order, now).await?;
    events::publish(
        conn,
        &pb::TicketTransferred {
            festival_id: listing.festival_id.to_string(),
            old_ticket_id: ticket.id.to_string(),
            new_ticket_id: new_ticket.id.to_string(),
            from_user_id: listing.seller_user_id.to_string(),
            to_user_id: hold.user_id.to_string(),
            resale_listing_id: listing.id.to_string(),
        },
    )
    .await?;
    Ok(tickets)
}

/// The seller's money back: an approved refund of the listing's payout on their order,
/// in their refund requests' history, paid back like any (`refund.approved`).
async fn pay_out(
    conn: &mut PgConnection,
    listing: &ListingRow,
    seller_order: &OrderRow,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if listing.payout_minor == 0 {
        return Ok(());
    }
    let refund = RefundRow {
        id: Uuid::now_v7(),
        festival_id: listing.festival_id,
        order_id: seller_order.id,
        requested_by: listing.seller_user_id,
        status: RefundStatus::Pending,
        reason: "Resold at face value".into(),
        currency: listing.currency.clone(),
        amount_minor: 0,
        decision_note: None,
        created_at: now,
        decided_at: None,
        ticket_ids: vec![listing.ticket_id],
    };
    store::refunds::insert(conn, &refund).await?;
    let note = format!("Resold; a fee of {} kept", listing.fee_minor);
    store::refunds::close(conn, refund.id, RefundStatus::Approved, None, Some(&note), listing.payout_minor, now)
        .await?;
    store::orders::add_refunds(conn, &[(seller_order.id, listing.payout_minor)]).await?;
    events::publish(
        conn,
        &pb::RefundApproved {
            request_id: refund.id.to_string(),
            festival_id: listing.festival_id.to_string(),
            currency: listing.currency.clone(),
            amount_minor: listing.payout_minor,
            orders: vec![pb::OrderRefund {
                order_id: seller_order.id.to_string(),
                amount_minor: listing.payout_minor,
                ticket_ids: vec![listing.ticket_id.to_string()],
                payment_method: seller_order.payment_method.as_str().to_owned(),
                buyer_user_id: seller_order.buyer_user_id.map(|u| u.to_string()).unwrap_or_default(),
            }],
        },
    )
    .await?;
    Ok(())
}
