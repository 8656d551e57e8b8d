//! Cashless rules with no I/O: the ledger's postings ([`ledger`]), limits and the
//! festival day ([`limits`]), the journal's hash chain and closures ([`journal`]), and
//! how charges made offline are settled ([`offline`]).

pub mod journal;
pub mod ledger;
pub mod limits;
pub mod offline;
