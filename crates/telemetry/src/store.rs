//! 遥测存储 telemetry point storage: appending points, compacting them into
//! compressed chunks, and retention (ADR 0006).
//!
//! A point is `(device_id, metric, ts_ms, value)`. Metric names map to small
//! integer ids (`telemetry_metrics`) so no string is stored per point.
//! Appends land in the hot tier, one packed segment per device and write
//! ([`crate::hot`]); that is what an acknowledgement waits for. [`maintain`]
//! then moves points older than [`Retention::hot_ms`] into one chunk per
//! series and hour (`telemetry_chunks`: delta-of-delta timestamps
//! and XOR-coded values, lossless, see [`codec`]) that also carries the
//! hour's min/max/sum/count/last, and when raw data passes its retention it
//! is rolled up into `telemetry_rollups` for each resolution kept longer.
//!
//! Duplicates: a point with the same `(device_id, metric, ts_ms)` as a stored
//! one replaces its value (last write wins), whether the earlier one is still
//! hot or already compacted, so a re-sent MQTT message never counts twice.

use std::collections::HashMap;

use sea_query::{Expr, ExprTrait, Iden, OnConflict, Order, Query};
use shuxiang_core::CoreError;
use shuxiang_core::db::{Backend, Db, SliceMigrations, Tx};
use sqlx::AssertSqlSafe;

use crate::hot::{self, Row};
use crate::series::{RawPoint, Step};

/// The telemetry slice's tables.
pub static TELEMETRY_MIGRATIONS: SliceMigrations = SliceMigrations {
    slice: "telemetry",
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Earliest and latest accepted timestamps (1970 to 3000 UTC): far outside
/// any sensor's clock, and it keeps bucket arithmetic clear of overflow.
pub const MIN_TS_MS: i64 = 0;
pub const MAX_TS_MS: i64 = 32_503_680_000_000;
const MAX_METRIC_LEN: usize = 100;

/// One point to store. `metric` is the metric key as the device sends it
/// (`vwc`, `air_temperature`); an owned `String` so payload parsers hand
/// points over without lifetimes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPoint {
    pub device_id: i64,
    pub metric: String,
    pub ts_ms: i64,
    pub value: f64,
}

#[derive(Iden)]
pub(crate) enum TelemetryMetrics {
    Table,
    Id,
    Name,
}

#[derive(Iden)]
pub(crate) enum TelemetryPoints {
    Table,
    DeviceId,
    MetricId,
    TsMs,
    Value,
}

#[derive(Iden)]
pub(crate) enum TelemetryChunks {
    Table,
    DeviceId,
    MetricId,
    StartMs,
    LastMs,
    Count,
    Min,
    Max,
    Sum,
    Last,
    Data,
}

#[derive(Iden)]
pub(crate) enum TelemetryRollups {
    Table,
    DeviceId,
    MetricId,
    Step,
    BucketMs,
    Min,
    Max,
    Sum,
    Count,
    Last,
}

/// Checks a point before it is stored; the error names the point's index.
pub fn validate_point(index: usize, p: &NewPoint) -> Result<(), CoreError> {
    if !p.value.is_finite() {
        return Err(CoreError::invalid(
            "invalid_value",
            format!("point {index}: value must be a finite number"),
        ));
    }
    if !(MIN_TS_MS..=MAX_TS_MS).contains(&p.ts_ms) {
        return Err(CoreError::invalid(
            "invalid_timestamp",
            format!("point {index}: timestamp {} ms is outside 1970..3000", p.ts_ms),
        ));
    }
    if p.metric.is_empty() || p.metric.len() > MAX_METRIC_LEN {
        return Err(CoreError::invalid(
            "invalid_metric",
            format!("point {index}: metric name must have 1 to {MAX_METRIC_LEN} bytes"),
        ));
    }
    Ok(())
}

/// The id of a metric name, if any point of it was ever stored.
pub async fn metric_id(db: &Db, name: &str) -> Result<Option<i32>, CoreError> {
    let q = Query::select()
        .column(TelemetryMetrics::Id)
        .from(TelemetryMetrics::Table)
        .and_where(Expr::col(TelemetryMetrics::Name).eq(name))
        .to_owned();
    Ok(db.fetch_optional::<(i32,)>(&q).await?.map(|(id,)| id))
}

/// Metric names by id for the given ids.
pub(crate) async fn metric_names(db: &Db, ids: &[i32]) -> Result<HashMap<i32, String>, CoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let q = Query::select()
        .columns([TelemetryMetrics::Id, TelemetryMetrics::Name])
        .from(TelemetryMetrics::Table)
        .and_where(Expr::col(TelemetryMetrics::Id).is_in(ids.iter().copied()))
        .to_owned();
    let rows: Vec<(i32, String)> = db.fetch_all(&q).await?;
    Ok(rows.into_iter().collect())
}

/// Ids for the given names, registering names never seen before.
async fn resolve_metric_ids(tx: &mut Tx, names: &[&str]) -> Result<HashMap<String, i32>, CoreError> {
    let select = Query::select()
        .columns([TelemetryMetrics::Id, TelemetryMetrics::Name])
        .from(TelemetryMetrics::Table)
        .and_where(Expr::col(TelemetryMetrics::Name).is_in(names.iter().copied()))
        .to_owned();
    let rows: Vec<(i32, String)> = tx.fetch_all(&select).await?;
    if rows.len() == names.len() {
        return Ok(rows.into_iter().map(|(id, name)| (name, id)).collect());
    }
    let known: HashMap<String, i32> = rows.into_iter().map(|(id, name)| (name, id)).collect();
    let mut insert = Query::insert();
    insert
        .into_table(TelemetryMetrics::Table)
        .columns([TelemetryMetrics::Name])
        .on_conflict(OnConflict::column(TelemetryMetrics::Name).do_nothing().to_owned());
    for name in names.iter().filter(|n| !known.contains_key(**n)) {
        insert.values_panic([(*name).into()]);
    }
    tx.execute(&insert).await?;
    let rows: Vec<(i32, String)> = tx.fetch_all(&select).await?;
    Ok(rows.into_iter().map(|(id, name)| (name, id)).collect())
}

