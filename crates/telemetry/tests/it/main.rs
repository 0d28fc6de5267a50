//! Integration tests of the telemetry slice on each backend.
