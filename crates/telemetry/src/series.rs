//! 时序查询 reading time series: raw points, roll-ups (min/max/avg/count/last
//! per 1 min, 1 h, 1 day) and a device's latest values, over the hot tier,
//! compressed chunks and stored roll-ups (see [`crate::store`], ADR 0006).
//!
//! Windows are half-open, `[from_ms, to_ms)`. Roll-up buckets start at
//! multiples of their step; days are China Standard Time days (UTC+8, no
//! daylight saving), the days farmers and officials in Jiangxi count in. A
//! bucket cut by the window aggregates only the points inside it, except a
//! roll-up stored after its raw points expired, which is whole. Negative
//! zero is stored as zero (SQLite does not keep the sign of a zero REAL).

use std::collections::BTreeMap;
use std::str::FromStr;

use sea_query::{Expr, ExprTrait, Order, Query};
use shuxiang_core::CoreError;
use shuxiang_core::db::Db;

use crate::hot;
use crate::store::{
    Agg, ChunkRow, DAY_MS, HOUR_MS, MINUTE_MS, TelemetryChunks, TelemetryRollups, codec, merge_points, metric_id,
    metric_names,
};

/// China Standard Time's offset: day buckets start at 00:00 in Beijing.
const CST_OFFSET_MS: i64 = 8 * HOUR_MS;

/// A roll-up resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Minute,
    Hour,
    Day,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "1m",
            Self::Hour => "1h",
            Self::Day => "1d",
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Self::Minute => MINUTE_MS,
            Self::Hour => HOUR_MS,
            Self::Day => DAY_MS,
        }
    }

    /// The start of the bucket holding `ts_ms`.
    pub fn bucket(self, ts_ms: i64) -> i64 {
        let offset = if self == Self::Day { CST_OFFSET_MS } else { 0 };
        (ts_ms + offset).div_euclid(self.millis()) * self.millis() - offset
    }

    /// The value stored in `telemetry_rollups.step`.
    pub(crate) fn code(self) -> i16 {
        match self {
            Self::Minute => 1,
            Self::Hour => 2,
            Self::Day => 3,
        }
    }
}

impl FromStr for Step {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "1m" => Ok(Self::Minute),
            "1h" => Ok(Self::Hour),
            "1d" => Ok(Self::Day),
            other => Err(CoreError::invalid(
                "invalid_step",
                format!("step must be 1m, 1h or 1d, not {other:?}"),
            )),
        }
    }
}

/// One stored point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawPoint {
    pub ts_ms: i64,
    pub value: f64,
}

/// The aggregate of one bucket; `ts_ms` is the bucket start, `last` the value
/// with the latest timestamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollup {
    pub ts_ms: i64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub count: u64,
    pub last: f64,
}

impl Rollup {
    fn new(bucket: i64, agg: &Agg) -> Self {
        Self {
            ts_ms: bucket,
            min: agg.min,
            max: agg.max,
            avg: agg.sum / agg.count as f64,
            count: agg.count,
            last: agg.last,
        }
    }
}

/// The most points [`raw`] returns in one call.
pub const MAX_RAW_LIMIT: usize = 100_000;

fn check_window(from_ms: i64, to_ms: i64) -> Result<(), CoreError> {
    if from_ms > to_ms {
        return Err(CoreError::invalid("invalid_window", "from must not be after to"));
    }
    Ok(())
}

