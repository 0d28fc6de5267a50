//! The shipped device types (设备类型) and the metrics each reports, with
//! units and physical valid ranges.
//!
//! A range is what a working sensor of that kind can physically report, not
//! an alarm band: a value outside it means a broken probe or a garbled
//! payload, so the point is rejected (`value_out_of_range`) instead of being
//! stored. Alarm thresholds live in alarm rules. A device may narrow a range
//! (e.g. a probe rated for −20…60 °C), never widen it.
//!
//! The ranges, and why:
//! - 墒情 soil moisture: `vwc` 0–100 % volumetric water content (the
//!   definition's bounds); `soil_temperature` −40–80 °C (the rated range of
//!   common buried TDR/FDR probes).
//! - 气象 weather: `air_temperature` −50–60 °C (beyond China's records of
//!   −52.3 °C and 50.5 °C, Jiangxi's are −18.9 °C and 44.9 °C);
//!   `humidity` 0–100 %RH; `rainfall` 0–400 mm accumulated over one report
//!   interval (at most an hour; the world's one-hour record is 305 mm);
//!   `wind_speed` 0–90 m/s (above the strongest typhoon gusts recorded in
//!   China, 89 m/s at 苍南).
//! - 水质 water quality: `ph` 0–14; `turbidity` 0–4,000 NTU (the range of
//!   optical turbidity probes); `dissolved_oxygen` 0–20 mg/L (optical DO
//!   probes, covering supersaturation); `residual_chlorine` 0–20 mg/L (free
//!   chlorine probes; GB 5749 allows at most 2 mg/L in drinking water, so
//!   higher values are alarms, not garbage).
//! - 水表 water meter: `flow` 0–5,000 m³/h (a DN300 main carries about
//!   1,200 m³/h; rural supply meters are smaller); `volume` 0–10⁹ m³
//!   cumulative register.
//! - 冷链 cold-chain logger: `temperature` −60–60 °C (deep-frozen to ambient
//!   in summer), `humidity` 0–100 %RH, `door` 0 (closed) or 1 (open), `lat`
//!   −90–90 and `lon` −180–180 (WGS84; trucks may leave China's bounding box
//!   only on its borders, so GPS is checked as WGS84).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shuxiang_core::CoreError;

/// One metric a device type reports.
#[derive(Debug, PartialEq)]
pub struct MetricSpec {
    /// The key in payloads (`vwc`, `air_temperature`, ...).
    pub key: &'static str,
    pub name_zh: &'static str,
    /// The unit values are stored in, as shown to people.
    pub unit: &'static str,
    /// SenML unit symbols (RFC 8428 §12.1) that mean [`unit`](Self::unit); a
    /// SenML record naming another unit is rejected rather than converted.
    pub senml_units: &'static [&'static str],
    pub min: f64,
    pub max: f64,
    /// 0 or 1 only; payloads may send JSON `true`/`false` (SenML `vb`).
    pub boolean: bool,
}

const fn metric(
    key: &'static str,
    name_zh: &'static str,
    unit: &'static str,
    senml_units: &'static [&'static str],
    min: f64,
    max: f64,
) -> MetricSpec {
    MetricSpec {
        key,
        name_zh,
        unit,
        senml_units,
        min,
        max,
        boolean: false,
    }
}

static SOIL_MOISTURE: [MetricSpec; 2] = [
    metric("vwc", "土壤体积含水量", "%", &["%", "/"], 0.0, 100.0),
    metric("soil_temperature", "土壤温度", "°C", &["Cel"], -40.0, 80.0),
];

static WEATHER: [MetricSpec; 4] = [
    metric("air_temperature", "气温", "°C", &["Cel"], -50.0, 60.0),
    metric("humidity", "相对湿度", "%RH", &["%RH"], 0.0, 100.0),
    metric("rainfall", "降雨量", "mm", &["mm"], 0.0, 400.0),
    metric("wind_speed", "风速", "m/s", &["m/s"], 0.0, 90.0),
];

