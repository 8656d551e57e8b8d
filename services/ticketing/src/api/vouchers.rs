//! Partner vouchers: places of one category reserved for a partner until a date, bought
//! only with the voucher's code (even when the public sale is sold out, closed or not
//! open yet), freed when the voucher closes.

use chrono::Duration;
use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, typed_code, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::TicketingApi;
use super::convert::to_hold;
use super::holds::quantity_allowed;
use crate::domain::sale;
use crate::domain::status::HoldStatus;
use crate::lifecycle;
use crate::stock::{self, Shortage};
use crate::store::{
    self,
    holds::{HoldRow, ItemRow},
    vouchers::VoucherRow,
};

/// Vouchers one festival may have.
const MAX_VOUCHERS: i64 = 1_000;
/// Places one voucher may reserve.
const MAX_USES: i32 = 10_000;

fn to_voucher(v: &VoucherRow, code: Option<String>) -> pb::Voucher {
    pb::Voucher {
        id: v.id.to_string(),
        festival_id: v.festival_id.to_string(),
        category_id: v.category_id.to_string(),
        partner: v.partner.clone(),
        max_uses: v.max_uses,
        used: v.used,
        price_minor: v.price_minor,
        valid_until: Some(timestamp(v.valid_until)),
        closed: v.closed_at.is_some(),
        close_time: v.closed_at.map(timestamp),
        code: code.unwrap_or_default(),
        create_time: Some(timestamp(v.created_at)),
    }
}

