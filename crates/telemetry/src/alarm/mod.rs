//! 告警 alarms on telemetry: rules per device type or device (threshold with
//! hysteresis, rate of change, not reporting, valid range), the engine that
//! evaluates every accepted reading and raises or clears alarms, the alarm
//! lifecycle active → acknowledged → cleared with its history, and the
//! notifications (worklist, per-region webhooks).
//!
//! The engine never reads the device registry: whoever hands it readings
//! describes the device with a [`DeviceRef`]. Times are epoch milliseconds
//! from a [`Clock`], so tests move time without sleeping.
//!
//! A server runs one [`AlarmEngine`] (shared with the ingest path), its
//! [`run_offline_detector`] and [`run_webhook_deliverer`]; the API needs
//! neither, it works on the database and the engines notice its changes.

pub mod api;
pub mod engine;
pub mod notify;
pub mod rules;
pub mod store;

use std::sync::atomic::{AtomicI64, Ordering};

use shuxiang_core::RegionCode;

pub use engine::{AlarmEngine, run_offline_detector};
pub use notify::run_webhook_deliverer;

/// The device a batch of readings came from, as the ingest path knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRef {
    pub id: i64,
    /// `soil_moisture`, `weather`, `water_quality`, `water_meter`, `cold_chain`.
    pub device_type: String,
    /// The village-level region the device belongs to.
    pub village: RegionCode,
    pub name: String,
    /// The user who owns the device, so farmers can see their devices' alarms.
    pub owner_user_id: Option<i64>,
}

/// One accepted reading of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub metric: String,
    pub ts_ms: i64,
    pub value: f64,
}

/// Where the engine takes "now" from: the system clock in production, a
/// hand-moved one in tests.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        Self(AtomicI64::new(start_ms))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
