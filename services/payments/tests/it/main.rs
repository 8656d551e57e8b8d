//! Payments against real PostgreSQL and NATS and the test kit's fake Stripe (the real
//! async-stripe client pointed at it by base URL), tokens from the test kit's issuer.

mod checkout;
mod connect;
mod helpers;
mod logs;
mod reconcile;
mod refunds;
mod webhooks;
