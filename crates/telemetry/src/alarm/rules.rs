//! 告警规则 alarm rules and their evaluation, free of I/O: given a rule's
//! condition, the state of one (rule, device) pair and a reading (or the
//! current time, for "not reporting"), decide whether an alarm is raised or
//! cleared. The engine keeps the states and persists the changes.
//!
//! Conditions:
//! - threshold above/below a limit with hysteresis `h`: raised when the
//!   value passes the limit (for at least `for_seconds`, measured between
//!   readings: raised on the first reading at least that long after the
//!   first one past the limit, with none back inside in between), cleared
//!   only when it is back past `limit ∓ h`, so a signal wandering inside the
//!   band never flaps;
//! - rate of change: |Δvalue| / Δt between the oldest and newest reading of
//!   a sliding window, per minute, above a limit;
//! - not reporting: no reading at all for `minutes` (checked by the offline
//!   detector against the time readings were received);
//! - valid range: a value outside `[min, max]`.
//!
//! Readings older than the last one evaluated for a pair are ignored: late
//! data must not reopen a decision already taken on newer data.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use shuxiang_core::{CoreError, RegionCode};

use super::{DeviceRef, Reading};

/// The device types alarm rules can name (the issue's shipped types).
pub const DEVICE_TYPES: &[&str] = &["soil_moisture", "weather", "water_quality", "water_meter", "cold_chain"];

/// Longest debounce, rate window: one day.
const MAX_SECONDS: u32 = 86_400;
/// Longest "not reporting" timeout: one week.
const MAX_MINUTES: u32 = 10_080;
/// Readings a rate-of-change window keeps at most, so a chatty device
/// cannot grow it without bound.
const MAX_WINDOW_READINGS: usize = 4_096;

/// 告警级别 how serious an alarm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Warning,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Critical, Self::Major, Self::Minor, Self::Warning];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Major => "major",
            Self::Minor => "minor",
            Self::Warning => "warning",
        }
    }

    pub fn parse_stored(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| CoreError::Internal(format!("stored severity {s:?} is unknown")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Above,
    Below,
}

/// What makes an alarm, as stored and as sent over the API
/// (`{"kind": "threshold", "metric": "vwc", ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    Threshold {
        metric: String,
        direction: Direction,
        limit: f64,
        #[serde(default)]
        hysteresis: f64,
        #[serde(default)]
        for_seconds: u32,
    },
    RateOfChange {
        metric: String,
        /// Largest allowed |Δvalue| per minute.
        limit_per_minute: f64,
        window_seconds: u32,
    },
    NotReporting {
        minutes: u32,
    },
    ValidRange {
        metric: String,
        min: f64,
        max: f64,
    },
}

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Threshold { .. } => "threshold",
            Self::RateOfChange { .. } => "rate_of_change",
            Self::NotReporting { .. } => "not_reporting",
            Self::ValidRange { .. } => "valid_range",
        }
    }

    /// The metric the condition watches; none for "not reporting".
    pub fn metric(&self) -> Option<&str> {
        match self {
            Self::Threshold { metric, .. } | Self::RateOfChange { metric, .. } | Self::ValidRange { metric, .. } => {
                Some(metric)
            }
            Self::NotReporting { .. } => None,
        }
    }

    /// For "not reporting": how long silence may last, in milliseconds.
    pub fn silence_limit_ms(&self) -> Option<i64> {
        match self {
            Self::NotReporting { minutes } => Some(i64::from(*minutes) * 60_000),
            _ => None,
        }
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |message: String| Err(CoreError::invalid("invalid_condition", message));
        if let Some(metric) = self.metric() {
            let ok = (1..=64).contains(&metric.len())
                && metric
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return bad(format!("metric {metric:?} must be 1–64 characters of a–z, 0–9 and '_'"));
            }
        }
        match self {
            Self::Threshold {
                limit,
                hysteresis,
                for_seconds,
                ..
            } => {
                if !limit.is_finite() {
                    return bad("limit must be a finite number".into());
                }
                if !hysteresis.is_finite() || *hysteresis < 0.0 {
                    return bad("hysteresis must be a finite number ≥ 0".into());
                }
                if *for_seconds > MAX_SECONDS {
                    return bad(format!("for_seconds must be at most {MAX_SECONDS}"));
                }
            }
            Self::RateOfChange {
                limit_per_minute,
                window_seconds,
                ..
            } => {
                if !limit_per_minute.is_finite() || *limit_per_minute <= 0.0 {
                    return bad("limit_per_minute must be a finite number > 0".into());
                }
                if !(1..=MAX_SECONDS).contains(window_seconds) {
                    return bad(format!("window_seconds must be 1 to {MAX_SECONDS}"));
                }
            }
            Self::NotReporting { minutes } => {
                if !(1..=MAX_MINUTES).contains(minutes) {
                    return bad(format!("minutes must be 1 to {MAX_MINUTES}"));
                }
            }
            Self::ValidRange { min, max, .. } => {
                if !min.is_finite() || !max.is_finite() || min >= max {
                    return bad("min and max must be finite numbers with min < max".into());
                }
            }
        }
        Ok(())
    }
}

