//! A cancelled festival, as organisers and buyers see it: the refunds' progress, the
//! credit for a next edition offered beforehand, and each buyer's choice (the work itself
//! is `crate::cancellation`'s).

use std::collections::BTreeSet;

use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::TicketingApi;
use crate::cancellation;
use crate::store::{self, cancellations::ChoiceRow};

/// Categories one policy maps.
const MAX_MAPPED: usize = 100;

fn remedy_of(remedy: Option<&str>) -> pb::CancellationRemedy {
    match remedy {
        Some("REFUND") => pb::CancellationRemedy::Refund,
        Some("CREDIT") => pb::CancellationRemedy::Credit,
        _ => pb::CancellationRemedy::Unspecified,
    }
}

/// `buyer`: the codes are bearer credit, shown to the order's buyer only.
fn to_choice(order_id: Uuid, row: &ChoiceRow, buyer: bool) -> pb::CancellationChoice {
    let settled = row.status == "SETTLED";
    let credited = settled && !row.credit_codes.is_empty();
    pb::CancellationChoice {
        order_id: order_id.to_string(),
        remedy: remedy_of(row.remedy.as_deref()) as i32,
        choose_until: row.choose_until.map(timestamp),
        settled,
        refunded_minor: row.refunded_minor,
        next_festival_id: if credited {
            row.next_festival_id.map(|f| f.to_string()).unwrap_or_default()
        } else {
            String::new()
        },
        credit_codes: if credited && buyer { row.credit_codes.clone() } else { Vec::new() },
    }
}

