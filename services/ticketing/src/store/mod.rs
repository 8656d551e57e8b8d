//! SQL, one module per aggregate. Functions take a connection; the handler owns the
//! transaction. Every festival-scoped query filters by `festival_id`.

pub mod cancellations;
pub mod categories;
pub mod festivals;
pub mod gates;
pub mod holds;
pub mod keys;
pub mod orders;
pub mod promos;
pub mod quotas;
pub mod refunds;
pub mod resale;
pub mod tickets;
pub mod transfers;
pub mod vouchers;
pub mod waitlist;
