//! Transfers: a holder gives an unused ticket to another account, at once or through a
//! claim code; the old credential is revoked and the new holder gets a new one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::idempotency::{self, Claim};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, ResultExt, codes, validate};
use festival_proto::ticketing::v1 as pb;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::convert::to_ticket;
use super::{TicketLine, TicketingApi};
use crate::domain::status::{FestivalStatus, OrderStatus, TicketStatus, gates_may_be_open};
use crate::domain::transfer;
use crate::events;
use crate::store::{self, tickets::TicketRow, transfers::TransferRow, transfers::TransferStatus};

/// Transfers one account may send per festival.
const MAX_TRANSFERS_SENT: i64 = 10;

/// 24 random bytes: 32 base64url characters.
fn new_claim_code() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}

/// Only the hash of a claim code is stored (192 random bits: no stretching needed).
fn claim_hash(code: &str) -> Vec<u8> {
    Sha256::digest(code.as_bytes()).to_vec()
}

fn to_transfer(t: &TransferRow, claim_code: Option<String>) -> pb::TicketTransfer {
    pb::TicketTransfer {
        id: t.id.to_string(),
        festival_id: t.festival_id.to_string(),
        ticket_id: t.ticket_id.to_string(),
        status: match t.status {
            TransferStatus::Pending => pb::TransferStatus::Pending,
            TransferStatus::Completed => pb::TransferStatus::Completed,
            TransferStatus::Cancelled => pb::TransferStatus::Cancelled,
        } as i32,
        to_user_id: t.to_user_id.map(|u| u.to_string()).unwrap_or_default(),
        claim_code: claim_code.unwrap_or_default(),
        create_time: Some(timestamp(t.created_at)),
        complete_time: t.completed_at.map(timestamp),
    }
}

