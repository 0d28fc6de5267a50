//! 冷链 the provable cold chain: temperature bands per commodity, and the
//! analysis of a logger's readings against a band — excursions (温度超标 /
//! 断链), mean kinetic temperature (平均动力学温度, MKT), data gaps, summary
//! statistics and the handover leg each excursion falls in.
//!
//! Everything here is pure (no I/O), so each rule is tested on its own; the
//! readings come through [`TemperatureSource`], a seam the IoT slice
//! implements over its stored telemetry.
//!
//! Conventions, chosen so that a report is reproducible by hand:
//! - A reading exactly on a band edge is in band (`min ≤ t ≤ max`); GB 31605
//!   sets limits as "not above" / "not below", so the limit itself is allowed.
//! - An excursion starts at the first out-of-band reading (detection within
//!   one reading of the crossing) and ends at the first reading back in band;
//!   if the series ends out of band, it ends at the last reading and is
//!   `ongoing`. A jump from too warm straight to too cold starts a new one.
//! - A gap is an interval longer than the allowed maximum between two
//!   readings, or between a window's edge and its first or last reading.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use shuxiang_core::CoreError;

/// Activation energy of the MKT formula (USP <1079>): 83.144 kJ/mol.
pub const MKT_DELTA_H: f64 = 83_144.0;
/// The gas constant, J/(mol·K).
pub const GAS_CONSTANT: f64 = 8.3144;
const KELVIN: f64 = 273.15;

/// 温区 the temperature class of goods and of a vehicle's refrigeration
/// (GB/T 24616-2019 uses the same split for chilled and frozen goods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemperatureClass {
    /// 常温: no refrigeration.
    Ambient,
    /// 冷藏: 0–8 °C.
    Chilled,
    /// 冷冻: −18 °C or colder.
    Frozen,
}

impl TemperatureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ambient => "ambient",
            Self::Chilled => "chilled",
            Self::Frozen => "frozen",
        }
    }

    pub fn parse_stored(s: &str) -> Result<Self, CoreError> {
        match s {
            "ambient" => Ok(Self::Ambient),
            "chilled" => Ok(Self::Chilled),
            "frozen" => Ok(Self::Frozen),
            other => Err(CoreError::Internal(format!(
                "stored temperature class {other:?} is unknown"
            ))),
        }
    }

    /// The class's own band: chilled 0–8 °C, frozen ≤ −18 °C, ambient none.
    pub fn default_band(self) -> Band {
        match self {
            Self::Ambient => Band {
                min_c: None,
                max_c: None,
            },
            Self::Chilled => Band {
                min_c: Some(0.0),
                max_c: Some(8.0),
            },
            Self::Frozen => Band {
                min_c: None,
                max_c: Some(-18.0),
            },
        }
    }

    /// Whether a vehicle of class `self` may carry goods of class `goods`:
    /// ambient goods ride on anything, chilled goods only on a reefer
    /// (chilled or frozen unit), frozen goods only on a frozen unit.
    pub fn can_carry(self, goods: TemperatureClass) -> bool {
        match goods {
            Self::Ambient => true,
            Self::Chilled => self != Self::Ambient,
            Self::Frozen => self == Self::Frozen,
        }
    }
}

/// A permitted temperature range in °C; an absent limit does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub min_c: Option<f64>,
    pub max_c: Option<f64>,
}

