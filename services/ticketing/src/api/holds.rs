//! Holds: tickets reserved for a buyer for a while, then checked out into an order,
//! released, or expired.

use std::collections::BTreeSet;

use chrono::Duration;
use festival_platform::auth::{Principal, Role};
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::payments::v1 as pay;
use festival_proto::ticketing::v1 as pb;
use sha2::Digest as _;
use uuid::Uuid;

use super::TicketingApi;
use super::convert::{to_hold, to_order};
use super::promos;
use crate::domain::promo::{self, Applied, Discount, Line, Priced, PromoError};
use crate::domain::sale::{self, QuantityError, check_quantity, in_window};
use crate::domain::status::{HoldStatus, OrderStatus, PaymentMethod};
use crate::stock::{self, Shortage};
use crate::store::{
    self,
    holds::{HoldRow, ItemRow},
    orders::OrderRow,
};
use crate::{fulfil, lifecycle};

impl TicketingApi {
    pub(super) async fn create_hold(&self, caller: Principal, req: pb::CreateHoldRequest) -> ApiResult<pb::Hold> {
        if !req.voucher_code.is_empty() {
            return self.create_voucher_hold(caller, req).await;
        }
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let wanted = self.hold_lines(&req.items)?;
        let promo_codes = promo_codes_of(&req.promo_codes)?;
        let code = super::catalog::access_code(festival_id, &req.access_code)?;
        let for_ticket = match req.for_ticket_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("for_ticket_id", raw)?),
        };
        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::Hold>(&mut tx, "ticketing.CreateHold", caller.user_id, key, &req).await? {
                Claim::Replay(hold) => return Ok(hold),
                Claim::Fresh(fresh) => fresh,
            };
        let festival = Self::festival_on_sale(&mut tx, festival_id).await?;
        let ids: Vec<Uuid> = wanted.iter().map(|w| w.0).collect();
        let categories = store::categories::find_many(&mut tx, festival_id, &ids).await?;
        let organizer = caller.has(festival_id, Role::Organizer);
        let now = self.clock.now();
        let mut items = Vec::with_capacity(wanted.len());
        // Per-account limits lock (category, account) pairs: in one order, so one buyer's
        // two holds listing the same categories differently never wait on each other.
        let mut in_lock_order: Vec<(usize, (Uuid, i32))> = wanted.iter().copied().enumerate().collect();
        in_lock_order.sort_by_key(|(_, (category, _))| *category);
        for (i, (category_id, quantity)) in in_lock_order {
            let field = format!("items[{i}]");
            let category =
                categories.iter().find(|c| c.id == category_id && c.open_to(organizer, code.as_deref())).ok_or_else(
                    || ApiError::field(codes::NOT_FOUND, &format!("{field}.category_id"), "no such category"),
                )?;
            if !in_window(now, category.sale_start, category.sale_end) {
                return Err(ApiError::field(codes::SALES_CLOSED, &field, "this category is not on sale now"));
            }
            quantity_allowed(&format!("{field}.quantity"), quantity, category.min_per_order, category.max_per_order)?;
            if !store::categories::account_may_take(&mut tx, category, caller.user_id, quantity).await? {
                let why = format!("at most {} per account", category.max_per_account);
                return Err(ApiError::field(codes::PURCHASE_LIMIT_EXCEEDED, &field, why));
            }
            items.push(ItemRow {
                category_id,
                quantity,
                unit_price_minor: category.price_minor,
                net_unit_price_minor: category.price_minor,
                quota_ids: Vec::new(),
            });
        }
        items.sort_by_key(|item| wanted.iter().position(|w| w.0 == item.category_id));
        let is_addon = |category: Uuid| categories.iter().any(|c| c.id == category && c.addon);
        let lines: Vec<(bool, i32)> =
            wanted.iter().map(|&(category, quantity)| (is_addon(category), quantity)).collect();
        sale::addons_covered(&lines, for_ticket.is_some()).map_err(|problem| {
            ApiError::new(codes::ADDON_NEEDS_ADMISSION).with_message(match problem {
                sale::AddonProblem::NoAdmission => "Each add-on needs an admission ticket in the same reservation",
                sale::AddonProblem::ForATicketOnlyAddonsOneEach => {
                    "For an existing ticket, reserve add-ons only, one of each"
                }
            })
        })?;
        if let Some(parent) = for_ticket {
            fulfil::addon_parent(&mut tx, festival_id, parent, caller.user_id, &wanted).await?;
        }
        let gross = sale::total(items.iter().map(|i| (i.unit_price_minor, i.quantity)))
            .ok_or_else(|| ApiError::new(codes::INVALID_AMOUNT).with_message("The total is too large"))?;
        let Priced { applied: redemptions, net_unit_prices } =
            self.redeem_codes(&mut tx, festival_id, caller.user_id, &promo_codes, &items, now).await?;
        for (item, net) in items.iter_mut().zip(net_unit_prices) {
            item.net_unit_price_minor = net;
        }
        let discount: i64 = redemptions.iter().map(|r| r.discount_minor).sum();
        let total = gross - discount.min(gross);
        let plan = match stock::Plan::new(&mut tx, &wanted).await? {
            Ok(plan) => plan,
            Err(Shortage) => return Err(ApiError::new(codes::SOLD_OUT)),
        };
        for item in &mut items {
            item.quota_ids = plan.quotas_of.get(&item.category_id).cloned().unwrap_or_default();
        }
        let hold = HoldRow {
            id: Uuid::now_v7(),
            festival_id,
            user_id: caller.user_id,
            status: HoldStatus::Active,
            total_minor: total,
            discount_minor: discount.min(gross),
            currency: festival.currency.clone(),
            expires_at: now + Duration::seconds(self.config.holds.ttl_secs),
            extended: false,
            order_id: None,
            for_ticket_id: for_ticket,
            voucher_id: None,
            resale_id: None,
        };
        store::holds::insert(&mut tx, &hold, &items).await?;
        let mut in_id_order: Vec<&Applied> = redemptions.iter().collect();
        in_id_order.sort_by_key(|r| r.promo);
        for r in in_id_order {
            store::promos::record_redemption(&mut tx, hold.id, r.promo, caller.user_id, r.tickets, r.discount_minor)
                .await?;
        }
        let response = to_hold(&hold, &items, &promo_codes, HoldStatus::Active);
        fresh.complete(&mut tx, &response).await?;
        // Codes' uses, then stock, as the last writes, each guarded by one conditional
        // statement (codes in id order, then quotas in id order: the order every command
        // takes them in).
        let mut by_id: Vec<&Applied> = redemptions.iter().collect();
        by_id.sort_by_key(|r| r.promo);
        for r in by_id {
            if !store::promos::take_uses(&mut tx, r.promo, i64::from(r.tickets)).await? {
                return Err(ApiError::field(codes::PROMO_EXHAUSTED, "promo_codes", "this code has no uses left"));
            }
        }
        // The stock last, with the commit: see `stock` on hot rows.
        if let Err(Shortage) = plan.take_and_commit(tx, false).await? {
            return Err(ApiError::new(codes::SOLD_OUT));
        }
        Ok(response)
    }

    /// The codes' discounts on a basket, checked against their window, categories,
    /// minimum, stacking and per-account limit (their overall uses are taken last).
    async fn redeem_codes(
        &self,
        tx: &mut sqlx::PgConnection,
        festival_id: Uuid,
        user_id: Uuid,
        codes_wanted: &[String],
        items: &[ItemRow],
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<Priced> {
        if codes_wanted.is_empty() {
            let net_unit_prices = items.iter().map(|i| i.unit_price_minor).collect();
            return Ok(Priced { applied: Vec::new(), net_unit_prices });
        }
        let rows = store::promos::find_codes(tx, festival_id, codes_wanted).await?;
        let mut rules = Vec::with_capacity(codes_wanted.len());
        for (i, code) in codes_wanted.iter().enumerate() {
            let field = format!("promo_codes[{i}]");
            let row = rows
                .iter()
                .find(|r| &r.code == code)
                .ok_or_else(|| ApiError::field(codes::PROMO_INVALID, &field, "no such code"))?;
            if !in_window(now, row.valid_from, row.valid_until) {
                return Err(ApiError::field(codes::PROMO_EXPIRED, &field, "not valid now"));
            }
            rules.push(promos::to_rule(row));
        }
        let lines: Vec<Line> = items
            .iter()
            .map(|i| Line { category: i.category_id, unit_price: i.unit_price_minor, quantity: i.quantity })
            .collect();
        // One fixed order, whatever the order typed: percentages first, then by id.
        rules.sort_by_key(|r| (!matches!(r.discount, Discount::Percent(_)), r.id));
        let applied = promo::apply(&lines, &rules).map_err(|e| match e {
            PromoError::NotStackable => {
                ApiError::field(codes::PROMO_NOT_STACKABLE, "promo_codes", "these codes do not stack")
            }
            PromoError::BelowMinimum(_) => {
                ApiError::field(codes::PROMO_MIN_BASKET, "promo_codes", "the basket is below the code's minimum")
            }
            PromoError::NotApplicable(_) => {
                ApiError::field(codes::PROMO_INVALID, "promo_codes", "not valid for these tickets")
            }
        })?;
        let mut by_id: Vec<&Applied> = applied.applied.iter().collect();
        by_id.sort_by_key(|a| a.promo);
        for a in by_id {
            let row = rows.iter().find(|r| r.id == a.promo).ok_or(ApiError::new(codes::PROMO_INVALID))?;
            if row.max_uses_per_account > 0 {
                store::promos::lock_account_uses(tx, a.promo, user_id).await?;
                let already = store::promos::used_by_account(tx, a.promo, user_id).await?;
                if already + i64::from(a.tickets) > i64::from(row.max_uses_per_account) {
                    return Err(ApiError::field(codes::PROMO_EXHAUSTED, "promo_codes", "used up for this account"));
                }
            }
        }
        Ok(applied)
    }

    /// `(category, quantity)` of a hold's items: well-formed, within the request limits,
    /// one item per category.
    pub(super) fn hold_lines(&self, items: &[pb::HoldItem]) -> ApiResult<Vec<(Uuid, i32)>> {
        if items.is_empty() {
            return Err(ApiError::field(codes::REQUIRED_FIELD, "items", "at least one item"));
        }
        if items.len() > self.config.limits.hold_items {
            let why = format!("at most {} items", self.config.limits.hold_items);
            return Err(ApiError::field(codes::VALIDATION_FAILED, "items", why));
        }
        let mut seen = BTreeSet::new();
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let id = validate::uuid(&format!("items[{i}].category_id"), &item.category_id)?;
                if !seen.insert(id) {
                    return Err(ApiError::field(
                        codes::VALIDATION_FAILED,
                        &format!("items[{i}]"),
                        "one item per category",
                    ));
                }
                if item.quantity <= 0 || item.quantity > self.config.limits.quantity {
                    let why = format!("must be between 1 and {}", self.config.limits.quantity);
                    return Err(ApiError::field(codes::VALIDATION_FAILED, &format!("items[{i}].quantity"), why));
                }
                Ok((id, item.quantity))
            })
            .collect()
    }

    /// The caller's hold, locked for a change (others' holds are not found).
    async fn own_hold(&self, tx: &mut sqlx::PgConnection, caller: &Principal, raw_id: &str) -> ApiResult<HoldRow> {
        let id = validate::uuid("hold_id", raw_id)?;
        let hold = store::holds::lock(tx, id).await?.filter(|h| h.user_id == caller.user_id);
        let hold = hold.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(hold.festival_id);
        Ok(hold)
    }

    /// What the caller sees: an active hold past its time is expired, swept or not.
    fn shown_status(&self, hold: &HoldRow) -> HoldStatus {
        if hold.status == HoldStatus::Active && hold.expires_at <= self.clock.now() {
            HoldStatus::Expired
        } else {
            hold.status
        }
    }

    /// Refuses a hold that is not active any more.
    fn still_active(&self, hold: &HoldRow) -> ApiResult<()> {
        match self.shown_status(hold) {
            HoldStatus::Active => Ok(()),
            HoldStatus::Expired => Err(ApiError::new(codes::HOLD_EXPIRED)),
            HoldStatus::Released | HoldStatus::CheckedOut => Err(ApiError::new(codes::HOLD_NOT_ACTIVE)),
        }
    }

    pub(super) async fn get_hold(&self, caller: Principal, req: pb::GetHoldRequest) -> ApiResult<pb::Hold> {
        let id = validate::uuid("hold_id", &req.hold_id)?;
        let mut conn = self.pool.acquire().await?;
        let hold = store::holds::find(&mut conn, id)
            .await?
            .filter(|h| h.user_id == caller.user_id)
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        let items = store::holds::items(&mut conn, id).await?;
        let codes = store::promos::codes_of_hold(&mut conn, id).await?;
        Ok(to_hold(&hold, &items, &codes, self.shown_status(&hold)))
    }

    pub(super) async fn extend_hold(&self, caller: Principal, req: pb::ExtendHoldRequest) -> ApiResult<pb::Hold> {
        let mut tx = self.pool.begin().await?;
        let mut hold = self.own_hold(&mut tx, &caller, &req.hold_id).await?;
        self.still_active(&hold)?;
        if hold.extended {
            return Err(ApiError::new(codes::HOLD_ALREADY_EXTENDED));
        }
        hold.expires_at += Duration::seconds(self.config.holds.ttl_secs);
        hold.extended = true;
        store::holds::extend(&mut tx, hold.id, hold.expires_at).await?;
        let items = store::holds::items(&mut tx, hold.id).await?;
        let codes = store::promos::codes_of_hold(&mut tx, hold.id).await?;
        tx.commit().await?;
        Ok(to_hold(&hold, &items, &codes, HoldStatus::Active))
    }

    pub(super) async fn release_hold(&self, caller: Principal, req: pb::ReleaseHoldRequest) -> ApiResult<pb::Hold> {
        let mut tx = self.pool.begin().await?;
        let mut hold = self.own_hold(&mut tx, &caller, &req.hold_id).await?;
        // A hold whose order waits for its payment stays until the payment settles or the
        // hold expires: releasing it would let the account buy again around its limit
        // while the checkout can still be paid.
        if hold.status == HoldStatus::Active
            && store::orders::of_hold(&mut tx, hold.id).await?.is_some_and(|o| o.status == OrderStatus::AwaitingPayment)
        {
            return Err(ApiError::new(codes::HOLD_NOT_ACTIVE)
                .with_message("The reservation is being paid; it ends when the payment settles or when it expires"));
        }
        // Releasing twice, or after expiry, changes nothing and says where it stands.
        if hold.status == HoldStatus::Active {
            lifecycle::end_hold(&mut tx, &hold, HoldStatus::Released).await?;
            hold.status = HoldStatus::Released;
        }
        let items = store::holds::items(&mut tx, hold.id).await?;
        let codes = store::promos::codes_of_hold(&mut tx, hold.id).await?;
        tx.commit().await?;
        Ok(to_hold(&hold, &items, &codes, hold.status))
    }

    pub(super) async fn checkout_hold(
        &self,
        caller: Principal,
        bearer: String,
        req: pb::CheckoutHoldRequest,
    ) -> ApiResult<pb::Order> {
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let hold_id = validate::uuid("hold_id", &req.hold_id)?;
        let seen = store::holds::find(&mut *self.pool.acquire().await?, hold_id)
            .await?
            .filter(|h| h.user_id == caller.user_id)
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        let issuer = self.issuer(seen.festival_id).await?;
        // A paid hold's checkout is opened before any transaction: payments (and Stripe
        // behind it) may take seconds, and no lock or connection is held meanwhile. The
        // order's id comes from the hold, and payments' key from the order, so a retry or
        // a second click reaches the same checkout; a failure writes nothing.
        let checkout = if seen.total_minor > 0 && seen.status == HoldStatus::Active {
            Some(self.open_checkout(&bearer, &seen).await?)
        } else {
            None
        };
        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::Order>(&mut tx, "ticketing.CheckoutHold", caller.user_id, key, &req)
            .await?
        {
            Claim::Replay(order) => return Ok(order),
            Claim::Fresh(fresh) => fresh,
        };
        let hold = self.own_hold(&mut tx, &caller, &req.hold_id).await?;
        // Checked out before (a second click, a retry under another key): that order,
        // with its checkout page if it still waits for its payment.
        if let Some(order) = store::orders::of_hold(&mut tx, hold.id).await? {
            let tickets = store::tickets::of_order(&mut tx, order.id).await?;
            let response = to_order(&order, &tickets);
            fresh.complete(&mut tx, &response).await?;
            tx.commit().await?;
            return Ok(response);
        }
        self.still_active(&hold)?;
        // A cancelled festival stops sales at once, held tickets included.
        Self::festival_on_sale(&mut tx, hold.festival_id).await?;
        let items = store::holds::items(&mut tx, hold.id).await?;
        if hold.total_minor > 0 {
            let Some(payment) = checkout else { return Err(ApiError::new(codes::CONCURRENT_UPDATE)) };
            let payment_id = Uuid::parse_str(&payment.id).map_err(ApiError::internal)?;
            let order = store::orders::insert(
                &mut tx,
                &OrderRow {
                    id: order_id_of(hold.id),
                    festival_id: hold.festival_id,
                    buyer_user_id: Some(hold.user_id),
                    status: OrderStatus::AwaitingPayment,
                    total_minor: hold.total_minor,
                    currency: hold.currency.clone(),
                    payment_method: PaymentMethod::Card,
                    hold_id: Some(hold.id),
                    created_by: hold.user_id,
                    cancelled_at: None,
                    created_at: self.clock.now(),
                    refunded_minor: 0,
                    payment_id: Some(payment_id),
                    checkout_url: payment.checkout_url,
                },
            )
            .await?;
            store::holds::set_status(&mut tx, hold.id, HoldStatus::Active, Some(order.id)).await?;
            let response = to_order(&order, &[]);
            fresh.complete(&mut tx, &response).await?;
            tx.commit().await?;
            return Ok(response);
        }
        let order = store::orders::insert(
            &mut tx,
            &OrderRow {
                id: Uuid::now_v7(),
                festival_id: hold.festival_id,
                buyer_user_id: Some(caller.user_id),
                status: OrderStatus::Paid,
                total_minor: hold.total_minor,
                currency: hold.currency.clone(),
                payment_method: PaymentMethod::Free,
                hold_id: Some(hold.id),
                created_by: caller.user_id,
                cancelled_at: None,
                created_at: self.clock.now(),
                refunded_minor: 0,
                payment_id: None,
                checkout_url: String::new(),
            },
        )
        .await?;
        let tickets = fulfil::deliver_hold(&mut tx, &issuer, self.clock.now(), &hold, &order, &items).await?;
        let response = to_order(&order, &tickets);
        fresh.complete(&mut tx, &response).await?;
        // Held → sold last, with the commit: see `stock` on hot rows.
        let taken: Vec<(&[Uuid], i64)> =
            items.iter().map(|i| (i.quota_ids.as_slice(), i64::from(i.quantity))).collect();
        stock::shift_and_commit(tx, &taken, (-1, 1)).await?;
        Ok(response)
    }

    /// Opens (or finds again) the checkout of a paid hold's order at payments, on the
    /// buyer's behalf. Its lines are the hold's items at the prices after promo codes (one
    /// line for the total when those do not add up exactly). The checkout stays open
    /// longer than the hold (Stripe's minimum is 30 minutes): a payment that completes
    /// after the hold expired is honoured while the sale allows, refunded otherwise (see
    /// `card_orders`). Payments unreachable: ERR_5002.
    async fn open_checkout(&self, bearer: &str, hold: &HoldRow) -> ApiResult<pay::Payment> {
        let order_id = order_id_of(hold.id);
        let mut conn = self.pool.acquire().await?;
        let items = store::holds::items(&mut conn, hold.id).await?;
        let ids: Vec<Uuid> = items.iter().map(|i| i.category_id).collect();
        let names = store::categories::find_many(&mut conn, hold.festival_id, &ids).await?;
        drop(conn);
        let name_of = |id: Uuid| names.iter().find(|c| c.id == id).map_or("Ticket", |c| c.name.as_str()).to_owned();
        let lines: Vec<pay::LineItem> = items
            .iter()
            .map(|i| pay::LineItem {
                name: name_of(i.category_id),
                quantity: i.quantity,
                unit_amount_minor: i.net_unit_price_minor,
            })
            .collect();
        let sum: i64 = lines.iter().map(|l| l.unit_amount_minor * i64::from(l.quantity)).sum();
        let lines = if sum == hold.total_minor {
            lines
        } else {
            vec![pay::LineItem { name: "Tickets".into(), quantity: 1, unit_amount_minor: hold.total_minor }]
        };
        let url = |template: &str| template.replace("{ORDER_ID}", &order_id.to_string());
        let request = pay::CreateCheckoutRequest {
            festival_id: hold.festival_id.to_string(),
            purpose: pay::PaymentPurpose::TicketOrder as i32,
            reference: order_id.to_string(),
            currency: hold.currency.clone(),
            line_items: lines,
            success_url: url(&self.config.payments.success_url),
            cancel_url: url(&self.config.payments.cancel_url),
            idempotency_key: format!("order-{order_id}"),
            // Payments' default (at least Stripe's 30 minutes): a hold's time changes
            // when it is extended, and a retry must ask for the same checkout.
            expire_time: None,
            vendor_account_id: String::new(),
        };
        self.payments.create_checkout(bearer, request).await
    }
}