static WATER_QUALITY: [MetricSpec; 4] = [
    metric("ph", "pH 值", "pH", &["pH"], 0.0, 14.0),
    metric("turbidity", "浊度", "NTU", &["NTU"], 0.0, 4000.0),
    metric("dissolved_oxygen", "溶解氧", "mg/L", &["mg/L", "mg/l"], 0.0, 20.0),
    metric("residual_chlorine", "余氯", "mg/L", &["mg/L", "mg/l"], 0.0, 20.0),
];

static WATER_METER: [MetricSpec; 2] = [
    metric("flow", "瞬时流量", "m³/h", &["m3/h"], 0.0, 5000.0),
    metric("volume", "累计用水量", "m³", &["m3"], 0.0, 1e9),
];

static COLD_CHAIN: [MetricSpec; 5] = [
    metric("temperature", "厢温", "°C", &["Cel"], -60.0, 60.0),
    metric("humidity", "相对湿度", "%RH", &["%RH"], 0.0, 100.0),
    MetricSpec {
        key: "door",
        name_zh: "厢门（1 为开）",
        unit: "",
        senml_units: &[],
        min: 0.0,
        max: 1.0,
        boolean: true,
    },
    metric("lat", "纬度", "°", &["lat"], -90.0, 90.0),
    metric("lon", "经度", "°", &["lon"], -180.0, 180.0),
];

/// 设备类型 the shipped device types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    /// 墒情监测仪 soil-moisture probe.
    SoilMoisture,
    /// 气象站 weather station.
    Weather,
    /// 水质监测仪 water-quality sensor (rural water supply, ponds).
    WaterQuality,
    /// 智能水表 irrigation or rural water-supply meter.
    WaterMeter,
    /// 冷链温度记录仪 reefer-truck logger with GPS.
    ColdChain,
}

impl DeviceType {
    pub const ALL: [DeviceType; 5] = [
        Self::SoilMoisture,
        Self::Weather,
        Self::WaterQuality,
        Self::WaterMeter,
        Self::ColdChain,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SoilMoisture => "soil_moisture",
            Self::Weather => "weather",
            Self::WaterQuality => "water_quality",
            Self::WaterMeter => "water_meter",
            Self::ColdChain => "cold_chain",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::SoilMoisture => "墒情监测仪",
            Self::Weather => "气象站",
            Self::WaterQuality => "水质监测仪",
            Self::WaterMeter => "智能水表",
            Self::ColdChain => "冷链温度记录仪",
        }
    }

    /// 422 `invalid_type` naming the allowed types.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL.into_iter().find(|t| t.as_str() == s.trim()).ok_or_else(|| {
            CoreError::invalid(
                "invalid_type",
                format!(
                    "device type {s:?} is not one of soil_moisture, weather, water_quality, water_meter, cold_chain"
                ),
            )
        })
    }

    pub fn metrics(self) -> &'static [MetricSpec] {
        match self {
            Self::SoilMoisture => &SOIL_MOISTURE,
            Self::Weather => &WEATHER,
            Self::WaterQuality => &WATER_QUALITY,
            Self::WaterMeter => &WATER_METER,
            Self::ColdChain => &COLD_CHAIN,
        }
    }

    pub fn metric(self, key: &str) -> Option<&'static MetricSpec> {
        self.metrics().iter().find(|m| m.key == key)
    }
}

/// A device's narrower valid range for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeOverride {
    pub min: f64,
    pub max: f64,
}

/// A metric as one device accepts it: the type's spec with the device's
/// range applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub spec: &'static MetricSpec,
    pub min: f64,
    pub max: f64,
}

impl Metric {
    pub fn key(&self) -> &'static str {
        self.spec.key
    }
}

