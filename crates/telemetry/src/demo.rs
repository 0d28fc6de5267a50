//! Simulated devices for `shuxiang serve --demo`: a few real Jiangxi villages
//! with probes and stations that report values a farmer would recognise, so
//! a newcomer sees the platform alive rather than empty charts.
//!
//! The values are functions of time alone (no hidden state): the same
//! instant always gives the same reading, so a restarted demo continues the
//! same day instead of jumping, and tests can check the shapes directly.
//!
//! - air temperature follows the sun (coolest near 05:00, warmest near
//!   15:00 China time) around a seasonal mean;
//! - it rains for two hours every third day; soil moisture (墒情) jumps with
//!   rain and dries exponentially towards field capacity afterwards;
//! - the reefer truck keeps 2–4 °C except for a door-open stop every six
//!   hours when the load warms past the 8 °C chilled limit for a few minutes.

use std::f64::consts::PI;
use std::future::Future;
use std::time::Duration;

use serde_json::{Map, Value, json};
use shuxiang_core::CoreError;
use shuxiang_core::auth::{self, Actor};

use crate::alarm::rules::{Condition, Direction, Severity};
use crate::alarm::store::{NewRule, RuleQuery, create_rule, list_rules};
use crate::devices::{self, DeviceQuery, Location, NewDevice};
use crate::ingest::{TelemetryState, ingest};

/// One simulated device: what it is and where it stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoDevice {
    pub name: &'static str,
    /// A shipped device type key (`soil_moisture`, `weather`, ...).
    pub device_type: &'static str,
    /// The village-level region code it belongs to.
    pub village: &'static str,
    pub lon: f64,
    pub lat: f64,
}

/// The demo's devices: 南昌县 小莲村 (rice), 婺源县 香田村 (tea, a village
/// water works), 寻乌县 东江源村 (navel oranges), and a reefer truck on the
/// road from 寻乌 to 南昌.
pub const DEMO_DEVICES: &[DemoDevice] = &[
    DemoDevice {
        name: "小莲村稻田墒情站",
        device_type: "soil_moisture",
        village: "360121200210",
        lon: 115.95,
        lat: 28.45,
    },
    DemoDevice {
        name: "小莲村气象站",
        device_type: "weather",
        village: "360121200210",
        lon: 115.951,
        lat: 28.452,
    },
    DemoDevice {
        name: "香田村茶园墒情站",
        device_type: "soil_moisture",
        village: "361130001201",
        lon: 117.86,
        lat: 29.25,
    },
    DemoDevice {
        name: "香田村水厂水质监测",
        device_type: "water_quality",
        village: "361130001201",
        lon: 117.862,
        lat: 29.248,
    },
    DemoDevice {
        name: "东江源村果园墒情站",
        device_type: "soil_moisture",
        village: "360734201208",
        lon: 115.65,
        lat: 24.95,
    },
    DemoDevice {
        name: "东江源村供水水表",
        device_type: "water_meter",
        village: "360734201208",
        lon: 115.652,
        lat: 24.951,
    },
    DemoDevice {
        name: "赣C冷藏车温度记录仪",
        device_type: "cold_chain",
        village: "360734201208",
        lon: 115.65,
        lat: 24.95,
    },
];

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// China Standard Time, east of UTC.
const CST_OFFSET_MS: i64 = 8 * HOUR_MS;
/// It rains for two hours from 06:00 local time every third day.
const RAIN_EVERY_DAYS: i64 = 3;
const RAIN_START_HOUR: i64 = 6;
const RAIN_HOURS: i64 = 2;
/// The reefer truck opens its doors for this long every six hours.
const DOOR_PERIOD_MS: i64 = 6 * HOUR_MS;
const DOOR_OPEN_MS: i64 = 12 * 60_000;

