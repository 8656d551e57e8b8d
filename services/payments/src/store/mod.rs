//! SQL, one module per aggregate; rows carry domain types.

pub mod payments;
pub mod refunds;
pub mod vendors;
pub mod webhooks;
