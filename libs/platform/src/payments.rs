//! The payment port: opening a checkout at the payments service on the payer's behalf
//! (their token goes with the call; payments records them as the payer), for whatever a
//! service sells online (ticketing's paid holds, cashless's wallet top-ups). The answer
//! comes back later as payments' `payment.completed` or `payment.failed` events, which
//! the owning service compares with what is owed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{CommonConfig, ConfigError};
use crate::{ApiError, codes};
use festival_proto::payments::v1 as pay;
use festival_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint};

/// What a selling service asks of payments.
pub trait PaymentPort: Send + Sync + 'static {
    fn create_checkout<'a>(
        &'a self,
        bearer: &'a str,
        request: pay::CreateCheckoutRequest,
    ) -> BoxFuture<'a, Result<pay::Payment, ApiError>>;

    /// Refunds (part of) a completed payment, as the organiser whose token goes with the
    /// call; payments' own idempotency key makes a retry answer the same refund.
    fn refund_payment<'a>(
        &'a self,
        bearer: &'a str,
        request: pay::RefundPaymentRequest,
    ) -> BoxFuture<'a, Result<pay::Refund, ApiError>>;

    /// A payment's refunds and their states, as its festival's organiser reads them.
    fn list_refunds<'a>(
        &'a self,
        bearer: &'a str,
        request: pay::ListRefundsRequest,
    ) -> BoxFuture<'a, Result<pay::ListRefundsResponse, ApiError>>;
}

/// Where a selling service finds payments and sends its payers back (`…__PAYMENTS__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentsConfig {
    /// The payments service's gRPC URL.
    pub url: String,
    /// Where the payer lands after paying, and after giving up (the shop's pages); the
    /// service names the placeholder it fills in (`{ORDER_ID}`, `{WALLET_ID}`).
    pub success_url: String,
    pub cancel_url: String,
    /// How long opening a checkout may take, in milliseconds.
    pub timeout_ms: u64,
}

impl PaymentsConfig {
    /// Payments on this machine's default port, the payer sent back to `page`.
    pub fn local(page: &str) -> Self {
        Self {
            url: "http://127.0.0.1:50054".into(),
            success_url: format!("http://localhost:3000/{page}"),
            cancel_url: format!("http://localhost:3000/{page}?cancelled=1"),
            timeout_ms: 5_000,
        }
    }

    /// Absolute https return pages (http outside production) and a sane deadline.
    pub fn validate(&self, common: &CommonConfig) -> Result<(), ConfigError> {
        for (key, url) in [("payments.success_url", &self.success_url), ("payments.cancel_url", &self.cancel_url)] {
            let secure = url.starts_with("https://") || (!common.is_production() && url.starts_with("http://"));
            if !secure || url.chars().any(char::is_whitespace) {
                return Err(ConfigError::Invalid {
                    key: common.env_var(key),
                    reason: "must be an absolute https URL (http outside production)".into(),
                });
            }
        }
        if !(100..=30_000).contains(&self.timeout_ms) {
            return Err(ConfigError::Invalid {
                key: common.env_var("payments.timeout_ms"),
                reason: "must be between 100 and 30000".into(),
            });
        }
        Ok(())
    }
}

/// The payments service over gRPC.
pub struct GrpcPayments {
    client: PaymentsServiceClient<Channel>,
    deadline: Duration,
}

impl GrpcPayments {
    /// A client of payments at `url`, connecting on first use (a service starts whether
    /// or not payments is up; a checkout then answers ERR_5002).
    pub fn new(url: &str, deadline: Duration) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(url.to_owned())?.connect_timeout(Duration::from_secs(2)).connect_lazy();
        Ok(Self { client: PaymentsServiceClient::new(channel), deadline })
    }

    pub fn from_config(config: &PaymentsConfig) -> anyhow::Result<Self> {
        Self::new(&config.url, Duration::from_millis(config.timeout_ms))
    }
}

