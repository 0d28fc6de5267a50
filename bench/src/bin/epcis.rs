//! EPCIS capture benchmark, in-process on a fresh database per backend:
//! events/s for documents of `--doc-sizes` events each, `--events` events
//! per size.
//!
//! Measured: the capture job path as a node runs it, per document: the job
//! is submitted (document stored, audited), then the worker parses the
//! JSON, validates it against the GS1 EPCIS schema, computes every event's
//! hash ID, stores the events and their EPCs, appends the hash IDs to the
//! trace log and records the outcome, in one transaction.
//!
//! Baseline in the same run and engine: the same rows (already built and
//! hashed) inserted per document in one transaction into a bare table with
//! the event table's columns and no indexes: no parsing, validation,
//! hashing, EPC index, log or job. The ratio capture / baseline is printed.
//!
//!   target/release/epcis [--backend sqlite|postgres|both] [--events 50000] [--doc-sizes 100,1000]

use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use sea_query::{Iden, Query};
use serde_json::{Value, json};
use shuxiang_bench::{DEFAULT_PG, machine, with_pg_scratch};
use shuxiang_core::auth::{Credential, Grant, Principal, Role, Scope};
use shuxiang_core::db::CORE_MIGRATIONS;
use shuxiang_core::region::RegionCode;
use shuxiang_core::{Backend, Db};
use shuxiang_trace::epcis::capture::{self, ErrorBehaviour, JobStatus};
use shuxiang_trace::epcis::model::NewEvent;
use shuxiang_trace::epcis::store;
use shuxiang_trace::epcis::validate::{self, Document};
use shuxiang_trace::epcis_hash::Context;
use shuxiang_trace::log_store::TRACE_MIGRATIONS;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Parser, Clone)]
#[command(about = "EPCIS capture events/s (schema, hash IDs, trace log) vs raw batched inserts")]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Which,
    /// PostgreSQL server to create the scratch database on.
    #[arg(long, default_value = DEFAULT_PG)]
    pg: String,
    /// Events captured per document size.
    #[arg(long, default_value_t = 50_000)]
    events: usize,
    /// Events per document, comma-separated.
    #[arg(long, default_value = "100,1000", value_delimiter = ',')]
    doc_sizes: Vec<usize>,
}

#[derive(Iden)]
enum BenchRawEvents {
    Table,
    EventId,
    HashId,
    EventType,
    Action,
    EventTime,
    RecordTime,
    BizStep,
    Disposition,
    ReadPoint,
    BizLocation,
    Body,
    CapturedBy,
    Region,
}

const RAW_TABLE: &str = "CREATE TABLE bench_raw_events (event_id TEXT, hash_id TEXT NOT NULL, \
    event_type TEXT NOT NULL, action TEXT, event_time BIGINT NOT NULL, record_time BIGINT NOT NULL, biz_step TEXT, \
    disposition TEXT, read_point TEXT, biz_location TEXT, body TEXT NOT NULL, captured_by BIGINT, region TEXT NOT NULL)";

/// A farm-to-market ObjectEvent: two trace-coded packages observed at a
/// village collection point.
fn event(n: usize) -> Value {
    let steps = ["commissioning", "packing", "shipping", "receiving", "inspecting"];
    json!({
        "type": "ObjectEvent", "action": "OBSERVE", "bizStep": steps[n % steps.len()],
        "disposition": "in_progress",
        "eventTime": format!("2026-03-{:02}T{:02}:{:02}:{:02}.{:03}+08:00", 1 + n / 86_400 % 28, n / 3600 % 24, n / 60 % 60, n % 60, n % 1000),
        "eventTimeZoneOffset": "+08:00",
        "epcList": [
            format!("https://id.gs1.org/01/06941234500014/21/{}", 2 * n),
            format!("https://id.gs1.org/01/06941234500014/21/{}", 2 * n + 1)
        ],
        "readPoint": {"id": format!("https://id.gs1.org/414/6941234500007/254/{}", n % 97)},
        "bizLocation": {"id": format!("https://id.gs1.org/414/6941234500007/254/{}", n % 13)}
    })
}

fn document(first: usize, size: usize) -> Value {
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-03-01T00:00:00Z",
        "epcisBody": {"eventList": (first..first + size).map(event).collect::<Vec<_>>()}
    })
}

fn capturer() -> Principal {
    Principal {
        user_id: 1,
        username: "bench".into(),
        display_name: "bench".into(),
        grants: vec![Grant {
            role: Role::Farmer,
            scope: Scope::Region(RegionCode::parse("360102").expect("a county code")),
        }],
        credential: Credential::ApiToken,
        expires_at: None,
    }
}

