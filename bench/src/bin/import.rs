//! National region import benchmark: runs the release `shuxiang import
//! regions` on the national files (31 provinces … 620,573 villages) into a
//! fresh SQLite data directory and a fresh PostgreSQL database, twice each,
//! and reports wall time, CPU time, peak RSS and rows written; the second run
//! must write 0 rows (idempotence).
//!
//! Baseline, measured in the same run: the floor of loading the same rows on
//! each backend from this process: gunzip + CSV parse + checks, then a plain
//! bulk load into a bare table with the same columns and indexes (SQLite:
//! multi-row INSERTs of 5,000 rows in one transaction, same pragmas;
//! PostgreSQL: COPY FROM STDIN). The ratio import / baseline says what
//! conflict handling, descendant counts and process start cost on top.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use shuxiang_bench::{
    ChildRun, DEFAULT_PG, load_average, machine, mib, run_measured, shuxiang_bin, with_pg_scratch, workspace_root,
};
use shuxiang_core::import::{parse_region_files, region_files_in};
use shuxiang_core::regions::RegionRecord;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, PgConnection, QueryBuilder, SqliteConnection};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Parser)]
#[command(about = "Times the national region import on SQLite and PostgreSQL")]
struct Args {
    /// Backends to measure.
    #[arg(long, value_enum, default_value = "both")]
    backend: Which,
    /// PostgreSQL server to create the scratch database on.
    #[arg(long, default_value = DEFAULT_PG)]
    pg: String,
    /// Directory of the national region files.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The `shuxiang` binary (default: target/release/shuxiang).
    #[arg(long)]
    bin: Option<PathBuf>,
}

/// One `shuxiang import regions` run and its summary line.
struct ImportRun {
    child: ChildRun,
    read: u64,
    written: u64,
}

fn import(bin: &PathBuf, data: &PathBuf, target: &[&str]) -> Result<ImportRun> {
    let child = run_measured(
        Command::new(bin)
            .args(["import", "regions"])
            .arg(data)
            .args(target)
            .env("SHUXIANG_LOG", "warn"),
    )?;
    // "N regions read, M written (K unchanged)"
    let line = child
        .stdout
        .lines()
        .find(|l| l.contains("regions read"))
        .with_context(|| format!("no summary in output:\n{}", child.stdout))?;
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let [read, written, ..] = nums[..] else {
        bail!("unexpected summary {line:?}")
    };
    Ok(ImportRun { child, read, written })
}

/// Rows as the bulk loads write them: code, name, level, parent.
fn rows(records: &[RegionRecord]) -> Vec<(&str, &str, &'static str, Option<String>)> {
    records
        .iter()
        .map(|r| {
            (
                r.code.as_str(),
                r.name.as_str(),
                r.code.level().as_str(),
                r.code.parent().map(|p| p.to_string()),
            )
        })
        .collect()
}

/// The regions table and its indexes as the SQLite migration creates them.
const SQLITE_DDL: &str =
    "CREATE TABLE regions (code TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, level TEXT NOT NULL, \
    parent TEXT, village_type TEXT, n_city BIGINT NOT NULL DEFAULT 0, n_county BIGINT NOT NULL DEFAULT 0, \
    n_township BIGINT NOT NULL DEFAULT 0, n_village BIGINT NOT NULL DEFAULT 0, updated_at TEXT NOT NULL) WITHOUT ROWID;
    CREATE INDEX regions_parent ON regions (parent, code);
    CREATE INDEX regions_name ON regions (name);";

/// The same for PostgreSQL.
const PG_DDL: &str = "CREATE TABLE regions (code TEXT PRIMARY KEY COLLATE \"C\", name TEXT NOT NULL, level TEXT NOT NULL, \
    parent TEXT COLLATE \"C\", village_type TEXT, n_city BIGINT NOT NULL DEFAULT 0, n_county BIGINT NOT NULL DEFAULT 0, \
    n_township BIGINT NOT NULL DEFAULT 0, n_village BIGINT NOT NULL DEFAULT 0, updated_at TIMESTAMPTZ NOT NULL);
    CREATE INDEX regions_parent ON regions (parent, code);
    CREATE INDEX regions_name ON regions (name);";

