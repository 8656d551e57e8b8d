//! Cashless rules with no I/O: the ledger's postings ([`ledger`]), limits and the
//! festival day ([`limits`]), age levels ([`age`]), cash counts ([`cash`]), anonymous
//! wallets' claim codes ([`claims`]), the journal's hash chain and closures
//! ([`journal`]), how charges made offline are settled ([`offline`]), the end of the
//! festival's refunds ([`payouts`]) and the SEPA files that pay them ([`sepa`]).

pub mod age;
pub mod card_refunds;
pub mod cash;
pub mod claims;
pub mod journal;
pub mod ledger;
pub mod limits;
pub mod offline;
pub mod payouts;
pub mod sepa;
