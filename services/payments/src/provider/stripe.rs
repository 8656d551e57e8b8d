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
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionPaymentIntentDataTransferData, ListCheckoutSession,
    ProductData, RetrieveCheckoutSession,
};
use stripe_checkout::{CheckoutSession, CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus};
use stripe_client_core::StripeMethod;
use stripe_core::refund::{CreateRefund, ListRefund};
use stripe_types::{RangeBoundsTs, RangeQueryTs};

use super::{
    Account, AccountSpec, CheckoutSpec, ListedRefund, ListedSession, Page, PaymentProvider, ProviderError,
    ProviderRefund, RefundSpec, Session, SessionState,
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

/// Connect's account calls, sent as raw requests through the client (its key, its
/// idempotency, its errors) with the few fields we read.
mod connect {
    use serde::Serialize;
    use stripe::StripeRequest;
    use stripe_client_core::{RequestBuilder, StripeMethod};

    #[derive(miniserde::Deserialize)]
    pub struct AccountObject {
        pub id: String,
        pub charges_enabled: Option<bool>,
        pub payouts_enabled: Option<bool>,
        pub details_submitted: Option<bool>,
    }

    #[derive(miniserde::Deserialize)]
    pub struct AccountLinkObject {
        pub url: String,
    }

    #[derive(miniserde::Deserialize)]
    pub struct BalanceAmount {
        pub amount: i64,
        pub currency: String,
    }

    #[derive(miniserde::Deserialize)]
    pub struct BalanceObject {
        pub available: Vec<BalanceAmount>,
        pub pending: Vec<BalanceAmount>,
    }

    #[derive(Serialize)]
    pub struct Requested {
        pub requested: bool,
    }

    #[derive(Serialize)]
    pub struct Capabilities {
        pub card_payments: Requested,
        pub transfers: Requested,
    }

    #[derive(Serialize)]
    pub struct BusinessProfile {
        pub name: String,
    }

    #[derive(Serialize)]
    pub struct CreateAccountForm {
        #[serde(rename = "type")]
        pub kind: &'static str,
        pub country: String,
        pub email: String,
        pub business_profile: BusinessProfile,
        pub capabilities: Capabilities,
        pub metadata: std::collections::HashMap<String, String>,
    }

    #[derive(Serialize)]
    pub struct AccountLinkForm {
        pub account: String,
        pub refresh_url: String,
        pub return_url: String,
        #[serde(rename = "type")]
        pub kind: &'static str,
    }

    /// One request to `path` with an optional form, answered by a `T`.
    pub struct Raw<T> {
        pub method: StripeMethod,
        pub path: String,
        pub form: Option<RequestForm>,
        pub output: std::marker::PhantomData<T>,
    }

    pub enum RequestForm {
        Account(CreateAccountForm),
        Link(AccountLinkForm),
    }

    impl<T> StripeRequest for Raw<T> {
        type Output = T;

        fn build(&self) -> RequestBuilder {
            let builder = RequestBuilder::new(self.method, self.path.clone());
            match &self.form {
                Some(RequestForm::Account(form)) => builder.form(form),
                Some(RequestForm::Link(form)) => builder.form(form),
                None => builder,
            }
        }
    }
}

fn account_of(a: connect::AccountObject) -> Account {
    Account {
        id: a.id,
        charges_enabled: a.charges_enabled.unwrap_or(false),
        payouts_enabled: a.payouts_enabled.unwrap_or(false),
        details_submitted: a.details_submitted.unwrap_or(false),
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
            if let Some(destination) = &spec.destination {
                intent.transfer_data =
                    Some(CreateCheckoutSessionPaymentIntentDataTransferData::new(destination.account_id.clone()));
                // A zero fee is sent as none: Stripe then has no fee to refund later.
                intent.application_fee_amount =
                    (destination.application_fee_minor > 0).then_some(destination.application_fee_minor);
            }
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
            let mut request = CreateRefund::new()
                .payment_intent(spec.intent_id.clone())
                .amount(spec.amount_minor)
                .metadata(HashMap::from([("refund_id".to_owned(), spec.refund_id.to_string())]));
            if spec.reverse_transfer {
                request = request.reverse_transfer(true);
            }
            if spec.refund_application_fee {
                request = request.refund_application_fee(true);
            }
            let refund = request
                .customize()
                .request_strategy(idempotent(&spec.idempotency_key)?)
                .send(&self.client)
                .await
                .map_err(|e| match e {
                    StripeError::Stripe(api, 400)
                        if spec.reverse_transfer
                            && matches!(
                                api.code,
                                Some(
                                    stripe::ApiErrorsCode::BalanceInsufficient
                                        | stripe::ApiErrorsCode::InsufficientFunds
                                )
                            ) =>
                    {
                        ProviderError::TransferNotReversible(api.message.unwrap_or_default())
                    }
                    other => classify(other),
                })?;
            let status =
                refund.status.as_deref().and_then(ProviderRefundStatus::parse).unwrap_or(ProviderRefundStatus::Pending);
            Ok(ProviderRefund {
                id: refund.id.to_string(),
                status,
                transfer_reversed: refund.transfer_reversal.is_some(),
            })
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
        to: DateTime<Utc>,
        after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page<ListedRefund>, ProviderError>> {
        Box::pin(async move {
            let created =
                RangeBoundsTs { gte: Some(from.timestamp()), lte: Some(to.timestamp()), ..Default::default() };
            let mut request = ListRefund::new().created(RangeQueryTs::Bounds(created)).limit(PAGE);
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

    fn create_account<'a>(&'a self, spec: &'a AccountSpec) -> BoxFuture<'a, Result<Account, ProviderError>> {
        Box::pin(async move {
            let form = connect::CreateAccountForm {
                kind: "express",
                country: spec.country.clone(),
                email: spec.email.clone(),
                business_profile: connect::BusinessProfile { name: spec.display_name.clone() },
                capabilities: connect::Capabilities {
                    card_payments: connect::Requested { requested: true },
                    transfers: connect::Requested { requested: true },
                },
                metadata: HashMap::from([
                    ("vendor_account_id".to_owned(), spec.vendor_account_id.to_string()),
                    ("festival_id".to_owned(), spec.festival_id.to_string()),
                ]),
            };
            let request = connect::Raw::<connect::AccountObject> {
                method: StripeMethod::Post,
                path: "/accounts".into(),
                form: Some(connect::RequestForm::Account(form)),
                output: std::marker::PhantomData,
            };
            let account = request
                .customize()
                .request_strategy(idempotent(&spec.idempotency_key)?)
                .send(&self.client)
                .await
                .map_err(classify)?;
            Ok(account_of(account))
        })
    }

    fn account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Account, ProviderError>> {
        Box::pin(async move {
            let request = connect::Raw::<connect::AccountObject> {
                method: StripeMethod::Get,
                path: format!("/accounts/{account_id}"),
                form: None,
                output: std::marker::PhantomData,
            };
            Ok(account_of(request.customize().send(&self.client).await.map_err(classify)?))
        })
    }

    fn available_balance<'a>(
        &'a self,
        account_id: &'a str,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<i64, ProviderError>> {
        Box::pin(async move {
            let request = connect::Raw::<connect::BalanceObject> {
                method: StripeMethod::Get,
                path: "/balance".into(),
                form: None,
                output: std::marker::PhantomData,
            };
            let balance = request
                .customize()
                .account_id(stripe::AccountId::from(account_id))
                .send(&self.client)
                .await
                .map_err(classify)?;
            // Pending funds count: a recent sale's transfer is not available for days, and
            // Stripe reverses from pending funds too.
            let of_currency = |amounts: &[connect::BalanceAmount]| -> i64 {
                amounts.iter().filter(|a| a.currency.eq_ignore_ascii_case(currency)).map(|a| a.amount).sum()
            };
            Ok(of_currency(&balance.available) + of_currency(&balance.pending))
        })
    }

    fn account_link<'a>(
        &'a self,
        account_id: &'a str,
        refresh_url: &'a str,
        return_url: &'a str,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let form = connect::AccountLinkForm {
                account: account_id.to_owned(),
                refresh_url: refresh_url.to_owned(),
                return_url: return_url.to_owned(),
                kind: "account_onboarding",
            };
            let request = connect::Raw::<connect::AccountLinkObject> {
                method: StripeMethod::Post,
                path: "/account_links".into(),
                form: Some(connect::RequestForm::Link(form)),
                output: std::marker::PhantomData,
            };
            Ok(request.customize().send(&self.client).await.map_err(classify)?.url)
        })
    }
}