/// The first `limit` points of a series in `[from_ms, to_ms)`, ascending.
pub async fn raw(
    db: &Db,
    device_id: i64,
    metric: &str,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> Result<Vec<RawPoint>, CoreError> {
    check_window(from_ms, to_ms)?;
    if limit > MAX_RAW_LIMIT {
        return Err(CoreError::invalid(
            "invalid_limit",
            format!("at most {MAX_RAW_LIMIT} points per request"),
        ));
    }
    let Some(metric) = metric_id(db, metric).await? else {
        return Ok(Vec::new());
    };
    if limit == 0 || from_ms == to_ms {
        return Ok(Vec::new());
    }
    let mut hot = hot::series_points(db, device_id, metric, from_ms, to_ms).await?;
    hot.truncate(limit);
    let q = chunk_query(device_id, metric, from_ms, to_ms, true);
    let chunks: Vec<(i64, Vec<u8>)> = db.fetch_all(&q).await?;
    let mut cold = Vec::new();
    for (start, data) in chunks {
        // Chunks are in time order, so once `limit` points precede the next
        // chunk nothing later can be among the first `limit`.
        if cold.len() >= limit {
            break;
        }
        let points = codec::decode(&data).map_err(|e| e.into_core(device_id, metric, start))?;
        cold.extend(points.into_iter().filter(|p| p.ts_ms >= from_ms && p.ts_ms < to_ms));
    }
    let mut merged = merge_points(&cold, &hot);
    merged.truncate(limit);
    Ok(merged)
}

/// Roll-ups of a series at `step` over `[from_ms, to_ms)`, ascending; only
/// buckets holding points appear.
pub async fn rollup(
    db: &Db,
    device_id: i64,
    metric: &str,
    from_ms: i64,
    to_ms: i64,
    step: Step,
) -> Result<Vec<Rollup>, CoreError> {
    check_window(from_ms, to_ms)?;
    let Some(metric) = metric_id(db, metric).await? else {
        return Ok(Vec::new());
    };
    if from_ms == to_ms {
        return Ok(Vec::new());
    }
    let mut buckets: BTreeMap<i64, Agg> = BTreeMap::new();
    let mut hot_by_hour: BTreeMap<i64, Vec<RawPoint>> = BTreeMap::new();
    for p in hot::series_points(db, device_id, metric, from_ms, to_ms).await? {
        hot_by_hour
            .entry(p.ts_ms.div_euclid(HOUR_MS) * HOUR_MS)
            .or_default()
            .push(p);
    }
    let add = |buckets: &mut BTreeMap<i64, Agg>, points: &[RawPoint]| {
        for p in points.iter().filter(|p| p.ts_ms >= from_ms && p.ts_ms < to_ms) {
            buckets
                .entry(step.bucket(p.ts_ms))
                .and_modify(|a| a.add(p.ts_ms, p.value))
                .or_insert_with(|| Agg::point(p.ts_ms, p.value));
        }
    };

    // A whole hour chunk with no late points beside it is summed from its
    // stored aggregates without decoding; minute buckets need the points.
    let q = chunk_query(device_id, metric, from_ms, to_ms, false);
    let chunks: Vec<ChunkRow> = db.fetch_all(&q).await?;
    let mut to_decode = Vec::new();
    for c in chunks {
        let whole = c.start_ms >= from_ms && c.start_ms + HOUR_MS <= to_ms;
        if step != Step::Minute && whole && !hot_by_hour.contains_key(&c.start_ms) {
            let agg = Agg {
                min: c.min,
                max: c.max,
                sum: c.sum,
                count: c.count as u64,
                last: c.last,
                last_ts: c.last_ms,
            };
            buckets
                .entry(step.bucket(c.start_ms))
                .and_modify(|a| a.merge(&agg))
                .or_insert(agg);
        } else {
            to_decode.push(c.start_ms);
        }
    }
    if !to_decode.is_empty() {
        let q = Query::select()
            .columns([TelemetryChunks::StartMs, TelemetryChunks::Data])
            .from(TelemetryChunks::Table)
            .and_where(Expr::col(TelemetryChunks::DeviceId).eq(device_id))
            .and_where(Expr::col(TelemetryChunks::MetricId).eq(metric))
            .and_where(Expr::col(TelemetryChunks::StartMs).is_in(to_decode))
            .to_owned();
        let rows: Vec<(i64, Vec<u8>)> = db.fetch_all(&q).await?;
        for (start, data) in rows {
            let cold = codec::decode(&data).map_err(|e| e.into_core(device_id, metric, start))?;
            let hot = hot_by_hour.remove(&start).unwrap_or_default();
            add(&mut buckets, &merge_points(&cold, &hot));
        }
    }
    for hot in hot_by_hour.values() {
        add(&mut buckets, hot);
    }

    // Roll-ups stored when raw data expired stand for their whole bucket.
    let q = Query::select()
        .columns([
            TelemetryRollups::BucketMs,
            TelemetryRollups::Min,
            TelemetryRollups::Max,
            TelemetryRollups::Sum,
            TelemetryRollups::Count,
            TelemetryRollups::Last,
        ])
        .from(TelemetryRollups::Table)
        .and_where(Expr::col(TelemetryRollups::DeviceId).eq(device_id))
        .and_where(Expr::col(TelemetryRollups::MetricId).eq(metric))
        .and_where(Expr::col(TelemetryRollups::Step).eq(step.code()))
        .and_where(Expr::col(TelemetryRollups::BucketMs).gte(step.bucket(from_ms)))
        .and_where(Expr::col(TelemetryRollups::BucketMs).lt(to_ms))
        .to_owned();
    let stored: Vec<(i64, f64, f64, f64, i64, f64)> = db.fetch_all(&q).await?;
    for (bucket, min, max, sum, count, last) in stored {
        buckets.insert(
            bucket,
            Agg {
                min,
                max,
                sum,
                count: count as u64,
                last,
                last_ts: bucket,
            },
        );
    }
    Ok(buckets.iter().map(|(b, a)| Rollup::new(*b, a)).collect())
}

/// The latest point of each metric a device has stored, by metric name.
pub async fn latest(db: &Db, device_id: i64) -> Result<Vec<(String, RawPoint)>, CoreError> {
    let mut found = hot::latest(db, device_id).await?;
    // Walks the metrics present with one index seek each instead of
    // scanning the device's chunks.
    let mut after = i32::MIN;
    loop {
        let q = Query::select()
            .column(TelemetryChunks::MetricId)
            .from(TelemetryChunks::Table)
            .and_where(Expr::col(TelemetryChunks::DeviceId).eq(device_id))
            .and_where(Expr::col(TelemetryChunks::MetricId).gt(after))
            .order_by(TelemetryChunks::MetricId, Order::Asc)
            .limit(1)
            .to_owned();
        let Some((metric,)) = db.fetch_optional::<(i32,)>(&q).await? else {
            break;
        };
        let q = Query::select()
            .columns([TelemetryChunks::LastMs, TelemetryChunks::Last])
            .from(TelemetryChunks::Table)
            .and_where(Expr::col(TelemetryChunks::DeviceId).eq(device_id))
            .and_where(Expr::col(TelemetryChunks::MetricId).eq(metric))
            .order_by(TelemetryChunks::StartMs, Order::Desc)
            .limit(1)
            .to_owned();
        if let Some((ts_ms, value)) = db.fetch_optional::<(i64, f64)>(&q).await? {
            let newer = found.get(&metric).is_none_or(|hot| hot.ts_ms < ts_ms);
            if newer {
                found.insert(metric, RawPoint { ts_ms, value });
            }
        }
        after = metric;
    }
    let ids: Vec<i32> = found.keys().copied().collect();
    let names = metric_names(db, &ids).await?;
    let mut out: Vec<(String, RawPoint)> = found
        .into_iter()
        .filter_map(|(id, p)| names.get(&id).map(|n| (n.clone(), p)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Chunks overlapping the window, ascending: with their data, or with
/// their aggregates only.
fn chunk_query(device_id: i64, metric: i32, from_ms: i64, to_ms: i64, data: bool) -> sea_query::SelectStatement {
    let mut q = Query::select();
    if data {
        q.columns([TelemetryChunks::StartMs, TelemetryChunks::Data]);
    } else {
        q.columns([
            TelemetryChunks::StartMs,
            TelemetryChunks::LastMs,
            TelemetryChunks::Count,
            TelemetryChunks::Min,
            TelemetryChunks::Max,
            TelemetryChunks::Sum,
            TelemetryChunks::Last,
        ]);
    }
    q.from(TelemetryChunks::Table)
        .and_where(Expr::col(TelemetryChunks::DeviceId).eq(device_id))
        .and_where(Expr::col(TelemetryChunks::MetricId).eq(metric))
        .and_where(Expr::col(TelemetryChunks::StartMs).gt(from_ms.saturating_sub(HOUR_MS)))
        .and_where(Expr::col(TelemetryChunks::StartMs).lt(to_ms))
        .order_by(TelemetryChunks::StartMs, Order::Asc)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_reject_others() {
        assert_eq!("1m".parse::<Step>().unwrap(), Step::Minute);
        assert_eq!("1h".parse::<Step>().unwrap(), Step::Hour);
        assert_eq!("1d".parse::<Step>().unwrap(), Step::Day);
        for bad in ["", "1s", "1M", "60m", "1 h"] {
            let err = bad.parse::<Step>().unwrap_err();
            assert_eq!(err.code(), "invalid_step", "{bad:?}");
        }
    }

    #[test]
    fn days_start_at_midnight_in_beijing() {
        // 2026-11-30T15:59:59.999Z is 23:59:59.999 in Beijing; 16:00Z is the next day.
        let before = 1_796_054_399_999;
        let day = Step::Day.bucket(before);
        assert_eq!(day, 1_795_968_000_000, "2026-11-29T16:00Z");
        assert_eq!(Step::Day.bucket(before + 1), before + 1);
        assert_eq!(Step::Hour.bucket(before), before + 1 - HOUR_MS);
        assert_eq!(Step::Minute.bucket(-1), -MINUTE_MS);
    }
}
