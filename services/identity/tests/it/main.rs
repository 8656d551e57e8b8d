//! Identity against real PostgreSQL and NATS: one binary, one module per area.

mod audit;
mod auth_flow;
mod bad_input;
mod badges;
mod devices;
mod helpers;
mod keys;
mod memberships;
mod mfa;
mod oauth;
mod readiness;
mod recovery;
mod sessions;
mod throttle;
