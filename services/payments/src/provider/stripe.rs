//! Stripe through async-stripe: Checkout sessions in `payment` mode with inline prices,
//! refunds by payment intent. Every write carries our idempotency key, so a retry after
//! a lost answer gets the object Stripe already made. This is the only module that
//! names Stripe's types.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ListCheckoutSession, ProductData, RetrieveCheckoutSession,
};
use stripe_checkout::{CheckoutSession, CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus};
use stripe_core::refund::{CreateRefund, ListRefund};
use stripe_types::{RangeBoundsTs, RangeQueryTs};

use super::{
    CheckoutSpec, ListedRefund, ListedSession, Page, PaymentProvider, ProviderError, ProviderRefund, RefundSpec,
    Session, SessionState,
};
use crate::domain::event::ProviderRefundStatus;

/// A Stripe account.
pub struct Stripe {
    client: Client,
}

impl Stripe {
    /// A client for the account `secret_key` at `api_base` (Stripe's API, or a local fake
    /// in development and tests). `timeout` bounds each HTTP attempt; there is one
    /// attempt per call (the breaker and our callers retry, with the same key).
    pub fn new(secret_key: &str, api_base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = ClientBuilder::new(secret_key)
            .url(api_base)
            .timeout(timeout)
            .request_strategy(RequestStrategy::Once)
            .app_info("festival-payments", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()
            .map_err(|e| anyhow::anyhow!("Stripe client: {e}"))?;
        Ok(Self { client })
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, ProviderError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| ProviderError::Refused(format!("idempotency key: {e}")))
}

/// Outages, throttling, a concurrent request with the same idempotency key (409), an
/// idempotency conflict and our own key refused (401/403: a rotation gone wrong) are
/// worth retrying later; any other answer is Stripe's decision about the request. A
/// refund must never be marked failed for what was our or Stripe's trouble.
fn classify(error: StripeError) -> ProviderError {
    match error {
        StripeError::Stripe(_, status) if matches!(status, 401 | 403 | 409 | 429) || status >= 500 => {
            ProviderError::Unavailable(format!("Stripe answered {status}"))
        }
        StripeError::Stripe(api, status) if matches!(api.type_, stripe::ApiErrorsType::IdempotencyError) => {
            ProviderError::Unavailable(format!("Stripe answered {status}: an idempotency conflict"))
        }
        StripeError::Stripe(api, status) => ProviderError::Refused(format!(
            "Stripe answered {status}: {}",
            api.message.as_deref().unwrap_or("no message")
        )),
        StripeError::ClientError(e) => ProviderError::Unavailable(format!("cannot reach Stripe: {e}")),
        StripeError::Timeout => ProviderError::Unavailable("Stripe timed out".into()),
        StripeError::JSONDeserialize(e) => ProviderError::Unavailable(format!("unreadable answer from Stripe: {e}")),
        StripeError::ConfigError(e) => ProviderError::Refused(format!("Stripe client configuration: {e}")),
    }
}

/// Stripe's list pages: at most 100 items.
const PAGE: i64 = 100;

fn listed_session(s: CheckoutSession) -> ListedSession {
    let meta = |key: &str| s.metadata.as_ref().and_then(|m| m.get(key)).and_then(|v| uuid::Uuid::parse_str(v).ok());
    let (payment_id, festival_id) = (meta("payment_id"), meta("festival_id"));
    let currency = s.currency.as_ref().map(ToString::to_string).unwrap_or_default();
    let created = DateTime::from_timestamp(s.created, 0).unwrap_or_default();
    let amount_total = s.amount_total.unwrap_or(0);
    let session = session_state(&s);
    ListedSession { id: s.id.to_string(), payment_id, festival_id, amount_total, currency, created, state: session }
}

fn session_of(s: CheckoutSession) -> Result<Session, ProviderError> {
    let state = session_state(&s);
    Ok(Session { id: s.id.to_string(), url: s.url.unwrap_or_default(), state })
}

fn session_state(s: &CheckoutSession) -> SessionState {
    let intent_id = s.payment_intent.as_ref().map(|pi| pi.id().to_string());
    match (&s.status, &s.payment_status, intent_id) {
        (Some(CheckoutSessionStatus::Expired), _, _) => SessionState::Expired,
        (Some(CheckoutSessionStatus::Complete), CheckoutSessionPaymentStatus::Paid, Some(intent_id)) => {
            SessionState::Paid { intent_id, amount_total: s.amount_total.unwrap_or(0) }
        }
        (Some(CheckoutSessionStatus::Complete), _, Some(intent_id)) => SessionState::Processing { intent_id },
        _ => SessionState::Open,
    }
}

impl PaymentProvider for Stripe {
    fn create_checkout<'a>(&'a self, spec: &'a CheckoutSpec) -> BoxFuture<'a, Result<Session, ProviderError>> {
        Box::pin(async move {
            let currency = spec.currency.parse::<stripe_types::Currency>().unwrap_or_else(|never| match never {});
            let lines: Vec<CreateCheckoutSessionLineItems> = spec
                .lines
                .iter()
                .map(|l| {
                    let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency.clone());
                    price.unit_amount = Some(l.unit_amount_minor);
                    price.product_data = Some(ProductData::new(l.name.clone()));
                    let mut item = CreateCheckoutSessionLineItems::new();
                    item.price_data = Some(price);
                    item.quantity = Some(u64::try_from(l.quantity).unwrap_or(1));
                    item
                })
                .collect();
            let metadata = HashMap::from([
                ("payment_id".to_owned(), spec.payment_id.to_string()),
                ("festival_id".to_owned(), spec.festival_id.to_string()),
                ("purpose".to_owned(), spec.purpose.to_owned()),
                ("reference".to_owned(), spec.reference.clone()),
            ]);
            let mut intent = CreateCheckoutSessionPaymentIntentData::new();
            intent.metadata = Some(metadata.clone());
            let request = CreateCheckoutSession::new()
                .mode(CheckoutSessionMode::Payment)
                .line_items(lines)
                .success_url(spec.success_url.clone())
                .cancel_url(spec.cancel_url.clone())
                .client_reference_id(spec.payment_id.to_string())
                .expires_at(spec.expires_at.timestamp())
                .metadata(metadata)
                .payment_intent_data(intent);
            let session = request
                .customize()
                .request_strategy(idempotent(&spec.idempotency_key)?)
                .send(&self.client)
                .await
                .map_err(classify)?;
            session_of(session)
        })
    }

