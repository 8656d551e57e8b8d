//! The gate, shared by ticketing and the scanners that call it.
//!
//! - [`rule`]: what a scan does to a ticket ([`rule::decide`]), one pure function that
//!   ticketing's online check-in, its reconciliation of offline uploads and an offline
//!   scanner all call, so the three give the same answer to the same case.
//! - [`offline`]: the gate a scanner keeps from its snapshot (keys, revocation list,
//!   list rules, tickets), answering without the network and remembering what it let
//!   through.
//! - [`scanner`]: a scanner client that scans online, falls back to [`offline`] by
//!   itself when ticketing cannot be reached (and says so in every answer), keeps
//!   scanning after an invalid code, and uploads what it scanned offline, signed with
//!   the device's key, once the network is back.
//! - [`till`]: a cashless terminal's offline till: checks taps against the festival's
//!   band keys, caps each band at the offline limit, numbers and signs its charges.
//! - [`badge`]: a gate's offline check of staff badges (identity's), with the same
//!   credential kit as tickets.

pub mod badge;
pub mod offline;
pub mod rule;
pub mod scanner;
pub mod till;