async fn run(db: &Db, backend: Backend, args: &Args) -> Result<()> {
    db.execute_raw(RAW_TABLE).await?;
    let user = capturer();
    let actor = user.actor(Some("127.0.0.1".into()));
    // Every size starts where the last left off, so no event repeats.
    let mut next = 0usize;
    for &size in &args.doc_sizes {
        if size == 0 {
            bail!("document sizes must be positive");
        }
        let docs = args.events.div_ceil(size);
        let texts: Vec<String> = (0..docs).map(|d| document(next + d * size, size).to_string()).collect();
        let rows: Vec<Vec<NewEvent>> = texts
            .iter()
            .map(|t| {
                let doc: Value = serde_json::from_str(t).expect("generated JSON");
                let context = Context::from_document(&doc);
                doc["epcisBody"]["eventList"]
                    .as_array()
                    .expect("event list")
                    .iter()
                    .map(|e| {
                        NewEvent::from_event(e, &context, doc.get("@context")).expect("generated events are valid")
                    })
                    .collect()
            })
            .collect();
        next += docs * size;
        let total = docs * size;

        let started = Instant::now();
        for rows in &rows {
            let mut tx = db.begin().await?;
            for chunk in rows.chunks(2_000) {
                let mut q = Query::insert();
                q.into_table(BenchRawEvents::Table).columns([
                    BenchRawEvents::EventId,
                    BenchRawEvents::HashId,
                    BenchRawEvents::EventType,
                    BenchRawEvents::Action,
                    BenchRawEvents::EventTime,
                    BenchRawEvents::RecordTime,
                    BenchRawEvents::BizStep,
                    BenchRawEvents::Disposition,
                    BenchRawEvents::ReadPoint,
                    BenchRawEvents::BizLocation,
                    BenchRawEvents::Body,
                    BenchRawEvents::CapturedBy,
                    BenchRawEvents::Region,
                ]);
                let record_time = capture::now_ms();
                for e in chunk {
                    q.values_panic([
                        store::stored_event_id(e).into(),
                        e.hash_id.as_str().into(),
                        e.event_type.as_str().into(),
                        e.action.clone().into(),
                        e.event_time.into(),
                        record_time.into(),
                        e.biz_step.clone().into(),
                        e.disposition.clone().into(),
                        e.read_point.clone().into(),
                        e.biz_location.clone().into(),
                        serde_json::to_string(&e.body)?.into(),
                        1i64.into(),
                        "360102".into(),
                    ]);
                }
                tx.execute(&q).await?;
            }
            tx.commit().await?;
        }
        let baseline = started.elapsed();

        let started = Instant::now();
        for text in &texts {
            let job = capture::submit(db, &user, &actor, "360102", ErrorBehaviour::Rollback, text).await?;
            capture::process_job(db, &job.capture_id).await?;
            let done = capture::get_job(db, &user, &job.capture_id).await?;
            if done.status != JobStatus::Succeeded {
                bail!("capture job failed: {:?}", done.errors.first());
            }
        }
        let captured = started.elapsed();

        // Where the time goes: the CPU-only stages of the capture path.
        let started = Instant::now();
        let parsed: Vec<Document> = texts
            .iter()
            .map(|t| validate::parse_document(t.as_bytes()).expect("generated documents are valid"))
            .collect();
        let validating = started.elapsed();
        let started = Instant::now();
        for doc in &parsed {
            let context = Context::from_document(&doc.value);
            for e in doc.events() {
                NewEvent::from_event(e, &context, doc.value.get("@context")).expect("generated events are valid");
            }
        }
        let hashing = started.elapsed();

        let rate = |d: std::time::Duration| total as f64 / d.as_secs_f64();
        println!(
            "{:<8} {:>5} events/document  {:>7} events   capture {:>9.0} events/s   raw insert {:>9.0} events/s   ratio {:>5.1} %",
            backend.as_str(),
            size,
            total,
            rate(captured),
            rate(baseline),
            100.0 * baseline.as_secs_f64() / captured.as_secs_f64()
        );
        println!(
            "{:<8} {:>5} events/document  single-thread CPU time relative to capture: JSON parse + schema {:>5.1} %, hash IDs + rows {:>5.1} %",
            "",
            size,
            100.0 * validating.as_secs_f64() / captured.as_secs_f64(),
            100.0 * hashing.as_secs_f64() / captured.as_secs_f64()
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("{}", machine());
    if matches!(args.backend, Which::Sqlite | Which::Both) {
        let dir = tempfile::tempdir()?;
        let db = Db::open_sqlite_dir(dir.path()).await?;
        db.migrate(&[&CORE_MIGRATIONS, &TRACE_MIGRATIONS]).await?;
        run(&db, Backend::Sqlite, &args).await.context("SQLite")?;
        db.close().await;
    }
    if matches!(args.backend, Which::Postgres | Which::Both) {
        with_pg_scratch(&args.pg, async |scratch| {
            let db = Db::open_postgres(&scratch.url, None).await?;
            db.migrate(&[&CORE_MIGRATIONS, &TRACE_MIGRATIONS]).await?;
            run(&db, Backend::Postgres, &args).await.context("PostgreSQL")?;
            db.close().await;
            Ok(())
        })
        .await?;
    }
    Ok(())
}
