//! 数据接入 telemetry ingest, shared by HTTP and the MQTT gateway: a device's
//! payload is parsed and judged point by point against the device's metrics,
//! the accepted points are committed through the group-commit
//! [`PointWriter`] (so an answer or a QoS 1 ack always means "stored"), the
//! refused ones are counted per device, and the accepted ones are then
//! handed to the alarm engine.
//!
//! Refusal counters are written after the points commit, in a transaction
//! of their own and only when something was refused: a crash in between
//! loses a count, never a point, and clean traffic costs no extra write.
//!
//! Alarm evaluation runs after the commit and never fails an ingest: the
//! points are stored by then, and a device told to resend would only send
//! duplicates. An evaluation error is logged (the engine reloads its state
//! on the next batch).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use shuxiang_core::cache::TtlCache;
use shuxiang_core::time::now;
use shuxiang_core::{CoreError, Db};
use tokio::sync::OnceCell;

use crate::alarm::{AlarmEngine, DeviceRef, Reading, SystemClock};
use crate::devices::{self, Device};
use crate::payload::{self, Limits, PointError, Rejection};
use crate::store::{NewPoint, Retention};
use crate::writer::{PointWriter, WriterConfig};

/// Settings of the ingest path.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Group commit; `None`: the defaults for the database's backend.
    pub writer: Option<WriterConfig>,
    /// The accepted timestamp window follows the raw retention.
    pub retention: Retention,
    /// How long a node reuses a device it read for ingest (MQTT looks its
    /// device up per message). A change made on this node applies at once;
    /// one made on another node (disabling, new ranges) within this time.
    pub device_cache_ttl: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            writer: None,
            retention: Retention::default(),
            device_cache_ttl: Duration::from_secs(2),
        }
    }
}

/// The telemetry slice's state in `AppState` (`with_slice`): the point
/// writer, the alarm engine and a small device cache. Cheap to clone.
#[derive(Clone)]
pub struct TelemetryState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    writer: PointWriter,
    limits: Limits,
    alarms: OnceCell<AlarmEngine>,
    devices: TtlCache<i64, Device>,
}

/// Devices a node keeps for ingest at most.
const DEVICE_CACHE_CAPACITY: usize = 100_000;

impl TelemetryState {
    /// Starts the point writer on the current Tokio runtime. The alarm
    /// engine starts with the first accepted points, on the system clock,
    /// unless one is given with [`set_alarm_engine`](Self::set_alarm_engine).
    pub fn new(db: Db, config: TelemetryConfig) -> Self {
        let writer_config = config.writer.unwrap_or_else(|| WriterConfig::for_backend(db.backend()));
        Self {
            inner: Arc::new(Inner {
                writer: PointWriter::spawn(db.clone(), writer_config),
                limits: Limits::for_retention(&config.retention),
                alarms: OnceCell::new(),
                devices: TtlCache::new(config.device_cache_ttl, DEVICE_CACHE_CAPACITY),
                db,
            }),
        }
    }

    /// Uses `engine` (e.g. one whose offline detector the binary runs, or a
    /// test's with a hand-moved clock). 500-class error if an engine already
    /// started.
    pub fn set_alarm_engine(&self, engine: AlarmEngine) -> Result<(), CoreError> {
        self.inner
            .alarms
            .set(engine)
            .map_err(|_| CoreError::Internal("the alarm engine has already started".into()))
    }

    /// The alarm engine, started on first use.
    pub async fn alarm_engine(&self) -> Result<&AlarmEngine, CoreError> {
        self.inner
            .alarms
            .get_or_try_init(|| AlarmEngine::start(self.inner.db.clone(), Arc::new(SystemClock)))
            .await
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn writer(&self) -> &PointWriter {
        &self.inner.writer
    }

    /// The device for ingest, from the cache when fresh (see
    /// [`TelemetryConfig::device_cache_ttl`]).
    pub async fn device(&self, id: i64) -> Result<Device, CoreError> {
        if let Some(d) = self.inner.devices.get(&id) {
            return Ok(d);
        }
        let d = devices::get(&self.inner.db, id).await?;
        self.inner.devices.insert(id, d.clone());
        Ok(d)
    }

    /// [`ingest`] for the MQTT gateway, which knows the device by the id in
    /// its topic: the device comes from the cache. 404 for an unknown id.
    pub async fn ingest_by_id(
        &self,
        device_id: &str,
        payload: &[u8],
        received_at_ms: i64,
    ) -> Result<IngestReport, CoreError> {
        let id = device_id
            .trim()
            .parse::<i64>()
            .map_err(|_| CoreError::NotFound(format!("no device {device_id:?}")))?;
        let device = self.device(id).await?;
        ingest(self, &device, payload, received_at_ms).await
    }

    /// Drops cached devices after a change made through this node.
    pub fn forget_devices(&self) {
        self.inner.devices.clear();
    }
}

/// What happened to one message: `{"accepted": n, "rejected": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
}

