//! Delivering what was paid for: issuing an order's tickets with their signed
//! credentials, attaching add-ons to their admission tickets, and `order.paid`. Shared
//! by the API (free holds, box-office orders, transfers) and the consumer of payments'
//! `payment.completed` (card orders), so both deliver the same way.

use chrono::{DateTime, Utc};
use festival_platform::credential::{Claims, Issuer, Kind};
use festival_platform::{ApiError, ApiResult, codes};
use festival_proto::ticketing::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::sale;
use crate::domain::status::{HoldStatus, PaymentMethod, TicketStatus};
use crate::events;
use crate::store::{self, holds::HoldRow, holds::ItemRow, orders::OrderRow, tickets::TicketRow};

/// Tickets to issue: `quantity` of a category at its list price, from the quotas they
/// were taken from.
#[derive(Debug, Clone)]
pub struct TicketLine {
    pub category_id: Uuid,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub quota_ids: Vec<Uuid>,
}

impl TicketLine {
    /// The successor of a ticket that changes hands: same category, price and quotas.
    pub fn again(ticket: &TicketRow) -> Self {
        Self {
            category_id: ticket.category_id,
            quantity: 1,
            unit_price_minor: ticket.price_minor,
            quota_ids: ticket.quota_ids.clone(),
        }
    }

    /// A hold's item, at the price paid for it (after its promo codes).
    pub fn of_item(item: &ItemRow) -> Self {
        Self {
            category_id: item.category_id,
            quantity: item.quantity,
            unit_price_minor: item.net_unit_price_minor,
            quota_ids: item.quota_ids.clone(),
        }
    }
}

/// Issues tickets of `order` for `lines` to `holder` (none: an anonymous box-office
/// sale), each with its signed credential and its share of `paid` (the order's total
/// for these tickets, spread in proportion to list prices).
pub async fn issue_tickets(
    conn: &mut PgConnection,
    issuer: &Issuer,
    issued_at: DateTime<Utc>,
    order: &OrderRow,
    lines: &[TicketLine],
    holder: Option<Uuid>,
    paid: i64,
) -> Result<Vec<TicketRow>, sqlx::Error> {
    let tickets = ticket_rows(issuer, issued_at, order, lines, holder, paid);
    store::tickets::insert_many(conn, &tickets).await?;
    Ok(tickets)
}

/// The tickets [`issue_tickets`] writes, for a command that writes them itself.
pub fn ticket_rows(
    issuer: &Issuer,
    issued_at: DateTime<Utc>,
    order: &OrderRow,
    lines: &[TicketLine],
    holder: Option<Uuid>,
    paid: i64,
) -> Vec<TicketRow> {
    let stamp = u32::try_from(issued_at.timestamp()).unwrap_or(u32::MAX);
    let each: Vec<&TicketLine> =
        lines.iter().flat_map(|l| std::iter::repeat_n(l, usize::try_from(l.quantity).unwrap_or(0))).collect();
    let units: Vec<i64> = each.iter().map(|l| l.unit_price_minor).collect();
    each.iter()
        .zip(sale::ticket_prices(paid, &units))
        .map(|(line, price_minor)| {
            let id = Uuid::now_v7();
            let claims = Claims { kind: Kind::Ticket, festival: order.festival_id, subject: id, issued_at: stamp };
            TicketRow {
                id,
                festival_id: order.festival_id,
                order_id: order.id,
                category_id: line.category_id,
                holder_user_id: holder,
                status: TicketStatus::Sold,
                credential: issuer.issue(&claims),
                quota_ids: line.quota_ids.clone(),
                issued_at,
                used_at: None,
                used_gate: None,
                replaced_by: None,
                parent_ticket_id: None,
                price_minor,
            }
        })
        .collect()
}

/// The caller's ticket that add-ons are bought for: valid, an admission ticket, and
/// without a live add-on of the wanted categories.
pub async fn addon_parent(
    conn: &mut PgConnection,
    festival_id: Uuid,
    parent: Uuid,
    user_id: Uuid,
    wanted: &[(Uuid, i32)],
) -> ApiResult<TicketRow> {
    let ticket = store::tickets::find_by_id(conn, parent)
        .await?
        .filter(|t| t.festival_id == festival_id && t.holder_user_id == Some(user_id))
        .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "for_ticket_id", "no such ticket of yours"))?;
    if !matches!(ticket.status, TicketStatus::Sold | TicketStatus::Used) {
        return Err(ApiError::field(codes::TICKET_REVOKED, "for_ticket_id", "this ticket is no longer valid"));
    }
    if store::resale::live_of_ticket(conn, parent).await? {
        return Err(ApiError::field(
            codes::RESALE_NOT_ALLOWED,
            "for_ticket_id",
            "it is listed for resale: withdraw the listing first",
        ));
    }
    let category = store::categories::find(conn, ticket.category_id).await?;
    if category.is_some_and(|c| c.addon) {
        return Err(ApiError::field(codes::ADDON_NEEDS_ADMISSION, "for_ticket_id", "an add-on has no add-ons"));
    }
    for (i, (addon, _)) in wanted.iter().enumerate() {
        if store::tickets::has_live_addon(conn, parent, *addon).await? {
            let field = format!("items[{i}].category_id");
            return Err(ApiError::field(codes::ALREADY_EXISTS, &field, "this ticket has it already"));
        }
    }
    Ok(ticket)
}

