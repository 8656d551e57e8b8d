//! SQL, one module per aggregate; rows carry domain types.

pub mod payments;
pub mod refunds;
pub mod webhooks;
