//! Program against real PostgreSQL and NATS, with the real identity service minting the
//! tokens it verifies.

mod fans;
mod festivals;
mod helpers;
mod schedule;
mod shifts;
mod tenancy;