impl Band {
    /// 422 unless both limits are finite, within −60…+60 °C, and min ≤ max.
    pub fn validate(&self) -> Result<(), CoreError> {
        for limit in [self.min_c, self.max_c].into_iter().flatten() {
            if !limit.is_finite() || !(-60.0..=60.0).contains(&limit) {
                return Err(CoreError::invalid(
                    "invalid_band",
                    format!("a band limit must be between -60 and 60 °C, not {limit}"),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_c, self.max_c)
            && lo > hi
        {
            return Err(CoreError::invalid(
                "invalid_band",
                format!("the band's minimum {lo} °C is above its maximum {hi} °C"),
            ));
        }
        Ok(())
    }

    /// Which side of the band `celsius` lies on; `None` when in band
    /// (edges included).
    pub fn side(&self, celsius: f64) -> Option<Direction> {
        if self.max_c.is_some_and(|hi| celsius > hi) {
            Some(Direction::TooWarm)
        } else if self.min_c.is_some_and(|lo| celsius < lo) {
            Some(Direction::TooCold)
        } else {
            None
        }
    }
}

/// Commodities with a band of their own, beyond their class's default:
/// (key, band). Leafy vegetables keep 0–4 °C; bananas 13–14 °C, where chill
/// injury makes too cold an excursion as well.
pub const COMMODITY_BANDS: &[(&str, Band)] = &[
    (
        "leafy_vegetables",
        Band {
            min_c: Some(0.0),
            max_c: Some(4.0),
        },
    ),
    (
        "bananas",
        Band {
            min_c: Some(13.0),
            max_c: Some(14.0),
        },
    ),
];

/// Where a shipment's band came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BandSource {
    /// Set on the shipment.
    Shipment,
    /// The commodity's entry in [`COMMODITY_BANDS`].
    Commodity,
    /// The temperature class's default.
    Class,
}

/// The band that applies: the shipment's own, else the commodity's, else
/// the class's.
pub fn resolve_band(own: Option<Band>, commodity: &str, class: TemperatureClass) -> (Band, BandSource) {
    if let Some(b) = own {
        return (b, BandSource::Shipment);
    }
    match COMMODITY_BANDS.iter().find(|(key, _)| *key == commodity) {
        Some((_, b)) => (*b, BandSource::Commodity),
        None => (class.default_band(), BandSource::Class),
    }
}

/// One logger reading: milliseconds since the Unix epoch and °C.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub ts_ms: i64,
    pub celsius: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    TooWarm,
    TooCold,
}

/// A run of out-of-band readings on one side of the band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excursion {
    /// The first out-of-band reading.
    pub start_ms: i64,
    /// The first reading back in band, or the last reading if none came.
    pub end_ms: i64,
    pub duration_ms: i64,
    pub direction: Direction,
    /// Extremes of the out-of-band readings.
    pub min_c: f64,
    pub max_c: f64,
    pub readings: usize,
    /// True when the series ended before the temperature came back.
    pub ongoing: bool,
    /// Index into the legs given to [`analyse`] that holds `start_ms`.
    pub leg: Option<usize>,
}

/// An interval without readings longer than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub from_ms: i64,
    pub to_ms: i64,
    pub duration_ms: i64,
}

/// Minimum, maximum and mean of the readings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min_c: f64,
    pub max_c: f64,
    pub mean_c: f64,
}

/// Everything a report shows about a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub summary: Option<Summary>,
    pub mkt_c: Option<f64>,
    pub excursions: Vec<Excursion>,
    pub gaps: Vec<Gap>,
}

/// Why a series cannot be analysed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error("reading {index} is not a finite temperature")]
    NotFinite { index: usize },
    #[error("reading {index} is earlier than the one before it")]
    OutOfOrder { index: usize },
}

fn check_series(readings: &[Reading]) -> Result<(), SeriesError> {
    for (index, r) in readings.iter().enumerate() {
        if !r.celsius.is_finite() {
            return Err(SeriesError::NotFinite { index });
        }
        if index > 0 && r.ts_ms < readings[index - 1].ts_ms {
            return Err(SeriesError::OutOfOrder { index });
        }
    }
    Ok(())
}

/// Mean kinetic temperature in °C: Tk = (ΔH/R) / −ln(Σ e^(−ΔH/(R·Ti)) / n)
/// over the readings in kelvin, each reading weighted equally. `None` for
/// no readings.
pub fn mean_kinetic_temperature(celsius: &[f64]) -> Option<f64> {
    if celsius.is_empty() {
        return None;
    }
    let ratio = MKT_DELTA_H / GAS_CONSTANT;
    let n = celsius.len() as f64;
    let sum: f64 = celsius.iter().map(|t| (-ratio / (t + KELVIN)).exp()).sum();
    Some(ratio / -(sum / n).ln() - KELVIN)
}

pub fn summary(readings: &[Reading]) -> Option<Summary> {
    let first = readings.first()?;
    let (mut min_c, mut max_c, mut total) = (first.celsius, first.celsius, 0.0);
    for r in readings {
        min_c = min_c.min(r.celsius);
        max_c = max_c.max(r.celsius);
        total += r.celsius;
    }
    Some(Summary {
        count: readings.len(),
        min_c,
        max_c,
        mean_c: total / readings.len() as f64,
    })
}

