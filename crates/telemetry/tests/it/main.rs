//! Integration tests of the telemetry slice on each backend.

mod store;
mod alarm;
mod devices;
mod payload;
