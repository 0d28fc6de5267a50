//! Traceability at scale (issue 4), in-process on one database per backend:
//! the consumer scan page's server-side work at `--codes` trace codes and
//! inclusion-proof generation at `--leaves` log leaves.
//!
//! Fill, timed and printed as rates. Everything goes through the trace
//! crate's own write functions except the three side tables, whose rows the
//! bench writes itself with multi-row INSERTs of exactly the columns
//! `produce::store` writes:
//! - filler leaves (other EPCIS events' hash IDs) through
//!   `log_store::append_batch`, interleaved with the batches so produce
//!   events lie all along the log;
//! - per batch the five events a real batch records (commissioning, one
//!   farm input, harvest, quality test, packing of `--packages` labelled
//!   packages), built by the `produce` event builders and stored through
//!   `epcis::store::store_events`, which also stores their EPCs and appends
//!   their leaves;
//! - `produce_batches`, `trace_codes` (the batch code and every package
//!   code) and `produce_batch_events` rows, `--batches-per-tx` batches per
//!   transaction.
//!
//! The bench folds every appended hash ID into its own compact range and
//! checks the stored head and the stored subtrees (`root_at`) against it,
//! then publishes one signed checkpoint, so the filled log is a valid log.
//!
//! Measured, one request at a time over `--samples` random codes and leaves:
//! - the consumer page `/t/{code}`'s database and verification work:
//!   `produce::store::scan` then `produce::verify::verify_scan` (every line
//!   rehashed and proven in the signed tree); each scan must verify all five
//!   events or the run fails. The page's logistics section, map and HTML
//!   rendering are not included;
//! - `log_store::inclusion_proof` at the full tree size; each proof is
//!   verified against the checkpoint's root outside the clock.
//!
//! Baselines in the same run and engine, alternated with the measured calls:
//! one `trace_codes` row by primary key, and one `trace_log_leaves` row by
//! leaf index. Ratios measured / baseline are printed.
//!
//!   target/release/trace_scale [--backend sqlite|postgres|both] [--leaves 10000000]
//!       [--codes 10000000] [--samples 10000] [--sqlite-dir DIR] [--pg-database NAME]
//!
//! `--sqlite-dir` keeps the SQLite database and `--pg-database` the
//! PostgreSQL one (created on the `--pg` server when missing); a later run
//! on a filled one skips the fill and measures only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use chrono::NaiveDate;
use clap::{Parser, ValueEnum};
use sea_query::{Expr, ExprTrait, Iden, Order, Query};
use shuxiang_bench::{DEFAULT_PG, load_average, machine, percentile, with_pg_scratch};
use shuxiang_core::db::{CORE_MIGRATIONS, Tx};
use shuxiang_core::time::now;
use shuxiang_core::{Backend, Db};
use shuxiang_trace::checkpoint::{Signer, Verifier, open_checkpoint};
use shuxiang_trace::epcis::model::NewEvent;
use shuxiang_trace::epcis::store::{Capturer, Planned, store_events};
use shuxiang_trace::epcis_hash::{Context, event_hash_id};
use shuxiang_trace::log_store::{self, TRACE_MIGRATIONS};
use shuxiang_trace::merkle::{CompactRange, leaf_hash, verify_inclusion};
use shuxiang_trace::produce::store::scan;
use shuxiang_trace::produce::verify::verify_scan;
use shuxiang_trace::produce::{
    AppliedProduct, BatchStep, NewBatch, TraceCode, commissioning_event, packing_event, step_event,
};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Parser, Clone)]
#[command(about = "Consumer scan and inclusion proofs at 10 M codes/leaves vs raw keyed reads")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Which,
    /// PostgreSQL server to create the scratch database on.
    #[arg(long, default_value = DEFAULT_PG)]
    pg: String,
    /// Leaves in the log (produce events included).
    #[arg(long, default_value_t = 10_000_000)]
    leaves: u64,
    /// Package trace codes; each batch has `--packages` of them plus its own code.
    #[arg(long, default_value_t = 10_000_000)]
    codes: u64,
    /// Labelled packages per batch.
    #[arg(long, default_value_t = 100)]
    packages: u64,
    /// Batches written per transaction during the fill.
    #[arg(long, default_value_t = 1_000)]
    batches_per_tx: u64,
    /// Scans, proofs and baseline reads measured, each.
    #[arg(long, default_value_t = 10_000)]
    samples: usize,
    /// Keep the SQLite database here (reused, without refilling, when filled).
    #[arg(long)]
    sqlite_dir: Option<PathBuf>,
    /// Keep the PostgreSQL database under this name on the `--pg` server
    /// (reused, without refilling, when filled) instead of a scratch one.
    #[arg(long)]
    pg_database: Option<String>,
}