/// The readings `device` reports at `ts_ms`, as (metric key, value).
pub fn readings(device: &DemoDevice, ts_ms: i64) -> Vec<(&'static str, f64)> {
    let seed = device
        .name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let noise = |amplitude: f64, salt: u64| amplitude * jitter(seed ^ salt, ts_ms);
    let air = air_temperature(ts_ms, device.lat) + noise(0.3, 1);
    match device.device_type {
        "soil_moisture" => vec![
            ("vwc", round1(soil_moisture(ts_ms) + noise(0.2, 2))),
            ("soil_temperature", round1(soil_temperature(ts_ms, device.lat))),
        ],
        "weather" => vec![
            ("air_temperature", round1(air)),
            ("humidity", round1((95.0 - 2.2 * (air - 10.0)).clamp(35.0, 100.0))),
            (
                "rainfall",
                if raining(ts_ms) {
                    round1(4.0 + noise(1.5, 3).abs())
                } else {
                    0.0
                },
            ),
            (
                "wind_speed",
                round1((2.0 + 1.5 * daylight(ts_ms) + noise(0.8, 4)).max(0.0)),
            ),
        ],
        "water_quality" => vec![
            ("ph", round2(7.2 + noise(0.08, 5))),
            (
                "turbidity",
                round2(if raining(ts_ms) { 1.8 } else { 0.4 } + noise(0.05, 6).abs()),
            ),
            ("dissolved_oxygen", round2(14.6 - 0.33 * air + noise(0.1, 7))),
            ("residual_chlorine", round2(0.45 + noise(0.04, 8))),
        ],
        "water_meter" => vec![
            ("flow", round2(water_flow(ts_ms))),
            ("volume", round1(water_volume(ts_ms))),
        ],
        "cold_chain" => {
            let (lon, lat) = truck_position(ts_ms);
            vec![
                ("temperature", round1(reefer_temperature(ts_ms) + noise(0.1, 9))),
                ("humidity", round1(88.0 + noise(2.0, 10))),
                ("door", if door_open(ts_ms) { 1.0 } else { 0.0 }),
                ("lat", lat),
                ("lon", lon),
            ]
        }
        _ => Vec::new(),
    }
}

/// How far back a new demo device's history is filled in, so its charts
/// are not empty on the first visit.
const BACKFILL_MS: i64 = 3 * DAY_MS;
const BACKFILL_STEP_MS: i64 = 5 * 60_000;

/// Registers the demo's alarm rules and devices on first start (owned by the
/// administrator), fills in three days of history (raising and clearing
/// alarms as it goes), then reports every
/// `interval` until `shutdown`. Errors are logged and the next tick tries
/// again: the demo must never stop the server.
pub async fn run(state: TelemetryState, interval: Duration, shutdown: impl Future<Output = ()>) {
    let ids = match setup(&state).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "the demo devices could not be set up; the demo is off");
            return;
        }
    };
    let tick = async {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            let now = chrono::Utc::now().timestamp_millis();
            for (device, id) in DEMO_DEVICES.iter().zip(&ids) {
                if let Err(e) = report(&state, *id, &[snapshot(device, now)], now).await {
                    tracing::warn!(device = id, error = %e, "a demo reading was not stored");
                }
            }
        }
    };
    tokio::select! {
        () = tick => {}
        () = shutdown => {}
    }
}

/// The device ids of [`DEMO_DEVICES`], creating (and backfilling) the
/// missing ones.
async fn setup(state: &TelemetryState) -> Result<Vec<i64>, CoreError> {
    let db = state.db();
    let admin = auth::principal_for_username(db, "admin").await?;
    let actor = Actor::system("demo");
    let rules = list_rules(db, &admin, &RuleQuery::default()).await?;
    let wanted = [
        (
            "冷链厢温超过 8 °C",
            "cold_chain",
            "temperature",
            Direction::Above,
            8.0,
            0.5,
            Severity::Major,
        ),
        (
            "土壤偏干（含水量低于 20%）",
            "soil_moisture",
            "vwc",
            Direction::Below,
            20.0,
            1.0,
            Severity::Warning,
        ),
    ];
    for (name, device_type, metric, direction, limit, hysteresis, severity) in wanted {
        if rules.iter().any(|r| r.name == name) {
            continue;
        }
        let rule = NewRule {
            name: name.into(),
            region: "36".into(),
            device_type: Some(device_type.into()),
            device_id: None,
            severity,
            condition: Condition::Threshold {
                metric: metric.into(),
                direction,
                limit,
                hysteresis,
                for_seconds: 0,
            },
            enabled: Some(true),
        };
        create_rule(db, &admin, &actor, rule, chrono::Utc::now().timestamp_millis()).await?;
    }
    let existing = devices::list(
        db,
        &admin,
        &DeviceQuery {
            limit: Some(1000),
            ..Default::default()
        },
    )
    .await?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut ids = Vec::with_capacity(DEMO_DEVICES.len());
    for d in DEMO_DEVICES {
        if let Some(found) = existing.iter().find(|e| e.name == d.name) {
            ids.push(found.id);
            continue;
        }
        let new = NewDevice {
            name: d.name.into(),
            device_type: d.device_type.into(),
            village: d.village.into(),
            location: Location { lon: d.lon, lat: d.lat },
            owner: None,
            ranges: Default::default(),
        };
        let id = devices::create(db, &admin, &actor, new).await?.device.id;
        let history: Vec<Value> = (1..=BACKFILL_MS / BACKFILL_STEP_MS)
            .rev()
            .map(|k| snapshot(d, now - k * BACKFILL_STEP_MS))
            .collect();
        for chunk in history.chunks(500) {
            report(state, id, chunk, now).await?;
        }
        tracing::info!(
            device = id,
            name = d.name,
            "demo device registered with three days of history"
        );
        ids.push(id);
    }
    Ok(ids)
}

