//! Orders: sold in one call by a box office or a partner, read by their buyer or the
//! festival's staff, cancelled by an organizer (their tickets revoked, the stock of the
//! unused ones free again, exactly once).

use festival_platform::auth::{Principal, Role};
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::convert::to_order;
use super::holds::quantity_allowed;
use super::{TicketLine, TicketingApi};
use crate::domain::sale::{self, in_window};
use crate::domain::status::{OrderStatus, PaymentMethod, TicketStatus};
use crate::stock::{self, Shortage};
use crate::store::{self, orders::OrderRow};
use crate::{cancellation, fulfil};

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
        let issuer = self.issuer(festival_id).await?;
        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::Order>(&mut tx, "ticketing.CreateOrder", caller.user_id, key, &req).await? {
                Claim::Replay(order) => return Ok(order),
                Claim::Fresh(fresh) => fresh,
            };
        let festival = Self::festival_on_sale(&mut tx, festival_id).await?;
        // One call sells one category: an add-on goes with its admission ticket (a hold).
        let category =
            Self::admission_category(&mut tx, festival_id, category_id, "sell add-ons with a reservation").await?;
        if !in_window(self.clock.now(), category.sale_start, category.sale_end) {
            return Err(ApiError::field(codes::SALES_CLOSED, "category_id", "this category is not on sale now"));
        }
        quantity_allowed("quantity", req.quantity, category.min_per_order, category.max_per_order)?;
        let total = sale::total([(category.price_minor, req.quantity)])
            .ok_or_else(|| ApiError::new(codes::INVALID_AMOUNT).with_message("The total is too large"))?;
        if method == PaymentMethod::Free && total > 0 {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "payment_method", "the category is not free"));
        }
        let plan = match stock::Plan::new(&mut tx, &[(category_id, req.quantity)]).await? {
            Ok(plan) => plan,
            Err(Shortage) => return Err(ApiError::new(codes::SOLD_OUT)),
        };
        let lines = [TicketLine {
            category_id,
            quantity: req.quantity,
            unit_price_minor: category.price_minor,
            quota_ids: plan.quotas_of.get(&category_id).cloned().unwrap_or_default(),
        }];
        let order = store::orders::insert(
            &mut tx,
            &OrderRow {
                id: Uuid::now_v7(),
                festival_id,
                buyer_user_id: buyer,
                status: OrderStatus::Paid,
                total_minor: total,
                currency: festival.currency.clone(),
                payment_method: method,
                hold_id: None,
                created_by: caller.user_id,
                cancelled_at: None,
                created_at: self.clock.now(),
                refunded_minor: 0,
                payment_id: None,
                checkout_url: String::new(),
            },
        )
        .await?;
        let tickets = self.issue_tickets(&mut tx, &issuer, &order, &lines, order.buyer_user_id, total).await?;
        fulfil::publish_paid(&mut tx, &order, &tickets).await?;
        let response = to_order(&order, &tickets);
        fresh.complete(&mut tx, &response).await?;
        // The stock last, with the commit: see `stock` on hot rows.
        if let Err(Shortage) = plan.take_and_commit(tx, true).await? {
            return Err(ApiError::new(codes::SOLD_OUT));
        }
        Ok(response)
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
