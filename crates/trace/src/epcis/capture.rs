//! EPCIS 采集 capture: whole EPCIS documents through capture jobs, single
//! events synchronously.
//!
//! A document is accepted once it is JSON (the job is created in the
//! request's transaction, audited) and processed by a background worker:
//! schema validation and hash IDs on all cores, then storage and trace-log
//! appends of all its events in one transaction, which also records the
//! job's outcome. Under
//! `rollback` (the default) one invalid event or taken event ID rejects the
//! whole document; under `proceed` the valid events are stored and the
//! invalid ones reported, each error with the JSON pointer of the failing
//! part.
//!
//! Restarts: because the outcome commits with the events, a job still
//! `pending` has stored nothing. [`run_pending`] processes every pending job
//! oldest first; it runs after each submission and should run when a node
//! starts, so a job interrupted by a restart is processed again in full.

use rand::RngCore;
use sea_query::{Expr, ExprTrait, Iden, LockType, Order, Query};
use serde::Serialize;
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{Actor, Principal};
use shuxiang_core::db::{Db, Tx};
use shuxiang_core::time::{Timestamp, now};

use super::model::NewEvent;
use super::store::{self, Capturer, Planned};
use super::validate::{self, DocumentError, Violation};
use crate::epcis_hash::Context;

/// Jobs listed at most by [`list_jobs`].
pub const MAX_LISTED_JOBS: u64 = 100;

/// Errors kept per job: enough to fix a document, bounded for a hostile one.
const MAX_JOB_ERRORS: usize = 1_000;

#[derive(Iden)]
enum EpcisCaptureJobs {
    Table,
    Id,
    UserId,
    Actor,
    Ip,
    Region,
    Behaviour,
    Status,
    Document,
    EventCount,
    CapturedCount,
    Errors,
    CreatedAt,
    FinishedAt,
}

/// `GS1-Capture-Error-Behaviour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorBehaviour {
    /// All or nothing (the default).
    Rollback,
    /// Store the valid events, report the invalid ones.
    Proceed,
}

impl ErrorBehaviour {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Proceed => "proceed",
        }
    }

    /// The header's value; absent means rollback.
    pub fn parse(header: Option<&str>) -> Result<Self, CoreError> {
        match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
            None | Some("rollback") => Ok(Self::Rollback),
            Some("proceed") => Ok(Self::Proceed),
            Some(other) => Err(CoreError::malformed(
                "invalid_capture_error_behaviour",
                format!("GS1-Capture-Error-Behaviour is rollback or proceed, not {other:?}"),
            )),
        }
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    /// Every event stored (or stored already).
    Succeeded,
    /// `proceed`: some events stored, some rejected.
    Partial,
    /// Nothing stored.
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }

    fn parse_stored(s: &str) -> Result<Self, CoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "succeeded" => Ok(Self::Succeeded),
            "partial" => Ok(Self::Partial),
            "failed" => Ok(Self::Failed),
            other => Err(CoreError::Internal(format!(
                "stored capture job status {other:?} is unknown"
            ))),
        }
    }
}

/// One capture error in the shape of the EPCIS REST binding's
/// RFC 7807 problem (`pointer` names the failing part of the document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CaptureError {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub pointer: String,
}

impl CaptureError {
    fn validation(v: Violation) -> Self {
        Self {
            kind: "epcisException:ValidationException".into(),
            title: "Invalid EPCIS event or document".into(),
            status: 400,
            detail: v.message,
            pointer: v.pointer,
        }
    }

    fn conflict(pointer: String, event_id: &str) -> Self {
        Self {
            kind: "epcisException:ValidationException".into(),
            title: "Event ID taken".into(),
            status: 409,
            detail: format!("eventID {event_id:?} belongs to another event"),
            pointer,
        }
    }

    fn internal(detail: String) -> Self {
        Self {
            kind: "epcisException:ImplementationException".into(),
            title: "Capture failed".into(),
            status: 500,
            detail,
            pointer: String::new(),
        }
    }
}

/// A capture job as `GET /epcis/capture/{id}` shows it: the REST binding's
/// fields plus our status and counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureJob {
    #[serde(rename = "captureID")]
    pub capture_id: String,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub running: bool,
    pub success: bool,
    pub capture_error_behaviour: ErrorBehaviour,
    pub status: JobStatus,
    /// The region the events are recorded under.
    pub region: String,
    pub event_count: i64,
    pub captured_count: i64,
    pub errors: Vec<CaptureError>,
    #[serde(skip)]
    pub user_id: i64,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    user_id: i64,
    region: String,
    behaviour: String,
    status: String,
    event_count: i64,
    captured_count: i64,
    errors: String,
    created_at: Timestamp,
    finished_at: Option<Timestamp>,
}