/// One `{"ts", "values"}` message of `device`'s readings at `ts_ms`.
fn snapshot(device: &DemoDevice, ts_ms: i64) -> Value {
    let values: Map<String, Value> = readings(device, ts_ms)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    json!({"ts": ts_ms, "values": values})
}

async fn report(state: &TelemetryState, id: i64, messages: &[Value], now_ms: i64) -> Result<(), CoreError> {
    let device = state.device(id).await?;
    let payload = serde_json::to_vec(messages).map_err(|e| CoreError::Internal(e.to_string()))?;
    let report = ingest(state, &device, &payload, now_ms).await?;
    if let Some(r) = report.rejected.first() {
        return Err(CoreError::Internal(format!("demo reading rejected: {}", r.message)));
    }
    Ok(())
}

/// Hours since local midnight, fractional.
fn local_hour(ts_ms: i64) -> f64 {
    (ts_ms + CST_OFFSET_MS).rem_euclid(DAY_MS) as f64 / HOUR_MS as f64
}

/// 0 at night, rising to 1 at midday.
fn daylight(ts_ms: i64) -> f64 {
    (PI * (local_hour(ts_ms) - 6.0) / 12.0).sin().max(0.0)
}

/// Diurnal temperature: a mean that falls 0.6 °C per degree of latitude
/// north, ±6 °C with the warmest hour at 15:00.
pub fn air_temperature(ts_ms: i64, lat: f64) -> f64 {
    let mean = 19.0 - 0.6 * (lat - 26.0);
    mean + 6.0 * (2.0 * PI * (local_hour(ts_ms) - 9.0) / 24.0).sin()
}

/// Soil warms and cools more slowly and later than the air above it.
fn soil_temperature(ts_ms: i64, lat: f64) -> f64 {
    let mean = 19.0 - 0.6 * (lat - 26.0);
    mean + 2.0 * (2.0 * PI * (local_hour(ts_ms) - 12.0) / 24.0).sin()
}

fn local_day(ts_ms: i64) -> i64 {
    (ts_ms + CST_OFFSET_MS).div_euclid(DAY_MS)
}

/// Whether the two-hour rain of a rain day is falling.
pub fn raining(ts_ms: i64) -> bool {
    let hour = local_hour(ts_ms);
    local_day(ts_ms).rem_euclid(RAIN_EVERY_DAYS) == 0
        && hour >= RAIN_START_HOUR as f64
        && hour < (RAIN_START_HOUR + RAIN_HOURS) as f64
}

/// The end of the latest rain at or before `ts_ms`.
fn last_rain_end(ts_ms: i64) -> i64 {
    let day = local_day(ts_ms);
    let mut rain_day = day - day.rem_euclid(RAIN_EVERY_DAYS);
    let end = |d: i64| d * DAY_MS - CST_OFFSET_MS + (RAIN_START_HOUR + RAIN_HOURS) * HOUR_MS;
    if end(rain_day) > ts_ms {
        rain_day -= RAIN_EVERY_DAYS;
    }
    end(rain_day)
}