/// Checks overrides against `device_type`: known metrics, not boolean,
/// `min < max`, inside the physical range. 422 `invalid_range` otherwise.
pub fn validate_overrides(
    device_type: DeviceType,
    overrides: &BTreeMap<String, RangeOverride>,
) -> Result<(), CoreError> {
    for (key, r) in overrides {
        let Some(spec) = device_type.metric(key) else {
            return Err(CoreError::invalid(
                "invalid_range",
                format!("{} devices have no metric {key:?}", device_type.as_str()),
            ));
        };
        if spec.boolean {
            return Err(CoreError::invalid(
                "invalid_range",
                format!("{key} is 0 or 1; its range cannot change"),
            ));
        }
        if !(r.min.is_finite() && r.max.is_finite() && r.min < r.max && r.min >= spec.min && r.max <= spec.max) {
            return Err(CoreError::invalid(
                "invalid_range",
                format!(
                    "the range of {key} must satisfy {} ≤ min < max ≤ {} ({})",
                    spec.min, spec.max, spec.unit
                ),
            ));
        }
    }
    Ok(())
}

/// The metrics `device_type` accepts with the device's overrides applied
/// (already validated by [`validate_overrides`]).
pub fn effective_metrics(device_type: DeviceType, overrides: &BTreeMap<String, RangeOverride>) -> Vec<Metric> {
    device_type
        .metrics()
        .iter()
        .map(|spec| {
            let o = overrides.get(spec.key).copied();
            Metric {
                spec,
                min: o.map_or(spec.min, |r| r.min),
                max: o.map_or(spec.max, |r| r.max),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_metric_keys_per_type() {
        let keys = |t: DeviceType| t.metrics().iter().map(|m| m.key).collect::<Vec<_>>();
        assert_eq!(keys(DeviceType::SoilMoisture), ["vwc", "soil_temperature"]);
        assert_eq!(
            keys(DeviceType::Weather),
            ["air_temperature", "humidity", "rainfall", "wind_speed"]
        );
        assert_eq!(
            keys(DeviceType::WaterQuality),
            ["ph", "turbidity", "dissolved_oxygen", "residual_chlorine"]
        );
        assert_eq!(keys(DeviceType::WaterMeter), ["flow", "volume"]);
        assert_eq!(
            keys(DeviceType::ColdChain),
            ["temperature", "humidity", "door", "lat", "lon"]
        );
    }

    #[test]
    fn ranges_are_ordered_and_types_round_trip() {
        for t in DeviceType::ALL {
            assert_eq!(DeviceType::parse(t.as_str()).unwrap(), t);
            for m in t.metrics() {
                assert!(m.min < m.max, "{}", m.key);
            }
        }
        assert_eq!(DeviceType::parse("radar").unwrap_err().code(), "invalid_type");
    }

    #[test]
    fn overrides_narrow_but_never_widen() {
        let ok = BTreeMap::from([("vwc".to_string(), RangeOverride { min: 5.0, max: 60.0 })]);
        validate_overrides(DeviceType::SoilMoisture, &ok).unwrap();
        let m = effective_metrics(DeviceType::SoilMoisture, &ok);
        assert_eq!((m[0].min, m[0].max), (5.0, 60.0));
        assert_eq!((m[1].min, m[1].max), (-40.0, 80.0));
        for bad in [
            ("vwc", -1.0, 50.0),
            ("vwc", 10.0, 101.0),
            ("vwc", 50.0, 50.0),
            ("ph", 1.0, 2.0),
        ] {
            let o = BTreeMap::from([(bad.0.to_string(), RangeOverride { min: bad.1, max: bad.2 })]);
            assert_eq!(
                validate_overrides(DeviceType::SoilMoisture, &o).unwrap_err().code(),
                "invalid_range",
                "{bad:?}"
            );
        }
        let door = BTreeMap::from([("door".to_string(), RangeOverride { min: 0.0, max: 0.5 })]);
        assert!(validate_overrides(DeviceType::ColdChain, &door).is_err());
    }
}
