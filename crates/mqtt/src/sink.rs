//! The seam between the device gateway (设备接入网关) and the rest of
//! Shuxiang: the gateway knows MQTT, the sink knows devices and storage.
//!
//! The lead wires a sink to the telemetry slice in the binary; this crate has
//! no database dependency of its own.

use std::future::Future;

use bytes::Bytes;

/// Where authenticated device traffic goes.
///
/// Every method may be called concurrently from many connections; the
/// gateway keeps one connection's acknowledgements in order itself.
pub trait DeviceSink: Send + Sync + 'static {
    /// Credentials from an embedded-endpoint CONNECT (username = device id,
    /// password = device token) → the device id the session may publish for.
    fn authenticate(
        &self,
        username: &str,
        password: &[u8],
    ) -> impl Future<Output = Result<String, AuthRejection>> + Send;

    /// Scale-out mode: the broker authenticated the device, so the gateway
    /// only asks whether messages from `device_id` (taken from the topic) are
    /// accepted at all, e.g. the device exists and is not disabled.
    fn accept_device(&self, device_id: &str) -> impl Future<Output = Result<(), AuthRejection>> + Send;

    /// One telemetry message of `device_id`. Resolves only after the accepted
    /// points are durably committed (or the message was rejected), because
    /// the gateway sends the QoS 1 acknowledgement as soon as it resolves Ok.
    fn publish(
        &self,
        device_id: &str,
        payload: Bytes,
        received_at_ms: i64,
    ) -> impl Future<Output = Result<PublishOutcome, SinkError>> + Send;
}

/// Why a device was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRejection {
    /// Unknown device or wrong token (v3.1.1 CONNACK 4, v5 0x86).
    #[error("bad device id or token")]
    BadCredentials,
    /// Known device that may not connect, e.g. disabled (v3.1.1 5, v5 0x87).
    #[error("device not authorised")]
    NotAuthorized,
    /// The sink cannot decide now, e.g. the database is unreachable
    /// (v3.1.1 3 server unavailable, v5 0x88).
    #[error("device registry unavailable")]
    Unavailable,
}

/// What the sink did with one message whose points were (at least partly)
/// committed. Rejected points are recorded by the sink per device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Points committed.
    pub accepted: usize,
    /// Points refused (bad metric, out-of-range value, ...).
    pub rejected: usize,
}

/// A message the sink could not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The whole payload is unusable (not JSON, no points); resending it
    /// would fail again. The sink has recorded the rejection.
    #[error("payload rejected: {0}")]
    PayloadRejected(String),
    /// Storage failed; the message was not committed and may succeed later.
    #[error("telemetry store unavailable: {0}")]
    Unavailable(String),
}
