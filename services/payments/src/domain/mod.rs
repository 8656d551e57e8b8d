//! Payments' rules, without I/O: the status table, the webhook signature, what a
//! provider event means, what a checkout may ask for, and how our records and the
//! provider's are reconciled.

pub mod checkout;
pub mod connect;
pub mod event;
pub mod reconcile;
pub mod signature;
pub mod status;
