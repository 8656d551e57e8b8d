//! Orders: sold in one call by a box office or a partner, read by their buyer or the
//! festival's staff, cancelled by an organizer (their tickets revoked, the stock of the
//! unused ones free again, exactly once).

use chrono::SubsecRound;
use festival_platform::auth::{Principal, Role};
use festival_platform::events::outbox::Queued;
use festival_platform::idempotency::{self, Answered, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::convert::to_order;
use super::holds::quantity_allowed;
use super::{TicketLine, TicketingApi, not_on_sale};
use crate::domain::sale::{self, in_window};
use crate::domain::status::{OrderStatus, PaymentMethod, TicketStatus, festival_on_sale};
use crate::stock::{self, Shortage};
use crate::store::{self, orders::OrderRow, orders::Written};
use crate::{cancellation, fulfil};

/// The idempotency scope of `CreateOrder`.
const CREATE_ORDER: &str = "ticketing.CreateOrder";

/// A validated `CreateOrder`.
#[derive(Clone, Copy)]
struct Sale<'a> {
    caller: &'a Principal,
    festival_id: Uuid,
    category_id: Uuid,
    buyer: Option<Uuid>,
    method: PaymentMethod,
    key: &'a str,
    request: &'a pb::CreateOrderRequest,
}

impl TicketingApi {
    pub(super) async fn create_order(&self, caller: Principal, req: pb::CreateOrderRequest) -> ApiResult<pb::Order> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require_any(festival_id, &[Role::Cashier, Role::Organizer])?;
        let category_id = validate::uuid("category_id", &req.category_id)?;
        if req.quantity <= 0 || req.quantity > self.config.limits.quantity {
            let why = format!("must be between 1 and {}", self.config.limits.quantity);
            return Err(ApiError::field(codes::VALIDATION_FAILED, "quantity", why));
        }
        let buyer = match req.buyer_user_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("buyer_user_id", raw)?),
        };
        let method = match validate::known_enum::<pb::PaymentMethod>("payment_method", req.payment_method, false)? {
            Some(pb::PaymentMethod::Cash) => PaymentMethod::Cash,
            Some(pb::PaymentMethod::External) => PaymentMethod::External,
            Some(pb::PaymentMethod::Free) => PaymentMethod::Free,
            Some(pb::PaymentMethod::Card) => {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    "payment_method",
                    "card payments go through a hold's checkout",
                ));
            }
            _ => return Err(ApiError::field(codes::REQUIRED_FIELD, "payment_method", "is required")),
        };
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let sale = Sale { caller: &caller, festival_id, category_id, buyer, method, key, request: &req };
        match self.sell(&sale).await {
            Ok(order) => Ok(order),
            // A retry of an order sold before answers with it, whatever changed since; so
            // does a request whose twin with the key is still being written (the claim
            // waits for it), instead of a refusal while the twin sells.
            Err(e) => {
                let mut tx = self.pool.begin().await?;
                match idempotency::claim::<pb::Order>(&mut tx, CREATE_ORDER, caller.user_id, key, &req).await? {
                    Claim::Replay(order) => Ok(order),
                    Claim::Fresh(_) => {
                        tx.rollback().await?;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Sells a box-office or partner order, the busiest command of an on-sale, in five
    /// round trips instead of eleven: one read of everything it checks, then a transaction
    /// of one statement that writes the order whole (`store::orders::write_sale`) and the
    /// stock move sent with its commit.
    async fn sell(&self, sale: &Sale<'_>) -> ApiResult<pb::Order> {
        let Sale { caller, festival_id, category_id, buyer, method, key, request } = *sale;
        let issuer = self.issuer(festival_id).await?;
        let mut conn = self.pool.acquire().await?;
        let Some(facts) = store::categories::sale_facts(&mut conn, festival_id, category_id).await? else {
            Self::festival_on_sale(&mut conn, festival_id).await?;
            return Err(ApiError::field(codes::NOT_FOUND, "category_id", "no such category"));
        };
        if !festival_on_sale(facts.festival_status) {
            return Err(not_on_sale(facts.festival_status));
        }
        let category = &facts.category;
        // One call sells one category: an add-on goes with its admission ticket (a hold).
        if category.addon {
            return Err(ApiError::field(
                codes::ADDON_NEEDS_ADMISSION,
                "category_id",
                "sell add-ons with a reservation",
            ));
        }
        // Stored to the microsecond: the answer shows what a later read shows.
        let now = self.clock.now().trunc_subsecs(6);
        if !in_window(now, category.sale_start, category.sale_end) {
            return Err(ApiError::field(codes::SALES_CLOSED, "category_id", "this category is not on sale now"));
        }
        quantity_allowed("quantity", request.quantity, category.min_per_order, category.max_per_order)?;
        let total = sale::total([(category.price_minor, request.quantity)])
            .ok_or_else(|| ApiError::new(codes::INVALID_AMOUNT).with_message("The total is too large"))?;
        if method == PaymentMethod::Free && total > 0 {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "payment_method", "the category is not free"));
        }
        let lines = [(category_id, request.quantity)];
        let plan = stock::Plan::of_counters(&lines, facts.counters(), true)
            .map_err(|Shortage| ApiError::new(codes::SOLD_OUT))?;
        let quota_ids = plan.quotas_of.get(&category_id).cloned().unwrap_or_default();
        let order = OrderRow {
            id: Uuid::now_v7(),
            festival_id,
            buyer_user_id: buyer,
            status: OrderStatus::Paid,
            total_minor: total,
            currency: facts.currency.clone(),
            payment_method: method,
            hold_id: None,
            created_by: caller.user_id,
            cancelled_at: None,
            created_at: now,
            refunded_minor: 0,
            payment_id: None,
            checkout_url: String::new(),
        };
        let line = TicketLine {
            category_id,
            quantity: request.quantity,
            unit_price_minor: category.price_minor,
            quota_ids: quota_ids.clone(),
        };
        let tickets = fulfil::ticket_rows(&issuer, now, &order, &[line], buyer, total);
        let response = to_order(&order, &tickets);
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let written = store::orders::write_sale(
            &mut tx,
            &store::orders::Sale {
                order: &order,
                category_id,
                quota_ids: &quota_ids,
                tickets: &tickets,
                paid: &Queued::new(&fulfil::order_paid(&order, &tickets)),
                answer: &Answered::new(CREATE_ORDER, caller.user_id, key, request, &response),
            },
        )
        .await?;
        match written {
            Written::Done => {}
            Written::FestivalClosed => {
                return Err(
                    ApiError::new(codes::FESTIVAL_NOT_ACTIVE).with_message("The festival stopped selling tickets")
                );
            }
            // Another request with this key: the caller's claim answers with its order.
            Written::KeyTaken => return Err(ApiError::new(codes::CONCURRENT_UPDATE)),
        }
        // The stock last, with the commit: see `stock` on hot rows.
        match plan.take_and_commit(tx, true).await? {
            Ok(()) => Ok(response),
            Err(Shortage) => Err(ApiError::new(codes::SOLD_OUT)),
        }
    }

    pub(super) async fn get_order(&self, caller: Principal, req: pb::GetOrderRequest) -> ApiResult<pb::Order> {
        let id = validate::uuid("order_id", &req.order_id)?;
        let mut conn = self.pool.acquire().await?;
        let order = store::orders::find(&mut conn, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(order.festival_id);
        let staff = caller.require_any(order.festival_id, &[Role::Organizer, Role::Cashier]).is_ok();
        if order.buyer_user_id != Some(caller.user_id) && !staff {
            return Err(ApiError::new(codes::NOT_FOUND));
        }
        let tickets = store::tickets::of_order(&mut conn, id).await?;
        let mut response = to_order(&order, &tickets);
        if !staff {
            // A ticket the buyer gave away is someone else's now: its credential is theirs.
            let me = caller.user_id.to_string();
            for ticket in response.tickets.iter_mut().filter(|t| t.holder_user_id != me) {
                ticket.credential.clear();
            }
        }
        Ok(response)
    }

    pub(super) async fn cancel_order(&self, caller: Principal, req: pb::CancelOrderRequest) -> ApiResult<pb::Order> {
        let id = validate::uuid("order_id", &req.order_id)?;
        let reason = validate::max_len("reason", &req.reason, 500)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::Order>(&mut tx, "ticketing.CancelOrder", caller.user_id, key, &req).await? {
                Claim::Replay(order) => return Ok(order),
                Claim::Fresh(fresh) => fresh,
            };
        let order = store::orders::lock(&mut tx, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(order.festival_id);
        caller.require(order.festival_id, Role::Organizer)?;
        let mut revoked = Vec::new();
        let order = if order.status == OrderStatus::Cancelled {
            order // cancelled before: nothing is freed twice
        } else {
            let cancelled;
            (cancelled, revoked) = cancellation::cancel_locked(
                &mut tx,
                &order,
                caller.user_id,
                reason,
                TicketStatus::Cancelled,
                true,
                self.clock.now(),
            )
            .await?;
            cancelled
        };
        let tickets = store::tickets::of_order(&mut tx, id).await?;
        let response = to_order(&order, &tickets);
        fresh.complete(&mut tx, &response).await?;
        // A used ticket's holder came in: its place is not sold again. The stock last,
        // with the commit.
        let freed: Vec<(&[Uuid], i64)> =
            revoked.iter().filter(|t| t.was_unused).map(|t| (t.quota_ids.as_slice(), 1)).collect();
        stock::shift_and_commit(tx, &freed, (0, -1)).await?;
        Ok(response)
    }
}
