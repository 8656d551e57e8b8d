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
}

/// The provider's refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub id: String,
    pub status: crate::domain::event::ProviderRefundStatus,
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
    /// Refunds created since `from`, 100 a page, after the refund `after`.
    fn list_refunds<'a>(
        &'a self,
        from: DateTime<Utc>,
        after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page<ListedRefund>, ProviderError>>;
}
