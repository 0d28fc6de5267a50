//! Fuzzes the telemetry payload parsers (ThingsBoard and SenML JSON) with
//! arbitrary bytes for every device type: no panic; the same input gives the
//! same answer; every entry is accepted or refused once; accepted values lie
//! in their metric's range and timestamps in the accepted window; a message
//! refused whole is `malformed_json` or `too_many_points`.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use shuxiang_telemetry::model::{DeviceType, effective_metrics};
use shuxiang_telemetry::payload::{Limits, parse};

const NOW: i64 = 1_764_460_800_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for t in DeviceType::ALL {
        let metrics = effective_metrics(t, &BTreeMap::new());
        let first = parse(data, NOW, &metrics, &limits);
        assert_eq!(first, parse(data, NOW, &metrics, &limits));
        match first {
            Ok(p) => {
                let mut seen: Vec<usize> = p
                    .points
                    .iter()
                    .map(|x| x.index)
                    .chain(p.rejected.iter().map(|r| r.index))
                    .collect();
                let n = seen.len();
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), n, "an entry judged twice");
                for x in &p.points {
                    let m = metrics.iter().find(|m| m.key() == x.metric).expect("a known metric");
                    assert!(x.value >= m.min && x.value <= m.max, "{x:?}");
                    assert!(
                        x.ts_ms >= NOW - limits.max_age_ms && x.ts_ms <= NOW + limits.max_future_ms,
                        "{x:?}"
                    );
                }
            }
            Err(e) => assert!(matches!(e.code(), "malformed_json" | "too_many_points"), "{e}"),
        }
    }
});
