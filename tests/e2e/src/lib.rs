//! System tests and benchmarks: several real services (and the gateway) together, on
//! the same local infrastructure as every other test. Services' own test suites stay
//! single-service (tokens from the test kit's issuer, peer events published by the
//! test); what only shows when the real services talk to each other lives here:
//!
//! - `tests/gateway`: the gateway in front of the real identity service and a test upstream;
//! - `tests/mesh`: services together without the gateway (a scanner paired through
//!   identity; the purchase: ticketing, payments and the fake Stripe);
//! - `benches/*`: the benchmarks of `scripts/bench`, sharing [`bench`].

pub mod bench;