/// Commissioning, input, harvest, test and packing.
const EVENTS_PER_BATCH: u64 = 5;
const ORIGIN: &str = "bench.shuxiang.example/trace-log";
/// Fixed, so a kept database's checkpoint verifies in a later run.
const SIGNER_SEED: [u8; 32] = [42; 32];
const ROWS_PER_INSERT: usize = 2_000;

#[derive(Iden)]
enum ProduceBatches {
    Table,
    Id,
    Code,
    Village,
    Crop,
    ProducerName,
    OwnerId,
    Lon,
    Lat,
    Harvested,
    CreatedAt,
}

#[derive(Iden)]
enum TraceCodes {
    Table,
    Code,
    BatchId,
    Kind,
}

#[derive(Iden)]
enum ProduceBatchEvents {
    Table,
    BatchId,
    Seq,
    HashId,
}

#[derive(Iden)]
enum TraceLogLeaves {
    Table,
    LeafIndex,
    HashId,
    LeafHash,
}

/// A hash ID for the `n`-th filler leaf, standing in for the events other
/// slices capture; its digest is a SHA-256 like a real one.
fn filler_id(n: u64) -> String {
    let digest = leaf_hash(format!("filler event {n}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("ni:///sha-256;{hex}?ver=CBV2.0")
}

fn date(day: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).expect("a valid date") + chrono::Days::new(day % 200)
}

/// One batch as the store would hold it: its row, codes and events.
struct BatchFill {
    id: i64,
    code: TraceCode,
    village: String,
    crop: &'static str,
    producer: String,
    packages: Vec<TraceCode>,
    events: Vec<NewEvent>,
}

fn new_event(event: &serde_json::Value) -> Result<NewEvent> {
    NewEvent::from_event(event, &Context::from_document(event), None)
        .map_err(|v| anyhow::anyhow!("a produce event does not hash: {v:?}"))
}

fn make_batch(n: u64, packages: u64) -> Result<BatchFill> {
    const CROPS: [&str; 6] = ["水稻", "脐橙", "绿茶", "蜜橘", "油茶", "莲子"];
    let code = TraceCode::generate();
    let village = format!("3601{:02}{:03}{:03}", 2 + n % 10, 1 + n % 20, 1 + n % 200);
    let crop = CROPS[(n % CROPS.len() as u64) as usize];
    let producer = format!("赣{}号合作社", n % 5_000);
    let new = NewBatch {
        crop: crop.into(),
        village: village.clone(),
        producer_name: producer.clone(),
        parcel: Some(format!("{}号地块", n % 40)),
        lon: None,
        lat: None,
        planted_on: Some(date(n)),
    };
    let product = AppliedProduct {
        name: "草甘膦".into(),
        registration_number: Some(format!("PD2015{:04}", n % 10_000)),
    };
    let steps = [
        BatchStep::Input {
            product_id: 1,
            label_code: None,
            applied_on: date(n + 20),
            amount: 1.5,
            unit: "kg".into(),
        },
        BatchStep::Harvest {
            harvested_on: date(n + 90),
            quantity_kg: 1_000.0 + (n % 500) as f64,
        },
        BatchStep::Test {
            tested_on: date(n + 91),
            item: "农药残留".into(),
            passed: true,
            lab: "江西省农产品质量安全检测中心".into(),
        },
    ];
    let packages: Vec<TraceCode> = (0..packages).map(|_| TraceCode::generate()).collect();
    let mut events = vec![new_event(&commissioning_event(&code, &new, date(n)))?];
    for step in &steps {
        let applied = matches!(step, BatchStep::Input { .. }).then_some(&product);
        events.push(new_event(&step_event(&code, &village, step, applied))?);
    }
    events.push(new_event(&packing_event(&code, &village, &packages, date(n + 92)))?);
    Ok(BatchFill {
        id: i64::try_from(n + 1)?,
        code,
        village,
        crop,
        producer,
        packages,
        events,
    })
}

/// Writes the side-table rows of `batches` as `produce::store` does.
async fn insert_batch_rows(tx: &mut Tx, batches: &[BatchFill]) -> Result<()> {
    let at = now();
    for chunk in batches.chunks(ROWS_PER_INSERT) {
        let mut q = Query::insert();
        q.into_table(ProduceBatches::Table).columns([
            ProduceBatches::Id,
            ProduceBatches::Code,
            ProduceBatches::Village,
            ProduceBatches::Crop,
            ProduceBatches::ProducerName,
            ProduceBatches::OwnerId,
            ProduceBatches::Lon,
            ProduceBatches::Lat,
            ProduceBatches::Harvested,
            ProduceBatches::CreatedAt,
        ]);
        for b in chunk {
            q.values_panic([
                b.id.into(),
                b.code.as_str().into(),
                b.village.as_str().into(),
                b.crop.into(),
                b.producer.as_str().into(),
                1i64.into(),
                Option::<f64>::None.into(),
                Option::<f64>::None.into(),
                true.into(),
                at.into(),
            ]);
        }
        tx.execute(&q).await?;
    }
    let codes: Vec<(&str, i64, &str)> = batches
        .iter()
        .flat_map(|b| {
            std::iter::once((b.code.as_str(), b.id, "batch"))
                .chain(b.packages.iter().map(move |p| (p.as_str(), b.id, "package")))
        })
        .collect();
    for chunk in codes.chunks(ROWS_PER_INSERT) {
        let mut q = Query::insert();
        q.into_table(TraceCodes::Table)
            .columns([TraceCodes::Code, TraceCodes::BatchId, TraceCodes::Kind]);
        for (code, id, kind) in chunk {
            q.values_panic([(*code).into(), (*id).into(), (*kind).into()]);
        }
        tx.execute(&q).await?;
    }
    let links: Vec<(i64, i32, &str)> = batches
        .iter()
        .flat_map(|b| {
            b.events
                .iter()
                .zip(1..)
                .map(move |(e, seq)| (b.id, seq, e.hash_id.as_str()))
        })
        .collect();
    for chunk in links.chunks(ROWS_PER_INSERT) {
        let mut q = Query::insert();
        q.into_table(ProduceBatchEvents::Table).columns([
            ProduceBatchEvents::BatchId,
            ProduceBatchEvents::Seq,
            ProduceBatchEvents::HashId,
        ]);
        for (id, seq, hash_id) in chunk {
            q.values_panic([(*id).into(), (*seq).into(), (*hash_id).into()]);
        }
        tx.execute(&q).await?;
    }
    Ok(())
}

/// Fills the log and the produce tables, checks the stored tree against an
/// independently folded one and publishes a checkpoint.
async fn fill(db: &Db, args: &Args, signer: &Signer) -> Result<()> {
    ensure!(
        args.packages > 0 && args.batches_per_tx > 0,
        "--packages and --batches-per-tx must be positive"
    );
    let batches = args.codes / args.packages;
    let events = batches * EVENTS_PER_BATCH;
    ensure!(
        args.leaves >= events,
        "{batches} batches log {events} events, more than --leaves {}",
        args.leaves
    );
    let filler_total = args.leaves - events;
    let groups = Ord::max(batches, 1).div_ceil(args.batches_per_tx);
    let capturer = Capturer {
        user_id: Some(1),
        region: "360102".into(),
        capture_id: None,
    };
    let mut tree = CompactRange::new();
    let [mut log_time, mut produce_time, mut build_time, mut commit_time] = [Duration::ZERO; 4];
    let started = Instant::now();
    let mut next_filler = 0;
    let mut last_report = Instant::now();
    for g in 0..groups {
        let filler_end = filler_total * (g + 1) / groups;
        let ids: Vec<String> = (next_filler..filler_end).map(filler_id).collect();
        next_filler = filler_end;
        let first = g * args.batches_per_tx;
        let last = Ord::min(first + args.batches_per_tx, batches);
        let t = Instant::now();
        let group = (first..last)
            .map(|n| make_batch(n, args.packages))
            .collect::<Result<Vec<_>>>()?;
        let new_events: Vec<NewEvent> = group.iter().flat_map(|b| b.events.iter().cloned()).collect();
        build_time += t.elapsed();

        let mut tx = db.begin().await?;
        let t = Instant::now();
        log_store::append_batch(&mut tx, &ids).await?;
        log_time += t.elapsed();
        let t = Instant::now();
        let plan = store_events(&mut tx, &capturer, &new_events, now().timestamp_millis()).await?;
        ensure!(
            plan.iter().all(|p| *p == Planned::New),
            "a generated event was already stored"
        );
        insert_batch_rows(&mut tx, &group).await?;
        produce_time += t.elapsed();
        let t = Instant::now();
        tx.commit().await?;
        commit_time += t.elapsed();

        for id in ids
            .iter()
            .map(String::as_str)
            .chain(new_events.iter().map(|e| e.hash_id.as_str()))
        {
            tree.append(leaf_hash(id.as_bytes()));
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "  filled {} / {} leaves, {} / {batches} batches, {:.0} s",
                tree.size(),
                args.leaves,
                last,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let total = started.elapsed();
    let stored = log_store::size(db).await?;
    ensure!(
        stored == args.leaves,
        "the log holds {stored} leaves, not {}",
        args.leaves
    );
    ensure!(
        log_store::root(db).await? == tree.root(),
        "the head's root differs from the folded tree"
    );
    ensure!(
        log_store::root_at(db, stored).await? == tree.root(),
        "the stored subtrees fold to another root than the leaves"
    );
    let checkpoint = log_store::publish_checkpoint(db, signer, ORIGIN)
        .await?
        .context("no checkpoint published after the fill")?;
    ensure!(checkpoint.root == tree.root(), "the checkpoint signs another root");

    let codes = batches * (args.packages + 1);
    println!(
        "fill: {} leaves ({filler_total} filler via append_batch, {events} produce events via store_events), \
         {batches} batches, {codes} trace codes in {:.0} s",
        args.leaves,
        total.as_secs_f64()
    );
    println!(
        "fill: append_batch {:.0} filler leaves/s ({:.0} s); produce events + EPCs + side rows {:.0} codes/s \
         ({:.0} s); building events {:.0} s; commits {:.0} s",
        filler_total as f64 / log_time.as_secs_f64(),
        log_time.as_secs_f64(),
        codes as f64 / produce_time.as_secs_f64(),
        produce_time.as_secs_f64(),
        build_time.as_secs_f64(),
        commit_time.as_secs_f64()
    );
    println!("fill: stored root and subtrees match the independently folded tree; checkpoint signed at {stored}");
    Ok(())
}

/// A code issued roughly uniformly at random: the first stored code at or
/// after a fresh random one (codes are uniform over their key space).
async fn random_code(db: &Db) -> Result<TraceCode> {
    let probe = TraceCode::generate();
    let after = |cond: bool| {
        let mut q = Query::select();
        q.column(TraceCodes::Code)
            .from(TraceCodes::Table)
            .order_by(TraceCodes::Code, Order::Asc)
            .limit(1);
        if cond {
            q.and_where(Expr::col(TraceCodes::Code).gte(probe.as_str()));
        }
        q
    };
    let found: Option<(String,)> = match db.fetch_optional(&after(true)).await? {
        Some(row) => Some(row),
        None => db.fetch_optional(&after(false)).await?,
    };
    let (code,) = found.context("no trace codes stored")?;
    Ok(TraceCode::parse(&code)?)
}

/// Sorted nanoseconds, for `percentile`.
struct Samples(Vec<u32>);

impl Samples {
    fn new(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }
    fn push(&mut self, d: Duration) {
        self.0.push(u32::try_from(d.as_nanos()).unwrap_or(u32::MAX));
    }
    fn ms(&mut self, p: f64) -> f64 {
        self.0.sort_unstable();
        f64::from(percentile(&self.0, p)) / 1e6
    }
}

fn report(backend: Backend, what: &str, measured: &mut Samples, baseline: &mut Samples, base_what: &str) {
    let (p50, p99, max) = (measured.ms(50.0), measured.ms(99.0), measured.ms(100.0));
    let (b50, b99) = (baseline.ms(50.0), baseline.ms(99.0));
    println!(
        "{:<8} {what:<34} p50 {p50:>7.3} ms  p99 {p99:>7.3} ms  max {max:>7.3} ms",
        backend.as_str()
    );
    println!(
        "{:<8} {base_what:<34} p50 {b50:>7.3} ms  p99 {b99:>7.3} ms   ratio p50 {:>5.1}×  p99 {:>5.1}×",
        "",
        p50 / b50,
        p99 / b99
    );
}

async fn measure(db: &Db, backend: Backend, args: &Args, verifier: &Verifier) -> Result<()> {
    let checkpoint = log_store::latest_checkpoint(db).await?.context("no checkpoint")?;
    let signed = open_checkpoint(&checkpoint.note, verifier).context("the checkpoint's signature")?;
    let size = signed.size();

    let (mut page, mut scans, mut verifies, mut code_reads, mut rehashes) = (
        Samples::new(args.samples),
        Samples::new(args.samples),
        Samples::new(args.samples),
        Samples::new(args.samples),
        Samples::new(args.samples),
    );
    for _ in 0..args.samples {
        let code = random_code(db).await?;
        let t = Instant::now();
        let q = Query::select()
            .columns([TraceCodes::BatchId, TraceCodes::Kind])
            .from(TraceCodes::Table)
            .and_where(Expr::col(TraceCodes::Code).eq(code.as_str()))
            .to_owned();
        let row: Option<(i64, String)> = db.fetch_optional(&q).await?;
        code_reads.push(t.elapsed());
        ensure!(row.is_some(), "code {code:?} vanished");

        let t = Instant::now();
        let scanned = scan(db, &code).await?.context("a stored code does not scan")?;
        let scanned_at = t.elapsed();
        let verification = verify_scan(db, verifier, &scanned).await?;
        let total = t.elapsed();
        ensure!(
            verification.all_verified() && verification.verified == EVENTS_PER_BATCH as usize,
            "code {} did not verify: {verification:?}",
            code.as_str()
        );
        page.push(total);
        scans.push(scanned_at);
        verifies.push(total - scanned_at);

        // The CPU share of verify_scan: recomputing the events' hash IDs.
        let t = Instant::now();
        for event in &scanned.events {
            let body = serde_json::Value::Object(event.body.clone());
            event_hash_id(&body, &Context::from_document(&body))?;
        }
        rehashes.push(t.elapsed());
    }
    report(
        backend,
        "consumer scan (scan + verify_scan)",
        &mut page,
        &mut code_reads,
        "baseline: trace_codes row by key",
    );
    println!(
        "{:<8} of which scan p50 {:.3} / p99 {:.3} ms, verify_scan (5 proofs) p50 {:.3} / p99 {:.3} ms",
        "",
        scans.ms(50.0),
        scans.ms(99.0),
        verifies.ms(50.0),
        verifies.ms(99.0)
    );
    println!(
        "{:<8} rehashing the 5 events alone (CPU, part of verify_scan) p50 {:.3} / p99 {:.3} ms",
        "",
        rehashes.ms(50.0),
        rehashes.ms(99.0)
    );

    let (mut proofs, mut leaf_reads) = (Samples::new(args.samples), Samples::new(args.samples));
    for _ in 0..args.samples {
        let index = i64::try_from(rand::random_range(0..size))?;
        let t = Instant::now();
        let q = Query::select()
            .columns([TraceLogLeaves::HashId, TraceLogLeaves::LeafHash])
            .from(TraceLogLeaves::Table)
            .and_where(Expr::col(TraceLogLeaves::LeafIndex).eq(index))
            .to_owned();
        let (hash_id, _): (String, String) = db.fetch_one(&q).await?;
        leaf_reads.push(t.elapsed());

        let t = Instant::now();
        let proof = log_store::inclusion_proof(db, &hash_id, Some(size)).await?;
        proofs.push(t.elapsed());
        ensure!(
            proof.leaf_index == index as u64,
            "leaf {index} proven at {}",
            proof.leaf_index
        );
        verify_inclusion(
            &leaf_hash(hash_id.as_bytes()),
            proof.leaf_index,
            size,
            &proof.proof,
            signed.root(),
        )
        .with_context(|| format!("the proof of leaf {index} does not verify"))?;
    }
    report(
        backend,
        &format!("inclusion_proof at {size} leaves"),
        &mut proofs,
        &mut leaf_reads,
        "baseline: leaf row by index",
    );
    Ok(())
}

/// Bytes of the SQLite database files (with the WAL).
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn run(db: &Db, backend: Backend, args: &Args, signer: &Signer) -> Result<()> {
    if log_store::size(db).await? == 0 {
        fill(db, args, signer).await?;
    } else {
        println!(
            "{} reusing a filled database: {} leaves",
            backend.as_str(),
            log_store::size(db).await?
        );
    }
    if backend == Backend::Postgres {
        // What autovacuum would have done by the time a real log is this big.
        db.execute_raw("ANALYZE").await?;
    }
    println!("{}", load_average());
    measure(db, backend, args, &signer.verifier()).await
}

async fn run_postgres(url: &str, args: &Args, signer: &Signer) -> Result<()> {
    let db = Db::open_postgres(url, None).await?;
    db.migrate(&[&CORE_MIGRATIONS, &TRACE_MIGRATIONS]).await?;
    run(&db, Backend::Postgres, args, signer).await.context("PostgreSQL")?;
    let q = Query::select()
        .expr(Expr::cust("pg_database_size(current_database())"))
        .to_owned();
    let (bytes,): (i64,) = db.fetch_one(&q).await?;
    println!("postgres database size {:.2} GiB", bytes as f64 / f64::from(1 << 30));
    db.close().await;
    Ok(())
}

/// The URL of database `name` on the server of `admin_url`, created there
/// when missing; it is kept after the run.
async fn kept_pg_database(admin_url: &str, name: &str) -> Result<String> {
    ensure!(
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "--pg-database {name:?}: lowercase letters, digits and _ only, starting with a letter"
    );
    let admin = Db::open_postgres(admin_url, None).await?;
    let q = Query::select()
        .expr(Expr::cust("1"))
        .from("pg_database")
        .and_where(Expr::col("datname").eq(name))
        .to_owned();
    let exists: Option<(i32,)> = admin.fetch_optional(&q).await?;
    if exists.is_none() {
        admin.execute_raw(&format!("CREATE DATABASE {name}")).await?;
    }
    admin.close().await;
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(name);
    Ok(url.to_string())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("{}", machine());
    let signer = Signer::from_seed(ORIGIN, SIGNER_SEED)?;
    if matches!(args.backend, Which::Sqlite | Which::Both) {
        let scratch = tempfile::tempdir()?;
        let dir = args.sqlite_dir.clone().unwrap_or_else(|| scratch.path().to_path_buf());
        let db = Db::open_sqlite_dir(&dir).await?;
        db.migrate(&[&CORE_MIGRATIONS, &TRACE_MIGRATIONS]).await?;
        run(&db, Backend::Sqlite, &args, &signer).await.context("SQLite")?;
        db.close().await;
        println!(
            "sqlite   database size {:.2} GiB",
            dir_size(&dir) as f64 / f64::from(1 << 30)
        );
    }
    if matches!(args.backend, Which::Postgres | Which::Both) {
        match &args.pg_database {
            Some(name) => run_postgres(&kept_pg_database(&args.pg, name).await?, &args, &signer).await?,
            None => {
                with_pg_scratch(&args.pg, async |scratch| {
                    run_postgres(&scratch.url, &args, &signer).await
                })
                .await?;
            }
        }
    }
    println!("{}", load_average());
    Ok(())
}