/// Appends points inside the caller's transaction; they are durable once it
/// commits. Points are validated first (nothing is written if one is bad);
/// a point repeating a stored `(device, metric, ts)` replaces its value.
pub async fn append_points(tx: &mut Tx, points: &[NewPoint]) -> Result<(), CoreError> {
    append_parts(tx, &[points]).await
}

/// [`append_points`] for several callers' points at once, without copying
/// them into one list; among equal keys a later part wins.
pub async fn append_parts(tx: &mut Tx, parts: &[&[NewPoint]]) -> Result<(), CoreError> {
    let all = || parts.iter().flat_map(|part| part.iter());
    for (i, p) in all().enumerate() {
        validate_point(i, p)?;
    }
    let mut names: Vec<&str> = Vec::new();
    for p in all() {
        if !names.contains(&p.metric.as_str()) {
            names.push(&p.metric);
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let ids = resolve_metric_ids(tx, &names).await?;
    let mut rows: Vec<Row> = Vec::with_capacity(all().count());
    for p in all() {
        let id = *ids
            .get(&p.metric)
            .ok_or_else(|| CoreError::Internal(format!("metric {} was not registered", p.metric)))?;
        // + 0.0 turns -0.0 into 0.0, which SQLite would store anyway.
        rows.push((p.device_id, id, p.ts_ms, p.value + 0.0));
    }
    // Sorted by key, which also keeps the inserts' B-tree pages local.
    hot::append(tx, &hot::last_write_wins(rows, |r| (r.0, r.1, r.2))).await
}

/// How long data is kept at each resolution, in days; `None` keeps it for
/// ever. A roll-up resolution kept longer than raw data is written when raw
/// data expires; while raw data exists roll-ups are derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub raw_days: Option<u32>,
    pub minute_days: Option<u32>,
    pub hour_days: Option<u32>,
    pub day_days: Option<u32>,
    /// Points younger than this stay in the hot tier, so a bucket still
    /// receiving points is not re-encoded on every run.
    pub hot_ms: i64,
}

impl Default for Retention {
    /// Raw and 1-minute data for a year (a full farming season and its
    /// comparison with the previous one), hourly for 5 years, daily for ever.
    fn default() -> Self {
        Self {
            raw_days: Some(365),
            minute_days: Some(365),
            hour_days: Some(5 * 365),
            day_days: None,
            hot_ms: 5 * MINUTE_MS,
        }
    }
}

impl Retention {
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.raw_days == Some(0) {
            return Err(CoreError::invalid(
                "invalid_retention",
                "raw retention must be at least 1 day",
            ));
        }
        if self.hot_ms < 0 {
            return Err(CoreError::invalid("invalid_retention", "hot_ms must not be negative"));
        }
        Ok(())
    }

    fn days(&self, step: Step) -> Option<u32> {
        match step {
            Step::Minute => self.minute_days,
            Step::Hour => self.hour_days,
            Step::Day => self.day_days,
        }
    }

    /// Whether roll-ups at `step` outlive raw data and so must be stored
    /// before raw data is deleted.
    fn stores(&self, step: Step) -> bool {
        match (self.raw_days, self.days(step)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(raw), Some(kept)) => kept > raw,
        }
    }
}

/// What one [`maintain`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Hot points moved into chunks.
    pub points_compacted: u64,
    /// Chunks written (new or re-encoded with late points).
    pub chunks_written: u64,
    /// Chunks deleted by raw retention.
    pub chunks_expired: u64,
    /// Roll-up rows written from expiring chunks.
    pub rollups_written: u64,
    /// Roll-up rows deleted by their resolution's retention.
    pub rollups_expired: u64,
    /// True when another node held the maintenance lock, so nothing was done.
    pub skipped: bool,
}

/// Old hot-table points read per compaction transaction: bounds how long one
/// maintenance transaction holds SQLite's single writer.
const COMPACT_BATCH: u64 = 100_000;
/// Hot segments read per compaction transaction, for the same reason: a
/// segment holds one write of one device, from one point to a 10,000-point
/// batch, so about as many points as [`COMPACT_BATCH`] for typical writes.
const COMPACT_SEGMENTS: u64 = 20_000;
/// Chunks read per expiry transaction (a multiple of 24, see [`expire_once`]).
const EXPIRE_BATCH: u64 = 24 * 40;
/// First half of the `pg_try_advisory_xact_lock` key of telemetry maintenance.
const PG_LOCK_CLASS: i32 = 0x7e1e_0006;
const PG_RETRIES: usize = 5;

