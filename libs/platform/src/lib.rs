//! The platform kit every festival service is built on. One crate, small modules:
//!
//! - [`client_addr`]: the caller's address behind trusted proxies.
//! - [`config`]: typed layered configuration, production secret checks.
//! - [`clock`]: time that tests control.
//! - [`codes`] and [`error`]: the `ERR_XXXX` catalogue and the error RPCs return.
//! - [`text_enum!`]: enums stored as text, parsed at the store boundary.
//! - [`credential`]: offline-verifiable Ed25519 credentials (tickets, badges); [`sealing`]:
//!   private keys encrypted at rest.
//! - [`validate`]: edge validation helpers (text, ids, enums, bounded timestamps, ranges).
//! - [`rpc`]: one way to bind RPCs ([`bind_rpcs!`]), HTTP cache metadata.
//! - [`page_token`]: opaque, tamper-evident page tokens.
//! - [`idempotency`]: idempotency keys for money and inventory commands.
//! - [`telemetry`] and [`metrics`]: JSON logs with redaction, OTLP traces, W3C
//!   propagation, Prometheus.
//! - [`db`]: per-service PostgreSQL database, embedded migrations.
//! - [`redis`]: Redis pool with per-deployment key prefixes.
//! - [`throttle`]: growing locks after failed attempts at a secret (passwords, codes).
//! - [`events`]: transactional outbox, relay to JetStream, inbox-backed consumers;
//!   [`festival_facts`]: program's festival facts as a service keeps them.
//! - [`nfc`]: cashless wristbands' diversified keys (AN10922) and tap proofs.
//! - [`auth`]: access-token verification and per-festival authorization.
//! - [`server`] and [`cli`]: bootstrap, health, reflection, graceful drain, `migrate`.

pub mod auth;
pub mod cli;
pub mod client_addr;
pub mod clock;
pub mod codes;
pub mod config;
pub mod convert;
pub mod credential;
pub mod db;
pub mod email;
pub mod error;
pub mod events;
pub mod festival_facts;
pub mod grpc_edge;
pub mod idempotency;
pub mod live;
pub mod metrics;
pub mod nfc;
pub mod page_token;
pub mod payments;
pub mod qr;
pub mod redis;
pub mod rpc;
pub mod sealing;
pub mod server;
pub mod telemetry;
pub mod text_enum;
pub mod throttle;
pub mod typed_code;
pub mod validate;

pub use error::{ApiError, ApiResult, ResultExt};
