//! Identity's SQL, one module per aggregate. Functions take a connection (or a
//! transaction); the RPC handler owns begin/commit.

pub mod audit;
pub mod badges;
pub mod devices;
pub mod email_tokens;
pub mod keys;
pub mod memberships;
pub mod mfa;
pub mod oauth;
pub mod sessions;
pub mod users;
