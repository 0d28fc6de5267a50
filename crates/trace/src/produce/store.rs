//! Batches, their trace codes and their steps, stored on either backend.
//! Each write records its EPCIS event (and so its log leaf), the batch's
//! rows and the audit entry in one transaction.
//!
//! Who may do what: farmers register batches in villages their scope covers
//! and record steps of their own batches; village staff, officials and
//! administrators do both for any batch in their scope (cooperatives are
//! often helped by the village); experts read batches in their scope.
//! Anyone may scan a code: the consumer view is public.

use chrono::NaiveDate;
use sea_query::{Condition, Expr, ExprTrait, Iden, Order, Query};
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{Actor, Principal, Role, Scope};
use shuxiang_core::db::{Db, Tx, on_unique};
use shuxiang_core::region::{RegionCode, RegionLevel};
use shuxiang_core::regions;
use shuxiang_core::time::now;

use super::{
    AppliedProduct, Batch, BatchStep, NewBatch, TraceCode, UNITS, commissioning_event, packing_event, step_event,
};
use crate::epcis::model::NewEvent;
use crate::epcis::store::{Capturer, EpcisEvents, EventRow, Planned, StoredEvent, event_id_expr, store_events};
use crate::epcis_hash::Context;
use crate::label_code::parse_label_code;
use crate::products;

/// Who registers batches and records their steps (farmers: their own).
pub const PRODUCERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff, Role::Farmer];
/// Who reads every batch in their scope.
pub const SCOPE_READERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff, Role::Expert];
/// Roles that act on any batch in their scope, not only their own.
const STAFF: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff];

const MAX_TEXT: usize = 100;
/// Packages labelled in one request.
pub const MAX_PACKAGES: u32 = 10_000;
const DEFAULT_LIMIT: u64 = 100;

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

/// A batch's link and, when the event it names is stored, that event.
type LinkedEventRow = (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: i64,
    code: String,
    village: String,
    crop: String,
    producer_name: String,
    owner_id: i64,
    lon: Option<f64>,
    lat: Option<f64>,
    harvested: bool,
}

fn batch_columns() -> [ProduceBatches; 9] {
    [
        ProduceBatches::Id,
        ProduceBatches::Code,
        ProduceBatches::Village,
        ProduceBatches::Crop,
        ProduceBatches::ProducerName,
        ProduceBatches::OwnerId,
        ProduceBatches::Lon,
        ProduceBatches::Lat,
        ProduceBatches::Harvested,
    ]
}

fn text(raw: &str, code: &'static str, what: &str) -> Result<String, CoreError> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > MAX_TEXT {
        return Err(CoreError::invalid(
            code,
            format!("{what} must be 1 to {MAX_TEXT} characters"),
        ));
    }
    Ok(t.to_owned())
}

fn today() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// Steps may not be dated in the future (China time): a label cannot show
/// a harvest that has not happened.
fn not_future(date: NaiveDate, field: &str) -> Result<(), CoreError> {
    if date > today() {
        return Err(CoreError::invalid(
            "date_in_future",
            format!("{field} {date} is in the future"),
        ));
    }
    Ok(())
}

fn capturer(caller: &Principal, village: &str) -> Capturer {
    Capturer {
        user_id: Some(caller.user_id),
        region: village.to_owned(),
        capture_id: None,
    }
}

/// The stored form of a built event; building our own events cannot fail
/// unless the code that builds them is wrong.
fn new_event(event: &Value) -> Result<NewEvent, CoreError> {
    NewEvent::from_event(event, &Context::from_document(event), None)
        .map_err(|v| CoreError::Internal(format!("a produce event does not hash: {v:?}")))
}

