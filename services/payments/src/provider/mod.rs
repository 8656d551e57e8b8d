//! The payment provider port: what the domain asks of a provider, in our own types.
//! [`stripe::Stripe`] implements it; [`breaker::Guarded`] wraps any implementation with a
//! deadline and a circuit breaker, so an outage answers fast instead of piling up calls.

pub mod breaker;
pub mod stripe;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::domain::checkout::Line;

/// A checkout to open at the provider.
#[derive(Debug, Clone)]
pub struct CheckoutSpec {
    pub payment_id: Uuid,
    pub festival_id: Uuid,
    pub purpose: &'static str,
    pub reference: String,
    /// Lowercase ISO 4217.
    pub currency: String,
    pub lines: Vec<Line>,
    pub success_url: String,
    pub cancel_url: String,
    pub expires_at: DateTime<Utc>,
    /// Sent as the provider's idempotency key: a retry gets the same session.
    pub idempotency_key: String,
    /// A vendor's sale: a destination charge to its connected account.
    pub destination: Option<Destination>,
}

/// Where a destination charge's money goes, less the platform's fee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub account_id: String,
    pub application_fee_minor: i64,
}

/// A connected account to open for a vendor.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub vendor_account_id: Uuid,
    pub festival_id: Uuid,
    pub display_name: String,
    pub email: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub idempotency_key: String,
}

/// A connected account as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: bool,
}

/// The provider's checkout session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    /// The hosted page the buyer pays on.
    pub url: String,
    pub state: SessionState,
}

/// Where a session stands at the provider (read by the reconciliation sweep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    Open,
    /// Completed and paid: the money is captured.
    Paid {
        intent_id: String,
        amount_total: i64,
    },
    /// Completed, paid by a method that settles later.
    Processing {
        intent_id: String,
    },
    Expired,
}

/// A refund to ask of the provider.
#[derive(Debug, Clone)]
pub struct RefundSpec {
    pub refund_id: Uuid,
    pub intent_id: String,
    pub amount_minor: i64,
    /// Sent as the provider's idempotency key.
    pub idempotency_key: String,
    /// A destination charge: take the vendor's share back from its account.
    pub reverse_transfer: bool,
    /// A charge with an application fee: give the fee back in proportion.
    pub refund_application_fee: bool,
}

/// The provider's refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub id: String,
    pub status: crate::domain::event::ProviderRefundStatus,
    /// It reversed a vendor's transfer (what the provider did, not what was asked).
    pub transfer_reversed: bool,
}

/// One page of a provider's list, newest first; the next page starts after the last
/// item's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// A checkout session as the provider lists it (for reconciliation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    pub id: String,
    /// Our payment's id and festival, from the session's metadata (absent: a session
    /// another integration of the account made).
    pub payment_id: Option<Uuid>,
    pub festival_id: Option<Uuid>,
    pub amount_total: i64,
    /// Lowercase ISO 4217.
    pub currency: String,
    pub created: DateTime<Utc>,
    pub state: SessionState,
}

/// A refund as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRefund {
    pub id: String,
    pub intent_id: Option<String>,
    pub amount_minor: i64,
    pub status: crate::domain::event::ProviderRefundStatus,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Slow, down, or answering 5xx/429 (or the circuit is open): try again later.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// It refused the request (4xx): retrying the same request gets the same answer.
    #[error("payment provider refused the request: {0}")]
    Refused(String),
    /// A refund's transfer reversal: the connected account's balance cannot cover it.
    #[error("the vendor's balance cannot cover the transfer reversal: {0}")]
    TransferNotReversible(String),
}

/// What payments needs of a provider.
pub trait PaymentProvider: Send + Sync + 'static {
    fn create_checkout<'a>(&'a self, spec: &'a CheckoutSpec) -> BoxFuture<'a, Result<Session, ProviderError>>;
    fn session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Session, ProviderError>>;
    fn refund<'a>(&'a self, spec: &'a RefundSpec) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>>;
    /// Checkout sessions created in `[from, to]`, 100 a page, after the session `after`.
    fn list_sessions<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page<ListedSession>, ProviderError>>;
    /// Opens a connected account (Express) for a vendor.
    fn create_account<'a>(&'a self, spec: &'a AccountSpec) -> BoxFuture<'a, Result<Account, ProviderError>>;
    /// A connected account's state now.
    fn account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Account, ProviderError>>;
    /// What a connected account has available in `currency` (lowercase or not) now.
    fn available_balance<'a>(
        &'a self,
        account_id: &'a str,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<i64, ProviderError>>;
    /// A single-use link to the provider's onboarding page for the account.
    fn account_link<'a>(
        &'a self,
        account_id: &'a str,
        refresh_url: &'a str,
        return_url: &'a str,
    ) -> BoxFuture<'a, Result<String, ProviderError>>;
    /// Refunds created in `[from, to]`, 100 a page, after the refund `after`.
    fn list_refunds<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page<ListedRefund>, ProviderError>>;
}
