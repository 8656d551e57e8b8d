//! Cashless rules with no I/O: the ledger's postings ([`ledger`]), limits and the
//! festival day ([`limits`]), and the journal's hash chain and closures ([`journal`]).

pub mod journal;
pub mod ledger;
pub mod limits;