/// What a rule applies to: every device of a type within the rule's
/// region, or one device (which must lie in the rule's region too).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    DeviceType(String),
    Device(i64),
}

/// A stored rule, as the engine evaluates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub name: String,
    pub region: RegionCode,
    pub target: Target,
    pub severity: Severity,
    pub condition: Condition,
    pub enabled: bool,
}

impl Rule {
    /// Whether the rule watches `device`. A device rule still needs the
    /// device inside the rule's region: the region is what the rule's
    /// author was allowed to act on.
    pub fn applies_to(&self, device: &DeviceRef) -> bool {
        self.enabled
            && self.region.covers(&device.village)
            && match &self.target {
                Target::DeviceType(t) => *t == device.device_type,
                Target::Device(id) => *id == device.id,
            }
    }
}

/// The evaluation state of one (rule, device) pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalState {
    /// An alarm is open for the pair.
    pub raised: bool,
    /// Since when a threshold has been passed without the debounce elapsed.
    pending_since: Option<i64>,
    last_ts: Option<i64>,
    /// Rate of change: (time, value) within the window, oldest first.
    window: VecDeque<(i64, f64)>,
}

impl EvalState {
    pub fn raised(raised: bool) -> Self {
        Self {
            raised,
            ..Self::default()
        }
    }
}

/// A change of a pair's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Raise { value: Option<f64>, message: String },
    Clear { value: Option<f64> },
}

fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Evaluates one reading against a condition. Readings of other metrics
/// leave metric conditions alone; any reading ends "not reporting".
pub fn evaluate(cond: &Condition, st: &mut EvalState, r: &Reading) -> Option<Change> {
    if let Condition::NotReporting { .. } = cond {
        return st.raised.then(|| {
            st.raised = false;
            Change::Clear { value: None }
        });
    }
    if cond.metric() != Some(r.metric.as_str()) {
        return None;
    }
    if st.last_ts.is_some_and(|last| r.ts_ms < last) {
        return None;
    }
    st.last_ts = Some(r.ts_ms);
    let v = r.value;
    match cond {
        Condition::Threshold {
            metric,
            direction,
            limit,
            hysteresis,
            for_seconds,
        } => {
            let (past, back, word, clear_at) = match direction {
                Direction::Above => (v > *limit, v <= limit - hysteresis, "above", limit - hysteresis),
                Direction::Below => (v < *limit, v >= limit + hysteresis, "below", limit + hysteresis),
            };
            if st.raised {
                if back {
                    st.raised = false;
                    return Some(Change::Clear { value: Some(v) });
                }
                return None;
            }
            if !past {
                st.pending_since = None;
                return None;
            }
            let since = *st.pending_since.get_or_insert(r.ts_ms);
            if r.ts_ms - since < i64::from(*for_seconds) * 1000 {
                return None;
            }
            st.pending_since = None;
            st.raised = true;
            Some(Change::Raise {
                value: Some(v),
                message: format!(
                    "{metric} {} {word} {} (clears at {})",
                    fmt_num(v),
                    fmt_num(*limit),
                    fmt_num(clear_at)
                ),
            })
        }
        Condition::RateOfChange {
            metric,
            limit_per_minute,
            window_seconds,
        } => {
            if st.window.back().is_some_and(|&(t, _)| t == r.ts_ms) {
                st.window.pop_back();
            }
            st.window.push_back((r.ts_ms, v));
            let from = r.ts_ms - i64::from(*window_seconds) * 1000;
            while st.window.front().is_some_and(|&(t, _)| t < from) || st.window.len() > MAX_WINDOW_READINGS {
                st.window.pop_front();
            }
            let (&(t0, v0), &(t1, v1)) = (st.window.front()?, st.window.back()?);
            let rate = if t1 > t0 {
                (v1 - v0).abs() / ((t1 - t0) as f64 / 60_000.0)
            } else {
                0.0
            };
            let over = rate > *limit_per_minute;
            match (st.raised, over) {
                (false, true) => {
                    st.raised = true;
                    Some(Change::Raise {
                        value: Some(v),
                        message: format!(
                            "{metric} changing {}/min, faster than {}/min",
                            fmt_num(rate),
                            fmt_num(*limit_per_minute)
                        ),
                    })
                }
                (true, false) => {
                    st.raised = false;
                    Some(Change::Clear { value: Some(v) })
                }
                _ => None,
            }
        }
        Condition::ValidRange { metric, min, max } => {
            let inside = v >= *min && v <= *max;
            match (st.raised, inside) {
                (false, false) => {
                    st.raised = true;
                    Some(Change::Raise {
                        value: Some(v),
                        message: format!(
                            "{metric} {} outside the valid range {}–{}",
                            fmt_num(v),
                            fmt_num(*min),
                            fmt_num(*max)
                        ),
                    })
                }
                (true, true) => {
                    st.raised = false;
                    Some(Change::Clear { value: Some(v) })
                }
                _ => None,
            }
        }
        Condition::NotReporting { .. } => None,
    }
}

