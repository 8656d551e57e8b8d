//! Rows and domain types → protobuf messages.

use festival_platform::convert::timestamp;
use festival_proto::ticketing::v1 as pb;

use crate::domain::status::{HoldStatus, OrderStatus, PaymentMethod, TicketStatus, Visibility};
use crate::store::{categories::CategoryRow, holds, orders::OrderRow, quotas::QuotaRow, tickets::TicketRow};

pub(super) fn to_category(c: &CategoryRow, currency: &str) -> pb::Category {
    pb::Category {
        id: c.id.to_string(),
        festival_id: c.festival_id.to_string(),
        name: c.name.clone(),
        price_minor: c.price_minor,
        currency: currency.to_owned(),
        sale_start_time: c.sale_start.map(timestamp),
        sale_end_time: c.sale_end.map(timestamp),
        min_per_order: c.min_per_order,
        max_per_order: c.max_per_order,
        max_per_account: c.max_per_account,
        visibility: match c.visibility {
            Visibility::Public => pb::Visibility::Public,
            Visibility::Hidden => pb::Visibility::Hidden,
        } as i32,
        create_time: Some(timestamp(c.created_at)),
        valid_days: c.valid_days.iter().map(|d| d.format("%Y-%m-%d").to_string()).collect(),
        zones: c.zones.clone(),
        reentry: c.reentry,
        transferable: c.transferable,
        transfer_cutoff_time: c.transfer_cutoff.map(timestamp),
        addon: c.addon,
        has_access_code: c.access_code_hash.is_some(),
    }
}

pub(super) fn to_quota(q: &QuotaRow) -> pb::Quota {
    pb::Quota {
        id: q.id.to_string(),
        festival_id: q.festival_id.to_string(),
        name: q.name.clone(),
        size: q.size,
        category_ids: q.category_ids.iter().map(ToString::to_string).collect(),
        held: q.held,
        sold: q.sold,
        available: q.counters().available(),
        create_time: Some(timestamp(q.created_at)),
    }
}

/// `shown` is the status a caller sees: an active hold past its expiry shows as expired
/// even before the sweep gives its tickets back.
pub(super) fn to_hold(h: &holds::HoldRow, items: &[holds::ItemRow], codes: &[String], shown: HoldStatus) -> pb::Hold {
    pb::Hold {
        id: h.id.to_string(),
        festival_id: h.festival_id.to_string(),
        items: items
            .iter()
            .map(|i| pb::HoldItem {
                category_id: i.category_id.to_string(),
                quantity: i.quantity,
                unit_price_minor: i.unit_price_minor,
            })
            .collect(),
        total_minor: h.total_minor,
        currency: h.currency.clone(),
        status: match shown {
            HoldStatus::Active => pb::HoldStatus::Active,
            HoldStatus::CheckedOut => pb::HoldStatus::CheckedOut,
            HoldStatus::Released => pb::HoldStatus::Released,
            HoldStatus::Expired => pb::HoldStatus::Expired,
        } as i32,
        expire_time: Some(timestamp(h.expires_at)),
        extended: h.extended,
        order_id: h.order_id.map(|id| id.to_string()).unwrap_or_default(),
        discount_minor: h.discount_minor,
        promo_codes: codes.to_vec(),
        voucher_id: h.voucher_id.map(|v| v.to_string()).unwrap_or_default(),
    }
}

pub(super) fn ticket_status(s: TicketStatus) -> pb::TicketStatus {
    match s {
        TicketStatus::Available => pb::TicketStatus::Available,
        TicketStatus::Reserved => pb::TicketStatus::Reserved,
        TicketStatus::Sold => pb::TicketStatus::Sold,
        TicketStatus::Used => pb::TicketStatus::Used,
        TicketStatus::Cancelled => pb::TicketStatus::Cancelled,
        TicketStatus::Refunded => pb::TicketStatus::Refunded,
    }
}

pub(super) fn to_ticket(t: &TicketRow) -> pb::Ticket {
    pb::Ticket {
        id: t.id.to_string(),
        festival_id: t.festival_id.to_string(),
        order_id: t.order_id.to_string(),
        category_id: t.category_id.to_string(),
        holder_user_id: t.holder_user_id.map(|u| u.to_string()).unwrap_or_default(),
        status: ticket_status(t.status) as i32,
        credential: t.credential.clone(),
        issue_time: Some(timestamp(t.issued_at)),
        used_time: t.used_at.map(timestamp),
        used_gate: t.used_gate.clone().unwrap_or_default(),
        transferred: t.replaced_by.is_some(),
        parent_ticket_id: t.parent_ticket_id.map(|p| p.to_string()).unwrap_or_default(),
        price_minor: t.price_minor,
    }
}

pub(super) fn payment_method(m: PaymentMethod) -> pb::PaymentMethod {
    crate::fulfil::payment_method_pb(m)
}

pub(super) fn to_order(o: &OrderRow, tickets: &[TicketRow]) -> pb::Order {
    pb::Order {
        id: o.id.to_string(),
        festival_id: o.festival_id.to_string(),
        buyer_user_id: o.buyer_user_id.map(|u| u.to_string()).unwrap_or_default(),
        status: match o.status {
            OrderStatus::Paid => pb::OrderStatus::Paid,
            OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
            OrderStatus::AwaitingPayment => pb::OrderStatus::AwaitingPayment,
            OrderStatus::PaymentFailed => pb::OrderStatus::PaymentFailed,
        } as i32,
        total_minor: o.total_minor,
        currency: o.currency.clone(),
        payment_method: payment_method(o.payment_method) as i32,
        tickets: tickets.iter().map(to_ticket).collect(),
        create_time: Some(timestamp(o.created_at)),
        cancel_time: o.cancelled_at.map(timestamp),
        refunded_minor: o.refunded_minor,
        checkout_url: o.checkout_url.clone(),
        payment_id: o.payment_id.map(|p| p.to_string()).unwrap_or_default(),
    }
}

pub(super) fn to_list(l: &crate::store::gates::ListRow) -> pb::CheckInList {
    pb::CheckInList {
        id: l.id.to_string(),
        festival_id: l.festival_id.to_string(),
        name: l.name.clone(),
        category_ids: l.category_ids.iter().map(ToString::to_string).collect(),
        zone: l.zone.clone().unwrap_or_default(),
        create_time: Some(timestamp(l.created_at)),
    }
}
