//! Property tests of the payload parsers: generated ThingsBoard and SenML
//! messages, with bad entries mixed in at random places, parse back to
//! exactly the good points and exactly the refusals put in; arbitrary bytes
//! and arbitrary JSON never panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use shuxiang_telemetry::model::{DeviceType, Metric, effective_metrics};
use shuxiang_telemetry::payload::{Format, Limits, PointError, parse};

const NOW: i64 = 1_764_460_800_000;

fn metrics(t: DeviceType) -> Vec<Metric> {
    effective_metrics(t, &BTreeMap::new())
}

/// A good point: metric index, value in hundredths inside the range, and an
/// age in ms inside the window (negative: in the future).
#[derive(Debug, Clone)]
struct Good {
    metric: usize,
    hundredths: i64,
    age_ms: i64,
}

/// What a generated entry is meant to be.
#[derive(Debug, Clone)]
enum Entry {
    Good(Good),
    UnknownMetric,
    StringValue(usize),
    TooHigh(usize, u32),
    TooOld(usize),
    TooNew(usize),
}

fn entry() -> impl Strategy<Value = Entry> {
    let good = (0usize..5, 0i64..=10_000, -299_000i64..=86_400_000).prop_map(|(metric, h, age_ms)| {
        Entry::Good(Good {
            metric,
            hundredths: h,
            age_ms,
        })
    });
    prop_oneof![
        6 => good,
        1 => Just(Entry::UnknownMetric),
        1 => (0usize..5).prop_map(Entry::StringValue),
        1 => (0usize..5, 1u32..1000).prop_map(|(m, d)| Entry::TooHigh(m, d)),
        1 => (0usize..5).prop_map(Entry::TooOld),
        1 => (0usize..5).prop_map(Entry::TooNew),
    ]
}

/// The value of a good point: a fraction of the way through the range, in
/// hundredths, so it prints and parses back exactly.
fn value_of(m: &Metric, g: &Good) -> f64 {
    if m.spec.boolean {
        return (g.hundredths % 2) as f64;
    }
    let span = ((m.max - m.min) * 100.0).floor() as i64;
    let h = (m.min * 100.0).ceil() as i64 + g.hundredths * span / 10_000;
    h as f64 / 100.0
}

/// Resolves an entry against a device's metrics: (metric key, value, ts) it
/// should produce, or the refusal it should get.
fn expected(ms: &[Metric], e: &Entry, limits: &Limits) -> (String, Value, i64, Option<PointError>) {
    let pick = |i: usize| ms[i % ms.len()];
    match e {
        Entry::Good(g) => {
            let m = pick(g.metric);
            (m.key().into(), json!(value_of(&m, g)), NOW - g.age_ms, None)
        }
        Entry::UnknownMetric => ("no_such_metric".into(), json!(1), NOW, Some(PointError::UnknownMetric)),
        Entry::StringValue(i) => (pick(*i).key().into(), json!("12.5"), NOW, Some(PointError::WrongType)),
        Entry::TooHigh(i, d) => {
            let m = pick(*i);
            (
                m.key().into(),
                json!(m.max + f64::from(*d)),
                NOW,
                Some(PointError::ValueOutOfRange),
            )
        }
        Entry::TooOld(i) => {
            let m = pick(*i);
            (
                m.key().into(),
                json!(m.min),
                NOW - limits.max_age_ms - 1,
                Some(PointError::TimestampOutOfRange),
            )
        }
        Entry::TooNew(i) => {
            let m = pick(*i);
            (
                m.key().into(),
                json!(m.min),
                NOW + limits.max_future_ms + 1,
                Some(PointError::TimestampOutOfRange),
            )
        }
    }
}

