//! Ticketing's rules, free of I/O: the life of a ticket as a transition table, quota
//! arithmetic, when something is on sale, limits and totals, and the gate's rule.

/// The gate's rule lives in `festival-gate`, shared with the scanner client.
pub use festival_gate::rule as checkin;
pub mod inventory;
pub mod promo;
pub mod resale;
pub mod sale;
pub mod status;
pub mod transfer;