/// Compacts hot points older than `now_ms - hot_ms` into chunks, rolls up
/// and deletes chunks past raw retention, and deletes roll-ups past theirs.
/// Each step is a series of transactions; rerunning with the same `now_ms`
/// changes nothing. On PostgreSQL a transaction-level advisory lock makes a
/// second node running at the same time skip (see `skipped`), and
/// repeatable-read isolation keeps points committed during the run in the
/// hot tier for the next run.
pub async fn maintain(db: &Db, now_ms: i64, retention: &Retention) -> Result<MaintenanceReport, CoreError> {
    retention.validate()?;
    let mut report = MaintenanceReport::default();
    let compact_before = now_ms.saturating_sub(retention.hot_ms);
    loop {
        let Some((points, chunks, more)) = in_maintenance_tx(
            db,
            Job::Compact {
                before_ms: compact_before,
            },
        )
        .await?
        else {
            report.skipped = true;
            return Ok(report);
        };
        report.points_compacted += points;
        report.chunks_written += chunks;
        if !more {
            break;
        }
    }
    if report.points_compacted > 0 && db.backend() == Backend::Postgres {
        // Compaction just deleted most of the hot tier; without a vacuum
        // now its file grows to every segment ever appended whenever
        // autovacuum falls behind a burst. SKIP_LOCKED: another node may be
        // vacuuming it already.
        db.execute_raw("VACUUM (SKIP_LOCKED) telemetry_segments").await?;
    }
    if let Some(raw_days) = retention.raw_days {
        let expire_before = Step::Day.bucket(now_ms.saturating_sub(i64::from(raw_days) * DAY_MS));
        loop {
            let Some((chunks, rollups, more)) = in_maintenance_tx(
                db,
                Job::Expire {
                    before_ms: expire_before,
                    retention,
                },
            )
            .await?
            else {
                report.skipped = true;
                return Ok(report);
            };
            report.chunks_expired += chunks;
            report.rollups_written += rollups;
            if !more {
                break;
            }
        }
    }
    for step in [Step::Minute, Step::Hour, Step::Day] {
        let Some(days) = retention.days(step) else { continue };
        let before = Step::Day.bucket(now_ms.saturating_sub(i64::from(days) * DAY_MS));
        let q = Query::delete()
            .from_table(TelemetryRollups::Table)
            .and_where(Expr::col(TelemetryRollups::Step).eq(step.code()))
            .and_where(Expr::col(TelemetryRollups::BucketMs).lt(before))
            .to_owned();
        report.rollups_expired += db.execute(&q).await?;
    }
    Ok(report)
}

/// One batch of maintenance work; each returns (items, items, more to do).
enum Job<'a> {
    Compact { before_ms: i64 },
    Expire { before_ms: i64, retention: &'a Retention },
}

/// Runs one batch in a transaction that on PostgreSQL is repeatable-read and
/// holds the maintenance lock, retrying serialization failures; `None` when
/// another node holds the lock.
async fn in_maintenance_tx(db: &Db, job: Job<'_>) -> Result<Option<(u64, u64, bool)>, CoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = db.begin().await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut **t)
                .await?;
            // Keyed by schema too: advisory locks are per database, and
            // separate schemas are separate deployments.
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))")
                .bind(PG_LOCK_CLASS)
                .fetch_one(&mut **t)
                .await?;
            if !locked {
                return Ok(None);
            }
        }
        let done = match &job {
            Job::Compact { before_ms } => compact_once(&mut tx, *before_ms).await,
            Job::Expire { before_ms, retention } => expire_once(&mut tx, *before_ms, retention).await,
        };
        let result = match done {
            Ok(v) => tx.commit().await.map(|()| v),
            Err(e) => Err(e),
        };
        match result {
            Err(e) if attempt < PG_RETRIES && is_serialization_failure(&e) => continue,
            other => return other.map(Some),
        }
    }
}

fn is_serialization_failure(e: &CoreError) -> bool {
    matches!(e, CoreError::Database(sqlx::Error::Database(d)) if matches!(d.code().as_deref(), Some("40001" | "40P01")))
}

/// A chunk row with its aggregates.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ChunkRow {
    pub start_ms: i64,
    pub last_ms: i64,
    pub count: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub last: f64,
}

/// `(device_id, metric_id, hour start)`: the key of a chunk.
type SeriesHour = (i64, i32, i64);

/// Series-hours looked up or written per statement during compaction.
const CHUNK_STATEMENT_ROWS: usize = 500;

/// Compacts one batch of hot data; returns (points, chunks, more to do).
/// Points left in the hot table of before segments go first, whatever their
/// age: they are older writes than any segment, so they must lie beneath
/// them in the chunks.
async fn compact_once(tx: &mut Tx, before_ms: i64) -> Result<(u64, u64, bool), CoreError> {
    if let Some(done) = compact_legacy_points(tx).await? {
        return Ok(done);
    }
    let taken = hot::take_compactable(tx, before_ms, COMPACT_SEGMENTS).await?;
    let chunks = write_chunks(tx, &taken.rows).await?;
    hot::delete(tx, &taken.emptied).await?;
    hot::keep_later_points(tx, &taken.trimmed).await?;
    Ok((taken.rows.len() as u64, chunks, taken.more))
}

