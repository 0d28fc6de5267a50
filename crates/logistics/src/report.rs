//! 冷链报告 a shipment's cold-chain report: the readings of the logger on
//! the vehicle that carried it, from pickup to delivery (or now), analysed
//! against the shipment's band with [`crate::coldchain`], each excursion
//! placed in its handover leg.
//!
//! The verdict says whether the cold chain can be shown to have held:
//! `held` needs readings covering the whole window without gaps and without
//! excursions; otherwise `excursions`, `gaps`, `no_data` (no readings),
//! `no_logger` (the vehicle has none) or `not_started` (not yet picked up).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shuxiang_core::auth::Principal;
use shuxiang_core::time::{Timestamp, now};
use shuxiang_core::{CoreError, Db};

use crate::coldchain::{self, Band, BandSource, Direction, TemperatureSource};
use crate::network;
use crate::shipments::{self, Shipment, Status};

/// Default largest interval between readings before it counts as a gap:
/// three periods of a logger reporting every five minutes.
pub const DEFAULT_MAX_GAP_S: i64 = 900;
const MAX_MAX_GAP_S: i64 = 86_400;

/// The temperature source handlers use, registered in the app state with
/// `AppState::with_slice`.
#[derive(Clone)]
pub struct ColdChainSource(pub Arc<dyn TemperatureSource>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Held,
    Excursions,
    Gaps,
    NoData,
    NoLogger,
    NotStarted,
}

/// One handover leg: from one handover to the next (or to delivery).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leg {
    pub index: usize,
    pub from_party: String,
    pub to_party: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExcursionEntry {
    pub start: Timestamp,
    pub end: Timestamp,
    pub duration_s: f64,
    pub direction: Direction,
    pub min_c: f64,
    pub max_c: f64,
    pub readings: usize,
    pub ongoing: bool,
    /// Index into `legs`.
    pub leg: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapEntry {
    pub from: Timestamp,
    pub to: Timestamp,
    pub duration_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub shipment_id: i64,
    pub status: Status,
    pub commodity: String,
    pub band: Band,
    pub band_source: BandSource,
    pub vehicle_id: Option<i64>,
    pub plate: Option<String>,
    pub logger_device_id: Option<i64>,
    pub window_from: Option<Timestamp>,
    pub window_to: Option<Timestamp>,
    pub max_gap_s: i64,
    pub readings: usize,
    pub min_c: Option<f64>,
    pub max_c: Option<f64>,
    pub mean_c: Option<f64>,
    /// Mean kinetic temperature, °C.
    pub mkt_c: Option<f64>,
    pub legs: Vec<Leg>,
    pub excursions: Vec<ExcursionEntry>,
    pub gaps: Vec<GapEntry>,
    pub verdict: Verdict,
}

fn at_ms(ms: i64) -> Result<Timestamp, CoreError> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .ok_or_else(|| CoreError::Internal(format!("time {ms} ms is out of range")))
}

fn legs_of(s: &Shipment) -> Vec<Leg> {
    s.handovers
        .iter()
        .enumerate()
        .map(|(index, h)| Leg {
            index,
            from_party: h.from_party.clone(),
            to_party: h.to_party.clone(),
            start: h.at,
            end: s.handovers.get(index + 1).map(|n| n.at).or(s.delivered_at),
        })
        .collect()
}

/// The cold-chain report of a shipment the caller may read; `max_gap_s`
/// defaults to [`DEFAULT_MAX_GAP_S`].
pub async fn report(
    db: &Db,
    source: &dyn TemperatureSource,
    caller: &Principal,
    id: i64,
    max_gap_s: Option<i64>,
) -> Result<Report, CoreError> {
    let s = shipments::get(db, caller, id).await?;
    let max_gap_s = max_gap_s.unwrap_or(DEFAULT_MAX_GAP_S);
    if !(1..=MAX_MAX_GAP_S).contains(&max_gap_s) {
        return Err(CoreError::invalid(
            "invalid_max_gap",
            format!("max_gap_s must be 1 to {MAX_MAX_GAP_S} seconds, not {max_gap_s}"),
        ));
    }
    report_of(db, source, &s, max_gap_s).await
}

/// The report of a shipment already read (access is the caller's business).
pub(crate) async fn report_of(
    db: &Db,
    source: &dyn TemperatureSource,
    s: &Shipment,
    max_gap_s: i64,
) -> Result<Report, CoreError> {
    let vehicle = match s.vehicle_id {
        Some(v) => Some(network::vehicle_by_id(db, v).await?),
        None => None,
    };
    let legs = legs_of(s);
    let window_from = s.handovers.first().map(|h| h.at);
    let window_to = window_from.map(|_| s.delivered_at.unwrap_or_else(now));
    let mut out = Report {
        shipment_id: s.id,
        status: s.status,
        commodity: s.commodity.clone(),
        band: s.band,
        band_source: s.band_source,
        vehicle_id: s.vehicle_id,
        plate: vehicle.as_ref().map(|v| v.plate.clone()),
        logger_device_id: vehicle.as_ref().and_then(|v| v.logger_device_id),
        window_from,
        window_to,
        max_gap_s,
        readings: 0,
        min_c: None,
        max_c: None,
        mean_c: None,
        mkt_c: None,
        legs,
        excursions: Vec::new(),
        gaps: Vec::new(),
        verdict: Verdict::NotStarted,
    };
    let (Some(from), Some(to)) = (window_from, window_to) else {
        return Ok(out);
    };
    let Some(device) = out.logger_device_id else {
        out.verdict = Verdict::NoLogger;
        return Ok(out);
    };
    let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
    let mut readings = source.readings(device, from_ms, to_ms).await?;
    // Sources promise time order; sorting (stable, cheap when already
    // sorted) keeps a careless source from failing the report.
    readings.sort_by_key(|r| r.ts_ms);
    let leg_starts: Vec<i64> = out.legs.iter().map(|l| l.start.timestamp_millis()).collect();
    let analysis = coldchain::analyse(
        &readings,
        &s.band,
        max_gap_s * 1000,
        Some((from_ms, to_ms)),
        &leg_starts,
    )
    .map_err(|e| CoreError::Internal(format!("readings of logger {device}: {e}")))?;
    out.readings = readings.len();
    if let Some(sum) = analysis.summary {
        out.min_c = Some(sum.min_c);
        out.max_c = Some(sum.max_c);
        out.mean_c = Some(sum.mean_c);
    }
    out.mkt_c = analysis.mkt_c;
    out.excursions = analysis
        .excursions
        .iter()
        .map(|e| {
            Ok(ExcursionEntry {
                start: at_ms(e.start_ms)?,
                end: at_ms(e.end_ms)?,
                duration_s: e.duration_ms as f64 / 1000.0,
                direction: e.direction,
                min_c: e.min_c,
                max_c: e.max_c,
                readings: e.readings,
                ongoing: e.ongoing,
                leg: e.leg,
            })
        })
        .collect::<Result<_, CoreError>>()?;
    out.gaps = analysis
        .gaps
        .iter()
        .map(|g| {
            Ok(GapEntry {
                from: at_ms(g.from_ms)?,
                to: at_ms(g.to_ms)?,
                duration_s: g.duration_ms as f64 / 1000.0,
            })
        })
        .collect::<Result<_, CoreError>>()?;
    out.verdict = if readings.is_empty() {
        Verdict::NoData
    } else if !out.excursions.is_empty() {
        Verdict::Excursions
    } else if !out.gaps.is_empty() {
        Verdict::Gaps
    } else {
        Verdict::Held
    };
    Ok(out)
}