impl TryFrom<JobRow> for CaptureJob {
    type Error = CoreError;

    fn try_from(r: JobRow) -> Result<Self, CoreError> {
        let status = JobStatus::parse_stored(&r.status)?;
        let errors: Vec<CaptureError> = serde_json::from_str(&r.errors)
            .map_err(|e| CoreError::Internal(format!("errors of capture job {}: {e}", r.id)))?;
        Ok(Self {
            capture_id: r.id,
            created_at: r.created_at,
            finished_at: r.finished_at,
            running: status == JobStatus::Pending,
            success: errors.is_empty() && status != JobStatus::Failed,
            capture_error_behaviour: if r.behaviour == "proceed" {
                ErrorBehaviour::Proceed
            } else {
                ErrorBehaviour::Rollback
            },
            status,
            region: r.region,
            event_count: r.event_count,
            captured_count: r.captured_count,
            errors,
            user_id: r.user_id,
        })
    }
}

fn job_columns() -> [EpcisCaptureJobs; 10] {
    [
        EpcisCaptureJobs::Id,
        EpcisCaptureJobs::UserId,
        EpcisCaptureJobs::Region,
        EpcisCaptureJobs::Behaviour,
        EpcisCaptureJobs::Status,
        EpcisCaptureJobs::EventCount,
        EpcisCaptureJobs::CapturedCount,
        EpcisCaptureJobs::Errors,
        EpcisCaptureJobs::CreatedAt,
        EpcisCaptureJobs::FinishedAt,
    ]
}

fn new_job_id() -> String {
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!("cap_{}", hex::encode(b))
}

/// The audit's region for a capture region (`*` is national: none).
fn audit_region(region: &str) -> Option<String> {
    (region != "*").then(|| region.to_owned())
}

