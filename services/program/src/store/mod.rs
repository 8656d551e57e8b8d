//! Program's SQL, one module per aggregate. Functions take a connection; the RPC handler
//! owns the transaction.

pub mod artists;
pub mod favourites;
pub mod festivals;
pub mod members;
pub mod performances;
pub mod shifts;
pub mod stages;