async fn baseline_sqlite(records: &[RegionRecord]) -> Result<Duration> {
    let dir = tempfile::tempdir()?;
    // The pragmas of crates/core/src/db.rs, so durability costs the same.
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("baseline.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-32000");
    let mut conn = SqliteConnection::connect_with(&opts).await?;
    sqlx::raw_sql(SQLITE_DDL).execute(&mut conn).await?;
    let at = chrono::Utc::now().to_rfc3339();
    let rows = rows(records);
    let start = Instant::now();
    let mut tx = conn.begin().await?;
    for chunk in rows.chunks(5_000) {
        let mut q = QueryBuilder::new("INSERT INTO regions (code, name, level, parent, updated_at) ");
        q.push_values(chunk, |mut b, (code, name, level, parent)| {
            b.push_bind(*code)
                .push_bind(*name)
                .push_bind(*level)
                .push_bind(parent.as_deref())
                .push_bind(&at);
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(start.elapsed())
}

/// COPY's text format: backslash, tab and line breaks escaped, NULL as \N.
fn copy_field(out: &mut String, v: Option<&str>) {
    let Some(v) = v else {
        out.push_str("\\N");
        return;
    };
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

async fn baseline_pg(url: &str, records: &[RegionRecord]) -> Result<Duration> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(PG_DDL).execute(&mut conn).await?;
    let at = chrono::Utc::now().to_rfc3339();
    let mut text = String::with_capacity(records.len() * 64);
    for (code, name, level, parent) in rows(records) {
        for (i, v) in [
            Some(code),
            Some(name),
            Some(level),
            parent.as_deref(),
            Some(at.as_str()),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                text.push('\t');
            }
            copy_field(&mut text, v);
        }
        text.push('\n');
    }
    let start = Instant::now();
    let mut tx = conn.begin().await?;
    let mut copy = tx
        .copy_in_raw("COPY regions (code, name, level, parent, updated_at) FROM STDIN")
        .await?;
    copy.send(text.as_bytes()).await?;
    copy.finish().await?;
    tx.commit().await?;
    let took = start.elapsed();
    conn.close().await?;
    Ok(took)
}

/// The figures of one backend.
struct Outcome {
    backend: &'static str,
    runs: [ImportRun; 2],
    baseline_load: Duration,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn report(o: &Outcome, parse: Duration, target_s: f64) {
    println!("\n### {} (target ≤ {target_s:.0} s)\n", o.backend);
    println!("| run | wall s | user s | sys s | peak RSS MiB | read | written |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, r) in o.runs.iter().enumerate() {
        let c = &r.child;
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} |",
            if i == 0 {
                "1st (empty database)"
            } else {
                "2nd (same files again)"
            },
            secs(c.wall),
            secs(c.user),
            secs(c.sys),
            mib(c.peak_rss_kib),
            r.read,
            r.written
        );
    }
    let floor = parse + o.baseline_load;
    println!(
        "| baseline: parse {:.2} s + bare bulk load {:.2} s | {:.2} | | | | | |",
        secs(parse),
        secs(o.baseline_load),
        secs(floor)
    );
    let first = secs(o.runs[0].child.wall);
    println!(
        "\nratio 1st import / baseline: {:.2}×; target {}; second run wrote {} row(s){}",
        first / secs(floor),
        if first <= target_s { "met" } else { "MISSED" },
        o.runs[1].written,
        if o.runs[1].written == 0 {
            " (idempotent)"
        } else {
            " — NOT idempotent"
        }
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = shuxiang_bin(args.bin)?;
    let data = args.data.unwrap_or_else(|| workspace_root().join("data/regions/china"));
    println!("{}", machine());
    println!("binary: {}\ndata: {}", bin.display(), data.display());

    // Parsed here once, timed, for the baseline: the same code the import runs.
    let start = Instant::now();
    let files = region_files_in(&data)?;
    let records = parse_region_files(&files)
        .map_err(|e| anyhow::anyhow!("{} problem(s) in the files, first: {}", e.len(), e[0]))?;
    let parse = start.elapsed();
    drop(files);
    println!(
        "{} regions in the files; gunzip + CSV parse + checks in-process: {:.2} s",
        records.len(),
        secs(parse)
    );

    if matches!(args.backend, Which::Sqlite | Which::Both) {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().to_str().context("temp dir path is not UTF-8")?;
        let target = ["--data-dir", data_dir];
        let runs = [import(&bin, &data, &target)?, import(&bin, &data, &target)?];
        let baseline_load = baseline_sqlite(&records).await?;
        report(
            &Outcome {
                backend: "SQLite",
                runs,
                baseline_load,
            },
            parse,
            15.0,
        );
    }
    if matches!(args.backend, Which::Postgres | Which::Both) {
        let runs = with_pg_scratch(&args.pg, async |db| {
            let target = ["--database", db.url.as_str()];
            Ok([import(&bin, &data, &target)?, import(&bin, &data, &target)?])
        })
        .await?;
        let baseline_load = with_pg_scratch(&args.pg, async |db| baseline_pg(&db.url, &records).await).await?;
        report(
            &Outcome {
                backend: "PostgreSQL",
                runs,
                baseline_load,
            },
            parse,
            30.0,
        );
        println!("(peak RSS is the shuxiang process only; the PostgreSQL server's memory is not counted)");
    }
    println!("\nat the end: {}", load_average());
    Ok(())
}