/// Creates a pending capture job for `document` (the request body, JSON
/// already checked by the caller) under `region`, which the caller has
/// checked `user` may capture in. Audited as `epcis.capture.submit`.
pub async fn submit(
    db: &Db,
    user: &Principal,
    actor: &Actor,
    region: &str,
    behaviour: ErrorBehaviour,
    document: &str,
) -> Result<CaptureJob, CoreError> {
    let id = new_job_id();
    let at = now();
    let mut tx = db.begin().await?;
    let q = Query::insert()
        .into_table(EpcisCaptureJobs::Table)
        .columns([
            EpcisCaptureJobs::Id,
            EpcisCaptureJobs::UserId,
            EpcisCaptureJobs::Actor,
            EpcisCaptureJobs::Ip,
            EpcisCaptureJobs::Region,
            EpcisCaptureJobs::Behaviour,
            EpcisCaptureJobs::Status,
            EpcisCaptureJobs::Document,
            EpcisCaptureJobs::CreatedAt,
        ])
        .values_panic([
            id.as_str().into(),
            user.user_id.into(),
            actor.name.as_str().into(),
            actor.ip.clone().into(),
            region.into(),
            behaviour.as_str().into(),
            JobStatus::Pending.as_str().into(),
            document.into(),
            at.into(),
        ])
        .to_owned();
    tx.execute(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "epcis.capture.submit",
            target: format!("epcis_capture:{id}"),
            region: audit_region(region),
            detail: json!({"bytes": document.len(), "behaviour": behaviour.as_str()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CaptureJob {
        capture_id: id,
        created_at: at,
        finished_at: None,
        running: true,
        success: true,
        capture_error_behaviour: behaviour,
        status: JobStatus::Pending,
        region: region.to_owned(),
        event_count: 0,
        captured_count: 0,
        errors: Vec::new(),
        user_id: user.user_id,
    })
}

/// A capture job; only the user who submitted it may read it.
pub async fn get_job(db: &Db, caller: &Principal, id: &str) -> Result<CaptureJob, CoreError> {
    let q = Query::select()
        .columns(job_columns())
        .from(EpcisCaptureJobs::Table)
        .and_where(Expr::col(EpcisCaptureJobs::Id).eq(id))
        .to_owned();
    let row: Option<JobRow> = db.fetch_optional(&q).await?;
    let job: CaptureJob = row
        .ok_or_else(|| CoreError::NotFound(format!("no capture job {id}")))?
        .try_into()?;
    if job.user_id != caller.user_id {
        return Err(CoreError::Forbidden("this capture job is another user's".into()));
    }
    Ok(job)
}

/// The caller's capture jobs, newest first, at most [`MAX_LISTED_JOBS`].
pub async fn list_jobs(db: &Db, caller: &Principal) -> Result<Vec<CaptureJob>, CoreError> {
    let q = Query::select()
        .columns(job_columns())
        .from(EpcisCaptureJobs::Table)
        .and_where(Expr::col(EpcisCaptureJobs::UserId).eq(caller.user_id))
        .order_by(EpcisCaptureJobs::CreatedAt, Order::Desc)
        .order_by(EpcisCaptureJobs::Id, Order::Desc)
        .limit(MAX_LISTED_JOBS)
        .to_owned();
    let rows: Vec<JobRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(CaptureJob::try_from).collect()
}

/// Processes pending jobs, oldest first, until none is left; returns how
/// many this call finished. Safe to run on several nodes at once: each job
/// is processed under a lock on its row and only while still pending.
pub async fn run_pending(db: &Db) -> Result<usize, CoreError> {
    let mut done = 0;
    let mut skipped: Vec<String> = Vec::new();
    loop {
        let q = Query::select()
            .column(EpcisCaptureJobs::Id)
            .from(EpcisCaptureJobs::Table)
            .and_where(Expr::col(EpcisCaptureJobs::Status).eq(JobStatus::Pending.as_str()))
            .and_where(Expr::col(EpcisCaptureJobs::Id).is_not_in(skipped.iter().map(String::as_str)))
            .order_by(EpcisCaptureJobs::CreatedAt, Order::Asc)
            .limit(1)
            .to_owned();
        let next: Option<(String,)> = db.fetch_optional(&q).await?;
        let Some((id,)) = next else { return Ok(done) };
        if process_job(db, &id).await? {
            done += 1;
        } else {
            // Finished meanwhile by another worker.
            skipped.push(id);
        }
    }
}

/// Processes one job if it is still pending; true if this call finished
/// it. The CPU work (parsing, validation, hashing) runs on blocking threads
/// before the write transaction, which then stores the events and the
/// outcome only if the job is still pending. A database failure while
/// storing marks the job failed (nothing of it stored) rather than leaving
/// it to be retried forever.
pub async fn process_job(db: &Db, id: &str) -> Result<bool, CoreError> {
    let Some(mut job) = read_pending(db, id).await? else {
        return Ok(false);
    };
    let document = job.document.take().unwrap_or_default();
    let prepared = tokio::task::spawn_blocking(move || prepare_document(document.as_bytes()))
        .await
        .map_err(|e| CoreError::Internal(format!("preparing capture job {id}: {e}")))?;
    match store_job(db, &job, prepared).await {
        Ok(finished) => Ok(finished),
        Err(e) => {
            let mut tx = db.begin().await?;
            if !lock_pending(&mut tx, id).await? {
                return Ok(false);
            }
            let outcome = Outcome {
                event_count: 0,
                captured: 0,
                errors: vec![CaptureError::internal(e.to_string())],
                status: JobStatus::Failed,
            };
            finish(&mut tx, &job, &outcome).await?;
            tx.commit().await?;
            Ok(true)
        }
    }
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: String,
    user_id: i64,
    actor: String,
    ip: Option<String>,
    region: String,
    behaviour: String,
    document: Option<String>,
}

async fn read_pending(db: &Db, id: &str) -> Result<Option<PendingRow>, CoreError> {
    let q = Query::select()
        .columns([
            EpcisCaptureJobs::Id,
            EpcisCaptureJobs::UserId,
            EpcisCaptureJobs::Actor,
            EpcisCaptureJobs::Ip,
            EpcisCaptureJobs::Region,
            EpcisCaptureJobs::Behaviour,
            EpcisCaptureJobs::Document,
        ])
        .from(EpcisCaptureJobs::Table)
        .and_where(Expr::col(EpcisCaptureJobs::Id).eq(id))
        .and_where(Expr::col(EpcisCaptureJobs::Status).eq(JobStatus::Pending.as_str()))
        .to_owned();
    db.fetch_optional(&q).await
}

/// Locks the job's row until `tx` ends (PostgreSQL; SQLite writes alone
/// anyway); false if it is no longer pending.
async fn lock_pending(tx: &mut Tx, id: &str) -> Result<bool, CoreError> {
    let q = Query::select()
        .column(EpcisCaptureJobs::Id)
        .from(EpcisCaptureJobs::Table)
        .and_where(Expr::col(EpcisCaptureJobs::Id).eq(id))
        .and_where(Expr::col(EpcisCaptureJobs::Status).eq(JobStatus::Pending.as_str()))
        .lock(LockType::Update)
        .to_owned();
    let row: Option<(String,)> = tx.fetch_optional(&q).await?;
    Ok(row.is_some())
}

async fn store_job(db: &Db, job: &PendingRow, prepared: Prepared) -> Result<bool, CoreError> {
    let behaviour = if job.behaviour == "proceed" {
        ErrorBehaviour::Proceed
    } else {
        ErrorBehaviour::Rollback
    };
    let capturer = Capturer {
        user_id: Some(job.user_id),
        region: job.region.clone(),
        capture_id: Some(job.id.clone()),
    };
    let mut tx = db.begin().await?;
    if !lock_pending(&mut tx, &job.id).await? {
        return Ok(false);
    }
    let outcome = store_prepared(&mut tx, &capturer, prepared, behaviour, now_ms()).await?;
    finish(&mut tx, job, &outcome).await?;
    tx.commit().await?;
    Ok(true)
}

/// Writes a job's outcome and its audit entry, and drops the document.
async fn finish(tx: &mut Tx, job: &PendingRow, outcome: &Outcome) -> Result<(), CoreError> {
    let errors = serde_json::to_string(&outcome.errors).expect("capture errors serialise");
    let q = Query::update()
        .table(EpcisCaptureJobs::Table)
        .values([
            (EpcisCaptureJobs::Status, outcome.status.as_str().into()),
            (EpcisCaptureJobs::Document, Option::<String>::None.into()),
            (EpcisCaptureJobs::EventCount, (outcome.event_count as i64).into()),
            (EpcisCaptureJobs::CapturedCount, (outcome.captured as i64).into()),
            (EpcisCaptureJobs::Errors, errors.into()),
            (EpcisCaptureJobs::FinishedAt, now().into()),
        ])
        .and_where(Expr::col(EpcisCaptureJobs::Id).eq(job.id.as_str()))
        .to_owned();
    tx.execute(&q).await?;
    let actor = Actor {
        user_id: Some(job.user_id),
        name: job.actor.clone(),
        ip: job.ip.clone(),
    };
    audit::record(
        tx,
        &actor,
        AuditEvent {
            action: "epcis.capture",
            target: format!("epcis_capture:{}", job.id),
            region: audit_region(&job.region),
            detail: json!({
                "status": outcome.status.as_str(), "events": outcome.event_count,
                "captured": outcome.captured, "errors": outcome.errors.len(),
            }),
        },
    )
    .await
}

/// The milliseconds of now, the record time of captured events.
pub fn now_ms() -> i64 {
    now().timestamp_millis()
}

/// What capturing a document did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub event_count: usize,
    /// Events stored now or found stored already.
    pub captured: usize,
    pub errors: Vec<CaptureError>,
    pub status: JobStatus,
}

/// Events below which a document is hashed on one thread.
const MIN_EVENTS_PER_THREAD: usize = 64;

/// A document after the CPU work of capture: its events validated and
/// turned into rows (hash IDs computed), ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub event_count: usize,
    /// The valid events, with their positions in the document.
    pub events: Vec<(usize, NewEvent)>,
    /// Schema and hash errors, with pointers into the document.
    pub errors: Vec<CaptureError>,
}

