//! The gRPC surface: decode and validate, authorize, call the domain and the store,
//! encode. Every stock move, its order and its event commit together.
//!
//! One module per area ([`catalog`], [`promos`], [`holds`], [`orders`], [`refunds`], [`resale`], [`tickets`], [`transfers`], [`vouchers`], [`waitlist`], [`gates`]); this one holds
//! what they share and the tonic binding, [`convert`] the proto mapping.

mod cancellation;
mod catalog;
mod convert;
mod gates;
mod holds;
mod orders;
mod promos;
mod refunds;
mod resale;
mod tickets;
mod transfers;
mod vouchers;
mod waitlist;

use std::sync::Arc;

use festival_platform::auth::{GateCaller, Principal, Role, Verifier};
use festival_platform::clock::Clock;
use festival_platform::credential::Issuer;
use festival_platform::rpc::Authenticate;
use festival_platform::{ApiError, ApiResult, codes};
use festival_proto::ticketing::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tonic::Request;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::status::festival_on_sale;
use crate::fulfil::{self, TicketLine};
use crate::signing::FestivalKeys;
use crate::store::{self, festivals::FestivalRow, orders::OrderRow, tickets::TicketRow};
use crate::wallet::Wallets;
use festival_platform::payments::PaymentPort;

pub struct TicketingApi {
    pool: PgPool,
    verifier: Verifier,
    keys: Arc<FestivalKeys>,
    config: Arc<Config>,
    clock: Clock,
    /// Live counters open per festival on this replica.
    watchers: festival_platform::live::Watchers,
    /// The wallets passes are offered for.
    wallets: Arc<Wallets>,
    /// Where paid holds are paid (the payments service).
    payments: Arc<dyn PaymentPort>,
}

impl TicketingApi {
    pub fn new(
        pool: PgPool,
        verifier: Verifier,
        keys: Arc<FestivalKeys>,
        config: Arc<Config>,
        clock: Clock,
        wallets: Arc<Wallets>,
        payments: Arc<dyn PaymentPort>,
    ) -> Self {
        Self {
            pool,
            verifier,
            keys,
            config,
            clock,
            watchers: festival_platform::live::Watchers::default(),
            wallets,
            payments,
        }
    }

    /// A festival ticketing knows of (from program's events).
    async fn festival(conn: &mut PgConnection, id: Uuid) -> ApiResult<FestivalRow> {
        store::festivals::find(conn, id).await?.ok_or_else(|| {
            ApiError::new(codes::NOT_FOUND).with_message("No such festival (or ticketing has not heard of it yet)")
        })
    }

    /// The festival's category `category_id` (field `category_id`), refused if it is an
    /// add-on (those go with an admission ticket, `why` says how).
    async fn admission_category(
        conn: &mut PgConnection,
        festival_id: Uuid,
        category_id: Uuid,
        why: &str,
    ) -> ApiResult<store::categories::CategoryRow> {
        let category = store::categories::find_many(conn, festival_id, &[category_id])
            .await?
            .pop()
            .ok_or_else(|| ApiError::field(codes::NOT_FOUND, "category_id", "no such category"))?;
        if category.addon {
            return Err(ApiError::field(codes::ADDON_NEEDS_ADMISSION, "category_id", why));
        }
        Ok(category)
    }

    /// A festival that sells now: published or under way (`ERR_7001` otherwise).
    async fn festival_on_sale(conn: &mut PgConnection, id: Uuid) -> ApiResult<FestivalRow> {
        let festival = Self::festival(conn, id).await?;
        if !festival_on_sale(festival.status) {
            return Err(not_on_sale(festival.status));
        }
        Ok(festival)
    }

    /// The festival's credential issuer, fetched before the command's transaction so the
    /// first sale of a festival never holds quota locks while its key is made.
    async fn issuer(&self, festival_id: Uuid) -> ApiResult<Issuer> {
        if let Some(issuer) = self.keys.cached_issuer(festival_id).await {
            return Ok(issuer); // a known festival: the command checks its status itself
        }
        Self::festival(&mut *self.pool.acquire().await?, festival_id).await?;
        self.keys.issuer(festival_id).await.map_err(kit_error)
    }

    /// Issues tickets (see [`fulfil::issue_tickets`]) at the service's time.
    async fn issue_tickets(
        &self,
        conn: &mut PgConnection,
        issuer: &Issuer,
        order: &OrderRow,
        lines: &[TicketLine],
        holder: Option<Uuid>,
        paid: i64,
    ) -> ApiResult<Vec<TicketRow>> {
        Ok(fulfil::issue_tickets(conn, issuer, self.clock.now(), order, lines, holder, paid).await?)
    }
}

/// `ERR_7001`: a festival that does not sell in its `status`.
fn not_on_sale(status: crate::domain::status::FestivalStatus) -> ApiError {
    ApiError::new(codes::FESTIVAL_NOT_ACTIVE)
        .with_message(format!("The festival is {}: no tickets are sold", status.as_str().to_lowercase()))
}

/// An error of the key store: a database failure keeps its catalogued meaning (busy,
/// unavailable), anything else is internal.
fn kit_error(e: anyhow::Error) -> ApiError {
    match e.downcast::<sqlx::Error>() {
        Ok(db) => ApiError::from(db),
        Err(e) => ApiError::internal(e),
    }
}

/// Roles that scan at the gates.
const GATE_ROLES: [Role; 3] = [Role::Security, Role::Staff, Role::Organizer];

impl Authenticate for TicketingApi {
    async fn caller<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<Principal> {
        self.verifier.authenticate(request).await
    }

