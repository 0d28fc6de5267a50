//! Where one slice reads another's data, wired here so neither slice depends
//! on the other: the cold-chain report takes loggers' temperatures from the
//! telemetry slice's stored series.

use shuxiang_core::Db;
use shuxiang_logistics::coldchain::{Reading, ReadingsFuture, TemperatureSource};
use shuxiang_telemetry::series::{self, MAX_RAW_LIMIT};

/// The `temperature` series of cold-chain logger devices.
pub struct TelemetryTemperatures {
    pub db: Db,
}

impl TemperatureSource for TelemetryTemperatures {
    fn readings(&self, device_id: i64, from_ms: i64, to_ms: i64) -> ReadingsFuture<'_> {
        Box::pin(async move {
            // The report's window is inclusive; stored series are read half-open.
            let points = series::raw(
                &self.db,
                device_id,
                "temperature",
                from_ms,
                to_ms.saturating_add(1),
                MAX_RAW_LIMIT,
            )
            .await?;
            Ok(points
                .into_iter()
                .map(|p| Reading {
                    ts_ms: p.ts_ms,
                    celsius: p.value,
                })
                .collect())
        })
    }
}