/// Stores `event` and links it to the batch as its next step.
async fn record_event(tx: &mut Tx, caller: &Principal, batch: &BatchRow, event: &Value) -> Result<String, CoreError> {
    let new = new_event(event)?;
    let plan = store_events(
        tx,
        &capturer(caller, &batch.village),
        std::slice::from_ref(&new),
        now().timestamp_millis(),
    )
    .await?;
    // The same step recorded twice is the same event: one line, not two.
    if plan.first() != Some(&Planned::New) {
        return Ok(new.hash_id);
    }
    let q = Query::select()
        .expr(Expr::col(ProduceBatchEvents::Seq).max())
        .from(ProduceBatchEvents::Table)
        .and_where(Expr::col(ProduceBatchEvents::BatchId).eq(batch.id))
        .to_owned();
    let (last,): (Option<i32>,) = tx.fetch_one(&q).await?;
    let ins = Query::insert()
        .into_table(ProduceBatchEvents::Table)
        .columns([
            ProduceBatchEvents::BatchId,
            ProduceBatchEvents::Seq,
            ProduceBatchEvents::HashId,
        ])
        .values_panic([
            batch.id.into(),
            (last.unwrap_or(0) + 1).into(),
            new.hash_id.as_str().into(),
        ])
        .to_owned();
    tx.execute(&ins).await.map_err(|e| {
        on_unique(
            e,
            "concurrent_step",
            "another step of this batch was recorded at the same moment; try again",
        )
    })?;
    Ok(new.hash_id)
}

async fn insert_code(tx: &mut Tx, code: &TraceCode, batch_id: i64, kind: &str) -> Result<(), CoreError> {
    let ins = Query::insert()
        .into_table(TraceCodes::Table)
        .columns([TraceCodes::Code, TraceCodes::BatchId, TraceCodes::Kind])
        .values_panic([code.as_str().into(), batch_id.into(), kind.into()])
        .to_owned();
    tx.execute(&ins).await?;
    Ok(())
}

/// Registers a batch, gives it its trace code and records its
/// commissioning event.
pub async fn create_batch(db: &Db, caller: &Principal, actor: &Actor, new: NewBatch) -> Result<Batch, CoreError> {
    let village = RegionCode::parse(&new.village)?;
    if village.level() != RegionLevel::Village {
        return Err(CoreError::invalid(
            "not_a_village",
            format!("{village} is not a village-level code"),
        ));
    }
    caller.require(PRODUCERS, &village)?;
    regions::get(db, &village)
        .await?
        .ok_or_else(|| CoreError::missing("unknown_village", format!("no village with code {village}")))?;
    let crop = text(&new.crop, "invalid_crop", "the crop")?;
    let producer_name = text(&new.producer_name, "invalid_producer", "the producer name")?;
    let parcel = new
        .parcel
        .as_deref()
        .map(|p| text(p, "invalid_parcel", "the parcel"))
        .transpose()?;
    match (new.lon, new.lat) {
        (Some(lon), Some(lat)) if (73.0..=136.0).contains(&lon) && (3.0..=54.0).contains(&lat) => {}
        (None, None) => {}
        _ => {
            return Err(CoreError::invalid(
                "invalid_location",
                "lon and lat go together and must lie in China",
            ));
        }
    }
    let planted_on = new.planted_on.unwrap_or_else(today);
    not_future(planted_on, "planted_on")?;
    let clean = NewBatch {
        crop,
        producer_name,
        parcel,
        village: village.to_string(),
        ..new
    };
    let code = TraceCode::generate();
    let mut tx = db.begin().await?;
    let ins = Query::insert()
        .into_table(ProduceBatches::Table)
        .columns(batch_columns().into_iter().skip(1).chain([ProduceBatches::CreatedAt]))
        .values_panic([
            code.as_str().into(),
            clean.village.as_str().into(),
            clean.crop.as_str().into(),
            clean.producer_name.as_str().into(),
            caller.user_id.into(),
            clean.lon.into(),
            clean.lat.into(),
            false.into(),
            now().into(),
        ])
        .returning_col(ProduceBatches::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&ins).await?;
    insert_code(&mut tx, &code, id, "batch").await?;
    let row = BatchRow {
        id,
        code: code.to_string(),
        village: clean.village.clone(),
        crop: clean.crop.clone(),
        producer_name: clean.producer_name.clone(),
        owner_id: caller.user_id,
        lon: clean.lon,
        lat: clean.lat,
        harvested: false,
    };
    let hash_id = record_event(&mut tx, caller, &row, &commissioning_event(&code, &clean, planted_on)).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "produce_batch.create",
            target: format!("produce_batch:{id}"),
            region: Some(clean.village.clone()),
            detail: json!({"code": code.as_str(), "crop": clean.crop, "event": hash_id}),
        },
    )
    .await?;
    tx.commit().await?;
    get_batch(db, caller, id).await
}