/// The alarm engine's view of a device.
pub fn device_ref(device: &Device) -> DeviceRef {
    DeviceRef {
        id: device.id,
        device_type: device.device_type.as_str().to_string(),
        village: device.village.clone(),
        name: device.name.clone(),
        owner_user_id: Some(device.owner_id),
    }
}

/// Parses, judges and stores one message from `device`; resolves after the
/// accepted points committed. 403 for a disabled device; 400
/// `malformed_json` or 422 `too_many_points` when the whole message is
/// refused (counted for the device like refused points).
pub async fn ingest(
    state: &TelemetryState,
    device: &Device,
    payload: &[u8],
    received_at_ms: i64,
) -> Result<IngestReport, CoreError> {
    if device.disabled {
        return Err(CoreError::Forbidden(format!("device {} is disabled", device.id)));
    }
    let parsed = match payload::parse(payload, received_at_ms, &device.metrics(), state.limits()) {
        Ok(p) => p,
        Err(e) => {
            devices::count_rejections(state.db(), device.id, &[(e.code(), 1, e.to_string())], now()).await?;
            return Err(e.into());
        }
    };
    let points: Vec<NewPoint> = parsed
        .points
        .iter()
        .map(|p| NewPoint {
            device_id: device.id,
            metric: p.metric.to_string(),
            ts_ms: p.ts_ms,
            value: p.value,
        })
        .collect();
    state.writer().write(points).await?;
    if !parsed.rejected.is_empty() {
        let mut counts: BTreeMap<PointError, (i64, String)> = BTreeMap::new();
        for r in &parsed.rejected {
            let entry = counts.entry(r.error).or_insert((0, String::new()));
            entry.0 += 1;
            entry.1.clone_from(&r.message);
        }
        let counts: Vec<(&str, i64, String)> = counts.into_iter().map(|(e, (n, m))| (e.code(), n, m)).collect();
        devices::count_rejections(state.db(), device.id, &counts, now()).await?;
    }
    if !parsed.points.is_empty() {
        let readings: Vec<Reading> = parsed
            .points
            .iter()
            .map(|p| Reading {
                metric: p.metric.to_string(),
                ts_ms: p.ts_ms,
                value: p.value,
            })
            .collect();
        let observed = match state.alarm_engine().await {
            Ok(engine) => engine.observe(&device_ref(device), &readings).await,
            Err(e) => Err(e),
        };
        if let Err(e) = observed {
            tracing::error!(device = device.id, error = %e, "alarm evaluation failed; points are stored");
        }
    }
    Ok(IngestReport {
        accepted: parsed.points.len(),
        rejected: parsed.rejected,
    })
}

/// Checks a device's credentials as the MQTT gateway receives them (username
/// = device id, password = token): 401 unless `token` is the device's
/// current token, 403 if the device is disabled. The digests are compared in
/// constant time.
pub async fn authenticate_device(db: &Db, device_id: &str, token: &str) -> Result<Device, CoreError> {
    let Ok(id) = device_id.trim().parse::<i64>() else {
        return Err(CoreError::Unauthenticated);
    };
    let device = devices::by_id_and_token(db, id, token)
        .await?
        .ok_or(CoreError::Unauthenticated)?;
    if device.disabled {
        return Err(CoreError::Forbidden(format!("device {id} is disabled")));
    }
    Ok(device)
}

/// The device whose token is `token` (HTTP `Authorization: Bearer`): 401 if
/// none, 403 if it is disabled.
pub async fn authenticate_token(db: &Db, token: &str) -> Result<Device, CoreError> {
    let device = devices::by_token(db, token).await?.ok_or(CoreError::Unauthenticated)?;
    if device.disabled {
        return Err(CoreError::Forbidden(format!("device {} is disabled", device.id)));
    }
    Ok(device)
}