/// "Not reporting": raised once nothing was received for the condition's
/// timeout (`now - last_seen ≥ timeout`).
pub fn check_silence(cond: &Condition, st: &mut EvalState, last_seen_ms: i64, now_ms: i64) -> Option<Change> {
    let limit = cond.silence_limit_ms()?;
    if st.raised || now_ms - last_seen_ms < limit {
        return None;
    }
    st.raised = true;
    let minutes = (now_ms - last_seen_ms) / 60_000;
    Some(Change::Raise {
        value: None,
        message: format!("no data for {minutes} min (limit {} min)", limit / 60_000),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn reading(metric: &str, ts_ms: i64, value: f64) -> Reading {
        Reading {
            metric: metric.into(),
            ts_ms,
            value,
        }
    }

    fn above(limit: f64, hysteresis: f64, for_seconds: u32) -> Condition {
        Condition::Threshold {
            metric: "t".into(),
            direction: Direction::Above,
            limit,
            hysteresis,
            for_seconds,
        }
    }

    /// Feeds values one second apart; returns "R"/"C"/"." per reading.
    fn run(cond: &Condition, values: &[f64]) -> String {
        let mut st = EvalState::default();
        values
            .iter()
            .enumerate()
            .map(
                |(i, &v)| match evaluate(cond, &mut st, &reading("t", i as i64 * 1000, v)) {
                    Some(Change::Raise { .. }) => 'R',
                    Some(Change::Clear { .. }) => 'C',
                    None => '.',
                },
            )
            .collect()
    }

    #[test]
    fn threshold_raises_above_and_clears_only_below_the_band() {
        let c = above(30.0, 2.0, 0);
        assert_eq!(run(&c, &[29.0, 30.0, 30.5, 29.0, 28.5, 28.0, 31.0]), "..R..CR");
    }

    #[test]
    fn threshold_below_mirrors_above() {
        let c = Condition::Threshold {
            metric: "t".into(),
            direction: Direction::Below,
            limit: 15.0,
            hysteresis: 3.0,
            for_seconds: 0,
        };
        assert_eq!(run(&c, &[16.0, 14.9, 17.0, 18.0, 14.0]), ".R.CR");
    }

    #[test]
    fn debounce_needs_the_value_past_the_limit_for_the_whole_duration() {
        let c = above(30.0, 0.0, 3);
        // Past at 1 s, back at 3 s (restarts), past from 4 s, raised at 7 s.
        assert_eq!(run(&c, &[20.0, 31.0, 31.0, 29.0, 31.0, 31.0, 31.0, 31.0]), ".......R");
    }

    #[test]
    fn other_metrics_and_late_readings_are_ignored() {
        let c = above(30.0, 0.0, 0);
        let mut st = EvalState::default();
        assert_eq!(evaluate(&c, &mut st, &reading("other", 0, 99.0)), None);
        assert!(matches!(
            evaluate(&c, &mut st, &reading("t", 10, 31.0)),
            Some(Change::Raise { .. })
        ));
        assert_eq!(evaluate(&c, &mut st, &reading("t", 5, 0.0)), None);
        assert!(st.raised);
    }

    #[test]
    fn rate_of_change_over_the_window() {
        let c = Condition::RateOfChange {
            metric: "t".into(),
            limit_per_minute: 6.0,
            window_seconds: 60,
        };
        let mut st = EvalState::default();
        let mut at = |ts: i64, v: f64| evaluate(&c, &mut st, &reading("t", ts, v));
        assert_eq!(at(0, 10.0), None);
        // 5 per minute: under the limit.
        assert_eq!(at(30_000, 12.5), None);
        // 10 per minute over the window (0 s → 60 s): raised.
        assert!(matches!(at(60_000, 20.0), Some(Change::Raise { .. })));
        // Window now 30 s … 90 s: 12.5 → 20 over 60 s = 7.5/min, still raised.
        assert_eq!(at(90_000, 20.0), None);
        // Window 60 s … 120 s: flat, cleared.
        assert!(matches!(at(120_000, 20.0), Some(Change::Clear { .. })));
    }

    #[test]
    fn valid_range_and_not_reporting() {
        let c = Condition::ValidRange {
            metric: "t".into(),
            min: 6.5,
            max: 8.5,
        };
        assert_eq!(run(&c, &[7.0, 9.0, 9.5, 8.5, 6.4, f64::NAN, 7.0]), ".R.CR.C");

        let silent = Condition::NotReporting { minutes: 5 };
        let mut st = EvalState::default();
        assert_eq!(check_silence(&silent, &mut st, 0, 299_999), None);
        assert!(matches!(
            check_silence(&silent, &mut st, 0, 300_000),
            Some(Change::Raise { value: None, .. })
        ));
        assert_eq!(check_silence(&silent, &mut st, 0, 900_000), None);
        assert_eq!(
            evaluate(&silent, &mut st, &reading("any", 900_000, 1.0)),
            Some(Change::Clear { value: None })
        );
        assert!(!st.raised);
    }

    #[test]
    fn conditions_are_validated() {
        let bad = [
            above(f64::NAN, 0.0, 0),
            above(1.0, -1.0, 0),
            above(1.0, 0.0, MAX_SECONDS + 1),
            Condition::ValidRange {
                metric: "t".into(),
                min: 2.0,
                max: 1.0,
            },
            Condition::NotReporting { minutes: 0 },
            Condition::RateOfChange {
                metric: "t".into(),
                limit_per_minute: 0.0,
                window_seconds: 60,
            },
            Condition::ValidRange {
                metric: "Bad Metric".into(),
                min: 0.0,
                max: 1.0,
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?} must be refused");
        }
        assert!(above(1.0, 0.5, 60).validate().is_ok());
    }

    #[test]
    fn rules_apply_by_type_or_device_within_their_region() {
        let device = DeviceRef {
            id: 7,
            device_type: "weather".into(),
            village: RegionCode::parse("360102002001").unwrap(),
            name: "站".into(),
            owner_user_id: None,
        };
        let rule = |region: &str, target: Target| Rule {
            id: 1,
            name: "r".into(),
            region: RegionCode::parse(region).unwrap(),
            target,
            severity: Severity::Major,
            condition: Condition::NotReporting { minutes: 1 },
            enabled: true,
        };
        assert!(rule("360102", Target::DeviceType("weather".into())).applies_to(&device));
        assert!(!rule("360102", Target::DeviceType("water_meter".into())).applies_to(&device));
        assert!(!rule("360103", Target::DeviceType("weather".into())).applies_to(&device));
        assert!(rule("36", Target::Device(7)).applies_to(&device));
        assert!(!rule("36", Target::Device(8)).applies_to(&device));
        assert!(!rule("360103", Target::Device(7)).applies_to(&device));
        let mut off = rule("36", Target::Device(7));
        off.enabled = false;
        assert!(!off.applies_to(&device));
    }

    proptest! {
        /// Once raised, a signal that stays above limit − h never clears; in
        /// normal state, one that stays at or under the limit never raises.
        #[test]
        fn hysteresis_never_flaps_inside_the_band(
            limit in -100.0f64..100.0,
            h in 0.1f64..20.0,
            fractions in proptest::collection::vec(0.001f64..1.0, 1..200),
        ) {
            let c = above(limit, h, 0);
            let band: Vec<f64> = fractions.iter().map(|f| limit - h + f * h).collect();
            let mut raised = vec![limit + 1.0];
            raised.extend(&band);
            prop_assert_eq!(run(&c, &raised), format!("R{}", ".".repeat(band.len())));
            let mut st = EvalState::default();
            for (i, v) in band.iter().enumerate() {
                prop_assert_eq!(evaluate(&c, &mut st, &reading("t", i as i64, *v)), None);
            }
        }

        /// Any signal: changes alternate raise/clear starting with a raise, a
        /// raise happens only past the limit and a clear only past the band.
        #[test]
        fn changes_alternate_and_respect_the_band(
            limit in -50.0f64..50.0,
            h in 0.0f64..10.0,
            values in proptest::collection::vec(-100.0f64..100.0, 1..300),
        ) {
            let c = above(limit, h, 0);
            let mut st = EvalState::default();
            let mut expect_raise = true;
            for (i, v) in values.iter().enumerate() {
                match evaluate(&c, &mut st, &reading("t", i as i64, *v)) {
                    Some(Change::Raise { .. }) => {
                        prop_assert!(expect_raise);
                        prop_assert!(*v > limit);
                        expect_raise = false;
                    }
                    Some(Change::Clear { .. }) => {
                        prop_assert!(!expect_raise);
                        prop_assert!(*v <= limit - h);
                        expect_raise = true;
                    }
                    None => {}
                }
                prop_assert_eq!(st.raised, !expect_raise);
            }
        }
    }
}
