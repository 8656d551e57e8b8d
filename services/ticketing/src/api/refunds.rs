//! Refund requests: a buyer asks for unused tickets of a paid order back; an organizer
//! approves (the tickets are revoked as REFUNDED with their add-ons, their places freed,
//! and what each order owes recorded) or rejects with a note. The money goes back by the
//! order's payment method: payments refunds card orders on `refund.approved`, the box
//! office pays cash ones back.

use std::collections::BTreeMap;

use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::TicketingApi;
use crate::domain::status::{OrderStatus, TicketStatus, gates_may_be_open};
use crate::events;
use crate::stock;
use crate::store::{
    self,
    refunds::{RefundRow, RefundStatus},
    tickets::Revoked,
};

/// Pending requests one account may have per festival.
const MAX_PENDING: i64 = 10;
/// Tickets one request may name.
const MAX_TICKETS: usize = 100;
/// Requests one list answers with.
const LIST_LIMIT: i64 = 500;

fn status_of(s: RefundStatus) -> pb::RefundRequestStatus {
    match s {
        RefundStatus::Pending => pb::RefundRequestStatus::Pending,
        RefundStatus::Approved => pb::RefundRequestStatus::Approved,
        RefundStatus::Rejected => pb::RefundRequestStatus::Rejected,
        RefundStatus::Withdrawn => pb::RefundRequestStatus::Withdrawn,
    }
}

fn to_refund(r: &RefundRow) -> pb::RefundRequest {
    pb::RefundRequest {
        id: r.id.to_string(),
        festival_id: r.festival_id.to_string(),
        order_id: r.order_id.to_string(),
        requested_by: r.requested_by.to_string(),
        status: status_of(r.status) as i32,
        ticket_ids: r.ticket_ids.iter().map(ToString::to_string).collect(),
        reason: r.reason.clone(),
        currency: r.currency.clone(),
        amount_minor: r.amount_minor,
        decision_note: r.decision_note.clone().unwrap_or_default(),
        create_time: Some(timestamp(r.created_at)),
        decide_time: r.decided_at.map(timestamp),
    }
}

fn not_allowed(why: impl Into<String>) -> ApiError {
    ApiError::new(codes::REFUND_NOT_ALLOWED).with_message(why)
}

fn already_decided(r: &RefundRow) -> ApiError {
    ApiError::new(codes::REFUND_ALREADY_DECIDED)
        .with_message(format!("The request is {}", r.status.as_str().to_lowercase()))
}