    async fn gate_caller<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<GateCaller> {
        self.verifier.authenticate_gate(request).await
    }
}

festival_platform::bind_rpcs! {
    TicketingApi => pb::ticketing_service_server::TicketingService {
        auth create_category(pb::CreateCategoryRequest) -> pb::Category;
        optional list_categories(pb::ListCategoriesRequest) -> pb::ListCategoriesResponse;
        auth create_quota(pb::CreateQuotaRequest) -> pb::Quota;
        auth list_quotas(pb::ListQuotasRequest) -> pb::ListQuotasResponse;
        auth create_promo_code(pb::CreatePromoCodeRequest) -> pb::PromoCode;
        auth generate_promo_codes(pb::GeneratePromoCodesRequest) -> pb::GeneratePromoCodesResponse;
        auth list_promo_codes(pb::ListPromoCodesRequest) -> pb::ListPromoCodesResponse;
        auth create_voucher(pb::CreateVoucherRequest) -> pb::Voucher;
        auth list_vouchers(pb::ListVouchersRequest) -> pb::ListVouchersResponse;
        auth close_voucher(pb::CloseVoucherRequest) -> pb::Voucher;
        optional get_availability(pb::GetAvailabilityRequest) -> pb::Availability;
        auth create_hold(pb::CreateHoldRequest) -> pb::Hold;
        auth get_hold(pb::GetHoldRequest) -> pb::Hold;
        auth extend_hold(pb::ExtendHoldRequest) -> pb::Hold;
        auth release_hold(pb::ReleaseHoldRequest) -> pb::Hold;
        auth_bearer checkout_hold(pb::CheckoutHoldRequest) -> pb::Order;
        auth create_order(pb::CreateOrderRequest) -> pb::Order;
        auth get_order(pb::GetOrderRequest) -> pb::Order;
        auth cancel_order(pb::CancelOrderRequest) -> pb::Order;
        auth request_refund(pb::RequestRefundRequest) -> pb::RefundRequest;
        auth list_refund_requests(pb::ListRefundRequestsRequest) -> pb::ListRefundRequestsResponse;
        auth decide_refund_request(pb::DecideRefundRequestRequest) -> pb::RefundRequest;
        auth withdraw_refund_request(pb::WithdrawRefundRequestRequest) -> pb::RefundRequest;
        auth list_my_tickets(pb::ListMyTicketsRequest) -> pb::ListMyTicketsResponse;
        auth_response get_ticket_document(pb::GetTicketDocumentRequest) -> festival_proto::google::api::HttpBody;
        auth get_google_wallet_link(pb::GetGoogleWalletLinkRequest) -> pb::WalletLink;
        auth_response get_apple_wallet_pass(pb::GetAppleWalletPassRequest) -> festival_proto::google::api::HttpBody;
        public get_ticket_keys(pb::GetTicketKeysRequest) -> pb::TicketKeys;
        auth join_waiting_list(pb::JoinWaitingListRequest) -> pb::WaitingListEntry;
        auth list_my_waiting_list(pb::ListMyWaitingListRequest) -> pb::ListMyWaitingListResponse;
        auth leave_waiting_list(pb::LeaveWaitingListRequest) -> pb::WaitingListEntry;
        auth transfer_ticket(pb::TransferTicketRequest) -> pb::TicketTransfer;
        auth claim_ticket_transfer(pb::ClaimTicketTransferRequest) -> pb::Ticket;
        auth cancel_ticket_transfer(pb::CancelTicketTransferRequest) -> pb::TicketTransfer;
        gate list_revoked_tickets(pb::ListRevokedTicketsRequest) -> pb::ListRevokedTicketsResponse;
        gate redeem(pb::RedeemRequest) -> pb::CheckIn;
        auth create_check_in_list(pb::CreateCheckInListRequest) -> pb::CheckInList;
        gate list_check_in_lists(pb::ListCheckInListsRequest) -> pb::ListCheckInListsResponse;
        gate get_scanner_snapshot(pb::GetScannerSnapshotRequest) -> pb::ScannerSnapshot;
        gate upload_scans(pb::UploadScansRequest) -> pb::UploadScansResponse;
        auth get_check_in_stats(pb::GetCheckInStatsRequest) -> pb::CheckInStats;
        auth get_sales_report(pb::GetSalesReportRequest) -> pb::SalesReport;
        auth get_cancellation_progress(pb::GetCancellationProgressRequest) -> pb::CancellationProgress;
        auth set_cancellation_policy(pb::SetCancellationPolicyRequest) -> pb::CancellationPolicy;
        auth choose_cancellation_remedy(pb::ChooseCancellationRemedyRequest) -> pb::CancellationChoice;
        auth get_cancellation_choice(pb::GetCancellationChoiceRequest) -> pb::CancellationChoice;
        auth set_resale_policy(pb::SetResalePolicyRequest) -> pb::ResalePolicy;
        optional get_resale_policy(pb::GetResalePolicyRequest) -> pb::ResalePolicy;
        auth list_ticket_for_resale(pb::ListTicketForResaleRequest) -> pb::ResaleListing;
        auth withdraw_resale_listing(pb::WithdrawResaleListingRequest) -> pb::ResaleListing;
        auth list_my_resale_listings(pb::ListMyResaleListingsRequest) -> pb::ListMyResaleListingsResponse;
        auth list_resale_listings(pb::ListResaleListingsRequest) -> pb::ListResaleListingsResponse;
    } streams {
        auth watch_check_ins(pb::WatchCheckInsRequest) -> pb::CheckInStats as WatchCheckInsStream;
    }
}