impl TicketingApi {
    /// How far the refunds of a cancelled festival are.
    pub(super) async fn get_cancellation_progress(
        &self,
        caller: Principal,
        req: pb::GetCancellationProgressRequest,
    ) -> ApiResult<pb::CancellationProgress> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
        let progress = cancellation::progress(&mut tx, festival_id).await?;
        tx.commit().await?;
        progress.ok_or_else(|| ApiError::new(codes::NOT_FOUND).with_message("The festival is not cancelled"))
    }

    pub(super) async fn set_cancellation_policy(
        &self,
        caller: Principal,
        req: pb::SetCancellationPolicyRequest,
    ) -> ApiResult<pb::CancellationPolicy> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let next_festival_id = validate::uuid("next_festival_id", &req.next_festival_id)?;
        if next_festival_id == festival_id {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "next_festival_id", "another festival"));
        }
        caller.require(next_festival_id, Role::Organizer)?;
        if !(1..=90).contains(&req.choice_days) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "choice_days", "1 to 90 days"));
        }
        if req.categories.is_empty() || req.categories.len() > MAX_MAPPED {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "categories", "1 to 100 categories"));
        }
        let mut pairs = Vec::with_capacity(req.categories.len());
        let mut seen = BTreeSet::new();
        for (i, c) in req.categories.iter().enumerate() {
            let from = validate::uuid(&format!("categories[{i}].category_id"), &c.category_id)?;
            let to = validate::uuid(&format!("categories[{i}].next_category_id"), &c.next_category_id)?;
            if !seen.insert(from) {
                return Err(ApiError::field(codes::VALIDATION_FAILED, "categories", "a category is mapped twice"));
            }
            pairs.push((from, to));
        }
        let mut tx = self.pool.begin().await?;
        // The festival's row, locked: a cancellation arriving now waits, and sees the policy.
        store::festivals::lock(&mut tx, festival_id).await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        let next = Self::festival(&mut tx, next_festival_id).await.map_err(|_| {
            ApiError::field(codes::NOT_FOUND, "next_festival_id", "no such festival (or not heard of yet)")
        })?;
        if !crate::domain::status::festival_on_sale(next.status) {
            return Err(ApiError::field(
                codes::FESTIVAL_NOT_ACTIVE,
                "next_festival_id",
                "the next edition must be on sale",
            ));
        }
        let started = store::cancellations::run_started(&mut tx, festival_id).await?;
        if started || festival.status == crate::domain::status::FestivalStatus::Cancelled {
            return Err(ApiError::new(codes::FESTIVAL_NOT_ACTIVE)
                .with_message("The festival is cancelled: its refunds have started"));
        }
        let (from, to): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
        let known_from = store::categories::find_many(&mut tx, festival_id, &from).await?.len();
        let known_to: BTreeSet<Uuid> =
            store::categories::find_many(&mut tx, next_festival_id, &to).await?.into_iter().map(|c| c.id).collect();
        if known_from != from.len() || to.iter().any(|t| !known_to.contains(t)) {
            return Err(ApiError::field(codes::NOT_FOUND, "categories", "a category is not the festival's"));
        }
        let policy = store::cancellations::Policy {
            festival_id,
            next_festival_id,
            choice_days: req.choice_days,
            set_by: caller.user_id,
            set_at: self.clock.now(),
            categories: &from,
            next_categories: &to,
        };
        store::cancellations::set_policy(&mut tx, &policy).await?;
        tx.commit().await?;
        Ok(pb::CancellationPolicy {
            festival_id: festival_id.to_string(),
            next_festival_id: next_festival_id.to_string(),
            categories: req.categories,
            choice_days: req.choice_days,
        })
    }

    pub(super) async fn choose_cancellation_remedy(
        &self,
        caller: Principal,
        req: pb::ChooseCancellationRemedyRequest,
    ) -> ApiResult<pb::CancellationChoice> {
        let order_id = validate::uuid("order_id", &req.order_id)?;
        let remedy = match validate::known_enum::<pb::CancellationRemedy>("remedy", req.remedy, false)? {
            Some(pb::CancellationRemedy::Refund) => "REFUND",
            Some(pb::CancellationRemedy::Credit) => "CREDIT",
            _ => return Err(ApiError::field(codes::REQUIRED_FIELD, "remedy", "REFUND or CREDIT")),
        };
        let mut tx = self.pool.begin().await?;
        let order = store::orders::find(&mut tx, order_id)
            .await?
            .filter(|o| o.buyer_user_id == Some(caller.user_id))
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "order_id", "no such order of yours"))?;
        record_festival(order.festival_id);
        let row = store::cancellations::lock_choice(&mut tx, order_id).await?.ok_or_else(|| {
            ApiError::new(codes::REFUND_NOT_ALLOWED).with_message("The order's festival is not cancelled")
        })?;
        let open = row.status == "WAITING" && row.choose_until.is_some_and(|until| until > self.clock.now());
        if !open {
            return Err(ApiError::new(codes::REFUND_NOT_ALLOWED).with_message("The choice is closed"));
        }
        if remedy == "CREDIT" {
            let next_sells = match row.next_festival_id {
                Some(next) => store::festivals::find(&mut tx, next)
                    .await?
                    .is_some_and(|f| crate::domain::status::festival_on_sale(f.status)),
                None => false,
            };
            if !next_sells {
                return Err(ApiError::new(codes::FESTIVAL_NOT_ACTIVE)
                    .with_message("The next edition no longer sells: only the refund is open"));
            }
            let unmapped = store::cancellations::unmapped_tickets(&mut tx, order_id, row.festival_id).await?;
            if unmapped > 0 {
                return Err(ApiError::field(
                    codes::VALIDATION_FAILED,
                    "remedy",
                    "some of the order's tickets have no equivalent at the next edition",
                ));
            }
        }
        store::cancellations::set_remedy(&mut tx, order_id, remedy).await?;
        let row = store::cancellations::choice(&mut tx, order_id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        tx.commit().await?;
        Ok(to_choice(order_id, &row, true))
    }

    pub(super) async fn get_cancellation_choice(
        &self,
        caller: Principal,
        req: pb::GetCancellationChoiceRequest,
    ) -> ApiResult<pb::CancellationChoice> {
        let order_id = validate::uuid("order_id", &req.order_id)?;
        let mut conn = self.pool.acquire().await?;
        let order = store::orders::find(&mut conn, order_id)
            .await?
            .filter(|o| o.buyer_user_id == Some(caller.user_id) || caller.has(o.festival_id, Role::Organizer))
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(order.festival_id);
        let row = store::cancellations::choice(&mut conn, order_id)
            .await?
            .ok_or_else(|| ApiError::new(codes::NOT_FOUND).with_message("The order's festival is not cancelled"))?;
        Ok(to_choice(order_id, &row, order.buyer_user_id == Some(caller.user_id)))
    }
}