/// Parses, validates and hashes a capture body. CPU only, and parallel:
/// the schema check of the whole document runs beside the hashing of its
/// events, which is split over the available cores.
pub fn prepare_document(bytes: &[u8]) -> Prepared {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Prepared::rejected(DocumentError::NotJson {
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            });
        }
    };
    let events = validate::events_of(&value);
    let context = Context::from_document(&value);
    let document_context = value.get("@context");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per_thread = events.len().div_ceil(cores).max(MIN_EVENTS_PER_THREAD);
    let (violations, rows) = std::thread::scope(|s| {
        let checking = s.spawn(|| validate::document_violations(&value));
        let hashing: Vec<_> = events
            .chunks(per_thread)
            .map(|part| {
                let context = &context;
                s.spawn(move || {
                    part.iter()
                        .map(|e| NewEvent::from_event(e, context, document_context))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let rows: Vec<Result<NewEvent, Violation>> = hashing
            .into_iter()
            .flat_map(|h| h.join().expect("hashing does not panic"))
            .collect();
        (checking.join().expect("validation does not panic"), rows)
    });
    let violations = match violations {
        Ok(v) => v,
        Err(e) => return Prepared::rejected(e),
    };
    let mut prepared = Prepared {
        event_count: events.len(),
        events: Vec::with_capacity(rows.len()),
        errors: Vec::new(),
    };
    for (i, row) in rows.into_iter().enumerate() {
        if let Some(found) = violations.get(&i) {
            prepared
                .errors
                .extend(found.iter().cloned().map(CaptureError::validation));
            continue;
        }
        match row {
            Ok(e) => prepared.events.push((i, e)),
            Err(v) => prepared.errors.push(CaptureError::validation(Violation::new(
                format!("/epcisBody/eventList/{i}{}", v.pointer),
                v.message,
            ))),
        }
    }
    prepared
}

impl Prepared {
    fn rejected(e: DocumentError) -> Self {
        let violations = match e {
            DocumentError::NotJson { .. } => vec![Violation::new("", e.to_string())],
            DocumentError::Invalid(v) => v,
        };
        Self {
            event_count: 0,
            events: Vec::new(),
            errors: violations.into_iter().map(CaptureError::validation).collect(),
        }
    }
}

/// Stores a prepared document's events in `tx` under `behaviour`. Under
/// rollback nothing is written when any event failed or has a taken event
/// ID; under proceed the others are. Events already stored (same hash ID)
/// count as captured.
pub async fn store_prepared(
    tx: &mut Tx,
    capturer: &Capturer,
    prepared: Prepared,
    behaviour: ErrorBehaviour,
    record_time: i64,
) -> Result<Outcome, CoreError> {
    let Prepared {
        event_count,
        events,
        mut errors,
    } = prepared;
    let (positions, new_events): (Vec<usize>, Vec<NewEvent>) = events.into_iter().unzip();
    let plan = if errors.is_empty() || behaviour == ErrorBehaviour::Proceed {
        store::plan_events(tx, &new_events).await?
    } else {
        Vec::new()
    };
    for (i, p) in positions.iter().zip(&plan) {
        if let Planned::Conflict { event_id } = p {
            errors.push(CaptureError::conflict(
                format!("/epcisBody/eventList/{i}/eventID"),
                event_id,
            ));
        }
    }
    let rejected = !errors.is_empty() && behaviour == ErrorBehaviour::Rollback;
    let mut captured = 0;
    if !rejected {
        let to_insert: Vec<&NewEvent> = new_events
            .iter()
            .zip(&plan)
            .filter(|(_, p)| **p == Planned::New)
            .map(|(e, _)| e)
            .collect();
        store::insert_events(tx, capturer, &to_insert, record_time).await?;
        captured = plan.iter().filter(|p| !matches!(p, Planned::Conflict { .. })).count();
    }
    errors.truncate(MAX_JOB_ERRORS);
    let status = match (captured, errors.is_empty()) {
        (_, true) => JobStatus::Succeeded,
        (0, false) => JobStatus::Failed,
        (_, false) => JobStatus::Partial,
    };
    Ok(Outcome {
        event_count,
        captured,
        errors,
        status,
    })
}

/// Stores one event synchronously (`POST /epcis/events`): validated,
/// hashed, stored and logged with its audit entry in one transaction.
/// Returns the event ID and hash ID; an identical event stored before is
/// returned as it is (idempotent), an event ID taken by another event is
/// 409.
pub async fn capture_event(
    db: &Db,
    actor: &Actor,
    capturer: &Capturer,
    event: &Value,
) -> Result<(String, String), EventCaptureError> {
    validate::validate_event(event).map_err(EventCaptureError::Invalid)?;
    let context = Context::from_document(event);
    let new = NewEvent::from_event(event, &context, None).map_err(|v| EventCaptureError::Invalid(vec![v]))?;
    let mut tx = db.begin().await?;
    let plan = store::store_events(&mut tx, capturer, std::slice::from_ref(&new), now_ms()).await?;
    let event_id = match &plan[0] {
        Planned::New => new.event_id.clone(),
        Planned::Existing { event_id } => event_id.clone(),
        Planned::Conflict { event_id } => {
            return Err(CoreError::conflict(
                "event_id_taken",
                format!("eventID {event_id:?} belongs to another event"),
            )
            .into());
        }
    };
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "epcis.event.capture",
            target: format!("epcis_event:{event_id}"),
            region: audit_region(&capturer.region),
            detail: json!({"hash_id": new.hash_id, "type": new.event_type, "new": plan[0] == Planned::New}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((event_id, new.hash_id))
}

/// Why a single event was not captured.
#[derive(Debug, thiserror::Error)]
pub enum EventCaptureError {
    #[error("the event does not follow the EPCIS schema: {}", .0.first().map(ToString::to_string).unwrap_or_default())]
    Invalid(Vec<Violation>),
    #[error(transparent)]
    Core(#[from] CoreError),
}