async fn load_row(db: &Db, id: i64) -> Result<BatchRow, CoreError> {
    let q = Query::select()
        .columns(batch_columns())
        .from(ProduceBatches::Table)
        .and_where(Expr::col(ProduceBatches::Id).eq(id))
        .to_owned();
    db.fetch_optional(&q)
        .await?
        .ok_or_else(|| CoreError::missing("unknown_batch", format!("no produce batch {id}")))
}

fn village_of(row: &BatchRow) -> Result<RegionCode, CoreError> {
    RegionCode::parse(&row.village)
}

/// 403 unless `caller` may record steps of the batch.
fn require_producer(caller: &Principal, row: &BatchRow) -> Result<(), CoreError> {
    let village = village_of(row)?;
    if caller.can(STAFF, &village) || (row.owner_id == caller.user_id && caller.can(&[Role::Farmer], &village)) {
        Ok(())
    } else {
        Err(CoreError::Forbidden(
            "only the batch's producer or staff of its region record its steps".into(),
        ))
    }
}

fn require_read(caller: &Principal, row: &BatchRow) -> Result<(), CoreError> {
    let village = village_of(row)?;
    if caller.can(SCOPE_READERS, &village) || (row.owner_id == caller.user_id && caller.can(PRODUCERS, &village)) {
        Ok(())
    } else {
        Err(CoreError::Forbidden(format!(
            "produce batch {} is outside your scope",
            row.id
        )))
    }
}

async fn assemble(db: &Db, row: BatchRow) -> Result<Batch, CoreError> {
    let events = Query::select()
        .column(ProduceBatchEvents::HashId)
        .from(ProduceBatchEvents::Table)
        .and_where(Expr::col(ProduceBatchEvents::BatchId).eq(row.id))
        .order_by(ProduceBatchEvents::Seq, Order::Asc)
        .to_owned();
    let events: Vec<(String,)> = db.fetch_all(&events).await?;
    let packages = Query::select()
        .column(TraceCodes::Code)
        .from(TraceCodes::Table)
        .and_where(Expr::col(TraceCodes::BatchId).eq(row.id))
        .and_where(Expr::col(TraceCodes::Kind).eq("package"))
        .order_by(TraceCodes::Code, Order::Asc)
        .to_owned();
    let packages: Vec<(String,)> = db.fetch_all(&packages).await?;
    Ok(Batch {
        trace_path: format!("/t/{}", row.code),
        id: row.id,
        code: row.code,
        crop: row.crop,
        village: row.village,
        producer_name: row.producer_name,
        owner_id: row.owner_id,
        lon: row.lon,
        lat: row.lat,
        harvested: row.harvested,
        events: events.into_iter().map(|(h,)| h).collect(),
        packages: packages.into_iter().map(|(c,)| c).collect(),
    })
}

/// One batch, if `caller` may read it.
pub async fn get_batch(db: &Db, caller: &Principal, id: i64) -> Result<Batch, CoreError> {
    let row = load_row(db, id).await?;
    require_read(caller, &row)?;
    assemble(db, row).await
}

/// Batches in `region` (default: everything the caller may see), newest first.
pub async fn list_batches(
    db: &Db,
    caller: &Principal,
    region: Option<&RegionCode>,
    limit: Option<u64>,
) -> Result<Vec<Batch>, CoreError> {
    if let Some(r) = region {
        caller.require_see(r)?;
    }
    let mut visible = Condition::any().add(Expr::col(ProduceBatches::OwnerId).eq(caller.user_id));
    for g in caller.grants.iter().filter(|g| SCOPE_READERS.contains(&g.role)) {
        visible = match &g.scope {
            Scope::All => visible.add(Expr::cust("1 = 1")),
            Scope::Region(code) => visible.add(Expr::col(ProduceBatches::Village).like(format!("{code}%"))),
        };
    }
    let mut q = Query::select();
    q.columns(batch_columns())
        .from(ProduceBatches::Table)
        .cond_where(visible)
        .order_by(ProduceBatches::Id, Order::Desc)
        .limit(limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 1000));
    if let Some(r) = region {
        q.and_where(Expr::col(ProduceBatches::Village).like(format!("{r}%")));
    }
    let rows: Vec<BatchRow> = db.fetch_all(&q).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(assemble(db, row).await?);
    }
    Ok(out)
}