/// Volumetric water content (%): near saturation (42 %) right after rain,
/// drying with a 30-hour time constant towards 18 %; rising while it rains.
pub fn soil_moisture(ts_ms: i64) -> f64 {
    const WET: f64 = 42.0;
    const DRY: f64 = 18.0;
    if raining(ts_ms) {
        let before = soil_moisture_drying(ts_ms - (local_hour(ts_ms) - RAIN_START_HOUR as f64) as i64 * HOUR_MS);
        let progress = (local_hour(ts_ms) - RAIN_START_HOUR as f64) / RAIN_HOURS as f64;
        return before + (WET - before) * progress;
    }
    soil_moisture_drying(ts_ms).clamp(DRY, WET)
}

fn soil_moisture_drying(ts_ms: i64) -> f64 {
    const WET: f64 = 42.0;
    const DRY: f64 = 18.0;
    const TAU_HOURS: f64 = 30.0;
    let hours = (ts_ms - last_rain_end(ts_ms)).max(0) as f64 / HOUR_MS as f64;
    DRY + (WET - DRY) * (-hours / TAU_HOURS).exp()
}

/// Village supply flow (m³/h): morning and evening peaks, little at night.
fn water_flow(ts_ms: i64) -> f64 {
    let h = local_hour(ts_ms);
    let peak = |centre: f64, width: f64| (-((h - centre) / width).powi(2)).exp();
    0.4 + 3.0 * peak(7.0, 1.2) + 2.4 * peak(19.0, 1.5) + 0.8 * daylight(ts_ms)
}

/// Cumulative volume (m³): the flow integrated minute by minute since the
/// Unix epoch (whole days at the day's known total), so the meter matches
/// its own flow readings and never runs backwards.
fn water_volume(ts_ms: i64) -> f64 {
    const MINUTE_MS: i64 = 60_000;
    let integrate = |from: i64, to: i64| {
        (from / MINUTE_MS..to / MINUTE_MS)
            .map(|m| water_flow(m * MINUTE_MS) / 60.0)
            .sum::<f64>()
    };
    let day_start = local_day(ts_ms) * DAY_MS - CST_OFFSET_MS;
    let per_day = integrate(day_start, day_start + DAY_MS);
    per_day * local_day(ts_ms) as f64 + integrate(day_start, ts_ms)
}

/// Whether the reefer's doors are open (a delivery stop).
pub fn door_open(ts_ms: i64) -> bool {
    ts_ms.rem_euclid(DOOR_PERIOD_MS) < DOOR_OPEN_MS
}

/// Load temperature: 3 °C held by the unit; with the doors open it climbs
/// 0.9 °C a minute, and recovers at 0.5 °C a minute once they close.
pub fn reefer_temperature(ts_ms: i64) -> f64 {
    const HELD: f64 = 3.0;
    const WARMING_PER_MIN: f64 = 0.9;
    const COOLING_PER_MIN: f64 = 0.5;
    let in_period = ts_ms.rem_euclid(DOOR_PERIOD_MS);
    let minutes = |ms: i64| ms as f64 / 60_000.0;
    if in_period < DOOR_OPEN_MS {
        HELD + WARMING_PER_MIN * minutes(in_period)
    } else {
        let peak = HELD + WARMING_PER_MIN * minutes(DOOR_OPEN_MS);
        (peak - COOLING_PER_MIN * minutes(in_period - DOOR_OPEN_MS)).max(HELD)
    }
}

/// Between 寻乌 and 南昌: out in the morning, back in the afternoon.
fn truck_position(ts_ms: i64) -> (f64, f64) {
    const XUNWU: (f64, f64) = (115.65, 24.95);
    const NANCHANG: (f64, f64) = (115.89, 28.68);
    let h = local_hour(ts_ms);
    let f = if h < 12.0 { h / 12.0 } else { (24.0 - h) / 12.0 };
    let lerp = |a: f64, b: f64| ((a + (b - a) * f) * 1e5).round() / 1e5;
    (lerp(XUNWU.0, NANCHANG.0), lerp(XUNWU.1, NANCHANG.1))
}

