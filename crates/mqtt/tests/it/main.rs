//! Integration tests of the MQTT gateway: real clients over TCP against the
//! embedded endpoint, and the shared-subscription consumer against the
//! Mosquitto named by SHUXIANG_TEST_MQTT.

mod embedded;
mod shared;
mod support;
