//! Integration tests of the web crate against real servers: API behaviour,
//! the authorisation matrix, pages, and a browser run.

mod support;

mod alarms;
mod api;
mod browser;
mod coldchain;
mod epcis;
mod ledger;
mod logistics;
mod matrix;
mod monitoring;
mod pages;
mod produce;
mod products;
mod telemetry;