/// Moves one batch of `telemetry_points` (the hot table before segments)
/// into chunks; `None` once it is empty.
async fn compact_legacy_points(tx: &mut Tx) -> Result<Option<(u64, u64, bool)>, CoreError> {
    let q = Query::select()
        .columns([
            TelemetryPoints::DeviceId,
            TelemetryPoints::MetricId,
            TelemetryPoints::TsMs,
            TelemetryPoints::Value,
        ])
        .from(TelemetryPoints::Table)
        .order_by(TelemetryPoints::DeviceId, Order::Asc)
        .order_by(TelemetryPoints::MetricId, Order::Asc)
        .order_by(TelemetryPoints::TsMs, Order::Asc)
        .limit(COMPACT_BATCH)
        .to_owned();
    let rows: Vec<Row> = tx.fetch_all(&q).await?;
    let Some(&(last_device, last_metric, last_ts, _)) = rows.last() else {
        return Ok(None);
    };
    let chunks = write_chunks(tx, &rows).await?;
    let delete = Query::delete()
        .from_table(TelemetryPoints::Table)
        .and_where(
            Expr::tuple([
                Expr::col(TelemetryPoints::DeviceId),
                Expr::col(TelemetryPoints::MetricId),
                Expr::col(TelemetryPoints::TsMs),
            ])
            .lte(Expr::tuple([
                Expr::val(last_device),
                Expr::val(last_metric),
                Expr::val(last_ts),
            ])),
        )
        .to_owned();
    let deleted = tx.execute(&delete).await?;
    if deleted != rows.len() as u64 {
        return Err(CoreError::Internal(format!(
            "compaction read {} old hot points but would delete {deleted}",
            rows.len()
        )));
    }
    Ok(Some((rows.len() as u64, chunks, true)))
}

/// Merges `rows` (sorted by key, unique) into the chunks of their
/// series-hours, later than what the chunks hold; returns chunks written.
/// Statements cover many series-hours each: one lookup of existing chunks
/// per 500 and one upsert per 500.
async fn write_chunks(tx: &mut Tx, rows: &[Row]) -> Result<u64, CoreError> {
    // Series-hours in key order, each with its slice of hot rows.
    let mut groups: Vec<(SeriesHour, &[Row])> = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let (device, metric, ts, _) = rows[start];
        let hour = ts.div_euclid(HOUR_MS) * HOUR_MS;
        let end = rows[start..]
            .iter()
            .position(|r| r.0 != device || r.1 != metric || r.2 >= hour + HOUR_MS)
            .map_or(rows.len(), |n| start + n);
        groups.push(((device, metric, hour), &rows[start..end]));
        start = end;
    }
    for part in groups.chunks(CHUNK_STATEMENT_ROWS) {
        let keys: Vec<SeriesHour> = part.iter().map(|(k, _)| *k).collect();
        let q = Query::select()
            .columns([
                TelemetryChunks::DeviceId,
                TelemetryChunks::MetricId,
                TelemetryChunks::StartMs,
                TelemetryChunks::Data,
            ])
            .from(TelemetryChunks::Table)
            .and_where(
                Expr::tuple([
                    Expr::col(TelemetryChunks::DeviceId),
                    Expr::col(TelemetryChunks::MetricId),
                    Expr::col(TelemetryChunks::StartMs),
                ])
                .in_tuples(keys.iter().copied()),
            )
            .to_owned();
        let existing: HashMap<SeriesHour, Vec<u8>> = tx
            .fetch_all::<(i64, i32, i64, Vec<u8>)>(&q)
            .await?
            .into_iter()
            .map(|(d, m, h, data)| ((d, m, h), data))
            .collect();
        let mut upsert = chunk_upsert();
        for ((device, metric, hour), hot) in part {
            let hot: Vec<RawPoint> = hot.iter().map(|r| RawPoint { ts_ms: r.2, value: r.3 }).collect();
            let merged = match existing.get(&(*device, *metric, *hour)) {
                Some(data) => {
                    let cold = codec::decode(data).map_err(|e| e.into_core(*device, *metric, *hour))?;
                    merge_points(&cold, &hot)
                }
                None => hot,
            };
            let data = codec::encode(&merged).map_err(|e| e.into_core(*device, *metric, *hour))?;
            let agg = Agg::of(&merged).ok_or_else(|| CoreError::Internal("empty chunk".into()))?;
            upsert.values_panic([
                (*device).into(),
                (*metric).into(),
                (*hour).into(),
                agg.last_ts.into(),
                (agg.count as i64).into(),
                agg.min.into(),
                agg.max.into(),
                agg.sum.into(),
                agg.last.into(),
                data.into(),
            ]);
        }
        tx.execute(&upsert).await?;
    }
    Ok(groups.len() as u64)
}

/// An upsert into `telemetry_chunks` awaiting its rows.
fn chunk_upsert() -> sea_query::InsertStatement {
    Query::insert()
        .into_table(TelemetryChunks::Table)
        .columns([
            TelemetryChunks::DeviceId,
            TelemetryChunks::MetricId,
            TelemetryChunks::StartMs,
            TelemetryChunks::LastMs,
            TelemetryChunks::Count,
            TelemetryChunks::Min,
            TelemetryChunks::Max,
            TelemetryChunks::Sum,
            TelemetryChunks::Last,
            TelemetryChunks::Data,
        ])
        .on_conflict(
            OnConflict::columns([
                TelemetryChunks::DeviceId,
                TelemetryChunks::MetricId,
                TelemetryChunks::StartMs,
            ])
            .update_columns([
                TelemetryChunks::LastMs,
                TelemetryChunks::Count,
                TelemetryChunks::Min,
                TelemetryChunks::Max,
                TelemetryChunks::Sum,
                TelemetryChunks::Last,
                TelemetryChunks::Data,
            ])
            .to_owned(),
        )
        .to_owned()
}

