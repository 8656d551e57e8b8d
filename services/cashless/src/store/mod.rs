//! SQL, one module per aggregate. Functions take a connection; the handler owns the
//! transaction.

pub mod accounts;
pub mod card_refunds;
pub mod festivals;
pub mod journal;
pub mod keys;
pub mod ledger;
pub mod offline;
pub mod online;
pub mod payouts;
pub mod reports;
pub mod settings;
pub mod shifts;
pub mod terminals;
pub mod wallets;
