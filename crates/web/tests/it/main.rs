//! Integration tests of the web crate against real servers: API behaviour,
//! the authorisation matrix, pages, and a browser run.

mod support;

mod alarms;
mod api;
mod browser;
mod coldchain;
mod dispatch_pages;
mod epcis;
mod inputs_pages;
mod ledger;
mod logistics;
mod logistics_pages;
mod matrix;
mod monitoring;
mod pages;
mod produce;
mod products;
mod telemetry;
mod trace_journey;