/// Merges two ascending point lists; on equal timestamps `newer` wins.
pub(crate) fn merge_points(older: &[RawPoint], newer: &[RawPoint]) -> Vec<RawPoint> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let (mut i, mut j) = (0, 0);
    while i < older.len() && j < newer.len() {
        match older[i].ts_ms.cmp(&newer[j].ts_ms) {
            std::cmp::Ordering::Less => {
                out.push(older[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(newer[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(newer[j]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&older[i..]);
    out.extend_from_slice(&newer[j..]);
    out
}

/// Rolls up and deletes one batch of chunks that start before `before_ms`;
/// returns (chunks deleted, roll-up rows written, more to do). A batch ends
/// on a series-day boundary, so each stored roll-up row comes from exactly
/// one batch and can simply be written.
async fn expire_once(tx: &mut Tx, before_ms: i64, retention: &Retention) -> Result<(u64, u64, bool), CoreError> {
    let steps: Vec<Step> = [Step::Minute, Step::Hour, Step::Day]
        .into_iter()
        .filter(|s| retention.stores(*s))
        .collect();
    let q = Query::select()
        .columns([
            TelemetryChunks::DeviceId,
            TelemetryChunks::MetricId,
            TelemetryChunks::StartMs,
            TelemetryChunks::LastMs,
            TelemetryChunks::Count,
            TelemetryChunks::Min,
            TelemetryChunks::Max,
            TelemetryChunks::Sum,
            TelemetryChunks::Last,
            TelemetryChunks::Data,
        ])
        .from(TelemetryChunks::Table)
        .and_where(Expr::col(TelemetryChunks::StartMs).lt(before_ms))
        .order_by(TelemetryChunks::DeviceId, Order::Asc)
        .order_by(TelemetryChunks::MetricId, Order::Asc)
        .order_by(TelemetryChunks::StartMs, Order::Asc)
        .limit(EXPIRE_BATCH)
        .to_owned();
    type ExpiringChunk = (i64, i32, i64, i64, i64, f64, f64, f64, f64, Vec<u8>);
    let mut rows: Vec<ExpiringChunk> = tx.fetch_all(&q).await?;
    let more = rows.len() as u64 == EXPIRE_BATCH;
    if more {
        // Leave the last series-day for the next batch: it may be incomplete.
        let last = &rows[rows.len() - 1];
        let (device, metric, day) = (last.0, last.1, Step::Day.bucket(last.2));
        rows.retain(|r| !(r.0 == device && r.1 == metric && Step::Day.bucket(r.2) == day));
    }
    let mut rollups: Vec<(i64, i32, Step, i64, Agg)> = Vec::new();
    for (device, metric, start, last_ms, count, min, max, sum, last, data) in &rows {
        let hour_agg = Agg {
            min: *min,
            max: *max,
            sum: *sum,
            count: *count as u64,
            last: *last,
            last_ts: *last_ms,
        };
        for step in &steps {
            match step {
                Step::Minute => {
                    let points = codec::decode(data).map_err(|e| e.into_core(*device, *metric, *start))?;
                    let mut by_minute: Vec<(i64, Agg)> = Vec::new();
                    for p in points {
                        let bucket = Step::Minute.bucket(p.ts_ms);
                        match by_minute.last_mut() {
                            Some((b, agg)) if *b == bucket => agg.add(p.ts_ms, p.value),
                            _ => by_minute.push((bucket, Agg::point(p.ts_ms, p.value))),
                        }
                    }
                    rollups.extend(
                        by_minute
                            .into_iter()
                            .map(|(b, a)| (*device, *metric, Step::Minute, b, a)),
                    );
                }
                Step::Hour => rollups.push((*device, *metric, Step::Hour, *start, hour_agg)),
                Step::Day => {
                    let day = Step::Day.bucket(*start);
                    match rollups.iter_mut().rev().find(|r| r.2 == Step::Day) {
                        Some(r) if r.0 == *device && r.1 == *metric && r.3 == day => r.4.merge(&hour_agg),
                        _ => rollups.push((*device, *metric, Step::Day, day, hour_agg)),
                    }
                }
            }
        }
    }
    for chunk in rollups.chunks(1000) {
        let mut q = Query::insert();
        q.into_table(TelemetryRollups::Table)
            .columns([
                TelemetryRollups::DeviceId,
                TelemetryRollups::MetricId,
                TelemetryRollups::Step,
                TelemetryRollups::BucketMs,
                TelemetryRollups::Min,
                TelemetryRollups::Max,
                TelemetryRollups::Sum,
                TelemetryRollups::Count,
                TelemetryRollups::Last,
            ])
            .on_conflict(
                OnConflict::columns([
                    TelemetryRollups::DeviceId,
                    TelemetryRollups::MetricId,
                    TelemetryRollups::Step,
                    TelemetryRollups::BucketMs,
                ])
                .update_columns([
                    TelemetryRollups::Min,
                    TelemetryRollups::Max,
                    TelemetryRollups::Sum,
                    TelemetryRollups::Count,
                    TelemetryRollups::Last,
                ])
                .to_owned(),
            );
        for (device, metric, step, bucket, agg) in chunk {
            q.values_panic([
                (*device).into(),
                (*metric).into(),
                step.code().into(),
                (*bucket).into(),
                agg.min.into(),
                agg.max.into(),
                agg.sum.into(),
                (agg.count as i64).into(),
                agg.last.into(),
            ]);
        }
        tx.execute(&q).await?;
    }
    let mut start = 0;
    while start < rows.len() {
        let (device, metric) = (rows[start].0, rows[start].1);
        let end = rows[start..]
            .iter()
            .position(|r| r.0 != device || r.1 != metric)
            .map_or(rows.len(), |n| start + n);
        let q = Query::delete()
            .from_table(TelemetryChunks::Table)
            .and_where(Expr::col(TelemetryChunks::DeviceId).eq(device))
            .and_where(Expr::col(TelemetryChunks::MetricId).eq(metric))
            .and_where(Expr::col(TelemetryChunks::StartMs).gte(rows[start].2))
            .and_where(Expr::col(TelemetryChunks::StartMs).lte(rows[end - 1].2))
            .to_owned();
        tx.execute(&q).await?;
        start = end;
    }
    Ok((rows.len() as u64, rollups.len() as u64, more))
}

/// Running min/max/sum/count/last of a set of points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Agg {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u64,
    pub last: f64,
    pub last_ts: i64,
}

impl Agg {
    pub fn point(ts_ms: i64, value: f64) -> Self {
        Self {
            min: value,
            max: value,
            sum: value,
            count: 1,
            last: value,
            last_ts: ts_ms,
        }
    }

    pub fn of(points: &[RawPoint]) -> Option<Self> {
        let (first, rest) = points.split_first()?;
        let mut agg = Self::point(first.ts_ms, first.value);
        for p in rest {
            agg.add(p.ts_ms, p.value);
        }
        Some(agg)
    }

    pub fn add(&mut self, ts_ms: i64, value: f64) {
        self.merge(&Self::point(ts_ms, value));
    }

    pub fn merge(&mut self, other: &Self) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
        if other.last_ts >= self.last_ts {
            self.last = other.last;
            self.last_ts = other.last_ts;
        }
    }
}

/// Bytes the database occupies on SQLite (`page_count * page_size`, free
/// pages excluded); `None` on PostgreSQL.
pub async fn sqlite_bytes(db: &Db) -> Result<Option<u64>, CoreError> {
    if db.backend() != Backend::Sqlite {
        return Ok(None);
    }
    let Db::Sqlite { read, .. } = db else { return Ok(None) };
    let row: (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(
        "SELECT p.page_count, f.freelist_count, s.page_size FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s",
    ))
    .fetch_one(read)
    .await?;
    Ok(Some(((row.0 - row.1) * row.2) as u64))
}

pub mod codec {
    //! The chunk codec: a series' points, ascending by strictly increasing
    //! timestamp, packed losslessly (values bit-exact) in the manner of
    //! Facebook's Gorilla: timestamps as delta-of-delta in variable-width
    //! bit classes (1 bit for a regular interval), values as the XOR with the
    //! previous value, storing only its meaningful bits.
    //!
    //! Values that are all short decimals (21.53, as most sensors report)
    //! are coded instead as the change of the integer count of their last
    //! digit; that holds only where dividing back restores the same bits.
    //!
    //! Layout: version byte `1`, point count (LEB128), and unless empty a
    //! mode byte (decimal digits 0–4, or `0xff` for XOR) and the bit stream:
    //! first timestamp and value as 64 bits each, then per point its
    //! timestamp class and value class.

    use super::RawPoint;

    const VERSION: u8 = 1;

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum CodecError {
        #[error("timestamps must increase strictly (point {0})")]
        NotIncreasing(usize),
        #[error("corrupt chunk: {0}")]
        Corrupt(&'static str),
    }

    impl CodecError {
        pub(crate) fn into_core(self, device: i64, metric: i32, hour: i64) -> shuxiang_core::CoreError {
            shuxiang_core::CoreError::Internal(format!(
                "telemetry chunk of device {device}, metric {metric}, hour {hour}: {self}"
            ))
        }
    }

    struct BitWriter {
        out: Vec<u8>,
        acc: u64,
        bits: u32,
    }

    impl BitWriter {
        /// Writes the low `n` bits of `v`, most significant first (n ≤ 64).
        fn write(&mut self, v: u64, n: u32) {
            if n == 0 {
                return;
            }
            if n > 32 {
                self.write(v >> 32, n - 32);
                self.write(v & 0xffff_ffff, 32);
                return;
            }
            let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
            self.acc = (self.acc << n) | v;
            self.bits += n;
            while self.bits >= 8 {
                self.bits -= 8;
                self.out.push((self.acc >> self.bits) as u8);
            }
        }

        fn finish(mut self) -> Vec<u8> {
            if self.bits > 0 {
                self.out.push((self.acc << (8 - self.bits)) as u8);
            }
            self.out
        }
    }

    struct BitReader<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl BitReader<'_> {
        fn read(&mut self, n: u32) -> Result<u64, CodecError> {
            if self.pos + n as usize > self.data.len() * 8 {
                return Err(CodecError::Corrupt("truncated"));
            }
            let mut v = 0u64;
            let mut need = n;
            while need > 0 {
                let byte = u32::from(self.data[self.pos / 8]);
                let avail = 8 - (self.pos % 8) as u32;
                let take = avail.min(need);
                let bits = (byte >> (avail - take)) & ((1 << take) - 1);
                v = (v << take) | u64::from(bits);
                need -= take;
                self.pos += take as usize;
            }
            Ok(v)
        }

        fn bit(&mut self) -> Result<bool, CodecError> {
            Ok(self.read(1)? == 1)
        }
    }

    fn zigzag(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }

    fn unzigzag(v: u64) -> i64 {
        ((v >> 1) as i64) ^ -((v & 1) as i64)
    }

    /// Variable-width classes for a zigzagged number: prefix `0` for 0,
    /// then `10`, `110`, `1110`, `11110` for values fitting the class's
    /// width, `11111` for anything else as 64 bits.
    type Classes = [u32; 4];
    /// Timestamps' delta-of-delta: 0 for a regular interval, small for jitter.
    const TS_CLASSES: Classes = [8, 14, 22, 32];
    /// Decimal values' change in units of the last digit.
    const DECIMAL_CLASSES: Classes = [4, 8, 16, 32];
    /// Marks XOR-coded values in the mode byte; otherwise it holds the digits.
    const MODE_XOR: u8 = 0xff;
    /// Most decimal digits tried: sensors report at most a few.
    const MAX_DIGITS: u8 = 4;

    fn write_classed(w: &mut BitWriter, v: u64, classes: &Classes) {
        if v == 0 {
            w.write(0, 1);
        } else if let Some(class) = classes.iter().position(|&bits| v < (1u64 << bits)) {
            // class + 1 ones, then a zero
            w.write((1u64 << (class + 2)) - 2, class as u32 + 2);
            w.write(v, classes[class]);
        } else {
            w.write(0b11111, 5);
            w.write(v, 64);
        }
    }

    fn read_classed(r: &mut BitReader, classes: &Classes) -> Result<u64, CodecError> {
        let mut ones = 0;
        while ones < 5 && r.bit()? {
            ones += 1;
        }
        match ones {
            0 => Ok(0),
            5 => r.read(64),
            k => r.read(classes[k - 1]),
        }
    }

    /// `v` as an integer count of `10^-digits`, if that represents it exactly
    /// (dividing back gives the same bits, so decoding is lossless).
    fn as_decimal(v: f64, scale: f64) -> Option<i64> {
        let scaled = (v * scale).round();
        // Beyond 2^53 (or NaN) not every integer is exact.
        if scaled.is_nan() || scaled.abs() >= 9_007_199_254_740_992.0 {
            return None;
        }
        let int = scaled as i64;
        // Compared as the decoder computes it, so -0.0 is not taken for 0.
        ((int as f64 / scale).to_bits() == v.to_bits()).then_some(int)
    }

    /// The fewest decimal digits that represent every value exactly:
    /// readings such as 21.53 then cost a few bits of change each instead of
    /// the ~40 bits their binary fractions cost under XOR.
    fn decimal_digits(points: &[RawPoint]) -> Option<u8> {
        (0..=MAX_DIGITS).find(|&d| {
            let scale = 10f64.powi(i32::from(d));
            points.iter().all(|p| as_decimal(p.value, scale).is_some())
        })
    }

    pub fn encode(points: &[RawPoint]) -> Result<Vec<u8>, CodecError> {
        let mut w = BitWriter {
            out: vec![VERSION],
            acc: 0,
            bits: 0,
        };
        let mut n = points.len() as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                w.out.push(byte);
                break;
            }
            w.out.push(byte | 0x80);
        }
        let Some((first, rest)) = points.split_first() else {
            return Ok(w.finish());
        };
        let digits = decimal_digits(points);
        w.out.push(digits.unwrap_or(MODE_XOR));
        let scale = 10f64.powi(i32::from(digits.unwrap_or(0)));
        let decimal = |v: f64| as_decimal(v, scale).unwrap_or(0);

        w.write(first.ts_ms as u64, 64);
        let mut prev_int = decimal(first.value);
        let mut prev_bits = first.value.to_bits();
        if digits.is_some() {
            w.write(zigzag(prev_int), 64);
        } else {
            w.write(prev_bits, 64);
        }
        let (mut prev_ts, mut prev_delta) = (first.ts_ms, 0i64);
        let (mut lead, mut trail) = (u32::MAX, 0u32);
        for (i, p) in rest.iter().enumerate() {
            if p.ts_ms <= prev_ts {
                return Err(CodecError::NotIncreasing(i + 1));
            }
            let delta = p.ts_ms.wrapping_sub(prev_ts);
            write_classed(&mut w, zigzag(delta.wrapping_sub(prev_delta)), &TS_CLASSES);
            prev_ts = p.ts_ms;
            prev_delta = delta;

            if digits.is_some() {
                let int = decimal(p.value);
                write_classed(&mut w, zigzag(int.wrapping_sub(prev_int)), &DECIMAL_CLASSES);
                prev_int = int;
                continue;
            }
            let bits = p.value.to_bits();
            let xor = bits ^ prev_bits;
            prev_bits = bits;
            if xor == 0 {
                w.write(0, 1);
                continue;
            }
            let l = xor.leading_zeros().min(31);
            let t = xor.trailing_zeros();
            if lead != u32::MAX && l >= lead && t >= trail {
                w.write(0b10, 2);
                w.write(xor >> trail, 64 - lead - trail);
            } else {
                let meaningful = 64 - l - t;
                w.write(0b11, 2);
                w.write(u64::from(l), 5);
                w.write(u64::from(meaningful - 1), 6);
                w.write(xor >> t, meaningful);
                lead = l;
                trail = t;
            }
        }
        Ok(w.finish())
    }

    pub fn decode(data: &[u8]) -> Result<Vec<RawPoint>, CodecError> {
        let (&version, mut rest) = data.split_first().ok_or(CodecError::Corrupt("empty"))?;
        if version != VERSION {
            return Err(CodecError::Corrupt("unknown version"));
        }
        let mut n = 0u64;
        let mut shift = 0;
        loop {
            let (&byte, tail) = rest.split_first().ok_or(CodecError::Corrupt("truncated count"))?;
            rest = tail;
            if shift > 63 {
                return Err(CodecError::Corrupt("count too long"));
            }
            n |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let (&mode, rest) = rest.split_first().ok_or(CodecError::Corrupt("truncated mode"))?;
        if mode != MODE_XOR && mode > MAX_DIGITS {
            return Err(CodecError::Corrupt("unknown value mode"));
        }
        // Each point after the first takes at least 2 bits, so a larger count
        // is corrupt (and must not drive an allocation).
        if n > (rest.len() as u64) * 4 + 1 {
            return Err(CodecError::Corrupt("count exceeds data"));
        }
        let scale = 10f64.powi(i32::from(if mode == MODE_XOR { 0 } else { mode }));
        let mut out = Vec::with_capacity(n as usize);
        let mut r = BitReader { data: rest, pos: 0 };
        let mut ts = r.read(64)? as i64;
        let first = r.read(64)?;
        let (mut bits, mut int) = (first, unzigzag(first));
        let value = |bits: u64, int: i64| {
            if mode == MODE_XOR {
                f64::from_bits(bits)
            } else {
                int as f64 / scale
            }
        };
        out.push(RawPoint {
            ts_ms: ts,
            value: value(bits, int),
        });
        let mut delta = 0i64;
        let (mut lead, mut trail) = (0u32, 0u32);
        for _ in 1..n {
            delta = delta.wrapping_add(unzigzag(read_classed(&mut r, &TS_CLASSES)?));
            ts = ts.wrapping_add(delta);
            if mode != MODE_XOR {
                int = int.wrapping_add(unzigzag(read_classed(&mut r, &DECIMAL_CLASSES)?));
            } else if r.bit()? {
                if r.bit()? {
                    lead = r.read(5)? as u32;
                    let meaningful = r.read(6)? as u32 + 1;
                    if lead + meaningful > 64 {
                        return Err(CodecError::Corrupt("bad value width"));
                    }
                    trail = 64 - lead - meaningful;
                }
                let meaningful = 64 - lead - trail;
                bits ^= r.read(meaningful)? << trail;
            }
            out.push(RawPoint {
                ts_ms: ts,
                value: value(bits, int),
            });
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn p(ts_ms: i64, value: f64) -> RawPoint {
            RawPoint { ts_ms, value }
        }

        fn round_trip(points: &[RawPoint]) -> Vec<u8> {
            let data = encode(points).expect("encode");
            let back = decode(&data).expect("decode");
            assert_eq!(back.len(), points.len());
            for (a, b) in back.iter().zip(points) {
                assert_eq!(a.ts_ms, b.ts_ms);
                assert_eq!(a.value.to_bits(), b.value.to_bits(), "value at {}", b.ts_ms);
            }
            data
        }

        #[test]
        fn empty_chunk_is_two_bytes() {
            assert_eq!(round_trip(&[]), vec![VERSION, 0]);
        }

        #[test]
        fn one_point() {
            let data = round_trip(&[p(1_700_000_000_000, 21.5)]);
            assert_eq!(data.len(), 3 + 16);
        }

        #[test]
        fn identical_timestamps_are_rejected() {
            let err = encode(&[p(1000, 1.0), p(2000, 2.0), p(2000, 3.0)]).unwrap_err();
            assert_eq!(err, CodecError::NotIncreasing(2));
            assert_eq!(
                encode(&[p(2000, 1.0), p(1000, 2.0)]).unwrap_err(),
                CodecError::NotIncreasing(1)
            );
        }

        #[test]
        fn negative_and_extreme_values() {
            round_trip(&[
                p(0, -0.0),
                p(1, 0.0),
                p(2, -273.15),
                p(3, f64::MAX),
                p(4, f64::MIN),
                p(5, f64::MIN_POSITIVE),
                p(6, -f64::MIN_POSITIVE),
                p(7, 5e-324),
                p(8, -1e300),
                p(9, -1e300),
            ]);
        }

        #[test]
        fn large_gaps_and_negative_timestamps() {
            round_trip(&[
                p(i64::MIN, 1.0),
                p(-5, 2.0),
                p(0, 3.0),
                p(1, 3.0),
                p(1 << 40, 4.0),
                p((1 << 40) + 1, 4.0),
                p(i64::MAX - 1, 5.0),
                p(i64::MAX, 6.0),
            ]);
        }

        #[test]
        fn regular_series_costs_about_two_bits_per_point() {
            let points: Vec<RawPoint> = (0..3600).map(|i| p(1_700_000_000_000 + i * 1000, 20.0)).collect();
            let data = round_trip(&points);
            // 1 bit timestamp + 1 bit value per point after the first.
            assert!(data.len() <= 4 + 16 + 3 + 3599 * 2 / 8 + 1, "{} bytes", data.len());
        }

        #[test]
        fn decimal_readings_are_compact_and_exact() {
            let mut v = 2153i64;
            let points: Vec<RawPoint> = (0..3600)
                .map(|i| {
                    v += (i * 7919 % 21) - 10;
                    p(1_700_000_000_000 + i * 1000, v as f64 / 100.0)
                })
                .collect();
            let data = round_trip(&points);
            assert_eq!(data[3], 2, "two decimal digits");
            assert!(data.len() < 3600 * 12 / 8, "{} bytes", data.len());
            // One value that is no short decimal (or -0.0) switches to XOR.
            for odd in [0.1 + 0.2, -0.0, 1e300] {
                let mut mixed = points[..100].to_vec();
                mixed[50].value = odd;
                let data = round_trip(&mixed);
                assert_eq!(data[2], MODE_XOR, "{odd}");
            }
            let negative: Vec<RawPoint> = (0..10).map(|i| p(i, -40.0 + i as f64 * 0.5)).collect();
            assert_eq!(round_trip(&negative)[2], 1);
        }

        #[test]
        fn corrupt_input_is_an_error_not_a_panic() {
            let data = encode(&[p(1, 1.5), p(2, 2.5), p(4, 3.5)]).expect("encode");
            for cut in 0..data.len() {
                assert!(decode(&data[..cut]).is_err(), "prefix of {cut} bytes decoded");
            }
            assert!(decode(&[9, 0]).is_err());
            assert!(decode(&[VERSION, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        }
    }
}
