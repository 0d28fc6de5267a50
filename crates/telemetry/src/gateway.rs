//! The device gateway's sink: MQTT sessions authenticate against the device
//! registry and their messages go through the same ingest as HTTP, so a
//! QoS 1 acknowledgement is sent only once `ingest` has committed.

use bytes::Bytes;
use shuxiang_core::CoreError;
use shuxiang_mqtt::{AuthRejection, DeviceSink, PublishOutcome, SinkError};

use crate::ingest::{TelemetryState, authenticate_device, ingest};

/// Connects the MQTT gateway to the telemetry slice.
#[derive(Clone)]
pub struct TelemetrySink {
    state: TelemetryState,
}

impl TelemetrySink {
    pub fn new(state: TelemetryState) -> Self {
        Self { state }
    }
}

fn rejection(e: &CoreError) -> AuthRejection {
    match e {
        CoreError::Unauthenticated | CoreError::NotFound(_) | CoreError::Missing { .. } => {
            AuthRejection::BadCredentials
        }
        CoreError::Forbidden(_) => AuthRejection::NotAuthorized,
        _ => AuthRejection::Unavailable,
    }
}

impl DeviceSink for TelemetrySink {
    async fn authenticate(&self, username: &str, password: &[u8]) -> Result<String, AuthRejection> {
        let token = std::str::from_utf8(password).map_err(|_| AuthRejection::BadCredentials)?;
        match authenticate_device(self.state.db(), username, token).await {
            Ok(device) => Ok(device.id.to_string()),
            Err(e) => {
                if matches!(rejection(&e), AuthRejection::Unavailable) {
                    tracing::warn!(error = %e, "device authentication could not be decided");
                }
                Err(rejection(&e))
            }
        }
    }

    async fn accept_device(&self, device_id: &str) -> Result<(), AuthRejection> {
        let id: i64 = device_id.parse().map_err(|_| AuthRejection::BadCredentials)?;
        match self.state.device(id).await {
            Ok(d) if d.disabled => Err(AuthRejection::NotAuthorized),
            Ok(_) => Ok(()),
            Err(e) => Err(rejection(&e)),
        }
    }

    async fn publish(&self, device_id: &str, payload: Bytes, received_at_ms: i64) -> Result<PublishOutcome, SinkError> {
        let id: i64 = device_id
            .parse()
            .map_err(|_| SinkError::PayloadRejected(format!("{device_id:?} is not a device id")))?;
        let device = match self.state.device(id).await {
            Ok(d) => d,
            Err(e @ (CoreError::NotFound(_) | CoreError::Missing { .. })) => {
                return Err(SinkError::PayloadRejected(e.to_string()));
            }
            Err(e) => return Err(SinkError::Unavailable(e.to_string())),
        };
        match ingest(&self.state, &device, &payload, received_at_ms).await {
            Ok(report) => Ok(PublishOutcome {
                accepted: report.accepted,
                rejected: report.rejected.len(),
            }),
            // Resending the same bytes would be refused again.
            Err(e @ (CoreError::Malformed { .. } | CoreError::Invalid { .. } | CoreError::Forbidden(_))) => {
                Err(SinkError::PayloadRejected(e.to_string()))
            }
            Err(e) => Err(SinkError::Unavailable(e.to_string())),
        }
    }
}
