//! Integration tests of the MQTT gateway.