/// A deterministic value in [-1, 1) for (seed, minute), so noise repeats
/// for the same device and minute.
fn jitter(seed: u64, ts_ms: i64) -> f64 {
    let mut x = seed ^ (ts_ms.div_euclid(60_000) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-07-01 00:00 China time.
    const MIDNIGHT: i64 = 1_782_835_200_000;

    #[test]
    fn afternoons_are_warmer_than_dawn() {
        let at = |h: i64| air_temperature(MIDNIGHT + h * HOUR_MS, 28.45);
        assert!(at(15) > at(12) && at(12) > at(5), "{} {} {}", at(15), at(12), at(5));
        assert!((at(15) - at(3)).abs() > 10.0, "a diurnal swing of about 12 °C");
    }

    #[test]
    fn soil_jumps_with_rain_then_dries() {
        // Find a rain day and read the soil around it.
        let day = (0..RAIN_EVERY_DAYS)
            .map(|d| MIDNIGHT + d * DAY_MS)
            .find(|t| raining(*t + (RAIN_START_HOUR * HOUR_MS) + 1))
            .unwrap();
        let before = soil_moisture(day + (RAIN_START_HOUR * HOUR_MS) - 1);
        let after = soil_moisture(day + (RAIN_START_HOUR + RAIN_HOURS) * HOUR_MS);
        let next_day = soil_moisture(day + (RAIN_START_HOUR + RAIN_HOURS + 24) * HOUR_MS);
        let two_days = soil_moisture(day + (RAIN_START_HOUR + RAIN_HOURS + 48) * HOUR_MS);
        assert!(after > before + 5.0, "rain wets the soil: {before} → {after}");
        assert!(
            after > next_day && next_day > two_days,
            "then it dries: {after} {next_day} {two_days}"
        );
        assert!((18.0..=42.0).contains(&two_days));
        // Continuous: no jump at the end of the rain.
        let end = day + (RAIN_START_HOUR + RAIN_HOURS) * HOUR_MS;
        assert!((soil_moisture(end - 60_000) - soil_moisture(end)).abs() < 1.0);
    }

    #[test]
    fn the_reefer_leaves_the_chilled_band_only_with_its_doors_open() {
        let mut excursions = 0;
        for minute in 0..(DOOR_PERIOD_MS / 60_000) {
            let t = MIDNIGHT + minute * 60_000;
            let temp = reefer_temperature(t);
            assert!(temp >= 3.0);
            if temp > 8.0 {
                excursions += 1;
                // Recovering from 13.8 °C to 8 °C takes under 12 minutes.
                assert!(
                    door_open(t) || door_open(t - 12 * 60_000),
                    "above 8 °C only while open or just after"
                );
            }
        }
        assert!(excursions > 0, "the demo shows an excursion every period");
        assert!(excursions < 30, "and it is short: {excursions} minutes");
    }

    #[test]
    fn every_device_reports_each_metric_of_its_type_and_repeats_itself() {
        let expected: &[(&str, &[&str])] = &[
            ("soil_moisture", &["vwc", "soil_temperature"]),
            ("weather", &["air_temperature", "humidity", "rainfall", "wind_speed"]),
            (
                "water_quality",
                &["ph", "turbidity", "dissolved_oxygen", "residual_chlorine"],
            ),
            ("water_meter", &["flow", "volume"]),
            ("cold_chain", &["temperature", "humidity", "door", "lat", "lon"]),
        ];
        for d in DEMO_DEVICES {
            let t = MIDNIGHT + 10 * HOUR_MS + 123_456;
            let r = readings(d, t);
            let keys: Vec<_> = r.iter().map(|(k, _)| *k).collect();
            let want = expected.iter().find(|(ty, _)| *ty == d.device_type).unwrap().1;
            assert_eq!(keys, want, "{}", d.name);
            assert_eq!(r, readings(d, t), "deterministic");
            assert!(r.iter().all(|(_, v)| v.is_finite()));
        }
    }

    #[test]
    fn the_water_meter_never_runs_backwards() {
        let meter = DEMO_DEVICES.iter().find(|d| d.device_type == "water_meter").unwrap();
        let volume = |t: i64| readings(meter, t).iter().find(|(k, _)| *k == "volume").unwrap().1;
        let mut last = volume(MIDNIGHT);
        for step in 1..200 {
            let v = volume(MIDNIGHT + step * 7 * 60_000);
            assert!(v >= last, "{v} < {last}");
            last = v;
        }
    }
}
