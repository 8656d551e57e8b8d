//! Face-value resale as holders and organisers see it: the festival's terms, listing a
//! ticket, withdrawing it, and the seller's listings (the offers and the hand-over are
//! `crate::resale`'s).

use festival_platform::auth::{Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::ticketing::v1 as pb;
use uuid::Uuid;

use super::TicketingApi;
use crate::domain::resale::{Fee, terms};
use crate::domain::status::TicketStatus;
use crate::store::{
    self,
    resale::{ListingRow, PolicyRow, ResaleStatus},
};

/// Listings one organiser's list answers with.
const LIST_LIMIT: i64 = 500;

/// The largest fixed fee (a million in major units).
const MAX_FIXED_FEE: i64 = 100_000_000;

fn to_policy(p: &PolicyRow, currency: &str) -> pb::ResalePolicy {
    pb::ResalePolicy {
        festival_id: p.festival_id.to_string(),
        enabled: p.enabled,
        fee_fixed_minor: p.fee_fixed_minor,
        fee_basis_points: p.fee_basis_points,
        currency: currency.to_owned(),
    }
}

fn to_listing(l: &ListingRow) -> pb::ResaleListing {
    pb::ResaleListing {
        id: l.id.to_string(),
        festival_id: l.festival_id.to_string(),
        ticket_id: l.ticket_id.to_string(),
        category_id: l.category_id.to_string(),
        status: match l.status {
            ResaleStatus::Listed => pb::ResaleStatus::Listed,
            ResaleStatus::Offered => pb::ResaleStatus::Offered,
            ResaleStatus::Sold => pb::ResaleStatus::Sold,
            ResaleStatus::Withdrawn => pb::ResaleStatus::Withdrawn,
            ResaleStatus::Ended => pb::ResaleStatus::Ended,
        } as i32,
        price_minor: l.price_minor,
        fee_minor: l.fee_minor,
        payout_minor: l.payout_minor,
        currency: l.currency.clone(),
        create_time: Some(timestamp(l.created_at)),
        offer_expire_time: l.offer_expires_at.map(timestamp),
        sold_time: l.sold_at.map(timestamp),
        end_reason: l.end_reason.clone().unwrap_or_default(),
        seller_user_id: l.seller_user_id.to_string(),
    }
}

fn not_allowed(why: impl Into<String>) -> ApiError {
    ApiError::new(codes::RESALE_NOT_ALLOWED).with_message(why)
}

impl TicketingApi {
    pub(super) async fn set_resale_policy(
        &self,
        caller: Principal,
        req: pb::SetResalePolicyRequest,
    ) -> ApiResult<pb::ResalePolicy> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        if !(0..=MAX_FIXED_FEE).contains(&req.fee_fixed_minor) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "fee_fixed_minor", "0 to 100000000"));
        }
        if !(0..=10_000).contains(&req.fee_basis_points) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "fee_basis_points", "0 to 10000 (100 %)"));
        }
        let mut tx = self.pool.begin().await?;
        let festival = Self::festival(&mut tx, festival_id).await?;
        let policy = PolicyRow {
            festival_id,
            enabled: req.enabled,
            fee_fixed_minor: req.fee_fixed_minor,
            fee_basis_points: req.fee_basis_points,
        };
        store::resale::set_policy(&mut tx, &policy, caller.user_id, self.clock.now()).await?;
        tx.commit().await?;
        Ok(to_policy(&policy, &festival.currency))
    }

    pub(super) async fn get_resale_policy(
        &self,
        _caller: Option<Principal>,
        req: pb::GetResalePolicyRequest,
    ) -> ApiResult<pb::ResalePolicy> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let mut conn = self.pool.acquire().await?;
        let festival = Self::festival(&mut conn, festival_id).await?;
        let policy = store::resale::policy(&mut conn, festival_id)
            .await?
            .ok_or_else(|| ApiError::new(codes::NOT_FOUND).with_message("Resale is not offered at this festival"))?;
        Ok(to_policy(&policy, &festival.currency))
    }

    pub(super) async fn list_ticket_for_resale(
        &self,
        caller: Principal,
        req: pb::ListTicketForResaleRequest,
    ) -> ApiResult<pb::ResaleListing> {
        let ticket_id = validate::uuid("ticket_id", &req.ticket_id)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::ResaleListing>(
            &mut tx,
            "ticketing.ListTicketForResale",
            caller.user_id,
            key,
            &req,
        )
        .await?
        {
            Claim::Replay(listing) => return Ok(listing),
            Claim::Fresh(fresh) => fresh,
        };
        // The order, then the ticket, locked, with a transfer's rules (unused, before the
        // category's cut-off and the festival's start, not an add-on), except that a
        // category need not be transferable: resale is the festival's own channel.
        let ticket = self.transferable_ticket(&mut tx, ticket_id, Some(caller.user_id), true).await?;
        // The payout is a refund of the order that paid for it: only its buyer resells
        // (a ticket received by transfer would pay the giver back).
        let order = store::orders::find(&mut tx, ticket.order_id).await?;
        if order.and_then(|o| o.buyer_user_id) != Some(caller.user_id) {
            return Err(not_allowed(
                "Only a ticket you bought can be resold: its money goes back to whoever paid for it",
            ));
        }
        let policy = store::resale::policy(&mut tx, ticket.festival_id)
            .await?
            .filter(|p| p.enabled)
            .ok_or_else(|| not_allowed("Resale is not offered at this festival"))?;
        if store::tickets::live_children(&mut tx, &[ticket.id]).await?.iter().any(|c| c.status == TicketStatus::Sold) {
            return Err(not_allowed("It has add-ons: ask for their refund first, they are not resold with it"));
        }
        if store::refunds::open_for(&mut tx, ticket.id).await? {
            return Err(not_allowed("A refund of it is requested: withdraw the request first"));
        }
        if store::transfers::pending_of(&mut tx, ticket.id).await? {
            return Err(not_allowed("A transfer of it is pending: cancel it first"));
        }
        let category = store::categories::find(&mut tx, ticket.category_id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ticket {ticket_id} without its category")))?;
        let festival = Self::festival(&mut tx, ticket.festival_id).await?;
        let fee = Fee { fixed_minor: policy.fee_fixed_minor, basis_points: policy.fee_basis_points };
        let money = terms(category.price_minor, ticket.price_minor, fee);
        let listing = ListingRow {
            id: Uuid::now_v7(),
            festival_id: ticket.festival_id,
            ticket_id: ticket.id,
            order_id: ticket.order_id,
            category_id: ticket.category_id,
            seller_user_id: caller.user_id,
            status: ResaleStatus::Listed,
            price_minor: money.price_minor,
            fee_minor: money.fee_minor,
            payout_minor: money.payout_minor,
            currency: festival.currency,
            hold_id: None,
            new_ticket_id: None,
            end_reason: None,
            created_at: self.clock.now(),
            sold_at: None,
            offer_expires_at: None,
        };
        store::resale::insert(&mut tx, &listing).await.on_unique(
            store::resale::LIVE_UNIQUE,
            ApiError::field(codes::ALREADY_EXISTS, "ticket_id", "it is listed for resale already"),
        )?;
        let response = to_listing(&listing);
        fresh.complete(&mut tx, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    pub(super) async fn withdraw_resale_listing(
        &self,
        caller: Principal,
        req: pb::WithdrawResaleListingRequest,
    ) -> ApiResult<pb::ResaleListing> {
        let id = validate::uuid("listing_id", &req.listing_id)?;
        let mut tx = self.pool.begin().await?;
        let listing = store::resale::lock(&mut tx, id)
            .await?
            .filter(|l| l.seller_user_id == caller.user_id)
            .ok_or(ApiError::new(codes::NOT_FOUND))?;
        record_festival(listing.festival_id);
        match listing.status {
            ResaleStatus::Listed => {
                store::resale::end(&mut tx, id, ResaleStatus::Withdrawn, None, self.clock.now()).await?;
            }
            ResaleStatus::Withdrawn => {}
            ResaleStatus::Offered => {
                let until = listing.offer_expires_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                return Err(not_allowed(format!("A buyer has it on offer until {until}: withdraw it after that")));
            }
            ResaleStatus::Sold => return Err(not_allowed("It was sold")),
            ResaleStatus::Ended => return Err(not_allowed("It is no longer listed")),
        }
        let row = store::resale::find(&mut tx, id).await?.ok_or(ApiError::new(codes::NOT_FOUND))?;
        tx.commit().await?;
        Ok(to_listing(&row))
    }

    pub(super) async fn list_my_resale_listings(
        &self,
        caller: Principal,
        req: pb::ListMyResaleListingsRequest,
    ) -> ApiResult<pb::ListMyResaleListingsResponse> {
        let festival = match req.festival_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("festival_id", raw)?),
        };
        let rows = store::resale::of_seller(&mut *self.pool.acquire().await?, caller.user_id, festival).await?;
        Ok(pb::ListMyResaleListingsResponse { listings: rows.iter().map(to_listing).collect() })
    }

    pub(super) async fn list_resale_listings(
        &self,
        caller: Principal,
        req: pb::ListResaleListingsRequest,
    ) -> ApiResult<pb::ListResaleListingsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require(festival_id, Role::Organizer)?;
        let status = match validate::known_enum::<pb::ResaleStatus>("status", req.status, true)? {
            None | Some(pb::ResaleStatus::Unspecified) => None,
            Some(pb::ResaleStatus::Listed) => Some(ResaleStatus::Listed),
            Some(pb::ResaleStatus::Offered) => Some(ResaleStatus::Offered),
            Some(pb::ResaleStatus::Sold) => Some(ResaleStatus::Sold),
            Some(pb::ResaleStatus::Withdrawn) => Some(ResaleStatus::Withdrawn),
            Some(pb::ResaleStatus::Ended) => Some(ResaleStatus::Ended),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
        Self::festival(&mut tx, festival_id).await?;
        let rows = store::resale::of_festival(&mut tx, festival_id, status, LIST_LIMIT).await?;
        let (sold, payout_minor, fee_minor) = store::resale::sold_totals(&mut tx, festival_id).await?;
        tx.commit().await?;
        Ok(pb::ListResaleListingsResponse {
            listings: rows.iter().map(to_listing).collect(),
            sold,
            payout_minor,
            fee_minor,
        })
    }
}
