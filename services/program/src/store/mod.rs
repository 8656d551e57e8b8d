//! Program's SQL, one module per aggregate. Functions take a connection; the RPC handler
//! owns the transaction.

pub mod artists;
pub mod festivals;
pub mod performances;
pub mod stages;