/// Attaches a checked-out hold's add-on tickets to their admission tickets: the ticket
/// they were bought for (locked, and checked again: it may have changed hands or got its
/// add-on meanwhile), or the hold's own admission tickets, one each.
pub async fn attach_addons(conn: &mut PgConnection, hold: &HoldRow, tickets: &mut [TicketRow]) -> ApiResult<()> {
    let ids: Vec<Uuid> = tickets.iter().map(|t| t.category_id).collect();
    let addons: Vec<Uuid> = store::categories::find_many(conn, hold.festival_id, &ids)
        .await?
        .into_iter()
        .filter(|c| c.addon)
        .map(|c| c.id)
        .collect();
    let mut pairs = Vec::new();
    if let Some(parent) = hold.for_ticket_id {
        store::tickets::lock(conn, parent).await?;
        let wanted: Vec<(Uuid, i32)> = addons.iter().map(|c| (*c, 1)).collect();
        addon_parent(conn, hold.festival_id, parent, hold.user_id, &wanted).await?;
        pairs.extend(tickets.iter().filter(|t| addons.contains(&t.category_id)).map(|t| (t.id, parent)));
    } else {
        let admissions: Vec<Uuid> = tickets.iter().filter(|t| !addons.contains(&t.category_id)).map(|t| t.id).collect();
        for addon in &addons {
            let of_category = tickets.iter().filter(|t| t.category_id == *addon).map(|t| t.id);
            pairs.extend(of_category.zip(admissions.iter().copied()));
        }
    }
    store::tickets::attach(conn, &pairs).await?;
    for ticket in tickets.iter_mut() {
        ticket.parent_ticket_id = pairs.iter().find(|(child, _)| *child == ticket.id).map(|(_, parent)| *parent);
    }
    Ok(())
}

/// Delivers a hold's order: its tickets (at the prices paid), their add-ons attached (or
/// a resold ticket handed over: `resale::deliver`), the hold CHECKED_OUT and
/// `order.paid`. The stock is the caller's to move, last.
pub async fn deliver_hold(
    conn: &mut PgConnection,
    issuer: &Issuer,
    now: DateTime<Utc>,
    hold: &HoldRow,
    order: &OrderRow,
    items: &[ItemRow],
) -> ApiResult<Vec<TicketRow>> {
    let tickets = match hold.resale_id {
        Some(listing) => crate::resale::deliver(conn, issuer, now, hold, order, listing).await?,
        None => {
            let lines: Vec<TicketLine> = items.iter().map(TicketLine::of_item).collect();
            let mut tickets =
                issue_tickets(conn, issuer, now, order, &lines, order.buyer_user_id, hold.total_minor).await?;
            attach_addons(conn, hold, &mut tickets).await?;
            tickets
        }
    };
    store::holds::set_status(conn, hold.id, HoldStatus::CheckedOut, Some(order.id)).await?;
    publish_paid(conn, order, &tickets).await?;
    Ok(tickets)
}

/// `order.paid`, in the order's transaction.
pub async fn publish_paid(conn: &mut PgConnection, order: &OrderRow, tickets: &[TicketRow]) -> Result<(), sqlx::Error> {
    events::publish(conn, &order_paid(order, tickets)).await?;
    Ok(())
}

/// `order.paid`: the order, what it paid, and its tickets.
pub fn order_paid(order: &OrderRow, tickets: &[TicketRow]) -> pb::OrderPaid {
    pb::OrderPaid {
        order_id: order.id.to_string(),
        festival_id: order.festival_id.to_string(),
        buyer_user_id: order.buyer_user_id.map(|u| u.to_string()).unwrap_or_default(),
        total_minor: order.total_minor,
        currency: order.currency.clone(),
        payment_method: payment_method_pb(order.payment_method) as i32,
        ticket_ids: tickets.iter().map(|t| t.id.to_string()).collect(),
    }
}

pub fn payment_method_pb(m: PaymentMethod) -> pb::PaymentMethod {
    match m {
        PaymentMethod::Free => pb::PaymentMethod::Free,
        PaymentMethod::Cash => pb::PaymentMethod::Cash,
        PaymentMethod::External => pb::PaymentMethod::External,
        PaymentMethod::Card => pb::PaymentMethod::Card,
    }
}