/// Records a later step (input applied, harvest, test) of a batch.
pub async fn record_step(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    step: BatchStep,
) -> Result<Batch, CoreError> {
    let row = load_row(db, id).await?;
    require_read(caller, &row)?;
    require_producer(caller, &row)?;
    let product = match &step {
        BatchStep::Input {
            product_id,
            label_code,
            applied_on,
            amount,
            unit,
        } => {
            not_future(*applied_on, "applied_on")?;
            if !(amount.is_finite() && *amount > 0.0) {
                return Err(CoreError::invalid(
                    "invalid_amount",
                    "the amount must be a positive number",
                ));
            }
            if !UNITS.iter().any(|(u, _)| u == unit) {
                return Err(CoreError::invalid("invalid_unit", "the unit must be kg, g, L or mL"));
            }
            let product = products::get(db, *product_id)
                .await
                .map_err(|_| CoreError::invalid("unknown_product", format!("no registered product {product_id}")))?;
            if product.banned {
                return Err(CoreError::invalid(
                    "banned_product",
                    format!("{} is banned (禁用) and cannot be applied", product.name),
                ));
            }
            if let Some(label) = label_code {
                let parsed = parse_label_code(label)
                    .map_err(|e| CoreError::invalid("invalid_label_code", format!("label code: {e}")))?;
                let candidates = products::by_label_code(db, &parsed).await?;
                if !candidates.iter().any(|p| p.id == product.id) {
                    return Err(CoreError::invalid(
                        "label_code_mismatch",
                        format!("label code {label} does not belong to {}", product.name),
                    ));
                }
            }
            Some(AppliedProduct {
                name: product.name,
                registration_number: product.registration_number,
            })
        }
        BatchStep::Harvest {
            harvested_on,
            quantity_kg,
        } => {
            not_future(*harvested_on, "harvested_on")?;
            if !(quantity_kg.is_finite() && *quantity_kg > 0.0) {
                return Err(CoreError::invalid(
                    "invalid_quantity",
                    "the harvested quantity must be positive",
                ));
            }
            None
        }
        BatchStep::Test {
            tested_on, item, lab, ..
        } => {
            not_future(*tested_on, "tested_on")?;
            text(item, "invalid_test_item", "the test item")?;
            text(lab, "invalid_lab", "the laboratory")?;
            None
        }
    };
    let code = TraceCode::parse(&row.code).map_err(|e| CoreError::Internal(format!("stored batch code: {e}")))?;
    let event = step_event(&code, &row.village, &step, product.as_ref());
    let mut tx = db.begin().await?;
    let hash_id = record_event(&mut tx, caller, &row, &event).await?;
    if matches!(step, BatchStep::Harvest { .. }) {
        let q = Query::update()
            .table(ProduceBatches::Table)
            .value(ProduceBatches::Harvested, true)
            .and_where(Expr::col(ProduceBatches::Id).eq(id))
            .to_owned();
        tx.execute(&q).await?;
    }
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "produce_batch.step",
            target: format!("produce_batch:{id}"),
            region: Some(row.village.clone()),
            detail: json!({"step": event["bizStep"], "event": hash_id}),
        },
    )
    .await?;
    tx.commit().await?;
    assemble(db, load_row(db, id).await?).await
}

/// Labels `count` packages of a harvested batch: new codes aggregated under
/// the batch by one packing event.
pub async fn add_packages(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    count: u32,
) -> Result<Vec<TraceCode>, CoreError> {
    let row = load_row(db, id).await?;
    require_read(caller, &row)?;
    require_producer(caller, &row)?;
    if count == 0 || count > MAX_PACKAGES {
        return Err(CoreError::invalid(
            "invalid_count",
            format!("label 1 to {MAX_PACKAGES} packages at a time"),
        ));
    }
    if !row.harvested {
        return Err(CoreError::conflict(
            "not_harvested",
            "record the harvest before packing",
        ));
    }
    let code = TraceCode::parse(&row.code).map_err(|e| CoreError::Internal(format!("stored batch code: {e}")))?;
    let packages: Vec<TraceCode> = (0..count).map(|_| TraceCode::generate()).collect();
    let mut tx = db.begin().await?;
    for chunk in packages.chunks(500) {
        let mut ins = Query::insert();
        ins.into_table(TraceCodes::Table)
            .columns([TraceCodes::Code, TraceCodes::BatchId, TraceCodes::Kind]);
        for p in chunk {
            ins.values_panic([p.as_str().into(), id.into(), "package".into()]);
        }
        tx.execute(&ins).await?;
    }
    let hash_id = record_event(
        &mut tx,
        caller,
        &row,
        &packing_event(&code, &row.village, &packages, today()),
    )
    .await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "produce_batch.pack",
            target: format!("produce_batch:{id}"),
            region: Some(row.village.clone()),
            detail: json!({"packages": count, "event": hash_id}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(packages)
}

/// What a scan finds: the batch and its events as logged, in order.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub code: TraceCode,
    /// Whether the scanned code is a package's rather than the batch's own.
    pub is_package: bool,
    pub batch_code: String,
    pub crop: String,
    pub village: String,
    pub producer_name: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub events: Vec<StoredEvent>,
}

