//! 遥测报文 telemetry payloads: turns the bytes a device sent (over MQTT or
//! HTTP) into points, judging each point on its own so one bad value never
//! costs the good ones beside it.
//!
//! Two formats, told apart by shape:
//! - ThingsBoard JSON: an object of metric → value (`{"vwc": 23.4}`, stamped
//!   with the receive time), or `{"ts": <ms since epoch>, "values": {...}}`,
//!   or an array of either.
//! - SenML JSON (RFC 8428): an array of records whose first object has a
//!   SenML field (`bn`, `bt`, `bu`, `bv`, `n`, `v`, `t`, ...). None of the
//!   shipped metric keys is a SenML field name, so the shapes cannot be
//!   confused.
//!
//! SenML rules applied: base fields (`bn`, `bt`, `bu`, `bv`) take effect in
//! the record that carries them and every later one until replaced; the name
//! is `bn` + `n`; the value is `bv` + `v`, or `vb` for boolean metrics; `vs`,
//! `vd` and sums (`s`) are refused as `wrong_type`; the time is `bt` + `t` in
//! seconds, and a resolved time below 2^28 is relative to the receive time
//! (RFC 8428 §4.5.3), otherwise absolute. Unknown fields are ignored unless
//! their name ends in `_` (must-understand, refused). A unit, if given, must
//! be the metric's own (no conversion). The metric is the resolved name's
//! last segment after `:` or `/`, so a device prefix in `bn`
//! (`urn:dev:mac:0024befffe804ff1:`, `devices/42/`) is stripped; which device
//! sent the points is settled by its credential, never by the name.
//!
//! Each candidate point is an entry, numbered in document order from 0: one
//! per metric key in a ThingsBoard object, one per SenML record (a record of
//! base fields only is skipped but keeps its number), one for an array
//! element that is not an object. Rejections name the entry's number and a
//! stable code: `unknown_metric`, `wrong_type`, `timestamp_out_of_range`,
//! `value_out_of_range`. Bytes that are not JSON, or JSON that is neither an
//! object nor an array, reject the whole message (`malformed_json`), as does a
//! message with more entries than allowed (`too_many_points`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use shuxiang_core::CoreError;

use crate::model::Metric;
use crate::store::Retention;

/// SenML times below this are relative to the receive time (RFC 8428 §4.5.3).
const SENML_RELATIVE_LIMIT: f64 = (1u64 << 28) as f64;

/// The SenML field names that mark an array as SenML.
const SENML_FIELDS: [&str; 15] = [
    "bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut",
];

/// Why one point was refused; the stable code is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PointError {
    UnknownMetric,
    WrongType,
    TimestampOutOfRange,
    ValueOutOfRange,
}

impl PointError {
    pub const ALL: [PointError; 4] = [
        Self::UnknownMetric,
        Self::WrongType,
        Self::TimestampOutOfRange,
        Self::ValueOutOfRange,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownMetric => "unknown_metric",
            Self::WrongType => "wrong_type",
            Self::TimestampOutOfRange => "timestamp_out_of_range",
            Self::ValueOutOfRange => "value_out_of_range",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }
}

/// One refused entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub error: PointError,
    pub message: String,
}

/// One accepted point, checked against the device's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPoint {
    /// The entry number (see the module doc).
    pub index: usize,
    pub metric: &'static str,
    pub ts_ms: i64,
    pub value: f64,
}

/// Which format a message was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    ThingsBoard,
    SenMl,
}

/// A message's points and refusals, each in entry order.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub format: Format,
    pub points: Vec<ParsedPoint>,
    pub rejected: Vec<Rejection>,
}

/// What a message may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Points older than this before the receive time are refused; it should
    /// not exceed the raw-point retention, or the point would be stored only
    /// to be dropped.
    pub max_age_ms: i64,
    /// Points this far after the receive time are refused (clock skew
    /// allowance for devices).
    pub max_future_ms: i64,
    /// Entries per message.
    pub max_points: usize,
}