impl TicketingApi {
    pub(super) async fn transfer_ticket(
        &self,
        caller: Principal,
        req: pb::TransferTicketRequest,
    ) -> ApiResult<pb::TicketTransfer> {
        let ticket_id = validate::uuid("ticket_id", &req.ticket_id)?;
        let to_user = match req.to_user_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("to_user_id", raw)?),
        };
        if to_user == Some(caller.user_id) {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "to_user_id", "you hold it already"));
        }
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh = match idempotency::claim::<pb::TicketTransfer>(
            &mut tx,
            "ticketing.TransferTicket",
            caller.user_id,
            key,
            &req,
        )
        .await?
        {
            Claim::Replay(transfer) => return Ok(transfer),
            Claim::Fresh(fresh) => fresh,
        };
        let ticket = self.transferable_ticket(&mut tx, ticket_id, Some(caller.user_id), false).await?;
        // Each transfer adds a revoked ticket every scanner downloads: an account sends
        // a bounded number per festival.
        if store::transfers::sent_by(&mut tx, ticket.festival_id, caller.user_id).await? >= MAX_TRANSFERS_SENT {
            return Err(ApiError::new(codes::LIMIT_REACHED)
                .with_message(format!("An account transfers at most {MAX_TRANSFERS_SENT} tickets per festival")));
        }
        if store::refunds::open_for(&mut tx, ticket.id).await? {
            return Err(ApiError::new(codes::TRANSFER_NOT_ALLOWED)
                .with_message("A refund of it is requested: withdraw the request first"));
        }
        if store::resale::live_of_ticket(&mut tx, ticket.id).await? {
            return Err(ApiError::new(codes::TRANSFER_NOT_ALLOWED)
                .with_message("It is listed for resale: withdraw the listing first"));
        }
        if store::transfers::pending_of(&mut tx, ticket.id).await? {
            return Err(ApiError::field(
                codes::ALREADY_EXISTS,
                "ticket_id",
                "a transfer of it is pending; cancel it first",
            ));
        }
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let (row, code) = match to_user {
            Some(to) => {
                let new_ticket = self.hand_over(&mut tx, &ticket, caller.user_id, to).await?;
                let row = store::transfers::insert(
                    &mut tx,
                    id,
                    ticket.festival_id,
                    ticket.id,
                    caller.user_id,
                    Some(to),
                    None,
                    Some(new_ticket.id),
                    now,
                )
                .await?;
                (row, None)
            }
            None => {
                let code = new_claim_code();
                let row = store::transfers::insert(
                    &mut tx,
                    id,
                    ticket.festival_id,
                    ticket.id,
                    caller.user_id,
                    None,
                    Some(&claim_hash(&code)),
                    None,
                    now,
                )
                .await
                .on_unique(
                    store::transfers::PENDING_UNIQUE,
                    ApiError::field(codes::ALREADY_EXISTS, "ticket_id", "a transfer of it is pending; cancel it first"),
                )?;
                (row, Some(code))
            }
        };
        // The claim code is kept only as its hash: a retry answers without it (withdraw
        // the transfer and open another to get a new one).
        fresh.complete(&mut tx, &to_transfer(&row, None)).await?;
        tx.commit().await?;
        Ok(to_transfer(&row, code))
    }

    pub(super) async fn claim_ticket_transfer(
        &self,
        caller: Principal,
        req: pb::ClaimTicketTransferRequest,
    ) -> ApiResult<pb::Ticket> {
        let code = validate::secret("claim_code", &req.claim_code, 64)?;
        let key = idempotency::key("idempotency_key", &req.idempotency_key)?;
        let mut tx = self.pool.begin().await?;
        let fresh =
            match idempotency::claim::<pb::Ticket>(&mut tx, "ticketing.ClaimTicketTransfer", caller.user_id, key, &req)
                .await?
            {
                Claim::Replay(ticket) => return Ok(ticket),
                Claim::Fresh(fresh) => fresh,
            };
        let unknown = || ApiError::field(codes::NOT_FOUND, "claim_code", "no such open transfer");
        let transfer = store::transfers::lock_pending_by_code(&mut tx, &claim_hash(code)).await?.ok_or_else(unknown)?;
        record_festival(transfer.festival_id);
        if transfer.from_user_id == caller.user_id {
            return Err(ApiError::field(codes::VALIDATION_FAILED, "claim_code", "you hold it already"));
        }
        let ticket = self.transferable_ticket(&mut tx, transfer.ticket_id, Some(transfer.from_user_id), false).await?;
        let new_ticket = self.hand_over(&mut tx, &ticket, transfer.from_user_id, caller.user_id).await?;
        store::transfers::complete(&mut tx, transfer.id, caller.user_id, new_ticket.id, self.clock.now()).await?;
        let response = to_ticket(&new_ticket);
        fresh.complete(&mut tx, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    pub(super) async fn cancel_ticket_transfer(
        &self,
        caller: Principal,
        req: pb::CancelTicketTransferRequest,
    ) -> ApiResult<pb::TicketTransfer> {
        let id = validate::uuid("transfer_id", &req.transfer_id)?;
        let mut tx = self.pool.begin().await?;
        let transfer = store::transfers::lock(&mut tx, id)
            .await?
            .filter(|t| t.from_user_id == caller.user_id)
            .ok_or_else(|| ApiError::new(codes::NOT_FOUND))?;
        record_festival(transfer.festival_id);
        let row = match transfer.status {
            TransferStatus::Pending => store::transfers::cancel(&mut tx, id, self.clock.now()).await?,
            TransferStatus::Cancelled => transfer,
            TransferStatus::Completed => {
                return Err(ApiError::new(codes::TRANSFER_NOT_ALLOWED).with_message("The transfer is already complete"));
            }
        };
        tx.commit().await?;
        Ok(to_transfer(&row, None))
    }

    /// The ticket, locked, if `holder` holds it and it may change hands now. Anyone
    /// else's ticket is "not found". `resale`: through the festival's own resale, which
    /// also moves tickets of categories that are not transferable (their cut-off holds).
    ///
    /// Locks in the order a cancellation does (the order, then its tickets), and requires
    /// the order still paid: a transfer racing a cancellation either finishes first (and
    /// the cancellation revokes the new ticket) or finds the order cancelled.
    pub(super) async fn transferable_ticket(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        holder: Option<Uuid>,
        resale: bool,
    ) -> ApiResult<TicketRow> {
        let not_yours = || ApiError::field(codes::NOT_FOUND, "ticket_id", "no such ticket of yours");
        let seen = store::tickets::find_by_id(conn, id)
            .await?
            .filter(|t| t.holder_user_id.is_some() && t.holder_user_id == holder)
            .ok_or_else(not_yours)?;
        let order = store::orders::lock(conn, seen.order_id).await?.ok_or_else(not_yours)?;
        if order.status != OrderStatus::Paid {
            return Err(ApiError::new(codes::TRANSFER_NOT_ALLOWED).with_message("The order was cancelled"));
        }
        let ticket = store::tickets::lock(conn, id)
            .await?
            .filter(|t| t.holder_user_id.is_some() && t.holder_user_id == holder)
            .ok_or_else(not_yours)?;
        record_festival(ticket.festival_id);
        let festival = Self::festival(conn, ticket.festival_id).await?;
        if festival.status == FestivalStatus::Cancelled {
            return Err(ApiError::new(codes::FESTIVAL_NOT_ACTIVE));
        }
        // Offline scanners may hold the old credential in a snapshot taken before: once
        // the gates may be open, a ticket no longer changes hands.
        if gates_may_be_open(festival.status, festival.start_time, self.clock.now()) {
            return Err(ApiError::new(codes::TRANSFER_NOT_ALLOWED)
                .with_message("Tickets do not change hands once the festival has started"));
        }
        let category = store::categories::find_many(conn, ticket.festival_id, &[ticket.category_id])
            .await?
            .pop()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ticket {id} without its category")))?;
        if category.addon {
            return Err(ApiError::new(codes::TRANSFER_NOT_ALLOWED)
                .with_message("An add-on follows its admission ticket: transfer that one"));
        }
        transfer::may_transfer(
            ticket.status,
            category.transferable || resale,
            category.transfer_cutoff,
            self.clock.now(),
        )
        .map_err(|refusal| ApiError::new(codes::TRANSFER_NOT_ALLOWED).with_message(refusal.message()))?;
        Ok(ticket)
    }

    /// Revokes `ticket` (replaced) and issues its successor to `to`, within the
    /// category's per-account limit; the quotas do not move.
    async fn hand_over(
        &self,
        conn: &mut PgConnection,
        ticket: &TicketRow,
        from: Uuid,
        to: Uuid,
    ) -> ApiResult<TicketRow> {
        let category = store::categories::find_many(conn, ticket.festival_id, &[ticket.category_id])
            .await?
            .pop()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ticket {} without its category", ticket.id)))?;
        if !store::categories::account_may_take(conn, &category, to, 1).await? {
            return Err(ApiError::new(codes::PURCHASE_LIMIT_EXCEEDED)
                .with_message(format!("The recipient may hold at most {} of these", category.max_per_account)));
        }
        let issuer = self.keys.issuer(ticket.festival_id).await.map_err(super::kit_error)?;
        let order = store::orders::find(conn, ticket.order_id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ticket {} without its order", ticket.id)))?;
        let mut issued = self
            .issue_tickets(conn, &issuer, &order, &[TicketLine::again(ticket)], Some(to), ticket.price_minor)
            .await?;
        let new_ticket = issued.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("no ticket issued")))?;
        if !store::tickets::replace(conn, ticket.id, new_ticket.id, true).await? {
            return Err(ApiError::new(codes::CONCURRENT_UPDATE));
        }
        // Its unused add-ons follow it: each re-issued to the new holder, attached to the
        // new ticket (a used one, the car already parked, stays in the old holder's history).
        let children = store::tickets::live_children(conn, &[ticket.id]).await?;
        for child in children.into_iter().filter(|c| c.status == TicketStatus::Sold) {
            let child_order = store::orders::find(conn, child.order_id)
                .await?
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ticket {} without its order", child.id)))?;
            let line = [TicketLine::again(&child)];
            let mut moved = self.issue_tickets(conn, &issuer, &child_order, &line, Some(to), child.price_minor).await?;
            let moved = moved.pop().ok_or_else(|| ApiError::internal(anyhow::anyhow!("no add-on issued")))?;
            if !store::tickets::replace(conn, child.id, moved.id, true).await? {
                return Err(ApiError::new(codes::CONCURRENT_UPDATE));
            }
            store::tickets::attach(conn, &[(moved.id, new_ticket.id)]).await?;
        }
        events::publish(
            conn,
            &pb::TicketTransferred {
                festival_id: ticket.festival_id.to_string(),
                old_ticket_id: ticket.id.to_string(),
                new_ticket_id: new_ticket.id.to_string(),
                from_user_id: from.to_string(),
                to_user_id: to.to_string(),
                resale_listing_id: String::new(),
            },
        )
        .await?;
        Ok(new_ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_codes_are_32_url_safe_characters_stored_as_their_hash() {
        let code = new_claim_code();
        assert_eq!(code.len(), 32);
        assert!(code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(new_claim_code(), code);
        assert_eq!(claim_hash(&code).len(), 32);
        assert_ne!(claim_hash(&code), code.as_bytes());
    }
}
