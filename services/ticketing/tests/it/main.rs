//! Ticketing against real PostgreSQL and NATS, tokens from the test kit's issuer and
//! festivals made known the way program announces them (its events).

mod addons;
mod cancellation;
mod catalog;
mod checkin;
mod documents;
mod gates;
mod helpers;
mod promos;
mod races;
mod refunds;
mod resale;
mod sales;
mod scanner;
mod transfers;
mod vouchers;
mod waitlist;