/// The HTTP batch limit of the API contract.
pub const MAX_POINTS: usize = 10_000;

const DAY_MS: i64 = 24 * 3600 * 1000;

impl Limits {
    /// As far back as raw points are kept (ten years when kept for ever), 5
    /// minutes ahead, [`MAX_POINTS`] entries.
    pub fn for_retention(retention: &Retention) -> Self {
        Self {
            max_age_ms: i64::from(retention.raw_days.unwrap_or(3650)) * DAY_MS,
            max_future_ms: 5 * 60 * 1000,
            max_points: MAX_POINTS,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::for_retention(&Retention::default())
    }
}

/// A message refused as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is not ThingsBoard or SenML JSON: {0}")]
    Malformed(String),
    #[error("the payload holds {count} points; at most {max} are accepted per message")]
    TooManyPoints { count: usize, max: usize },
}

impl PayloadError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_json",
            Self::TooManyPoints { .. } => "too_many_points",
        }
    }
}

impl From<PayloadError> for CoreError {
    fn from(e: PayloadError) -> Self {
        match e {
            PayloadError::Malformed(_) => CoreError::malformed("malformed_json", e.to_string()),
            PayloadError::TooManyPoints { .. } => CoreError::invalid("too_many_points", e.to_string()),
        }
    }
}

/// Parses `bytes` for a device accepting `metrics`.
pub fn parse(bytes: &[u8], received_at_ms: i64, metrics: &[Metric], limits: &Limits) -> Result<Parsed, PayloadError> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    let format = match &json {
        Json::Obj(_) => Format::ThingsBoard,
        Json::Arr(items) => {
            let senml = items.iter().find_map(|i| match i {
                Json::Obj(fields) => Some(fields.iter().any(|(k, _)| SENML_FIELDS.contains(&k.as_str()))),
                _ => None,
            });
            if senml == Some(true) {
                Format::SenMl
            } else {
                Format::ThingsBoard
            }
        }
        other => {
            return Err(PayloadError::Malformed(format!(
                "the top level is {}, not an object or an array",
                other.kind()
            )));
        }
    };
    let count = match format {
        Format::ThingsBoard => thingsboard_entries(&json),
        Format::SenMl => match &json {
            Json::Arr(items) => items.len(),
            _ => 0,
        },
    };
    if count > limits.max_points {
        return Err(PayloadError::TooManyPoints {
            count,
            max: limits.max_points,
        });
    }
    let mut out = Collector {
        metrics,
        received_at_ms,
        limits,
        points: Vec::new(),
        rejected: Vec::new(),
        next: 0,
    };
    match format {
        Format::ThingsBoard => out.thingsboard(json),
        Format::SenMl => out.senml(json),
    }
    Ok(Parsed {
        format,
        points: out.points,
        rejected: out.rejected,
    })
}

