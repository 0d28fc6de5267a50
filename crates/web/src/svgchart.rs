//! Time-series charts drawn on the server as SVG, so a village official's
//! phone sees a device's readings without a charting script.
//!
//! A chart is a line of values over time, optionally with the min–max band
//! of rolled-up buckets behind it and horizontal reference lines (alarm
//! thresholds, the edges of a cold-chain band). Times are labelled in China
//! Standard Time (UTC+8), the time every user of the platform reads.

use std::fmt::Write as _;

use crate::svgmap::escape;

/// Width and height of the chart's viewBox, in pixels.
pub const CHART_WIDTH: f64 = 720.0;
pub const CHART_HEIGHT: f64 = 240.0;
/// Room for the value labels on the left and the time labels below.
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 24.0;
/// China Standard Time, in milliseconds east of UTC.
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// One value of a series at a time (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartPoint {
    pub ts_ms: i64,
    pub value: f64,
    /// The bucket's extremes when the point is a roll-up.
    pub band: Option<(f64, f64)>,
}

/// A horizontal line across the chart with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceLine {
    pub value: f64,
    pub label: String,
}

/// What to draw: the time window is given, not taken from the points, so an
/// empty stretch of the window shows as empty rather than being squeezed out.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    pub from_ms: i64,
    pub to_ms: i64,
    pub points: &'a [ChartPoint],
    pub references: &'a [ReferenceLine],
    pub unit: &'a str,
    /// Shown in the middle when there is nothing to draw.
    pub empty_text: &'a str,
}