/// Excursions of time-ordered `readings` against `band`; `legs` are the
/// start times of the handover legs, ascending.
pub fn excursions(readings: &[Reading], band: &Band, legs: &[i64]) -> Vec<Excursion> {
    let mut out: Vec<Excursion> = Vec::new();
    let mut open: Option<Excursion> = None;
    for r in readings {
        let side = band.side(r.celsius);
        if let Some(mut e) = open.take() {
            if side == Some(e.direction) {
                e.min_c = e.min_c.min(r.celsius);
                e.max_c = e.max_c.max(r.celsius);
                e.readings += 1;
                e.end_ms = r.ts_ms;
                open = Some(e);
                continue;
            }
            e.end_ms = r.ts_ms;
            e.ongoing = false;
            out.push(e);
        }
        if let Some(direction) = side {
            open = Some(Excursion {
                start_ms: r.ts_ms,
                end_ms: r.ts_ms,
                duration_ms: 0,
                direction,
                min_c: r.celsius,
                max_c: r.celsius,
                readings: 1,
                ongoing: true,
                leg: leg_of(legs, r.ts_ms),
            });
        }
    }
    out.extend(open);
    for e in &mut out {
        e.duration_ms = e.end_ms - e.start_ms;
    }
    out
}

/// The index of the last leg starting at or before `ts_ms`.
fn leg_of(legs: &[i64], ts_ms: i64) -> Option<usize> {
    legs.partition_point(|&start| start <= ts_ms).checked_sub(1)
}

/// Intervals longer than `max_gap_ms` without a reading, including those
/// between the `window`'s edges and the first and last reading (a window
/// without readings is one gap).
pub fn gaps(readings: &[Reading], max_gap_ms: i64, window: Option<(i64, i64)>) -> Vec<Gap> {
    let mut points: Vec<i64> = Vec::with_capacity(readings.len() + 2);
    if let Some((from, _)) = window {
        points.push(from);
    }
    points.extend(readings.iter().map(|r| r.ts_ms));
    if let Some((_, to)) = window {
        points.push(to);
    }
    points
        .windows(2)
        .filter(|p| p[1] - p[0] > max_gap_ms)
        .map(|p| Gap {
            from_ms: p[0],
            to_ms: p[1],
            duration_ms: p[1] - p[0],
        })
        .collect()
}

/// The whole analysis of one series; readings must be in time order.
pub fn analyse(
    readings: &[Reading],
    band: &Band,
    max_gap_ms: i64,
    window: Option<(i64, i64)>,
    legs: &[i64],
) -> Result<Analysis, SeriesError> {
    check_series(readings)?;
    let temperatures: Vec<f64> = readings.iter().map(|r| r.celsius).collect();
    Ok(Analysis {
        summary: summary(readings),
        mkt_c: mean_kinetic_temperature(&temperatures),
        excursions: excursions(readings, band, legs),
        gaps: gaps(readings, max_gap_ms, window),
    })
}

/// The future a [`TemperatureSource`] returns.
pub type ReadingsFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Reading>, CoreError>> + Send + 'a>>;

/// Where loggers' temperatures come from: the readings of one logger device
/// between two times (inclusive, milliseconds), in time order. The IoT slice
/// implements it over its stored series.
pub trait TemperatureSource: Send + Sync {
    fn readings(&self, device_id: i64, from_ms: i64, to_ms: i64) -> ReadingsFuture<'_>;
}

/// A fixed list of readings per device, for tests and imports.
#[derive(Debug, Clone, Default)]
pub struct ListSource {
    pub series: Vec<(i64, Vec<Reading>)>,
}

impl TemperatureSource for ListSource {
    fn readings(&self, device_id: i64, from_ms: i64, to_ms: i64) -> ReadingsFuture<'_> {
        let found: Vec<Reading> = self
            .series
            .iter()
            .filter(|(d, _)| *d == device_id)
            .flat_map(|(_, rs)| rs.iter().copied())
            .filter(|r| (from_ms..=to_ms).contains(&r.ts_ms))
            .collect();
        Box::pin(async move { Ok(found) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_treats_edges_as_in_band() {
        let band = Band {
            min_c: Some(0.0),
            max_c: Some(4.0),
        };
        assert_eq!(band.side(0.0), None);
        assert_eq!(band.side(4.0), None);
        assert_eq!(band.side(4.000_001), Some(Direction::TooWarm));
        assert_eq!(band.side(-0.000_001), Some(Direction::TooCold));
    }

    #[test]
    fn leg_of_picks_the_leg_that_started_last() {
        assert_eq!(leg_of(&[10, 20], 5), None);
        assert_eq!(leg_of(&[10, 20], 10), Some(0));
        assert_eq!(leg_of(&[10, 20], 19), Some(0));
        assert_eq!(leg_of(&[10, 20], 20), Some(1));
    }
}