/// Whether `code` was issued.
pub async fn code_exists(db: &Db, code: &TraceCode) -> Result<bool, CoreError> {
    let q = Query::select()
        .column(TraceCodes::Kind)
        .from(TraceCodes::Table)
        .and_where(Expr::col(TraceCodes::Code).eq(code.as_str()))
        .to_owned();
    let found: Option<(String,)> = db.fetch_optional(&q).await?;
    Ok(found.is_some())
}

/// The public view of a trace code; `None` when no such code was issued.
pub async fn scan(db: &Db, code: &TraceCode) -> Result<Option<Scanned>, CoreError> {
    let q = Query::select()
        .columns([TraceCodes::BatchId, TraceCodes::Kind])
        .from(TraceCodes::Table)
        .and_where(Expr::col(TraceCodes::Code).eq(code.as_str()))
        .to_owned();
    let Some((batch_id, kind)): Option<(i64, String)> = db.fetch_optional(&q).await? else {
        return Ok(None);
    };
    let row = load_row(db, batch_id).await?;
    // The events joined to the batch's links: a page costs one query for all
    // its events.
    let q = Query::select()
        .column((ProduceBatchEvents::Table, ProduceBatchEvents::HashId))
        .column((EpcisEvents::Table, EpcisEvents::Id))
        .expr(event_id_expr())
        .columns([
            (EpcisEvents::Table, EpcisEvents::EventType),
            (EpcisEvents::Table, EpcisEvents::EventTime),
            (EpcisEvents::Table, EpcisEvents::RecordTime),
            (EpcisEvents::Table, EpcisEvents::CapturedBy),
            (EpcisEvents::Table, EpcisEvents::Region),
            (EpcisEvents::Table, EpcisEvents::Body),
        ])
        .from(ProduceBatchEvents::Table)
        .left_join(
            EpcisEvents::Table,
            Expr::col((EpcisEvents::Table, EpcisEvents::HashId))
                .equals((ProduceBatchEvents::Table, ProduceBatchEvents::HashId)),
        )
        .and_where(Expr::col((ProduceBatchEvents::Table, ProduceBatchEvents::BatchId)).eq(batch_id))
        .order_by((ProduceBatchEvents::Table, ProduceBatchEvents::Seq), Order::Asc)
        .to_owned();
    let rows: Vec<LinkedEventRow> = db.fetch_all(&q).await?;
    let events = rows
        .into_iter()
        .map(|row| linked_event(batch_id, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Scanned {
        code: code.clone(),
        is_package: kind == "package",
        batch_code: row.code,
        crop: row.crop,
        village: row.village,
        producer_name: row.producer_name,
        lon: row.lon,
        lat: row.lat,
        events,
    }))
}

/// The stored event a link names; a link to no event is a broken batch.
fn linked_event(batch_id: i64, row: LinkedEventRow) -> Result<StoredEvent, CoreError> {
    let (hash_id, pk, event_id, event_type, event_time, record_time, captured_by, region, body) = row;
    let (Some(pk), Some(event_id), Some(event_type), Some(event_time), Some(record_time), Some(region), Some(body)) =
        (pk, event_id, event_type, event_time, record_time, region, body)
    else {
        return Err(CoreError::Internal(format!(
            "batch {batch_id} links to a missing event {hash_id}"
        )));
    };
    StoredEvent::try_from(EventRow {
        id: pk,
        event_id,
        hash_id,
        event_type,
        event_time,
        record_time,
        captured_by,
        region,
        body,
    })
}