/// The chart as an `<svg>` element.
pub fn render(chart: &Chart) -> String {
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img">"#
    );
    let to_ms = chart.to_ms.max(chart.from_ms + 1);
    let Some((lo, hi)) = value_range(chart) else {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" class="empty">{}</text></svg>"#,
            CHART_WIDTH / 2.0,
            CHART_HEIGHT / 2.0,
            escape(chart.empty_text)
        );
        return svg;
    };
    let ticks = nice_ticks(lo, hi, 5);
    let (lo, hi) = (ticks[0].min(lo), ticks[ticks.len() - 1].max(hi));
    let scale = Scale {
        from_ms: chart.from_ms,
        to_ms,
        lo,
        hi,
    };

    svg.push_str(r#"<g class="grid">"#);
    for t in &ticks {
        let y = scale.y(*t);
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            CHART_WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            format_value(*t, &ticks)
        );
    }
    for (ts, label) in time_ticks(chart.from_ms, to_ms) {
        let x = scale.x(ts);
        // A label centred this close to the right edge would be cut off.
        if x > CHART_WIDTH - RIGHT - 18.0 {
            continue;
        }
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            CHART_HEIGHT - BOTTOM,
            CHART_HEIGHT - 6.0
        );
    }
    if !chart.unit.is_empty() {
        let _ = write!(svg, r#"<text x="4" y="12" class="unit">{}</text>"#, escape(chart.unit));
    }
    svg.push_str("</g>");

    let bands: Vec<_> = chart
        .points
        .iter()
        .filter_map(|p| p.band.map(|b| (p.ts_ms, b)))
        .collect();
    if !bands.is_empty() {
        svg.push_str(r#"<path class="band" d=""#);
        for (i, (ts, (_, max))) in bands.iter().enumerate() {
            let _ = write!(
                svg,
                "{}{:.1},{:.1}",
                if i == 0 { 'M' } else { 'L' },
                scale.x(*ts),
                scale.y(*max)
            );
        }
        for (ts, (min, _)) in bands.iter().rev() {
            let _ = write!(svg, "L{:.1},{:.1}", scale.x(*ts), scale.y(*min));
        }
        svg.push_str(r#"Z"/>"#);
    }

    for r in chart.references {
        let y = scale.y(r.value);
        let _ = write!(
            svg,
            r#"<line class="reference" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="reference" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            CHART_WIDTH - RIGHT,
            CHART_WIDTH - RIGHT - 2.0,
            y - 3.0,
            escape(&r.label)
        );
    }

    if !chart.points.is_empty() {
        svg.push_str(r#"<path class="line" d=""#);
        for (i, p) in chart.points.iter().enumerate() {
            let _ = write!(
                svg,
                "{}{:.1},{:.1}",
                if i == 0 { 'M' } else { 'L' },
                scale.x(p.ts_ms),
                scale.y(p.value)
            );
        }
        svg.push_str(r#""/>"#);
        if chart.points.len() == 1 {
            let p = chart.points[0];
            let _ = write!(
                svg,
                r#"<circle class="dot" cx="{:.1}" cy="{:.1}" r="3"/>"#,
                scale.x(p.ts_ms),
                scale.y(p.value)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

struct Scale {
    from_ms: i64,
    to_ms: i64,
    lo: f64,
    hi: f64,
}

impl Scale {
    fn x(&self, ts_ms: i64) -> f64 {
        let span = (self.to_ms - self.from_ms) as f64;
        LEFT + (ts_ms.clamp(self.from_ms, self.to_ms) - self.from_ms) as f64 / span * (CHART_WIDTH - LEFT - RIGHT)
    }

    fn y(&self, value: f64) -> f64 {
        let span = if self.hi > self.lo { self.hi - self.lo } else { 1.0 };
        CHART_HEIGHT - BOTTOM - (value - self.lo) / span * (CHART_HEIGHT - BOTTOM - TOP)
    }
}

/// The smallest and largest value to show: points, their bands and the
/// reference lines, so a threshold is always on the chart.
fn value_range(chart: &Chart) -> Option<(f64, f64)> {
    if chart.points.is_empty() {
        return None;
    }
    let values = chart
        .points
        .iter()
        .flat_map(|p| {
            let (a, b) = p.band.unwrap_or((p.value, p.value));
            [p.value, a, b]
        })
        .chain(chart.references.iter().map(|r| r.value))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return None;
    }
    // A flat series still needs a visible range around it.
    Some(if hi - lo < 1e-9 { (lo - 1.0, hi + 1.0) } else { (lo, hi) })
}

/// About `count` round tick values (1, 2 or 5 × 10ⁿ apart) covering lo..hi.
fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let raw = (hi - lo) / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Tick labels with as many decimals as the tick spacing needs.
fn format_value(v: f64, ticks: &[f64]) -> String {
    let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// Time ticks at round local times: hours for a day or less, days for
/// longer windows, labelled `HH:MM` or `MM-DD`.
fn time_ticks(from_ms: i64, to_ms: i64) -> Vec<(i64, String)> {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let span = to_ms - from_ms;
    let step = [HOUR, 3 * HOUR, 6 * HOUR, DAY, 2 * DAY, 7 * DAY, 30 * DAY]
        .into_iter()
        .find(|s| span / s <= 8)
        .unwrap_or(90 * DAY);
    let first = (from_ms + CST_OFFSET_MS).div_euclid(step) * step + step - CST_OFFSET_MS;
    let mut ticks = Vec::new();
    let mut t = first;
    while t < to_ms {
        let local = chrono::DateTime::from_timestamp_millis(t + CST_OFFSET_MS)
            .unwrap_or_default()
            .naive_utc();
        let label = if step < DAY {
            local.format("%H:%M").to_string()
        } else {
            local.format("%m-%d").to_string()
        };
        ticks.push((t, label));
        t += step;
    }
    ticks
}

/// Bars of one quantity per labelled bucket (months, regions), for totals
/// rather than readings over time: a bar per label, its value written above
/// it, the labels below. Values at or below zero draw no bar.
pub fn bars(labels: &[String], values: &[f64], unit: &str) -> String {
    let mut svg = String::with_capacity(2048);
    let _ = write!(
        svg,
        r#"<svg class="chart bars" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img">"#
    );
    let n = labels.len().min(values.len());
    let hi = values[..n].iter().copied().fold(0.0_f64, f64::max);
    if n == 0 || hi <= 0.0 {
        svg.push_str("</svg>");
        return svg;
    }
    let ticks = nice_ticks(0.0, hi, 4);
    let top = ticks[ticks.len() - 1].max(hi);
    let plot_h = CHART_HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);
    svg.push_str(r#"<g class="grid">"#);
    for t in &ticks {
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            CHART_WIDTH - RIGHT,
            y(*t),
            y(*t),
            LEFT - 4.0,
            y(*t) + 4.0,
            format_value(*t, &ticks)
        );
    }
    if !unit.is_empty() {
        let _ = write!(svg, r#"<text x="4" y="12" class="unit">{}</text>"#, escape(unit));
    }
    svg.push_str("</g>");
    let slot = (CHART_WIDTH - LEFT - RIGHT) / n as f64;
    let width = (slot * 0.7).min(60.0);
    for (i, (label, v)) in labels.iter().zip(values).take(n).enumerate() {
        let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
        let centre = x + width / 2.0;
        let shown = format!("{v:.3}");
        let shown = shown.trim_end_matches('0').trim_end_matches('.');
        if *v > 0.0 {
            let _ = write!(
                svg,
                r##"<rect class="bar" x="{x:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" fill="#1c6b3c"><title>{} {}</title></rect>"##,
                y(*v),
                CHART_HEIGHT - BOTTOM - y(*v),
                escape(label),
                shown
            );
        }
        let _ = write!(
            svg,
            r#"<g class="grid"><text x="{centre:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{centre:.1}" y="{}" text-anchor="middle">{}</text></g>"#,
            y(v.max(0.0)) - 3.0,
            shown,
            CHART_HEIGHT - 6.0,
            escape(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svgmap::tests::number_after;

    fn point(ts_ms: i64, value: f64) -> ChartPoint {
        ChartPoint {
            ts_ms,
            value,
            band: None,
        }
    }

    /// The coordinates of the line's vertices, read back from the SVG.
    fn line_vertices(svg: &str) -> Vec<(f64, f64)> {
        let d = svg
            .split(r#"<path class="line" d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        d.split(['M', 'L'])
            .filter(|s| !s.is_empty())
            .map(|xy| {
                let (x, y) = xy.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn points_land_where_their_time_and_value_put_them() {
        let points = [point(0, 10.0), point(1_800_000, 30.0), point(3_600_000, 20.0)];
        let svg = render(&Chart {
            from_ms: 0,
            to_ms: 3_600_000,
            points: &points,
            references: &[],
            unit: "%",
            empty_text: "无数据",
        });
        let v = line_vertices(&svg);
        assert_eq!(v.len(), 3);
        assert!((v[0].0 - LEFT).abs() < 0.1, "first point at the left edge: {v:?}");
        assert!(
            (v[2].0 - (CHART_WIDTH - RIGHT)).abs() < 0.1,
            "last point at the right edge: {v:?}"
        );
        assert!(
            (v[1].0 - (LEFT + CHART_WIDTH - RIGHT) / 2.0).abs() < 0.1,
            "middle time in the middle: {v:?}"
        );
        // Larger values are higher up (smaller y).
        assert!(v[1].1 < v[2].1 && v[2].1 < v[0].1, "{v:?}");
        assert!(v.iter().all(|(_, y)| (TOP..=CHART_HEIGHT - BOTTOM).contains(y)));
    }

    #[test]
    fn a_reference_line_outside_the_data_widens_the_range() {
        let points = [point(0, 2.0), point(1000, 3.0)];
        let refs = [ReferenceLine {
            value: 8.0,
            label: "上限 8 °C".into(),
        }];
        let svg = render(&Chart {
            from_ms: 0,
            to_ms: 1000,
            points: &points,
            references: &refs,
            unit: "°C",
            empty_text: "",
        });
        let reference = svg.split_once(r#"<line class="reference" "#).unwrap().1;
        let y_ref = number_after(reference, "y1=\"");
        assert!(
            y_ref >= TOP && y_ref < line_vertices(&svg)[1].1,
            "threshold above the data and on the chart"
        );
        assert!(svg.contains("上限 8 °C"));
    }

    #[test]
    fn empty_series_says_so_and_text_is_escaped() {
        let svg = render(&Chart {
            from_ms: 0,
            to_ms: 1000,
            points: &[],
            references: &[],
            unit: "",
            empty_text: "<无数据>",
        });
        assert!(
            svg.contains("&lt;无数据&gt;") && !svg.contains("class=\"line\""),
            "{svg}"
        );
    }

    #[test]
    fn rollups_draw_their_band_around_the_line() {
        let points = [
            ChartPoint {
                ts_ms: 0,
                value: 5.0,
                band: Some((1.0, 9.0)),
            },
            ChartPoint {
                ts_ms: 60_000,
                value: 6.0,
                band: Some((4.0, 7.0)),
            },
        ];
        let svg = render(&Chart {
            from_ms: 0,
            to_ms: 60_000,
            points: &points,
            references: &[],
            unit: "",
            empty_text: "",
        });
        let d = svg
            .split(r#"<path class="band" d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let band: Vec<f64> = d
            .trim_end_matches('Z')
            .split(['M', 'L'])
            .filter(|s| !s.is_empty())
            .map(|xy| xy.split_once(',').unwrap().1.parse().unwrap())
            .collect();
        // Top edge left to right (maxima), then bottom edge back (minima).
        assert_eq!(band.len(), 4, "{d}");
        let line = line_vertices(&svg);
        assert!(
            band[0] < line[0].1 && line[0].1 < band[3],
            "first bucket's max above, min below its avg"
        );
        assert!(band[1] < line[1].1 && line[1].1 < band[2], "second bucket likewise");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = nice_ticks(3.2, 27.9, 5);
        assert_eq!(t, vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
        let t = nice_ticks(-18.6, -17.1, 5);
        assert!(t[0] <= -18.6 && *t.last().unwrap() >= -17.1);
        assert!(t.windows(2).all(|w| ((w[1] - w[0]) - 0.5).abs() < 1e-9), "{t:?}");
    }

    #[test]
    fn time_ticks_fall_on_local_midnight_for_a_week() {
        let from = 1_700_000_000_000;
        let ticks = time_ticks(from, from + 7 * 86_400_000);
        assert!(!ticks.is_empty());
        for (t, label) in &ticks {
            assert_eq!(
                (t + CST_OFFSET_MS).rem_euclid(86_400_000),
                0,
                "{label} at local midnight"
            );
            assert_eq!(label.len(), 5);
        }
    }
}