impl GrpcPayments {
    /// `request` with the deadline, the caller's token and the trace context.
    fn on_behalf<T>(&self, bearer: &str, message: T) -> Result<tonic::Request<T>, ApiError> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.deadline);
        let header = format!("Bearer {bearer}").parse().map_err(|_| ApiError::new(codes::UNAUTHENTICATED))?;
        request.metadata_mut().insert("authorization", header);
        crate::telemetry::inject_trace_context(request.metadata_mut());
        Ok(request)
    }
}

impl PaymentPort for GrpcPayments {
    fn create_checkout<'a>(
        &'a self,
        bearer: &'a str,
        request: pay::CreateCheckoutRequest,
    ) -> BoxFuture<'a, Result<pay::Payment, ApiError>> {
        Box::pin(async move {
            let request = self.on_behalf(bearer, request)?;
            match self.client.clone().create_checkout(request).await {
                Ok(response) => Ok(response.into_inner()),
                Err(status) => Err(payments_error(&status, "open a checkout")),
            }
        })
    }

    fn refund_payment<'a>(
        &'a self,
        bearer: &'a str,
        request: pay::RefundPaymentRequest,
    ) -> BoxFuture<'a, Result<pay::Refund, ApiError>> {
        Box::pin(async move {
            let request = self.on_behalf(bearer, request)?;
            match self.client.clone().refund_payment(request).await {
                Ok(response) => Ok(response.into_inner()),
                Err(status) => Err(payments_error(&status, "refund a payment")),
            }
        })
    }

    fn list_refunds<'a>(
        &'a self,
        bearer: &'a str,
        request: pay::ListRefundsRequest,
    ) -> BoxFuture<'a, Result<pay::ListRefundsResponse, ApiError>> {
        Box::pin(async move {
            let request = self.on_behalf(bearer, request)?;
            match self.client.clone().list_refunds(request).await {
                Ok(response) => Ok(response.into_inner()),
                Err(status) => Err(payments_error(&status, "list a payment's refunds")),
            }
        })
    }
}

/// What the caller is told when payments could not do `what`: payments (or the
/// provider behind it) unavailable is ERR_5002; a refusal in payments' own range (a
/// refused charge, an amount or currency the provider will not take) is passed on;
/// anything else is our own mistake and logged.
fn payments_error(status: &tonic::Status, what: &str) -> ApiError {
    let reason = crate::error::reason(status);
    let catalogued = reason.as_deref().and_then(|r| codes::ALL.iter().find(|c| c.code == r));
    match (catalogued, status.code()) {
        (Some(code), _) if code.code == codes::PAYMENT_PROVIDER_UNAVAILABLE.code => unavailable(status, what),
        // Payments' own codes (ERR_5xxx) speak to the buyer; a validation error (ERR_1xxx)
        // would be the calling service's mistake, not theirs.
        (Some(code), _) if code.code.starts_with("ERR_5") && code.http < 500 => ApiError::new(*code),
        // The caller's token ran out or lost its role on the way: theirs to fix.
        (Some(code), _) if code.code.starts_with("ERR_2") || code.code.starts_with("ERR_3") => ApiError::new(*code),
        // The payer's idempotency key, reused for another checkout: theirs to fix.
        (Some(code), _) if code.code == codes::IDEMPOTENCY_KEY_REUSED.code => ApiError::new(*code),
        (
            _,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown,
        ) => unavailable(status, what),
        _ => {
            tracing::error!(?reason, code = ?status.code(), message = status.message(), what, "payments refused a request");
            ApiError::new(codes::INTERNAL)
        }
    }
}

fn unavailable(status: &tonic::Status, what: &str) -> ApiError {
    tracing::warn!(code = ?status.code(), what, "payments unavailable");
    ApiError::new(codes::PAYMENT_PROVIDER_UNAVAILABLE).with_message("Payments are unavailable right now; try again")
}
