//! Tickets: the holder's list, what scanners need offline (public keys, revocations),
//! and check-in at the gates.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use festival_platform::auth::Principal;
use festival_platform::convert::timestamp;
use festival_platform::credential::{CredentialError, Kind, Unverified};
use festival_platform::rpc::record_festival;
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::ticketing::v1 as pb;

use super::convert::to_ticket;
use super::{GATE_ROLES, TicketingApi};
use crate::domain::status::{FestivalStatus, TicketStatus, is_revoked};
use crate::events;
use crate::store;

/// Longer than any credential (142 characters): refused before any decoding work.
const MAX_CREDENTIAL: usize = 256;

impl TicketingApi {
    pub(super) async fn list_my_tickets(
        &self,
        caller: Principal,
        req: pb::ListMyTicketsRequest,
    ) -> ApiResult<pb::ListMyTicketsResponse> {
        let festival = match req.festival_id.as_str() {
            "" => None,
            raw => Some(validate::uuid("festival_id", raw)?),
        };
        let mut conn = self.pool.acquire().await?;
        let tickets = store::tickets::of_holder(&mut conn, caller.user_id, festival).await?;
        Ok(pb::ListMyTicketsResponse { tickets: tickets.iter().map(to_ticket).collect() })
    }

    pub(super) async fn get_ticket_keys(&self, req: pb::GetTicketKeysRequest) -> ApiResult<pb::TicketKeys> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        let mut conn = self.pool.acquire().await?;
        Self::festival(&mut conn, festival_id).await?;
        let keys = store::keys::of_festival(&mut conn, festival_id).await?;
        Ok(pb::TicketKeys {
            keys: keys
                .iter()
                .map(|k| pb::TicketKey {
                    kid: k.kid.clone(),
                    public_key: URL_SAFE_NO_PAD.encode(&k.public_key),
                    create_time: Some(timestamp(k.created_at)),
                })
                .collect(),
        })
    }

    pub(super) async fn list_revoked_tickets(
        &self,
        caller: Principal,
        req: pb::ListRevokedTicketsRequest,
    ) -> ApiResult<pb::ListRevokedTicketsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require_any(festival_id, &GATE_ROLES)?;
        let mut conn = self.pool.acquire().await?;
        let ids = store::tickets::revoked_ids(&mut conn, festival_id).await?;
        Ok(pb::ListRevokedTicketsResponse { ticket_ids: ids.iter().map(ToString::to_string).collect() })
    }

    pub(super) async fn redeem(&self, caller: Principal, req: pb::RedeemRequest) -> ApiResult<pb::CheckIn> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        caller.require_any(festival_id, &GATE_ROLES)?;
        let gate = validate::plain_text("gate", validate::required("gate", req.gate.trim(), 64)?, false)?;
        let text = validate::required("credential", &req.credential, MAX_CREDENTIAL)?;
        let forged = || ApiError::field(codes::TICKET_SIGNATURE_INVALID, "credential", "not a valid ticket");
        let credential = Unverified::parse(text).map_err(|_| forged())?;
        // Verified with the keys of the festival it names: a genuine ticket of another
        // festival is told apart from a forged one.
        let keyring =
            self.keys.keyring(credential.claimed_festival(), credential.key_id()).await.map_err(ApiError::internal)?;
        let claims = match keyring.get(credential.key_id()).map(|key| credential.verify(key)) {
            Some(Ok(claims)) if claims.kind == Kind::Ticket => claims,
            Some(
                Ok(_) | Err(CredentialError::BadSignature | CredentialError::Malformed | CredentialError::UnknownKey),
            )
            | None => return Err(forged()),
        };
        if claims.festival != festival_id {
            return Err(ApiError::new(codes::TICKET_WRONG_FESTIVAL));
        }
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        // Nobody is admitted to a cancelled (or deleted) festival.
        if Self::festival(&mut tx, festival_id).await?.status == FestivalStatus::Cancelled {
            return Err(ApiError::new(codes::FESTIVAL_NOT_ACTIVE));
        }
        if let Some(category_id) = store::tickets::admit(&mut tx, claims.subject, festival_id, now, gate).await? {
            events::publish(
                &mut tx,
                &pb::TicketAdmitted {
                    ticket_id: claims.subject.to_string(),
                    festival_id: festival_id.to_string(),
                    category_id: category_id.to_string(),
                    gate: gate.to_owned(),
                    admit_time: Some(timestamp(now)),
                },
            )
            .await?;
            tx.commit().await?;
            return Ok(pb::CheckIn {
                ticket_id: claims.subject.to_string(),
                category_id: category_id.to_string(),
                gate: gate.to_owned(),
                admit_time: Some(timestamp(now)),
            });
        }
        // Not admitted: say why.
        let ticket = store::tickets::find(&mut tx, claims.subject, festival_id).await?.ok_or_else(forged)?;
        Err(match ticket.status {
            TicketStatus::Used => {
                let first = ticket.used_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                let gate = ticket.used_gate.unwrap_or_default();
                ApiError::new(codes::TICKET_ALREADY_USED)
                    .with_message(format!("Already used at {gate}, {first}"))
                    .with_metadata("first_used_time", first)
                    .with_metadata("first_used_gate", gate)
            }
            status if is_revoked(status) => ApiError::new(codes::TICKET_REVOKED),
            _ => ApiError::new(codes::CONCURRENT_UPDATE),
        })
    }
}