impl TicketingApi {
    pub(super) async fn request_refund(
        &self,
        caller: Principal,
        req: pb::RequestRefundRequest,
    ) -> ApiResult<pb::RefundRequest> {
        let order_id = validate::uuid("order_id", &req.order_id)?;
        if req.ticket_ids.len() > MAX_TICKETS {
            let why = format!("at most {MAX_TICKETS}");
            return Err(ApiError::field(codes::VALIDATION_FAILED, "ticket_ids", why));
        }
        let mut asked =
            req.ticket_ids.iter().map(|t| validate::uuid("ticket_ids", t)).collect::<ApiResult<Vec<_>>>()?;
        asked.sort_unstable();
        asked.dedup();
        let reason = validate::plain_text("reason", validate::required("reason", req.reason.trim(), 500)?, true)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::RefundRequest>(
            &mut tx,
            "ticketing.RequestRefund",
            caller.user_id,
            key,
            &req,
        )
        .await?
        {
            Claim::Replay(request) => return Ok(request),
            Claim::Fresh(fresh) => fresh,
        };
        // The order first, as a cancellation and a transfer lock it: a request never
        // races either into a ticket both refunded and given away.
        let order = store::orders::lock(&mut tx, order_id)
            .await?
            .filter(|o| o.buyer_user_id == Some(caller.user_id))
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "order_id", "no such order of yours"))?;
        record_festival(order.festival_id);
        if order.status != OrderStatus::Paid {
            return Err(not_allowed("The order was cancelled"));
        }
        let now = self.clock.now();
        self.refunds_open(&mut tx, order.festival_id, now).await?;
        let mine: Vec<_> = store::tickets::of_order(&mut tx, order_id)
            .await?
            .into_iter()
            .filter(|t| t.holder_user_id == Some(caller.user_id))
            .collect();
        let tickets: Vec<_> = if asked.is_empty() {
            mine.into_iter().filter(|t| t.status == TicketStatus::Sold).collect()
        } else {
            let mut chosen = Vec::with_capacity(asked.len());
            for id in &asked {
                let ticket = mine.iter().find(|t| t.id == *id).ok_or_else(|| {
                    ApiError::field(
                        codes::NOT_FOUND,
                        "ticket_ids",
                        format!("{id} is not a ticket of yours in this order"),
                    )
                })?;
                if ticket.status != TicketStatus::Sold {
                    return Err(not_allowed(format!("Ticket {id} is {}", ticket.status.as_str().to_lowercase())));
                }
                chosen.push(ticket.clone());
            }
            chosen
        };
        if tickets.is_empty() {
            return Err(not_allowed("No unused ticket of yours is left in this order"));
        }
        for ticket in &tickets {
            if store::transfers::pending_of(&mut tx, ticket.id).await? {
                return Err(not_allowed(format!("A transfer of ticket {} is pending", ticket.id)));
            }
            if store::resale::live_of_ticket(&mut tx, ticket.id).await? {
                return Err(not_allowed(format!(
                    "Ticket {} is listed for resale: withdraw the listing first",
                    ticket.id
                )));
            }
        }
        if store::refunds::pending_of_account(&mut tx, order.festival_id, caller.user_id).await? >= MAX_PENDING {
            return Err(ApiError::new(codes::LIMIT_REACHED)
                .with_message(format!("At most {MAX_PENDING} refund requests may wait per festival")));
        }
        let row = RefundRow {
            id: Uuid::now_v7(),
            festival_id: order.festival_id,
            order_id,
            requested_by: caller.user_id,
            status: RefundStatus::Pending,
            reason: reason.to_owned(),
            currency: order.currency.clone(),
            amount_minor: 0,
            decision_note: None,
            created_at: now,
            decided_at: None,
            ticket_ids: tickets.iter().map(|t| t.id).collect(),
        };
        store::refunds::insert(&mut tx, &row).await.on_unique(
            store::refunds::OPEN_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "ticket_ids", "a refund of one of them is requested already"),
        )?;
        events::publish(
            &mut tx,
            &pb::RefundRequested {
                request_id: row.id.to_string(),
                festival_id: row.festival_id.to_string(),
                order_id: order_id.to_string(),
                requested_by: caller.user_id.to_string(),
                ticket_ids: row.ticket_ids.iter().map(ToString::to_string).collect(),
            },
        )
        .await?;
        let response = to_refund(&row);
        fresh.complete(&mut tx, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    pub(super) async fn list_refund_requests(
        &self,
        caller: Principal,
        req: pb::ListRefundRequestsRequest,
    ) -> ApiResult<pb::ListRefundRequestsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let status = match validate::known_enum::<pb::RefundRequestStatus>("status", req.status, true)? {
            None | Some(pb::RefundRequestStatus::Unspecified) => None,
            Some(pb::RefundRequestStatus::Pending) => Some(RefundStatus::Pending),
            Some(pb::RefundRequestStatus::Approved) => Some(RefundStatus::Approved),
            Some(pb::RefundRequestStatus::Rejected) => Some(RefundStatus::Rejected),
            Some(pb::RefundRequestStatus::Withdrawn) => Some(RefundStatus::Withdrawn),
        };
        // Organizers see every request; anyone else their own.
        let requester = caller.require(festival_id, Role::Organizer).err().map(|_| caller.user_id);
        let mut conn = self.pool.acquire().await?;
        let rows = store::refunds::list(&mut conn, festival_id, requester, status, LIST_LIMIT).await?;
        Ok(pb::ListRefundRequestsResponse { requests: rows.iter().map(to_refund).collect() })
    }

    pub(super) async fn decide_refund_request(
        &self,
        caller: Principal,
        req: pb::DecideRefundRequestRequest,
    ) -> ApiResult<pb::RefundRequest> {
        let id = validate::uuid("request_id", &req.request_id)?;
        let note = validate::plain_text("note", validate::max_len("note", req.note.trim(), 500)?, true)?;
        if !req.approve && note.is_empty() {
            return Err(ApiError::field(codes::REQUIRED_FIELD, "note", "tell the buyer why"));
        }
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::RefundRequest>(
            &mut tx,
            "ticketing.DecideRefundRequest",
            caller.user_id,
            key,
            &req,
        )
        .await?
        {
            Claim::Replay(request) => return Ok(request),
            Claim::Fresh(fresh) => fresh,
        };
        // Every order the decision touches (the request's, and those its tickets' unused
        // add-ons were bought in), locked in id order before the request and any ticket:
        // the order a cancellation takes them in.
        let seen = store::refunds::find(&mut tx, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(seen.festival_id);
        caller.require(seen.festival_id, Role::Organizer)?;
        let mut orders = store::tickets::orders_of_unused_children(&mut tx, &seen.ticket_ids).await?;
        orders.push(seen.order_id);
        orders.sort_unstable();
        orders.dedup();
        let mut order = None;
        for order_id in orders {
            let locked = store::orders::lock(&mut tx, order_id).await?;
            if order_id == seen.order_id {
                order = locked;
            }
        }
        let order = order.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let request = store::refunds::lock(&mut tx, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        if request.status != RefundStatus::Pending {
            return Err(already_decided(&request));
        }
        let now = self.clock.now();
        let note = (!note.is_empty()).then_some(note);
        let mut revoked = Vec::new();
        if !req.approve {
            store::refunds::close(&mut tx, id, RefundStatus::Rejected, Some(caller.user_id), note, 0, now).await?;
        } else {
            if order.status != OrderStatus::Paid {
                return Err(not_allowed("The order was cancelled since: reject the request"));
            }
            self.refunds_open(&mut tx, request.festival_id, now).await?;
            revoked = self.refund_tickets(&mut tx, &request).await?;
            let amount = revoked.iter().map(|t| t.price_minor).sum();
            store::refunds::close(&mut tx, id, RefundStatus::Approved, Some(caller.user_id), note, amount, now).await?;
        }
        let decided = store::refunds::find(&mut tx, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        let response = to_refund(&decided);
        fresh.complete(&mut tx, &response).await?;
        // The places of the refunded tickets last, with the commit.
        let freed: Vec<(&[Uuid], i64)> =
            revoked.iter().filter(|t| t.was_unused).map(|t| (t.quota_ids.as_slice(), 1)).collect();
        stock::shift_and_commit(tx, &freed, (0, -1)).await?;
        Ok(response)
    }

    /// Refunds are asked for and approved only before the gates may open: offline
    /// scanners may admit a ticket the server has not heard of yet.
    async fn refunds_open(
        &self,
        conn: &mut sqlx::PgConnection,
        festival_id: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<()> {
        let festival = Self::festival(conn, festival_id).await?;
        if gates_may_be_open(festival.status, festival.start_time, now) {
            return Err(not_allowed("Refunds close when the festival starts"));
        }
        Ok(())
    }

    /// Revokes a request's tickets as REFUNDED with their unused add-ons, records what
    /// each order owes and publishes `refund.approved`. Returns what it revoked (each
    /// with its price and quotas). The caller holds the orders' locks and moves the stock.
    async fn refund_tickets(&self, tx: &mut sqlx::PgConnection, request: &RefundRow) -> ApiResult<Vec<Revoked>> {
        let mut revoked = store::tickets::revoke_unused(tx, &request.ticket_ids, TicketStatus::Refunded).await?;
        if revoked.len() != request.ticket_ids.len() {
            return Err(ApiError::new(codes::TICKET_ALREADY_USED)
                .with_message("A ticket of the request was used since: reject the request"));
        }
        let parents: Vec<Uuid> = revoked.iter().map(|t| t.id).collect();
        revoked.extend(store::tickets::revoke_children(tx, &parents, TicketStatus::Refunded, true).await?);
        // Per order: add-ons bought later sit in orders of their own.
        let mut per_order: BTreeMap<Uuid, (i64, Vec<String>)> = BTreeMap::new();
        for t in &revoked {
            let entry = per_order.entry(t.order_id).or_default();
            entry.0 += t.price_minor;
            entry.1.push(t.id.to_string());
        }
        let amounts: Vec<(Uuid, i64)> = per_order.iter().map(|(o, (a, _))| (*o, *a)).collect();
        store::orders::add_refunds(tx, &amounts).await?;
        let mut orders = Vec::with_capacity(per_order.len());
        for (order_id, (amount_minor, ticket_ids)) in per_order {
            let o = store::orders::find(tx, order_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
            orders.push(pb::OrderRefund {
                order_id: order_id.to_string(),
                amount_minor,
                ticket_ids,
                payment_method: o.payment_method.as_str().to_owned(),
                buyer_user_id: o.buyer_user_id.map(|u| u.to_string()).unwrap_or_default(),
            });
        }
        events::publish(
            tx,
            &pb::RefundApproved {
                request_id: request.id.to_string(),
                festival_id: request.festival_id.to_string(),
                currency: request.currency.clone(),
                amount_minor: orders.iter().map(|o| o.amount_minor).sum(),
                orders,
            },
        )
        .await?;
        Ok(revoked)
    }

    /// Withdrawing locks only the request: it never waits on an order.
    pub(super) async fn withdraw_refund_request(
        &self,
        caller: Principal,
        req: pb::WithdrawRefundRequestRequest,
    ) -> ApiResult<pb::RefundRequest> {
        let id = validate::uuid("request_id", &req.request_id)?;
        let mut tx = self.pool.begin().await?;
        let request = store::refunds::lock(&mut tx, id)
            .await?
            .filter(|r| r.requested_by == caller.user_id)
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(request.festival_id);
        match request.status {
            RefundStatus::Pending => {
                store::refunds::close(&mut tx, id, RefundStatus::Withdrawn, None, None, 0, self.clock.now()).await?;
            }
            RefundStatus::Withdrawn => {}
            RefundStatus::Approved | RefundStatus::Rejected => return Err(already_decided(&request)),
        }
        let row = store::refunds::find(&mut tx, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        tx.commit().await?;
        Ok(to_refund(&row))
    }
}
