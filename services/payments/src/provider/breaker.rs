//! A deadline and a circuit breaker around a provider. When Stripe is slow or down, a
//! checkout must answer within its deadline (the buyer retries; the hold keeps the
//! tickets), and after `failures` unavailable answers in a row calls fail at once for
//! `cooldown`, sparing Stripe and our connections. After the cooldown one call goes
//! through; its success closes the circuit, its failure opens it again. A refusal (4xx)
//! is an answer, not an outage: it resets the count.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use festival_platform::clock::Clock;
use futures::future::BoxFuture;

use super::{
    Account, AccountSpec, CheckoutSpec, ListedRefund, ListedSession, Page, PaymentProvider, ProviderError,
    ProviderRefund, RefundSpec, Session,
};

/// Consecutive failures and, while open, until when.
#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
}

/// A provider behind a deadline and a breaker.
pub struct Guarded<P> {
    inner: P,
    timeout: Duration,
    threshold: u32,
    cooldown: Duration,
    clock: Clock,
    state: Mutex<State>,
}

impl<P: PaymentProvider> Guarded<P> {
    pub fn new(inner: P, timeout: Duration, threshold: u32, cooldown: Duration, clock: Clock) -> Self {
        Self { inner, timeout, threshold: threshold.max(1), cooldown, clock, state: Mutex::default() }
    }

    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        self.admit()?;
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ProviderError::Unavailable(format!("no answer within {} ms", self.timeout.as_millis()))),
        };
        self.record(matches!(outcome, Err(ProviderError::Unavailable(_))));
        outcome
    }

    /// Refuses at once while the circuit is open.
    fn admit(&self) -> Result<(), ProviderError> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match state.open_until {
            Some(until) if self.clock.instant() < until => {
                Err(ProviderError::Unavailable("circuit open after repeated failures".into()))
            }
            Some(_) => {
                // Half-open: this call tries; others wait for its outcome by finding the
                // circuit open again for a moment.
                state.open_until = Some(self.clock.instant() + self.timeout);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record(&self, failed: bool) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failed {
            state.failures = state.failures.saturating_add(1);
            if state.failures >= self.threshold {
                state.open_until = Some(self.clock.instant() + self.cooldown);
                tracing::warn!(failures = state.failures, "payment provider circuit open");
            }
        } else {
            if state.open_until.is_some() {
                tracing::info!("payment provider circuit closed");
            }
            *state = State::default();
        }
    }

    /// True while calls are refused without trying (metrics, readiness reports).
    pub fn is_open(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.open_until.is_some_and(|until| self.clock.instant() < until)
    }
}

impl<P: PaymentProvider> PaymentProvider for Guarded<P> {
    fn create_checkout<'a>(&'a self, spec: &'a CheckoutSpec) -> BoxFuture<'a, Result<Session, ProviderError>> {
        Box::pin(self.call(self.inner.create_checkout(spec)))
    }
    fn session<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Session, ProviderError>> {
        Box::pin(self.call(self.inner.session(session_id)))
    }
    fn refund<'a>(&'a self, spec: &'a RefundSpec) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>> {
        Box::pin(self.call(self.inner.refund(spec)))
    }
    fn list_sessions<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page<ListedSession>, ProviderError>> {
        Box::pin(self.call(self.inner.list_sessions(from, to, after)))
    }
    fn list_refunds<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Page<ListedRefund>, ProviderError>> {
        Box::pin(self.call(self.inner.list_refunds(from, to, after)))
    }
    fn create_account<'a>(&'a self, spec: &'a AccountSpec) -> BoxFuture<'a, Result<Account, ProviderError>> {
        Box::pin(self.call(self.inner.create_account(spec)))
    }
    fn account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Account, ProviderError>> {
        Box::pin(self.call(self.inner.account(account_id)))
    }
    fn account_link<'a>(
        &'a self,
        account_id: &'a str,
        refresh_url: &'a str,
        return_url: &'a str,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(self.call(self.inner.account_link(account_id, refresh_url, return_url)))
    }
    fn available_balance<'a>(
        &'a self,
        account_id: &'a str,
        currency: &'a str,
    ) -> BoxFuture<'a, Result<i64, ProviderError>> {
        Box::pin(self.call(self.inner.available_balance(account_id, currency)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A provider that fails or hangs on demand and counts the calls reaching it.
    #[derive(Default)]
    struct Flaky {
        calls: AtomicU32,
        failing: std::sync::atomic::AtomicBool,
        hanging: std::sync::atomic::AtomicBool,
    }

    impl PaymentProvider for Flaky {
        fn create_checkout<'a>(&'a self, _: &'a CheckoutSpec) -> BoxFuture<'a, Result<Session, ProviderError>> {
            unimplemented_call()
        }
        fn session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Session, ProviderError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if self.hanging.load(Ordering::SeqCst) {
                    futures::future::pending::<()>().await;
                }
                if self.failing.load(Ordering::SeqCst) {
                    return Err(ProviderError::Unavailable("500".into()));
                }
                Ok(Session { id: id.to_owned(), url: String::new(), state: super::super::SessionState::Open })
            })
        }
        fn refund<'a>(&'a self, _: &'a RefundSpec) -> BoxFuture<'a, Result<ProviderRefund, ProviderError>> {
            unimplemented_call()
        }
        fn list_sessions<'a>(
            &'a self,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Page<ListedSession>, ProviderError>> {
            unimplemented_call()
        }
        fn list_refunds<'a>(
            &'a self,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Page<ListedRefund>, ProviderError>> {
            unimplemented_call()
        }
        fn create_account<'a>(&'a self, _: &'a AccountSpec) -> BoxFuture<'a, Result<Account, ProviderError>> {
            unimplemented_call()
        }
        fn account<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Account, ProviderError>> {
            unimplemented_call()
        }
        fn account_link<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<String, ProviderError>> {
            unimplemented_call()
        }
        fn available_balance<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<i64, ProviderError>> {
            unimplemented_call()
        }
    }

    fn unimplemented_call<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, ProviderError>> {
        Box::pin(async { Err(ProviderError::Refused("not used in this test".into())) })
    }

    #[tokio::test]
    async fn repeated_failures_open_the_circuit_and_a_success_after_the_cooldown_closes_it() {
        let clock = Clock::manual();
        let guarded = Guarded::new(Flaky::default(), Duration::from_secs(1), 3, Duration::from_secs(30), clock.clone());
        guarded.inner.failing.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            assert!(matches!(guarded.session("cs_1").await, Err(ProviderError::Unavailable(_))));
        }
        assert!(guarded.is_open());
        // Open: refused without reaching the provider.
        assert!(matches!(guarded.session("cs_1").await, Err(ProviderError::Unavailable(m)) if m.contains("circuit")));
        assert_eq!(guarded.inner.calls.load(Ordering::SeqCst), 3);
        // After the cooldown, one call goes through; it succeeds and closes the circuit.
        guarded.inner.failing.store(false, Ordering::SeqCst);
        clock.advance(Duration::from_secs(31));
        assert_eq!(guarded.session("cs_1").await.map(|s| s.id), Ok("cs_1".to_owned()));
        assert!(!guarded.is_open());
        assert_eq!(guarded.inner.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_provider_answers_unavailable_at_the_deadline() {
        let guarded =
            Guarded::new(Flaky::default(), Duration::from_millis(200), 5, Duration::from_secs(30), Clock::manual());
        guarded.inner.hanging.store(true, Ordering::SeqCst);
        let outcome = guarded.session("cs_1").await;
        assert_eq!(outcome, Err(ProviderError::Unavailable("no answer within 200 ms".into())));
    }
}
