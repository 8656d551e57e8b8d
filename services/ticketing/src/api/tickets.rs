//! Tickets: the holder's list, printable and on-screen documents, and what scanners need
//! offline (public keys, revocations); the gates themselves are in [`gates`](super::gates).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use festival_platform::auth::{GateCaller, Principal, Role};
use festival_platform::convert::timestamp;
use festival_platform::rpc::{cacheable, record_festival};
use festival_platform::{ApiError, ApiResult, codes, validate};
use festival_proto::google::api::HttpBody;
use festival_proto::ticketing::v1 as pb;
use sqlx::PgConnection;
use tonic::Response;
use uuid::Uuid;

use super::TicketingApi;
use super::convert::to_ticket;
use crate::document;
use crate::domain::status::is_revoked;
use crate::store;
use crate::store::categories::CategoryRow;
use crate::store::festivals::FestivalRow;
use crate::store::tickets::TicketRow;
use crate::wallet;

/// A festival's public key as scanners download it.
pub(super) fn to_key(k: &store::keys::KeyRow) -> pb::TicketKey {
    pb::TicketKey {
        kid: k.kid.clone(),
        public_key: URL_SAFE_NO_PAD.encode(&k.public_key),
        create_time: Some(timestamp(k.created_at)),
    }
}

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
        Ok(pb::TicketKeys { keys: keys.iter().map(to_key).collect() })
    }

    pub(super) async fn list_revoked_tickets(
        &self,
        caller: GateCaller,
        req: pb::ListRevokedTicketsRequest,
    ) -> ApiResult<pb::ListRevokedTicketsResponse> {
        let festival_id = validate::uuid("festival_id", &req.festival_id)?;
        record_festival(festival_id);
        self.admit_gate_caller(&caller, festival_id).await?;
        let mut conn = self.pool.acquire().await?;
        let ids = store::tickets::revoked_ids(&mut conn, festival_id).await?;
        Ok(pb::ListRevokedTicketsResponse { ticket_ids: ids.iter().map(ToString::to_string).collect() })
    }

    pub(super) async fn get_ticket_document(
        &self,
        caller: Principal,
        req: pb::GetTicketDocumentRequest,
    ) -> ApiResult<Response<HttpBody>> {
        let ticket_id = validate::uuid("ticket_id", &req.ticket_id)?;
        let format = validate::known_enum::<pb::TicketDocumentFormat>("format", req.format, true)?
            .unwrap_or(pb::TicketDocumentFormat::Pdf);
        let mut conn = self.pool.acquire().await?;
        let ticket = Self::readable_ticket(&mut conn, &caller, ticket_id).await?;
        let matrix =
            document::Matrix::of(&ticket.credential).map_err(|e| ApiError::internal(anyhow::anyhow!("{e:?}")))?;
        let (content_type, data, extension) = match format {
            pb::TicketDocumentFormat::Svg => ("image/svg+xml", document::svg(&matrix).into_bytes(), "svg"),
            pb::TicketDocumentFormat::Png => ("image/png", document::png(&matrix).map_err(ApiError::internal)?, "png"),
            pb::TicketDocumentFormat::Pdf | pb::TicketDocumentFormat::Unspecified => {
                let festival = Self::festival(&mut conn, ticket.festival_id).await?;
                let category = store::categories::find(&mut conn, ticket.category_id)
                    .await?
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ticket {ticket_id} without its category")))?;
                let validity = if category.valid_days.is_empty() {
                    "Valid every day of the festival".to_owned()
                } else {
                    let days: Vec<String> =
                        category.valid_days.iter().map(|d| d.format("%Y-%m-%d").to_string()).collect();
                    format!("Valid on {}", days.join(", "))
                };
                let ticket_text = ticket_id.to_string();
                let printed = document::Printed {
                    festival: &festival.name,
                    category: &category.name,
                    ticket_id: &ticket_text,
                    validity: &validity,
                };
                ("application/pdf", document::pdf(&printed, &matrix), "pdf")
            }
        };
        let body = HttpBody { content_type: content_type.into(), data, extensions: Vec::new() };
        // Private: a ticket is its holder's; the credential does not change, so its id tags it.
        Ok(cacheable(
            body,
            &format!("{ticket_id}-{extension}"),
            false,
            Some(&format!("ticket-{ticket_id}.{extension}")),
        ))
    }

    pub(super) async fn get_google_wallet_link(
        &self,
        caller: Principal,
        req: pb::GetGoogleWalletLinkRequest,
    ) -> ApiResult<pb::WalletLink> {
        let ticket_id = validate::uuid("ticket_id", &req.ticket_id)?;
        let mut conn = self.pool.acquire().await?;
        let ticket = Self::readable_ticket(&mut conn, &caller, ticket_id).await?;
        let wallet = self.wallets.google.as_ref().ok_or(ApiError::new(codes::WALLET_NOT_CONFIGURED))?;
        let (festival, category) = Self::pass_facts(&mut conn, &ticket).await?;
        let url =
            wallet.save_url(&pass_of(&ticket, &festival, &category), self.clock.now()).map_err(ApiError::internal)?;
        Ok(pb::WalletLink { url })
    }

    pub(super) async fn get_apple_wallet_pass(
        &self,
        caller: Principal,
        req: pb::GetAppleWalletPassRequest,
    ) -> ApiResult<Response<HttpBody>> {
        let ticket_id = validate::uuid("ticket_id", &req.ticket_id)?;
        let mut conn = self.pool.acquire().await?;
        let ticket = Self::readable_ticket(&mut conn, &caller, ticket_id).await?;
        let wallet = self.wallets.apple.as_ref().ok_or(ApiError::new(codes::WALLET_NOT_CONFIGURED))?;
        let (festival, category) = Self::pass_facts(&mut conn, &ticket).await?;
        let data = wallet
            .pkpass(&pass_of(&ticket, &festival, &category))
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
        let body = HttpBody { content_type: "application/vnd.apple.pkpass".into(), data, extensions: Vec::new() };
        Ok(cacheable(body, &format!("{ticket_id}-pkpass"), false, Some(&format!("ticket-{ticket_id}.pkpass"))))
    }

    /// What a pass shows beside the ticket: its festival and category.
    async fn pass_facts(conn: &mut PgConnection, ticket: &TicketRow) -> ApiResult<(FestivalRow, CategoryRow)> {
        let festival = Self::festival(conn, ticket.festival_id).await?;
        let category = store::categories::find(conn, ticket.category_id)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ticket {} without its category", ticket.id)))?;
        Ok((festival, category))
    }

    /// A live ticket the caller may show or print: its holder's, or any of the festival's
    /// for its organisers and cashiers (the box office prints anonymous tickets). Anyone
    /// else's is "not found".
    async fn readable_ticket(conn: &mut PgConnection, caller: &Principal, ticket_id: Uuid) -> ApiResult<TicketRow> {
        let not_found = || ApiError::field(codes::NOT_FOUND, "ticket_id", "no such ticket of yours");
        let ticket = store::tickets::find_by_id(conn, ticket_id).await?.ok_or_else(not_found)?;
        record_festival(ticket.festival_id);
        let staff = caller.require_any(ticket.festival_id, &[Role::Organizer, Role::Cashier]).is_ok();
        if ticket.holder_user_id != Some(caller.user_id) && !staff {
            return Err(not_found());
        }
        if is_revoked(ticket.status) {
            return Err(ApiError::new(codes::TICKET_REVOKED).with_message(if ticket.replaced_by.is_some() {
                "This ticket was transferred"
            } else {
                "This ticket was cancelled"
            }));
        }
        Ok(ticket)
    }
}

fn pass_of<'a>(ticket: &'a TicketRow, festival: &'a FestivalRow, category: &'a CategoryRow) -> wallet::Pass<'a> {
    wallet::Pass {
        festival_id: festival.id,
        festival: &festival.name,
        category: &category.name,
        ticket_id: ticket.id,
        credential: &ticket.credential,
        starts: festival.start_time,
        ends: festival.end_time,
    }
}
