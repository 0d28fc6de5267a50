//! Integration tests of the logistics slice on each backend.

mod support;

mod coldchain;
mod journey;
mod network;
mod plans;
mod report;
mod shipments;
mod solomon_bks;
mod stats;
