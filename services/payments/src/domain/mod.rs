//! Payments' rules, without I/O: the status table, the webhook signature, what a
//! provider event means, and what a checkout may ask for.

pub mod checkout;
pub mod event;
pub mod signature;
pub mod status;
