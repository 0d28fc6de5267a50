//! Integration tests of the telemetry slice on each backend.

mod alarm;
mod devices;
mod payload;
mod store;
