//! Cashless against real PostgreSQL and NATS, tokens from the test kit's issuer, bands
//! simulated by the kit's software card (personalised with the keys the service hands
//! an encoder). Every test ends by verifying its festival's ledger and journal.

mod anonymous;
mod charges;
mod close_out;
mod credit;
mod helpers;
mod ledger;
mod model;
mod money;
mod offline;
mod online;
mod races;
mod reports;
mod shifts;
mod voids;
mod wallets;