/// The entries of a ThingsBoard message, counted before any is judged.
fn thingsboard_entries(json: &Json) -> usize {
    fn object(fields: &[(String, Json)]) -> usize {
        if fields.iter().any(|(k, _)| k == "values") {
            fields
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("ts", _) => 0,
                    ("values", Json::Obj(values)) => values.len(),
                    _ => 1,
                })
                .sum()
        } else {
            fields.len()
        }
    }
    match json {
        Json::Obj(fields) => object(fields),
        Json::Arr(items) => items
            .iter()
            .map(|i| match i {
                Json::Obj(fields) => object(fields),
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

/// A ThingsBoard value before it is judged.
enum Stamp {
    At(i64),
    Bad(String),
}

struct Collector<'a> {
    metrics: &'a [Metric],
    received_at_ms: i64,
    limits: &'a Limits,
    points: Vec<ParsedPoint>,
    rejected: Vec<Rejection>,
    next: usize,
}

impl Collector<'_> {
    fn take_index(&mut self) -> usize {
        let i = self.next;
        self.next += 1;
        i
    }

    fn reject(&mut self, index: usize, error: PointError, message: String) {
        self.rejected.push(Rejection { index, error, message });
    }

    fn metric(&self, key: &str) -> Result<Metric, String> {
        self.metrics.iter().find(|m| m.key() == key).copied().ok_or_else(|| {
            let known: Vec<&str> = self.metrics.iter().map(|m| m.key()).collect();
            format!(
                "this device reports no metric {key:?}; its metrics are {}",
                known.join(", ")
            )
        })
    }

    fn check_ts(&self, ts_ms: i64) -> Result<(), String> {
        let earliest = self.received_at_ms.saturating_sub(self.limits.max_age_ms);
        let latest = self.received_at_ms.saturating_add(self.limits.max_future_ms);
        if ts_ms < earliest || ts_ms > latest {
            return Err(format!(
                "timestamp {} is outside the accepted window {} to {}",
                rfc3339(ts_ms),
                rfc3339(earliest),
                rfc3339(latest)
            ));
        }
        Ok(())
    }

    /// Judges one value that has a metric, a stamp and a number; keeps it if
    /// it passes.
    fn judge(&mut self, index: usize, metric: Metric, ts_ms: i64, value: f64) {
        if let Err(m) = self.check_ts(ts_ms) {
            return self.reject(index, PointError::TimestampOutOfRange, m);
        }
        let key = metric.key();
        if metric.spec.boolean && value != 0.0 && value != 1.0 {
            return self.reject(
                index,
                PointError::ValueOutOfRange,
                format!("{key} is 0 or 1 (or true/false), not {value}"),
            );
        }
        if !(value >= metric.min && value <= metric.max) {
            return self.reject(
                index,
                PointError::ValueOutOfRange,
                format!(
                    "{key} {value} is outside its valid range {} to {} {}",
                    metric.min, metric.max, metric.spec.unit
                ),
            );
        }
        self.points.push(ParsedPoint {
            index,
            metric: key,
            ts_ms,
            value,
        });
    }

    // ---- ThingsBoard ----

    fn thingsboard(&mut self, json: Json) {
        match json {
            Json::Obj(fields) => self.tb_object(fields),
            Json::Arr(items) => {
                for item in items {
                    match item {
                        Json::Obj(fields) => self.tb_object(fields),
                        other => {
                            let i = self.take_index();
                            self.reject(
                                i,
                                PointError::WrongType,
                                format!(
                                    "an element of a ThingsBoard array must be an object, not {}",
                                    other.kind()
                                ),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn tb_object(&mut self, fields: Vec<(String, Json)>) {
        if !fields.iter().any(|(k, _)| k == "values") {
            let at = self.received_at_ms;
            for (key, value) in fields {
                self.tb_entry(&key, value, &Stamp::At(at));
            }
            return;
        }
        let stamp = match fields.iter().find(|(k, _)| k == "ts").map(|(_, v)| v) {
            None => Stamp::At(self.received_at_ms),
            Some(Json::Num(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Stamp::At(*n as i64),
            Some(other) => Stamp::Bad(format!(
                "ts must be whole milliseconds since 1970-01-01T00:00:00Z, not {}",
                other.describe()
            )),
        };
        for (key, value) in fields {
            match (key.as_str(), value) {
                ("ts", _) => {}
                ("values", Json::Obj(values)) => {
                    for (k, v) in values {
                        self.tb_entry(&k, v, &stamp);
                    }
                }
                ("values", other) => {
                    let i = self.take_index();
                    self.reject(
                        i,
                        PointError::WrongType,
                        format!("values must be an object of metric → value, not {}", other.kind()),
                    );
                }
                (other, _) => {
                    let i = self.take_index();
                    self.reject(
                        i,
                        PointError::WrongType,
                        format!("{other:?} cannot stand beside ts and values; put metrics inside values"),
                    );
                }
            }
        }
    }

    fn tb_entry(&mut self, key: &str, value: Json, stamp: &Stamp) {
        let index = self.take_index();
        let metric = match self.metric(key) {
            Ok(m) => m,
            Err(m) => return self.reject(index, PointError::UnknownMetric, m),
        };
        let number = match value {
            Json::Num(n) => n,
            Json::Bool(b) if metric.spec.boolean => f64::from(u8::from(b)),
            other => {
                let want = if metric.spec.boolean {
                    "a number or true/false"
                } else {
                    "a number"
                };
                return self.reject(
                    index,
                    PointError::WrongType,
                    format!("{key} must be {want}, not {}", other.describe()),
                );
            }
        };
        match stamp {
            Stamp::At(ts) => self.judge(index, metric, *ts, number),
            Stamp::Bad(m) => self.reject(index, PointError::WrongType, m.clone()),
        }
    }

    // ---- SenML ----

    fn senml(&mut self, json: Json) {
        let Json::Arr(records) = json else { return };
        let mut base = SenmlBase::default();
        for record in records {
            let index = self.take_index();
            let Json::Obj(fields) = record else {
                self.reject(
                    index,
                    PointError::WrongType,
                    format!("a SenML record must be an object, not {}", record.kind()),
                );
                continue;
            };
            if let Err((error, message)) = self.senml_record(index, &fields, &mut base) {
                self.reject(index, error, message);
            }
        }
    }

    /// One record: updates the base fields, then judges its point (if it has
    /// a name or a value; a record of base fields only is skipped).
    fn senml_record(
        &mut self,
        index: usize,
        fields: &[(String, Json)],
        base: &mut SenmlBase,
    ) -> Result<(), (PointError, String)> {
        let wrong = |m: String| (PointError::WrongType, m);
        let mut name: Option<&str> = None;
        let mut unit: Option<&str> = None;
        let mut time = 0.0;
        let mut values: Vec<(&str, &Json)> = Vec::new();
        for (key, value) in fields {
            match (key.as_str(), value) {
                ("bn", Json::Str(s)) => base.name = s.clone(),
                ("bt", Json::Num(n)) => base.time = *n,
                ("bu", Json::Str(s)) => base.unit = Some(s.clone()),
                ("bv", Json::Num(n)) => base.value = *n,
                ("bver", Json::Num(_)) | ("bs", Json::Num(_)) | ("ut", Json::Num(_)) => {}
                ("n", Json::Str(s)) => name = Some(s),
                ("u", Json::Str(s)) => unit = Some(s),
                ("t", Json::Num(n)) => time = *n,
                ("v" | "vb" | "vs" | "vd" | "s", v) => values.push((key.as_str(), v)),
                ("bn" | "bu" | "n" | "u", other) => {
                    return Err(wrong(format!("SenML {key} must be a string, not {}", other.describe())));
                }
                ("bt" | "bv" | "bs" | "bver" | "ut" | "t", other) => {
                    return Err(wrong(format!("SenML {key} must be a number, not {}", other.describe())));
                }
                (k, _) if k.ends_with('_') => {
                    return Err(wrong(format!(
                        "SenML field {k:?} must be understood and is not supported"
                    )));
                }
                _ => {}
            }
        }
        if name.is_none() && values.is_empty() {
            // Only base fields: they apply to the records that follow.
            return Ok(());
        }
        let full = format!("{}{}", base.name, name.unwrap_or(""));
        if !valid_senml_name(&full) {
            return Err((
                PointError::UnknownMetric,
                format!("SenML name {full:?} (bn + n) is empty or has characters RFC 8428 does not allow"),
            ));
        }
        let key = full.rsplit([':', '/']).next().unwrap_or(&full);
        let metric = self.metric(key).map_err(|m| (PointError::UnknownMetric, m))?;
        let value = match values.as_slice() {
            [("v", Json::Num(v))] => base.value + v,
            [("vb", Json::Bool(b))] if metric.spec.boolean => f64::from(u8::from(*b)),
            [("v", other)] => return Err(wrong(format!("SenML v must be a number, not {}", other.describe()))),
            [("vb", _)] => {
                return Err(wrong(format!(
                    "{key} takes a number in v; vb is only for boolean metrics"
                )));
            }
            [("vs" | "vd", _)] => {
                return Err(wrong(format!("{key} takes a number in v, not a string or data value")));
            }
            [("s", _)] => return Err(wrong(format!("{key} takes a value in v; sums (s) are not accepted"))),
            [] => return Err(wrong(format!("the record for {key} carries no value (v or vb)"))),
            _ => return Err(wrong(format!("the record for {key} carries more than one value field"))),
        };
        if let Some(u) = unit.or(base.unit.as_deref())
            && u != metric.spec.unit
            && !metric.spec.senml_units.contains(&u)
        {
            let wanted = metric.spec.senml_units.first().copied().unwrap_or(metric.spec.unit);
            return Err(wrong(format!(
                "{key} is reported in {wanted:?}, not {u:?} (units are not converted)"
            )));
        }
        let resolved = base.time + time;
        let ms = if resolved < SENML_RELATIVE_LIMIT {
            self.received_at_ms as f64 + resolved * 1000.0
        } else {
            resolved * 1000.0
        };
        if !ms.is_finite() || ms.abs() > 9.0e15 {
            return Err((
                PointError::TimestampOutOfRange,
                format!("SenML time {resolved} s is out of any usable range"),
            ));
        }
        self.judge(index, metric, ms.round() as i64, value);
        Ok(())
    }
}

#[derive(Default)]
struct SenmlBase {
    name: String,
    time: f64,
    unit: Option<String>,
    value: f64,
}

/// RFC 8428 §4.5.1: a name starts with a letter or digit and holds only
/// letters, digits, `-`, `:`, `.`, `/` and `_`.
fn valid_senml_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '/' | '_'))
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// A JSON value that keeps object members in document order (entry numbers
/// follow the document, whatever map type serde_json is built with) and
/// keeps repeated keys.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Num(_) => "a number",
            Self::Str(_) => "a string",
            Self::Arr(_) => "an array",
            Self::Obj(_) => "an object",
        }
    }

    /// The kind, with short scalars quoted for the message.
    fn describe(&self) -> String {
        match self {
            Self::Bool(b) => format!("the boolean {b}"),
            Self::Num(n) => format!("the number {n}"),
            Self::Str(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
            other => other.kind().to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Num(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Num(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Num(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            fields.push((k, v));
        }
        Ok(Json::Obj(fields))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{DeviceType, RangeOverride, effective_metrics};

    const NOW: i64 = 1_764_460_800_000; // 2025-11-30T00:00:00Z

    fn soil() -> Vec<Metric> {
        effective_metrics(DeviceType::SoilMoisture, &BTreeMap::new())
    }

    fn run(payload: &str, metrics: &[Metric]) -> Parsed {
        parse(payload.as_bytes(), NOW, metrics, &Limits::default()).unwrap()
    }

    fn codes(p: &Parsed) -> Vec<(usize, &'static str)> {
        p.rejected.iter().map(|r| (r.index, r.error.code())).collect()
    }

    fn pts(p: &Parsed) -> Vec<(&'static str, i64, f64)> {
        p.points.iter().map(|x| (x.metric, x.ts_ms, x.value)).collect()
    }

    #[test]
    fn thingsboard_flat_object_is_stamped_with_receive_time() {
        let p = run(r#"{"vwc": 23.5, "soil_temperature": -2}"#, &soil());
        assert_eq!(p.format, Format::ThingsBoard);
        assert_eq!(pts(&p), [("vwc", NOW, 23.5), ("soil_temperature", NOW, -2.0)]);
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn thingsboard_timestamped_and_arrays() {
        let t1 = NOW - 60_000;
        let payload = format!(r#"[{{"ts": {t1}, "values": {{"vwc": 30, "soil_temperature": 12.25}}}}, {{"vwc": 31}}]"#);
        let p = run(&payload, &soil());
        assert_eq!(
            pts(&p),
            [("vwc", t1, 30.0), ("soil_temperature", t1, 12.25), ("vwc", NOW, 31.0)]
        );
        assert_eq!(p.points.iter().map(|x| x.index).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn bad_points_are_rejected_one_by_one_and_good_ones_kept() {
        let old = NOW - Limits::default().max_age_ms - 1;
        let payload = format!(
            r#"[{{"vwc": 20, "leaf_wetness": 3, "soil_temperature": "warm"}},
                {{"ts": {old}, "values": {{"vwc": 21}}}},
                {{"vwc": 140}}, 7,
                {{"ts": "yesterday", "values": {{"vwc": 22}}}},
                {{"ts": {NOW}, "values": 5, "extra": 1}}]"#
        );
        let p = run(&payload, &soil());
        assert_eq!(pts(&p), [("vwc", NOW, 20.0)]);
        assert_eq!(
            codes(&p),
            [
                (1, "unknown_metric"),
                (2, "wrong_type"),
                (3, "timestamp_out_of_range"),
                (4, "value_out_of_range"),
                (5, "wrong_type"),
                (6, "wrong_type"),
                (7, "wrong_type"),
                (8, "wrong_type"),
            ]
        );
        assert!(p.rejected[0].message.contains("leaf_wetness"), "{:?}", p.rejected[0]);
        assert!(p.rejected[3].message.contains("0 to 100"), "{:?}", p.rejected[3]);
    }

    #[test]
    fn future_window_is_five_minutes() {
        let ok = NOW + 5 * 60 * 1000;
        let late = ok + 1;
        let p = run(
            &format!(r#"[{{"ts": {ok}, "values": {{"vwc": 1}}}}, {{"ts": {late}, "values": {{"vwc": 1}}}}]"#),
            &soil(),
        );
        assert_eq!(pts(&p), [("vwc", ok, 1.0)]);
        assert_eq!(codes(&p), [(1, "timestamp_out_of_range")]);
    }

    #[test]
    fn whole_message_errors() {
        for bad in ["", "{", "not json", "[1,", "42", "\"vwc\"", "null", "{\"vwc\": 1e999}"] {
            let e = parse(bad.as_bytes(), NOW, &soil(), &Limits::default()).unwrap_err();
            assert_eq!(e.code(), "malformed_json", "{bad:?}");
            assert_eq!(CoreError::from(e).code(), "malformed_json");
        }
        let limits = Limits {
            max_points: 2,
            ..Limits::default()
        };
        let e = parse(br#"{"vwc": 1, "soil_temperature": 2, "x": 3}"#, NOW, &soil(), &limits).unwrap_err();
        assert_eq!(e, PayloadError::TooManyPoints { count: 3, max: 2 });
        let two = parse(br#"{"vwc": 1, "x": 3}"#, NOW, &soil(), &limits).unwrap();
        assert_eq!(two.points.len() + two.rejected.len(), 2);
    }

    #[test]
    fn door_takes_booleans_and_zero_or_one() {
        let cold = effective_metrics(DeviceType::ColdChain, &BTreeMap::new());
        let p = run(
            r#"[{"door": true}, {"door": 0}, {"door": 0.5}, {"temperature": true}]"#,
            &cold,
        );
        assert_eq!(pts(&p), [("door", NOW, 1.0), ("door", NOW, 0.0)]);
        assert_eq!(codes(&p), [(2, "value_out_of_range"), (3, "wrong_type")]);
    }

    #[test]
    fn device_overrides_narrow_the_range() {
        let m = effective_metrics(
            DeviceType::SoilMoisture,
            &BTreeMap::from([("vwc".into(), RangeOverride { min: 5.0, max: 60.0 })]),
        );
        let p = run(r#"[{"vwc": 4}, {"vwc": 61}, {"vwc": 60}]"#, &m);
        assert_eq!(pts(&p), [("vwc", NOW, 60.0)]);
        assert_eq!(codes(&p), [(0, "value_out_of_range"), (1, "value_out_of_range")]);
    }

    #[test]
    fn senml_base_fields_and_absolute_times() {
        let bt = (NOW / 1000) as f64;
        let payload = format!(
            r#"[{{"bn": "urn:dev:ow:10e2073a01080063:", "bt": {bt}, "bu": "Cel", "n": "soil_temperature", "v": 21.5}},
                {{"n": "soil_temperature", "t": -60, "v": 21.25}},
                {{"n": "vwc", "u": "%", "t": -120.5, "v": 33}}]"#
        );
        let p = run(&payload, &soil());
        assert_eq!(p.format, Format::SenMl);
        assert_eq!(
            pts(&p),
            [
                ("soil_temperature", NOW, 21.5),
                ("soil_temperature", NOW - 60_000, 21.25),
                ("vwc", NOW - 120_500, 33.0)
            ]
        );
    }

    #[test]
    fn senml_relative_times_below_two_to_the_28() {
        let p = run(
            r#"[{"bn": "devices/42/", "n": "vwc", "v": 10}, {"n": "vwc", "t": -30, "v": 11}, {"bv": 5, "n": "vwc", "v": 1}]"#,
            &soil(),
        );
        assert_eq!(
            pts(&p),
            [("vwc", NOW, 10.0), ("vwc", NOW - 30_000, 11.0), ("vwc", NOW, 6.0)]
        );
        // 2^28 s itself is absolute (1978); one second less is relative
        // (about 8.5 years after receipt). Both lie outside the window.
        let p = run(r#"[{"n": "vwc", "t": 268435456, "v": 1}]"#, &soil());
        assert_eq!(codes(&p), [(0, "timestamp_out_of_range")]);
        assert!(
            p.rejected[0].message.contains("timestamp 1978-07-04T21:24:16.000Z"),
            "{:?}",
            p.rejected
        );
        let p = run(r#"[{"n": "vwc", "t": 268435455, "v": 1}]"#, &soil());
        assert_eq!(codes(&p), [(0, "timestamp_out_of_range")]);
        assert!(p.rejected[0].message.contains("timestamp 2034-"), "{:?}", p.rejected);
        let p = run(r#"[{"n": "vwc", "t": 100, "v": 1}]"#, &soil());
        assert_eq!(pts(&p), [("vwc", NOW + 100_000, 1.0)]);
    }

    #[test]
    fn senml_refuses_strings_data_sums_and_foreign_units() {
        let p = run(
            r#"[{"n": "vwc", "vs": "wet"}, {"n": "vwc", "vd": "AAE="}, {"n": "vwc", "s": 3},
                {"n": "soil_temperature", "u": "K", "v": 290}, {"n": "vwc"}, {"n": "vwc", "v": 1, "vb": true},
                {"n": "vwc", "vb": true}, {"n": "bad name!", "v": 1}, {"n": "vwc", "v": 2, "x_": 1},
                {"n": "rain", "v": 1}, {"n": "vwc", "v": 3, "custom": "ignored"}]"#,
            &soil(),
        );
        assert_eq!(pts(&p), [("vwc", NOW, 3.0)]);
        assert_eq!(
            codes(&p),
            [
                (0, "wrong_type"),
                (1, "wrong_type"),
                (2, "wrong_type"),
                (3, "wrong_type"),
                (4, "wrong_type"),
                (5, "wrong_type"),
                (6, "wrong_type"),
                (7, "unknown_metric"),
                (8, "wrong_type"),
                (9, "unknown_metric"),
            ]
        );
    }

    #[test]
    fn senml_base_only_records_keep_their_number() {
        let p = run(r#"[{"bn": "d1:"}, {"n": "vwc", "v": 7}]"#, &soil());
        assert_eq!(p.points[0].index, 1);
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn door_in_senml_uses_vb() {
        let cold = effective_metrics(DeviceType::ColdChain, &BTreeMap::new());
        let p = run(
            r#"[{"bn": "truck7/", "n": "door", "vb": true}, {"n": "lat", "u": "lat", "v": 28.68}]"#,
            &cold,
        );
        assert_eq!(pts(&p), [("door", NOW, 1.0), ("lat", NOW, 28.68)]);
    }
}
