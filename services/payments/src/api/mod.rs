//! The gRPC surface: decode and validate, authorize, call the provider and the store,
//! encode. One module per area ([`checkout`], [`refunds`], [`reconcile`], [`vendors`],
//! [`webhooks`]); [`convert`]
//! maps protos.

mod checkout;
mod convert;
mod reconcile;
mod refunds;
mod vendors;
mod webhooks;

use std::sync::Arc;

use festival_platform::auth::{Principal, Role, Verifier};
use festival_platform::clock::Clock;
use festival_platform::rpc::Authenticate;
use festival_platform::{ApiError, ApiResult, codes};
use festival_proto::payments::v1 as pb;
use sqlx::PgPool;
use tonic::Request;

use crate::config::Config;
use crate::provider::{PaymentProvider, ProviderError};
use crate::store::payments::PaymentRow;

pub struct PaymentsApi {
    pool: PgPool,
    verifier: Verifier,
    provider: Arc<dyn PaymentProvider>,
    /// The provider for reports (its own breaker), one report at a time per replica.
    reports: Arc<dyn PaymentProvider>,
    report_slot: Arc<tokio::sync::Semaphore>,
    config: Arc<Config>,
    clock: Clock,
    webhook_secrets: Arc<Vec<String>>,
}

impl PaymentsApi {
    pub fn new(
        pool: PgPool,
        verifier: Verifier,
        provider: Arc<dyn PaymentProvider>,
        reports: Arc<dyn PaymentProvider>,
        config: Arc<Config>,
        clock: Clock,
    ) -> Self {
        let webhook_secrets = Arc::new(config.stripe.webhook_secrets());
        let report_slot = Arc::new(tokio::sync::Semaphore::new(1));
        Self { pool, verifier, provider, reports, report_slot, config, clock, webhook_secrets }
    }

    /// The payer, an organiser of its festival, or an admin may read a payment; anyone
    /// else is told it does not exist.
    fn may_read(caller: &Principal, payment: &PaymentRow) -> ApiResult<()> {
        if payment.payer_user_id == caller.user_id || caller.has(payment.festival_id, Role::Organizer) {
            Ok(())
        } else {
            Err(ApiError::new(codes::NOT_FOUND))
        }
    }
}

/// A provider failure as the caller sees it: an outage is ERR_5002 (retry later), a
/// refusal ERR_5001; the provider's words go to the log, not to the client.
fn provider_error(e: ProviderError) -> ApiError {
    tracing::warn!(error = %e, "payment provider call failed");
    match e {
        ProviderError::Unavailable(_) => ApiError::new(codes::PAYMENT_PROVIDER_UNAVAILABLE)
            .with_message("The payment provider is not answering; nothing was charged, try again in a moment"),
        ProviderError::Refused(_) | ProviderError::TransferNotReversible(_) => {
            ApiError::new(codes::PAYMENT_FAILED).with_message("The payment provider refused the request")
        }
    }
}

/// An id derived from an operation, the caller and its idempotency key (UUID version 8):
/// a retry whose first attempt reached the provider but not our database names the same
/// object, so the provider (keyed by it) answers the same one.
fn derived_id(scope: &[u8], caller: uuid::Uuid, key: &str) -> uuid::Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(scope)
        .chain_update(b"\0")
        .chain_update(caller.as_bytes())
        .chain_update(key.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes)
}

impl Authenticate for PaymentsApi {
    async fn caller<T: Send + Sync>(&self, request: &Request<T>) -> ApiResult<Principal> {
        self.verifier.authenticate(request).await
    }
}

festival_platform::bind_rpcs! {
    PaymentsApi => pb::payments_service_server::PaymentsService {
        auth create_checkout(pb::CreateCheckoutRequest) -> pb::Payment;
        auth get_payment(pb::GetPaymentRequest) -> pb::Payment;
        auth list_payments(pb::ListPaymentsRequest) -> pb::ListPaymentsResponse;
        auth refund_payment(pb::RefundPaymentRequest) -> pb::Refund;
        auth list_refunds(pb::ListRefundsRequest) -> pb::ListRefundsResponse;
        auth get_reconciliation_report(pb::GetReconciliationReportRequest) -> pb::ReconciliationReport;
        auth create_vendor_account(pb::CreateVendorAccountRequest) -> pb::VendorAccount;
        auth get_vendor_account(pb::GetVendorAccountRequest) -> pb::VendorAccount;
        auth create_vendor_onboarding_link(pb::CreateVendorOnboardingLinkRequest) -> pb::VendorOnboardingLink;
        auth get_vendor_report(pb::GetVendorReportRequest) -> pb::VendorReport;
        auth settle_vendor_debt(pb::SettleVendorDebtRequest) -> pb::VendorDebt;
        public_metadata receive_stripe_webhook(festival_proto::google::api::HttpBody) -> pb::WebhookReceipt;
    }
}
