//! The payment port: opening a checkout at the payments service for a paid hold, on the
//! buyer's behalf (their token goes with the call; payments records them as the payer).
//! The answer comes back later as payments' `payment.completed` or `payment.failed`
//! events (see `events`).

use std::time::Duration;

use festival_platform::{ApiError, codes};
use festival_proto::payments::v1 as pay;
use festival_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint};

/// What ticketing asks of payments.
pub trait PaymentPort: Send + Sync + 'static {
    fn create_checkout<'a>(
        &'a self,
        bearer: &'a str,
        request: pay::CreateCheckoutRequest,
    ) -> BoxFuture<'a, Result<pay::Payment, ApiError>>;
}

/// The payments service over gRPC.
pub struct GrpcPayments {
    client: PaymentsServiceClient<Channel>,
    deadline: Duration,
}

impl GrpcPayments {
    /// A client of payments at `url`, connecting on first use (ticketing starts whether
    /// or not payments is up; a paid checkout then answers ERR_5002).
    pub fn new(url: &str, deadline: Duration) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(url.to_owned())?.connect_timeout(Duration::from_secs(2)).connect_lazy();
        Ok(Self { client: PaymentsServiceClient::new(channel), deadline })
    }
}

impl PaymentPort for GrpcPayments {
    fn create_checkout<'a>(
        &'a self,
        bearer: &'a str,
        request: pay::CreateCheckoutRequest,
    ) -> BoxFuture<'a, Result<pay::Payment, ApiError>> {
        Box::pin(async move {
            let mut request = tonic::Request::new(request);
            request.set_timeout(self.deadline);
            let header = format!("Bearer {bearer}").parse().map_err(|_| ApiError::new(codes::UNAUTHENTICATED))?;
            request.metadata_mut().insert("authorization", header);
            festival_platform::telemetry::inject_trace_context(request.metadata_mut());
            match self.client.clone().create_checkout(request).await {
                Ok(response) => Ok(response.into_inner()),
                Err(status) => Err(checkout_error(&status)),
            }
        })
    }
}

/// What the buyer is told when payments could not open a checkout: payments (or the
/// provider behind it) unavailable is ERR_5002; a refusal in payments' own range (a
/// refused charge, an amount or currency the provider will not take) is passed on;
/// anything else is our own mistake and logged.
fn checkout_error(status: &tonic::Status) -> ApiError {
    let reason = festival_platform::error::reason(status);
    let catalogued = reason.as_deref().and_then(|r| codes::ALL.iter().find(|c| c.code == r));
    match (catalogued, status.code()) {
        (Some(code), _) if code.code == codes::PAYMENT_PROVIDER_UNAVAILABLE.code => unavailable(status),
        // Payments' own codes (ERR_5xxx) speak to the buyer; a validation or key error
        // (ERR_1xxx) would be ticketing's mistake, not theirs.
        (Some(code), _) if code.code.starts_with("ERR_5") && code.http < 500 => ApiError::new(*code),
        (
            _,
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown,
        ) => unavailable(status),
        _ => {
            tracing::error!(?reason, code = ?status.code(), message = status.message(), "payments refused a checkout request");
            ApiError::new(codes::INTERNAL)
        }
    }
}

fn unavailable(status: &tonic::Status) -> ApiError {
    tracing::warn!(code = ?status.code(), "payments could not open a checkout");
    ApiError::new(codes::PAYMENT_PROVIDER_UNAVAILABLE)
        .with_message("Payments are unavailable right now; the reservation keeps its tickets, try again")
}