    fn session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Session, ProviderError>> {
        Box::pin(async move {
            let session = RetrieveCheckoutSession::new(session_id).send(&self.client).await.map_err(classify)?;
            session_of(session)
        })
    }

    fn refund<'a>(&'a self, spec: &'a RefundSpec) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>> {
        Box::pin(async move {
            let refund = CreateRefund::new()
                .payment_intent(spec.intent_id.clone())
                .amount(spec.amount_minor)
                .metadata(HashMap::from([("refund_id".to_owned(), spec.refund_id.to_string())]))
                .customize()
                .request_strategy(idempotent(&spec.idempotency_key)?)
                .send(&self.client)
                .await
                .map_err(classify)?;
            let status =
                refund.status.as_deref().and_then(ProviderRefundStatus::parse).unwrap_or(ProviderRefundStatus::Pending);
            Ok(ProviderRefund { id: refund.id.to_string(), status })
        })
    }

    fn list_sessions<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page<ListedSession>, ProviderError>> {
        Box::pin(async move {
            let created =
                RangeBoundsTs { gte: Some(from.timestamp()), lte: Some(to.timestamp()), ..Default::default() };
            let mut request = ListCheckoutSession::new().created(RangeQueryTs::Bounds(created)).limit(PAGE);
            if let Some(after) = after {
                request = request.starting_after(after);
            }
            let list = request.send(&self.client).await.map_err(classify)?;
            Ok(Page { items: list.data.into_iter().map(listed_session).collect(), has_more: list.has_more })
        })
    }

    fn list_refunds<'a>(
        &'a self,
        from: DateTime<Utc>,
        after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page<ListedRefund>, ProviderError>> {
        Box::pin(async move {
            let mut request = ListRefund::new().created(RangeQueryTs::gte(from.timestamp())).limit(PAGE);
            if let Some(after) = after {
                request = request.starting_after(after);
            }
            let list = request.send(&self.client).await.map_err(classify)?;
            let items = list
                .data
                .into_iter()
                .map(|r| ListedRefund {
                    id: r.id.to_string(),
                    intent_id: r.payment_intent.as_ref().map(|pi| pi.id().to_string()),
                    amount_minor: r.amount,
                    status: r
                        .status
                        .as_deref()
                        .and_then(ProviderRefundStatus::parse)
                        .unwrap_or(ProviderRefundStatus::Pending),
                })
                .collect();
            Ok(Page { items, has_more: list.has_more })
        })
    }
}