impl TicketingApi {
    pub(super) async fn create_voucher(
        &self,
        caller: Principal,
        req: pb::CreateVoucherRequest,
    ) -> ApiResult<pb::Voucher> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let category_id = validate::uuid("category_id", &req.category_id)?;
        let partner = validate::plain_text("partner", validate::required("partner", req.partner.trim(), 100)?, false)?;
        if !(1..=MAX_USES).contains(&req.max_uses) {
            let why = format!("must be between 1 and {MAX_USES}");
            return Err(ApiError::field(codes::VALIDATION_FAILED, "max_uses", why));
        }
        let max_price = self.config.limits.price_minor;
        if req.price_minor.is_some_and(|p| !(0..=max_price).contains(&p)) {
            let why = format!("must be between 0 and {max_price} minor units");
            return Err(ApiError::field(codes::INVALID_AMOUNT, "price_minor", why));
        }
        let now = self.clock.now();
        let valid_until = validate::required_timestamp("valid_until", &req.valid_until)?;
        if valid_until <= now || valid_until > now + Duration::days(3 * 365) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "valid_until", "must be in the next three years"));
        }
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::Voucher>(&mut tx, "ticketing.CreateVoucher", caller.user_id, key, &req)
                .await?
            {
                Claim::Replay(voucher) => return Ok(voucher),
                Claim::Fresh(fresh) => fresh,
            };
        Self::festival(&mut tx, festival_id).await?;
        Self::admission_category(&mut tx, festival_id, category_id, "an add-on is bought with its admission ticket")
            .await?;
        if store::vouchers::count(&mut tx, festival_id).await? >= MAX_VOUCHERS {
            return Err(ApiError::new(codes::LIMIT_REACHED)
                .with_message(format!("A festival has at most {MAX_VOUCHERS} vouchers")));
        }
        let plan = match stock::Plan::new(&mut tx, &[(category_id, req.max_uses)]).await? {
            Ok(plan) => plan,
            Err(Shortage) => return Err(ApiError::new(codes::SOLD_OUT).with_message("Not that many places are left")),
        };
        let voucher = VoucherRow {
            id: Uuid::now_v7(),
            festival_id,
            category_id,
            partner: partner.to_owned(),
            max_uses: req.max_uses,
            used: 0,
            price_minor: req.price_minor,
            quota_ids: plan.quotas_of.get(&category_id).cloned().unwrap_or_default(),
            valid_until,
            closed_at: None,
            created_at: now,
        };
        let code = typed_code::new_code();
        let canonical = typed_code::normalize(&code)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a new voucher code does not read back")))?;
        store::vouchers::insert(&mut tx, &voucher, &typed_code::hash(&canonical), caller.user_id)
            .await
            .on_unique(store::vouchers::CODE_UNIQUE, ApiError::new(codes::CONCURRENT_UPDATE))?;
        // The code is kept only as its hash: a retry answers without it.
        fresh.complete(&mut tx, &to_voucher(&voucher, None)).await?;
        if let Err(Shortage) = plan.take_and_commit(tx, false).await? {
            return Err(ApiError::new(codes::SOLD_OUT).with_message("Not that many places are left"));
        }
        Ok(to_voucher(&voucher, Some(code)))
    }

    pub(super) async fn list_vouchers(
        &self,
        caller: Principal,
        req: pb::ListVouchersRequest,
    ) -> ApiResult<pb::ListVouchersResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let rows = store::vouchers::of_festival(&mut *self.pool.acquire().await?, festival_id).await?;
        Ok(pb::ListVouchersResponse { vouchers: rows.iter().map(|v| to_voucher(v, None)).collect() })
    }

    pub(super) async fn close_voucher(
        &self,
        caller: Principal,
        req: pb::CloseVoucherRequest,
    ) -> ApiResult<pb::Voucher> {
        let id = validate::uuid("voucher_id", &req.voucher_id)?;
        let mut tx = self.pool.begin().await?;
        let voucher = store::vouchers::lock(&mut tx, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(voucher.festival_id);
        caller.require(voucher.festival_id, Role::Organizer)?;
        let closed = match voucher.closed_at {
            Some(_) => voucher,
            None => lifecycle::close_voucher(&mut tx, &voucher, self.clock.now()).await?,
        };
        tx.commit().await?;
        Ok(to_voucher(&closed, None))
    }

    /// A hold made with a partner voucher: one item, the voucher's category, taken from
    /// its reservation (the quotas do not move: the places are held already) at its
    /// price. The category's per-order and per-account limits still apply; its sale
    /// window and visibility do not (the voucher's validity does).
    pub(super) async fn create_voucher_hold(
        &self,
        caller: Principal,
        req: pb::CreateHoldRequest,
    ) -> ApiResult<pb::Hold> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let canonical = typed_code::normalize(&req.voucher_code)
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "voucher_code", "no such voucher"))?;
        let wanted = self.hold_lines(&req.items)?;
        let [(category_id, quantity)] = wanted[..] else {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "items", "a voucher buys one category"));
        };
        if !req.promo_codes.is_empty() || !req.for_ticket_id.is_empty() {
            return Err(ApiError::field(
                codes::VALIDATION_FAILED,
                "voucher_code",
                "a voucher goes without promo codes or add-ons",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::Hold>(&mut tx, "ticketing.CreateHold", caller.user_id, key, &req).await? {
                Claim::Replay(hold) => return Ok(hold),
                Claim::Fresh(fresh) => fresh,
            };
        let festival = Self::festival_on_sale(&mut tx, festival_id).await?;
        let voucher = store::vouchers::find_by_code(&mut tx, festival_id, &typed_code::hash(&canonical))
            .await?
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "voucher_code", "no such voucher"))?;
        let now = self.clock.now();
        if voucher.closed_at.is_some() || voucher.valid_until <= now {
            return Err(ApiError::new(codes::VOUCHER_CLOSED));
        }
        if category_id != voucher.category_id {
            return Err(ApiError::field(
                codes::VALIDATION_FAILED,
                "items[0].category_id",
                "not the voucher's category",
            ));
        }
        let category = store::categories::find_many(&mut tx, festival_id, &[category_id])
            .await?
            .pop()
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "items[0].category_id", "no such category"))?;
        quantity_allowed("items[0].quantity", quantity, category.min_per_order, category.max_per_order)?;
        if !store::categories::account_may_take(&mut tx, &category, caller.user_id, quantity).await? {
            let why = format!("at most {} per account", category.max_per_account);
            return Err(ApiError::field(codes::PURCHASE_LIMIT_EXCEEDED, "items[0]", why));
        }
        let unit_price_minor = voucher.price_minor.unwrap_or(category.price_minor);
        let items = vec![ItemRow {
            category_id,
            quantity,
            unit_price_minor,
            net_unit_price_minor: unit_price_minor,
            quota_ids: voucher.quota_ids.clone(),
        }];
        let total = sale::total([(unit_price_minor, quantity)])
            .ok_or_else(|| ApiError::new(codes::INVALID_AMOUNT).with_message("The total is too large"))?;
        let hold = HoldRow {
            id: Uuid::now_v7(),
            festival_id,
            user_id: caller.user_id,
            status: HoldStatus::Active,
            total_minor: total,
            discount_minor: 0,
            currency: festival.currency.clone(),
            expires_at: now + Duration::seconds(self.config.holds.ttl_secs),
            extended: false,
            order_id: None,
            for_ticket_id: None,
            voucher_id: Some(voucher.id),
            resale_id: None,
        };
        store::holds::insert(&mut tx, &hold, &items).await?;
        let response = to_hold(&hold, &items, &[], HoldStatus::Active);
        fresh.complete(&mut tx, &response).await?;
        // The voucher's places last, guarded by one conditional statement.
        if !store::vouchers::take(&mut tx, voucher.id, quantity, now).await? {
            // Closed meanwhile, or used up: say which, as it is now (read, not locked: this
            // hold's row already holds a key-share lock on the voucher).
            let seen = store::vouchers::find(&mut tx, voucher.id).await?.unwrap_or(voucher);
            if seen.closed_at.is_some() || seen.valid_until <= now {
                return Err(ApiError::new(codes::VOUCHER_CLOSED));
            }
            let left = seen.max_uses - seen.used;
            return Err(ApiError::new(codes::VOUCHER_EXHAUSTED)
                .with_message(format!("{left} of {} places are left", seen.max_uses)));
        }
        tx.commit().await?;
        Ok(response)
    }
}
