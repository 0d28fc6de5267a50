//! Device gateway (设备接入网关): how field devices' MQTT telemetry reaches
//! Shuxiang.
//!
//! Two modes, one [`DeviceSink`] seam to the rest of the platform:
//! - embedded ([`bind`], [`serve`]): an MQTT v3.1.1/v5 endpoint devices
//!   connect to directly; a QoS 1 PUBACK is sent only after the sink has
//!   committed the message, so an acknowledged point survives a crash;
//! - scale-out ([`consume_shared`]): devices talk to a broker cluster and
//!   every Shuxiang node takes its share of `$share/{group}/devices/+/telemetry`,
//!   acknowledging to the broker only after the sink committed.
//!
//! The decisions behind both are in docs/adr/0007-mqtt-gateway.md.

pub mod codec;
mod error;
mod gateway;
mod shared;
mod sink;

pub use error::GatewayError;
pub use gateway::{GatewayListener, Limits, bind, serve};
pub use shared::{SharedOptions, consume_shared, consume_shared_with};
pub use sink::{AuthRejection, DeviceSink, PublishOutcome, SinkError};

/// The topic a device publishes its telemetry on.
pub fn telemetry_topic(device_id: &str) -> String {
    format!("devices/{device_id}/telemetry")
}

/// The device id of a telemetry topic, `None` for any other topic.
pub fn device_of_topic(topic: &str) -> Option<&str> {
    let id = topic.strip_prefix("devices/")?.strip_suffix("/telemetry")?;
    (!id.is_empty() && !id.contains(['/', '+', '#'])).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_topics_name_exactly_one_device() {
        assert_eq!(device_of_topic(&telemetry_topic("d-42")), Some("d-42"));
        for topic in [
            "devices//telemetry",
            "devices/a/b/telemetry",
            "devices/a/telemetry/x",
            "x/a/telemetry",
            "devices/+/telemetry",
        ] {
            assert_eq!(device_of_topic(topic), None, "{topic}");
        }
    }
}
