//! Telemetry storage benchmark (ADR 0006), in-process on a fresh database per
//! backend:
//!
//! 1. Ingest: `--ingest-points` points in HTTP-sized batches of
//!    `--batch` points from `--writers` concurrent callers through the
//!    group-committing `PointWriter`: points/s. Baseline in the same run and
//!    engine: the same batches, one transaction each, as plain multi-row
//!    INSERTs into a bare table with the same four columns and no key
//!    (SQLite: 1,024-row statements; PostgreSQL: one UNNEST statement). The
//!    ratio writer / baseline is the figure of merit (target ≥ 50 %).
//!    Then MQTT-sized writes: `--small-writers` callers each writing 3
//!    values and awaiting the commit before the next: writes/s.
//! 2. Storage: `--points` points over `--series` series, one every
//!    `--interval-ms`, appended in time order with maintenance run every 6
//!    simulated hours, as a node would: bytes per point (SQLite
//!    page_count·page_size without free pages; PostgreSQL total relation
//!    size of the telemetry tables).
//! 3. Query: `--queries` 7-day single-series queries (raw points, and 1-hour
//!    roll-ups) of random series ending at the newest data: p50/p99.
//!
//! Quick run (10 M stored points, a few minutes):
//!   target/release/telemetry_store
//! The size (100 M points, about 10× longer, ~1 GB of SQLite):
//!   target/release/telemetry_store --points 100000000 --series 10000

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shuxiang_bench::{DEFAULT_PG, machine, percentile, with_pg_scratch};
use shuxiang_core::db::CORE_MIGRATIONS;
use shuxiang_core::{Backend, Db, Tx};
use shuxiang_telemetry::series::{self, Step};
use shuxiang_telemetry::store::{NewPoint, Retention, TELEMETRY_MIGRATIONS, append_points, maintain, sqlite_bytes};
use shuxiang_telemetry::writer::{PointWriter, WriterConfig};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Parser, Clone)]
#[command(about = "Telemetry storage: ingest vs raw insert, bytes per point, 7-day query latency")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Which,
    /// PostgreSQL server to create the scratch database on.
    #[arg(long, default_value = DEFAULT_PG)]
    pg: String,
    /// Points written in the ingest comparison.
    #[arg(long, default_value_t = 2_000_000)]
    ingest_points: usize,
    /// Points per write (an HTTP batch holds up to 10,000).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Concurrent callers of the writer.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Concurrent callers in the 3-value (MQTT-sized) write measurement.
    #[arg(long, default_value_t = 500)]
    small_writers: usize,
    /// 3-value writes in total in that measurement.
    #[arg(long, default_value_t = 200_000)]
    small_writes: usize,
    /// Points stored for the storage and query measurements.
    #[arg(long, default_value_t = 10_000_000)]
    points: u64,
    /// Series (device, metric) the stored points spread over.
    #[arg(long, default_value_t = 1_000)]
    series: u64,
    /// Interval between a series' points.
    #[arg(long, default_value_t = 60_000)]
    interval_ms: i64,
    /// Query samples per kind.
    #[arg(long, default_value_t = 300)]
    queries: usize,
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z: where simulated time starts.
const START: i64 = 1_767_225_600_000;
const METRICS: [&str; 3] = ["vwc", "soil_temperature", "air_temperature"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("{}", machine());
    if matches!(args.backend, Which::Sqlite | Which::Both) {
        let dir = tempfile::tempdir()?;
        let ingest = open_sqlite(&dir.path().join("ingest")).await?;
        run_ingest(&args, &ingest).await?;
        ingest.close().await;
        let store = open_sqlite(&dir.path().join("store")).await?;
        run_store(&args, &store).await?;
        store.close().await;
    }
    if matches!(args.backend, Which::Postgres | Which::Both) {
        with_pg_scratch(&args.pg, async |scratch| {
            let db = Db::open_postgres(&scratch.url, None).await?;
            db.migrate(&[&CORE_MIGRATIONS, &TELEMETRY_MIGRATIONS]).await?;
            run_ingest(&args, &db).await?;
            db.execute_raw("TRUNCATE telemetry_segments, telemetry_chunks, telemetry_rollups")
                .await?;
            run_store(&args, &db).await?;
            db.close().await;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

async fn open_sqlite(dir: &Path) -> Result<Db> {
    let db = Db::open_sqlite_dir(dir).await?;
    db.migrate(&[&CORE_MIGRATIONS, &TELEMETRY_MIGRATIONS]).await?;
    Ok(db)
}

/// `n` points as devices report them: each batch from one of 500 devices,
/// three metrics per timestamp, one reading a second.
fn ingest_batches(n: usize, batch: usize) -> Vec<Vec<NewPoint>> {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut out = Vec::new();
    let mut made = 0;
    let mut next_ts = vec![START; 500];
    while made < n {
        let device = rng.random_range(0..500usize);
        let size = batch.min(n - made);
        let mut points = Vec::with_capacity(size);
        while points.len() < size {
            let ts = next_ts[device];
            next_ts[device] += 1000;
            for metric in METRICS {
                if points.len() < size {
                    points.push(NewPoint {
                        device_id: device as i64 + 1,
                        metric: metric.to_string(),
                        ts_ms: ts,
                        value: (rng.random_range(0..10_000) as f64) / 100.0,
                    });
                }
            }
        }
        made += size;
        out.push(points);
    }
    out
}

async fn run_ingest(args: &Args, db: &Db) -> Result<()> {
    let backend = db.backend().as_str();
    db.execute_raw(
        "CREATE TABLE bench_raw_points (device_id BIGINT NOT NULL, metric_id INTEGER NOT NULL, \
         ts_ms BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL)",
    )
    .await?;
    let batches = ingest_batches(args.ingest_points, args.batch);
    let total: usize = batches.iter().map(Vec::len).sum();

    // Baseline first, so the writer's table does not sit in the cache.
    let raw_rows: Vec<Vec<(i64, i32, i64, f64)>> = batches
        .iter()
        .map(|b| {
            b.iter()
                .map(|p| {
                    let metric = METRICS.iter().position(|m| *m == p.metric).unwrap_or(0) as i32;
                    (p.device_id, metric, p.ts_ms, p.value)
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    for rows in &raw_rows {
        let mut tx = db.begin().await?;
        raw_insert(&mut tx, rows).await?;
        tx.commit().await?;
    }
    let raw_secs = started.elapsed().as_secs_f64();

    let writer = PointWriter::spawn(db.clone(), WriterConfig::for_backend(db.backend()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut queues: Vec<Vec<Vec<NewPoint>>> = (0..args.writers.max(1)).map(|_| Vec::new()).collect();
    for (i, b) in batches.into_iter().enumerate() {
        queues[i % args.writers.max(1)].push(b);
    }
    for queue in queues {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            for b in queue {
                writer.write(b).await?;
            }
            Ok::<_, shuxiang_core::CoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let writer_secs = started.elapsed().as_secs_f64();
    let writer_rate = total as f64 / writer_secs;
    let raw_rate = total as f64 / raw_secs;
    println!(
        "[{backend}] ingest {total} points in batches of {} from {} callers: PointWriter {:.0} points/s; \
         raw batched INSERT (same engine, same batches) {:.0} points/s; ratio {:.0} %",
        args.batch,
        args.writers,
        writer_rate,
        raw_rate,
        100.0 * writer_rate / raw_rate
    );

    // MQTT-sized writes: each caller sends 3 values and waits for the commit
    // before its next message, as a QoS 1 publisher awaiting PUBACK does.
    let callers = args.small_writers.max(1);
    let per_caller = (args.small_writes / callers).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_caller {
                let ts = START + 10 * DAY + i as i64 * 1000;
                let points = METRICS
                    .iter()
                    .map(|m| NewPoint {
                        device_id: 10_000 + c as i64,
                        metric: m.to_string(),
                        ts_ms: ts,
                        value: 20.5,
                    })
                    .collect();
                writer.write(points).await?;
            }
            Ok::<_, shuxiang_core::CoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "[{backend}] group commit of 3-value writes from {callers} concurrent callers, each awaiting its commit: \
         {:.0} writes/s ({:.0} points/s)",
        (callers * per_caller) as f64 / secs,
        (callers * per_caller * 3) as f64 / secs
    );
    Ok(())
}

/// The baseline insert: a bare table, no key, no conflict handling.
async fn raw_insert(tx: &mut Tx, rows: &[(i64, i32, i64, f64)]) -> Result<()> {
    match tx {
        Tx::Sqlite(t) => {
            for chunk in rows.chunks(1024) {
                let mut sql = String::from("INSERT INTO bench_raw_points VALUES ");
                for i in 0..chunk.len() {
                    sql.push_str(if i == 0 { "(?,?,?,?)" } else { ",(?,?,?,?)" });
                }
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for &(d, m, ts, v) in chunk {
                    q = q.bind(d).bind(m).bind(ts).bind(v);
                }
                q.execute(&mut **t).await?;
            }
        }
        Tx::Postgres(t) => {
            sqlx::query(
                "INSERT INTO bench_raw_points SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::int8[], $4::float8[])",
            )
            .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.3).collect::<Vec<_>>())
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

async fn stored_bytes(db: &Db) -> Result<u64> {
    match db.backend() {
        Backend::Sqlite => Ok(sqlite_bytes(db).await?.context("SQLite size")?),
        Backend::Postgres => {
            let Db::Postgres(pool) = db else {
                unreachable!("backend is PostgreSQL")
            };
            let (bytes,): (i64,) = sqlx::query_as(
                "SELECT (pg_total_relation_size('telemetry_segments') + pg_total_relation_size('telemetry_chunks') \
                 + pg_total_relation_size('telemetry_rollups') + pg_total_relation_size('telemetry_metrics'))::int8",
            )
            .fetch_one(pool)
            .await?;
            Ok(bytes as u64)
        }
    }
}

async fn run_store(args: &Args, db: &Db) -> Result<()> {
    let backend = db.backend().as_str();
    let series = args.series.max(1);
    let steps = args.points.div_ceil(series);
    let before = stored_bytes(db).await?;
    let retention = Retention::default();
    let mut rng = SmallRng::seed_from_u64(2);
    let mut values: Vec<f64> = (0..series).map(|_| rng.random_range(10.0..40.0)).collect();
    let started = Instant::now();
    let mut maintenance = Duration::ZERO;
    let mut batch = Vec::with_capacity(100_000);
    let mut written = 0u64;
    let mut next_maintenance = START + 6 * HOUR;
    for step in 0..steps {
        let ts = START + step as i64 * args.interval_ms;
        for s in 0..series {
            if written == args.points {
                break;
            }
            // A random walk in steps of 0.01, as a probe's readings move.
            let v = &mut values[s as usize];
            *v = ((*v + rng.random_range(-10..=10) as f64 / 100.0) * 100.0).round() / 100.0;
            batch.push(NewPoint {
                device_id: (s / 3 + 1) as i64,
                metric: METRICS[(s % 3) as usize].to_string(),
                ts_ms: ts + rng.random_range(0..200),
                value: *v,
            });
            written += 1;
        }
        if batch.len() >= 100_000 {
            let mut tx = db.begin().await?;
            append_points(&mut tx, &batch).await?;
            tx.commit().await?;
            batch.clear();
        }
        if ts >= next_maintenance {
            let t = Instant::now();
            maintain(db, ts, &retention).await?;
            maintenance += t.elapsed();
            next_maintenance += 6 * HOUR;
        }
    }
    let mut tx = db.begin().await?;
    append_points(&mut tx, &batch).await?;
    tx.commit().await?;
    let end = START + (steps as i64) * args.interval_ms;
    let t = Instant::now();
    maintain(db, end, &retention).await?;
    maintenance += t.elapsed();
    let load_secs = started.elapsed().as_secs_f64();
    if db.backend() == Backend::Postgres {
        db.execute_raw("VACUUM ANALYZE telemetry_segments, telemetry_chunks, telemetry_rollups")
            .await?;
    }
    let bytes = stored_bytes(db).await?.saturating_sub(before);
    if let Db::Postgres(pool) = db {
        let sizes: Vec<(String, i64)> = sqlx::query_as(
            "SELECT t, pg_total_relation_size(t::regclass)::int8 FROM unnest(ARRAY['telemetry_segments', \
             'telemetry_chunks', 'telemetry_rollups']) AS t",
        )
        .fetch_all(pool)
        .await?;
        let parts: Vec<String> = sizes
            .iter()
            .map(|(t, b)| format!("{t} {:.2}", *b as f64 / written as f64))
            .collect();
        println!("[{backend}] bytes/point by table: {}", parts.join(", "));
    }
    println!(
        "[{backend}] stored {written} points over {series} series every {} ms ({:.1} days) in {load_secs:.1} s \
         ({:.0} points/s incl. {:.1} s maintenance); {:.2} bytes/point after maintenance",
        args.interval_ms,
        (end - START) as f64 / DAY as f64,
        written as f64 / load_secs,
        maintenance.as_secs_f64(),
        bytes as f64 / written as f64
    );

    let from = (end - 7 * DAY).max(START);
    for (kind, step) in [("raw", None), ("1h roll-up", Some(Step::Hour))] {
        let mut micros = Vec::with_capacity(args.queries);
        let mut returned = 0usize;
        for _ in 0..args.queries {
            let s = rng.random_range(0..series);
            let (device, metric) = ((s / 3 + 1) as i64, METRICS[(s % 3) as usize]);
            let t = Instant::now();
            returned += match step {
                None => series::raw(db, device, metric, from, end, series::MAX_RAW_LIMIT)
                    .await?
                    .len(),
                Some(step) => series::rollup(db, device, metric, from, end, step).await?.len(),
            };
            micros.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
        micros.sort_unstable();
        println!(
            "[{backend}] 7-day single-series {kind} query at {written} stored points: p50 {:.2} ms, p99 {:.2} ms \
             ({:.0} rows/query)",
            percentile(&micros, 50.0) as f64 / 1000.0,
            percentile(&micros, 99.0) as f64 / 1000.0,
            returned as f64 / args.queries as f64
        );
    }
    Ok(())
}