/// The id of a paid hold's order, fixed by the hold: every attempt to check it out names
/// the same order (and so the same checkout at payments).
fn order_id_of(hold_id: Uuid) -> Uuid {
    let digest = sha2::Sha256::new().chain_update(b"ticketing.order\0").chain_update(hold_id.as_bytes()).finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// The codes of a request: at most 3, each well-formed, none twice.
fn promo_codes_of(raw: &[String]) -> ApiResult<Vec<String>> {
    if raw.len() > 3 {
        return Err(ApiError::field(codes::VALIDATION_FAILED, "promo_codes", "at most 3 codes"));
    }
    let mut seen = BTreeSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, code)| {
            let code = promos::normalize_code(code).map_err(|_| {
                ApiError::field(
                    codes::VALIDATION_FAILED,
                    &format!("promo_codes[{i}]"),
                    "3 to 32 letters, digits or dashes",
                )
            })?;
            if !seen.insert(code.clone()) {
                return Err(ApiError::field(codes::VALIDATION_FAILED, "promo_codes", "a code twice"));
            }
            Ok(code)
        })
        .collect()
}

/// A quantity (the field named `field`) within a category's per-order bounds: too few is
/// a bad request, too many the purchase limit.
pub(super) fn quantity_allowed(field: &str, quantity: i32, min: i32, max: i32) -> ApiResult<()> {
    match check_quantity(quantity, min, max) {
        Ok(()) => Ok(()),
        Err(QuantityError::NotPositive) => Err(ApiError::field(codes::VALIDATION_FAILED, field, "must be positive")),
        Err(QuantityError::BelowMinimum(min)) => {
            Err(ApiError::field(codes::VALIDATION_FAILED, field, format!("at least {min}")))
        }
        Err(QuantityError::AboveMaximum(max)) => {
            Err(ApiError::field(codes::PURCHASE_LIMIT_EXCEEDED, field, format!("at most {max} per order")))
        }
    }
}