fn device_type() -> impl Strategy<Value = DeviceType> {
    proptest::sample::select(DeviceType::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// ThingsBoard arrays mixing the flat form (receive time) and the
    /// timestamped form keep every good point exactly and refuse every bad
    /// one with its code at its index.
    #[test]
    fn thingsboard_round_trip(t in device_type(), entries in prop::collection::vec((entry(), any::<bool>()), 0..60)) {
        let ms = metrics(t);
        let limits = Limits::default();
        let mut doc = Vec::new();
        let mut want_points = Vec::new();
        let mut want_rejected = Vec::new();
        for (i, (e, flat)) in entries.iter().enumerate() {
            let (key, value, ts, err) = expected(&ms, e, &limits);
            // The flat form is stamped with the receive time.
            let ts = if *flat { NOW } else { ts };
            let err = if *flat && err == Some(PointError::TimestampOutOfRange) { None } else { err };
            if *flat {
                doc.push(json!({key.clone(): value.clone()}));
            } else {
                doc.push(json!({"ts": ts, "values": {key.clone(): value.clone()}}));
            }
            match err {
                None => want_points.push((i, key, ts, value.as_f64().unwrap())),
                Some(code) => want_rejected.push((i, code)),
            }
        }
        let bytes = serde_json::to_vec(&Value::Array(doc)).unwrap();
        let parsed = parse(&bytes, NOW, &ms, &limits).unwrap();
        prop_assert_eq!(parsed.format, Format::ThingsBoard);
        let got: Vec<(usize, String, i64, f64)> =
            parsed.points.iter().map(|p| (p.index, p.metric.to_string(), p.ts_ms, p.value)).collect();
        prop_assert_eq!(got, want_points);
        let got: Vec<(usize, PointError)> = parsed.rejected.iter().map(|r| (r.index, r.error)).collect();
        prop_assert_eq!(got, want_rejected);
        prop_assert!(parsed.rejected.iter().all(|r| !r.message.is_empty()));
    }

    /// SenML packs with a base name prefix, a base time (absolute) or none
    /// (times relative to receipt) resolve to the same points.
    #[test]
    fn senml_round_trip(
        t in device_type(),
        entries in prop::collection::vec(entry(), 1..60),
        prefix in proptest::sample::select(vec!["", "urn:dev:ow:10e2073a01080063:", "devices/42/"]),
        absolute in any::<bool>(),
    ) {
        let ms = metrics(t);
        let limits = Limits::default();
        let base_s = NOW / 1000 - 86_400;
        let mut doc = Vec::new();
        let mut want_points = Vec::new();
        let mut want_rejected = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let (key, value, ts, err) = expected(&ms, e, &limits);
            let t_field = if absolute {
                (ts - base_s * 1000) as f64 / 1000.0
            } else {
                (ts - NOW) as f64 / 1000.0
            };
            let mut rec = json!({"n": key, "t": t_field});
            if i == 0 {
                rec["bn"] = json!(prefix);
                if absolute {
                    rec["bt"] = json!(base_s);
                }
            }
            match &value {
                Value::String(s) => rec["vs"] = json!(s),
                Value::Number(_) => rec["v"] = value.clone(),
                _ => unreachable!(),
            }
            doc.push(rec);
            match err {
                None => want_points.push((i, key, ts, value.as_f64().unwrap())),
                Some(code) => want_rejected.push((i, code)),
            }
        }
        let bytes = serde_json::to_vec(&Value::Array(doc)).unwrap();
        let parsed = parse(&bytes, NOW, &ms, &limits).unwrap();
        prop_assert_eq!(parsed.format, Format::SenMl);
        let got: Vec<(usize, String, i64, f64)> =
            parsed.points.iter().map(|p| (p.index, p.metric.to_string(), p.ts_ms, p.value)).collect();
        prop_assert_eq!(got, want_points);
        let got: Vec<(usize, PointError)> = parsed.rejected.iter().map(|r| (r.index, r.error)).collect();
        prop_assert_eq!(got, want_rejected);
    }

    /// Any bytes: an answer, never a panic; a message refused whole is
    /// `malformed_json`.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let ms = metrics(DeviceType::ColdChain);
        if let Err(e) = parse(&bytes, NOW, &ms, &Limits::default()) {
            prop_assert_eq!(e.code(), "malformed_json");
        }
    }

    /// Any JSON: every entry is either accepted or refused once, with
    /// distinct indices, and accepted values lie in their metric's range.
    #[test]
    fn arbitrary_json_is_judged_entry_by_entry(v in json_value()) {
        let ms = metrics(DeviceType::ColdChain);
        let bytes = serde_json::to_vec(&v).unwrap();
        match parse(&bytes, NOW, &ms, &Limits::default()) {
            Ok(p) => {
                let mut seen: Vec<usize> = p.points.iter().map(|x| x.index).chain(p.rejected.iter().map(|r| r.index)).collect();
                let n = seen.len();
                seen.sort_unstable();
                seen.dedup();
                prop_assert_eq!(seen.len(), n);
                for x in &p.points {
                    let m = ms.iter().find(|m| m.key() == x.metric).unwrap();
                    prop_assert!(x.value >= m.min && x.value <= m.max);
                }
            }
            Err(e) => prop_assert!(matches!(v, Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)), "{e}"),
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let key = proptest::sample::select(vec![
        "ts",
        "values",
        "temperature",
        "door",
        "lat",
        "n",
        "bn",
        "bt",
        "v",
        "vb",
        "vs",
        "t",
        "u",
        "x_",
        "zz",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1e13f64..1e13).prop_map(|f| json!(f)),
        (-100i64..100).prop_map(|i| json!(i)),
        Just(json!(NOW)),
        "[a-z:/_]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}
