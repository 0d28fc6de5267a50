//! EPCIS 事件库 the event store on SQLite and PostgreSQL: events with their
//! hash IDs and query fields (`epcis_events`), the EPCs they name
//! (`epcis_event_epcs`), and the keyset-paged standard query.
//!
//! Storing is idempotent on the hash ID: an event whose hash ID is stored
//! already is reported as such and written nothing. Every newly stored
//! event's hash ID is appended to the trace log in the caller's
//! transaction ([`log_store::append_batch`]), so an event and its leaf
//! commit or roll back together.
//!
//! An event's ID (`eventID`) is its hash ID unless the capturer gave it one
//! of its own, so `event_id` holds only such own IDs and is NULL otherwise:
//! one index fewer of the same values. The event ID is therefore always
//! read as COALESCE(event_id, hash_id) ([`event_id_expr`]). The unique
//! indexes keep each column free of repeats; that no own eventID equals
//! another event's hash ID no index can say, so the plan ([`plan_events`])
//! checks it under the log's append lock: every writer of events appends to
//! the log, so on PostgreSQL a second transaction plans only once the
//! first has committed, and sees its events.

use std::collections::HashMap;

use sea_query::{Condition, Expr, ExprTrait, Func, Iden, Order, Query, SelectStatement};
use serde_json::{Map, Value};
use shuxiang_core::CoreError;
use shuxiang_core::auth::{Principal, Scope};
use shuxiang_core::db::{Db, Tx};

use super::model::{HASH_ID_KEY, NewEvent, format_time_ms};
use super::{OWN_READERS, SCOPE_READERS};
use crate::log_store;

/// Events per multi-row INSERT: 12 binds a row stays under SQLite's
/// 32,766-parameter limit.
const EVENT_CHUNK: usize = 2_000;
/// EPC rows per INSERT (3 binds) and values per IN list.
const EPC_CHUNK: usize = 5_000;

#[derive(Iden, Clone, Copy)]
pub(crate) enum EpcisEvents {
    Table,
    Id,
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
    CaptureId,
}

#[derive(Iden)]
pub(crate) enum EpcisEventEpcs {
    Table,
    Epc,
    Kind,
    EventPk,
}

/// Who stores events and under which region: the capturing user and the
/// scope region they captured in (`*` for a national scope).
#[derive(Debug, Clone)]
pub struct Capturer {
    pub user_id: Option<i64>,
    pub region: String,
    /// The capture job the events came with, if any.
    pub capture_id: Option<String>,
}

/// What storing one event would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// Not stored yet: it will be.
    New,
    /// Its hash ID is stored already, under this event ID.
    Existing { event_id: String },
    /// Its `eventID` is taken by an event with another hash ID.
    Conflict { event_id: String },
}

/// The event ID of an `epcis_events` row: the capturer's own ID, else the
/// hash ID. Qualified, so it reads the same in a join.
pub(crate) fn event_id_expr() -> Expr {
    Func::coalesce([
        Expr::col((EpcisEvents::Table, EpcisEvents::EventId)),
        Expr::col((EpcisEvents::Table, EpcisEvents::HashId)),
    ])
    .into()
}

/// What `event_id` stores for `e`: its own ID, or NULL when that is its
/// hash ID.
pub fn stored_event_id(e: &NewEvent) -> Option<&str> {
    (e.event_id != e.hash_id).then_some(e.event_id.as_str())
}

/// What [`plan_events`] decides for each of `events`, in order: new,
/// stored already (by hash ID; a repeat within `events` counts as stored by
/// its first occurrence), or an event ID taken by a different event, as its
/// event ID or as its hash ID (either finds an event, so neither may name
/// two).
pub async fn plan_events(tx: &mut Tx, events: &[NewEvent]) -> Result<Vec<Planned>, CoreError> {
    // Taken here rather than at the append, so the look-up below already
    // sees what a concurrent writer committed; held until `tx` ends.
    log_store::lock_head(tx).await?;
    // Hash ID -> event ID and event ID -> hash ID of the stored events that
    // share a key with `events`, then of the planned ones too.
    let mut by_hash: HashMap<String, String> = HashMap::new();
    let mut by_event_id: HashMap<String, String> = HashMap::new();
    // One query per chunk for both columns: a document costs one round trip,
    // and each side of the OR is still an index search. Both columns are
    // searched for every key: an own eventID may be another event's hash ID,
    // and a hash ID another event's own eventID.
    for chunk in events.chunks(EPC_CHUNK / 2) {
        let keys: Vec<&str> = chunk
            .iter()
            .flat_map(|e| std::iter::once(e.hash_id.as_str()).chain(stored_event_id(e)))
            .collect();
        let q = Query::select()
            .expr(event_id_expr())
            .column(EpcisEvents::HashId)
            .from(EpcisEvents::Table)
            .cond_where(
                Condition::any()
                    .add(Expr::col(EpcisEvents::HashId).is_in(keys.iter().copied()))
                    .add(Expr::col(EpcisEvents::EventId).is_in(keys.iter().copied())),
            )
            .to_owned();
        let rows: Vec<(String, String)> = tx.fetch_all(&q).await?;
        for (event_id, hash_id) in rows {
            by_event_id.insert(event_id.clone(), hash_id.clone());
            by_hash.insert(hash_id, event_id);
        }
    }
    let mut plan = Vec::with_capacity(events.len());
    for e in events {
        if let Some(event_id) = by_hash.get(&e.hash_id) {
            plan.push(Planned::Existing {
                event_id: event_id.clone(),
            });
        } else if by_event_id.get(&e.event_id).is_some_and(|h| *h != e.hash_id) || by_hash.contains_key(&e.event_id) {
            plan.push(Planned::Conflict {
                event_id: e.event_id.clone(),
            });
        } else {
            by_hash.insert(e.hash_id.clone(), e.event_id.clone());
            by_event_id.insert(e.event_id.clone(), e.hash_id.clone());
            plan.push(Planned::New);
        }
    }
    Ok(plan)
}

/// Inserts events that [`plan_events`] found new, with their EPCs, and
/// appends their hash IDs to the trace log, all in `tx`. `record_time` is
/// the capture time in milliseconds.
pub async fn insert_events(
    tx: &mut Tx,
    capturer: &Capturer,
    events: &[&NewEvent],
    record_time: i64,
) -> Result<(), CoreError> {
    if events.is_empty() {
        return Ok(());
    }
    // The new keys come back from the INSERT itself rather than from a
    // second look-up by hash ID.
    let mut pks: HashMap<String, i64> = HashMap::with_capacity(events.len());
    for chunk in events.chunks(EVENT_CHUNK) {
        let mut q = Query::insert();
        q.into_table(EpcisEvents::Table).columns([
            EpcisEvents::EventId,
            EpcisEvents::HashId,
            EpcisEvents::EventType,
            EpcisEvents::Action,
            EpcisEvents::EventTime,
            EpcisEvents::RecordTime,
            EpcisEvents::BizStep,
            EpcisEvents::Disposition,
            EpcisEvents::ReadPoint,
            EpcisEvents::BizLocation,
            EpcisEvents::Body,
            EpcisEvents::CapturedBy,
            EpcisEvents::Region,
            EpcisEvents::CaptureId,
        ]);
        for e in chunk {
            q.values_panic([
                stored_event_id(e).into(),
                e.hash_id.as_str().into(),
                e.event_type.as_str().into(),
                e.action.clone().into(),
                e.event_time.into(),
                record_time.into(),
                e.biz_step.clone().into(),
                e.disposition.clone().into(),
                e.read_point.clone().into(),
                e.biz_location.clone().into(),
                body_text(e, record_time).into(),
                capturer.user_id.into(),
                capturer.region.as_str().into(),
                capturer.capture_id.clone().into(),
            ]);
        }
        q.returning(Query::returning().columns([EpcisEvents::HashId, EpcisEvents::Id]));
        let rows: Vec<(String, i64)> = tx.fetch_all(&q).await?;
        pks.extend(rows);
    }
    let epc_rows: Vec<(&str, &str, i64)> = events
        .iter()
        .filter_map(|e| pks.get(&e.hash_id).map(|pk| (e, *pk)))
        .flat_map(|(e, pk)| e.epcs.iter().map(move |(kind, epc)| (epc.as_str(), kind.as_str(), pk)))
        .collect();
    for chunk in epc_rows.chunks(EPC_CHUNK) {
        let mut q = Query::insert();
        q.into_table(EpcisEventEpcs::Table).columns([
            EpcisEventEpcs::Epc,
            EpcisEventEpcs::Kind,
            EpcisEventEpcs::EventPk,
        ]);
        for (epc, kind, pk) in chunk {
            q.values_panic([(*epc).into(), (*kind).into(), (*pk).into()]);
        }
        tx.execute(&q).await?;
    }
    let hash_ids: Vec<&str> = events.iter().map(|e| e.hash_id.as_str()).collect();
    log_store::append_batch(tx, &hash_ids).await?;
    Ok(())
}

/// Plans and stores `events` in `tx`: the new ones are inserted and logged,
/// the others are left as they are. Returns each event's plan.
pub async fn store_events(
    tx: &mut Tx,
    capturer: &Capturer,
    events: &[NewEvent],
    record_time: i64,
) -> Result<Vec<Planned>, CoreError> {
    let plan = plan_events(tx, events).await?;
    let new: Vec<&NewEvent> = events
        .iter()
        .zip(&plan)
        .filter(|(_, p)| **p == Planned::New)
        .map(|(e, _)| e)
        .collect();
    insert_events(tx, capturer, &new, record_time).await?;
    Ok(plan)
}

fn body_text(e: &NewEvent, record_time: i64) -> String {
    let mut body = e.body.clone();
    body.insert("recordTime".into(), Value::String(format_time_ms(record_time)));
    serde_json::to_string(&body).expect("a JSON map serialises")
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The store's own key: the capture order, and the paging key.
    pub pk: i64,
    pub event_id: String,
    pub hash_id: String,
    pub event_type: String,
    pub event_time: i64,
    pub record_time: i64,
    pub captured_by: Option<i64>,
    pub region: String,
    /// The event as captured, with `eventID`, `recordTime` and `@context`.
    pub body: Map<String, Value>,
}

impl StoredEvent {
    /// The event as the API serves it: its body, plus
    /// `x-shuxiang:hashID` when the event ID is the capturer's own.
    pub fn to_json(&self) -> Value {
        let mut body = self.body.clone();
        if self.event_id != self.hash_id {
            body.insert(HASH_ID_KEY.into(), Value::String(self.hash_id.clone()));
        }
        Value::Object(body)
    }
}

/// A stored event's row, as the events table and joins onto it return it.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub id: i64,
    pub event_id: String,
    pub hash_id: String,
    pub event_type: String,
    pub event_time: i64,
    pub record_time: i64,
    pub captured_by: Option<i64>,
    pub region: String,
    pub body: String,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = CoreError;

    fn try_from(r: EventRow) -> Result<Self, CoreError> {
        let body = serde_json::from_str(&r.body)
            .map_err(|e| CoreError::Internal(format!("stored EPCIS event {} is not a JSON object: {e}", r.id)))?;
        Ok(Self {
            pk: r.id,
            event_id: r.event_id,
            hash_id: r.hash_id,
            event_type: r.event_type,
            event_time: r.event_time,
            record_time: r.record_time,
            captured_by: r.captured_by,
            region: r.region,
            body,
        })
    }
}

fn select_events() -> SelectStatement {
    Query::select()
        .column(EpcisEvents::Id)
        .expr_as(event_id_expr(), "event_id")
        .columns([
            EpcisEvents::HashId,
            EpcisEvents::EventType,
            EpcisEvents::EventTime,
            EpcisEvents::RecordTime,
            EpcisEvents::CapturedBy,
            EpcisEvents::Region,
            EpcisEvents::Body,
        ])
        .from(EpcisEvents::Table)
        .to_owned()
}

/// The event with this event ID or, failing that, this hash ID. An event
/// whose ID is its hash ID has no own ID stored, so the second look-up
/// finds it.
pub async fn get_event(db: &Db, id: &str) -> Result<Option<StoredEvent>, CoreError> {
    for column in [EpcisEvents::EventId, EpcisEvents::HashId] {
        let q = select_events().and_where(Expr::col(column).eq(id)).to_owned();
        let row: Option<EventRow> = db.fetch_optional(&q).await?;
        if let Some(row) = row {
            return row.try_into().map(Some);
        }
    }
    Ok(None)
}

/// Whether `caller` may read an event captured by `captured_by` in
/// `region`: a scope reader whose scope covers the region, or the capturer.
pub fn may_read(caller: &Principal, captured_by: Option<i64>, region: &str) -> bool {
    caller.grants.iter().any(|g| {
        if SCOPE_READERS.contains(&g.role) {
            match &g.scope {
                Scope::All => true,
                Scope::Region(code) => region.starts_with(code.as_str()),
            }
        } else {
            OWN_READERS.contains(&g.role) && captured_by == Some(caller.user_id)
        }
    })
}

/// The events `caller` may read, as a condition on `epcis_events`; see
/// [`may_read`].
pub fn visible_to(caller: &Principal) -> Condition {
    let mut any = Condition::any();
    let mut own = false;
    for g in &caller.grants {
        if SCOPE_READERS.contains(&g.role) {
            match &g.scope {
                Scope::All => return Condition::all(),
                Scope::Region(code) => {
                    let (from, to) = code.subtree_range();
                    any = any.add(
                        Condition::all()
                            .add(Expr::col(EpcisEvents::Region).gte(from))
                            .add(Expr::col(EpcisEvents::Region).lt(to)),
                    );
                }
            }
        } else if OWN_READERS.contains(&g.role) {
            own = true;
        }
    }
    if own {
        any = any.add(Expr::col(EpcisEvents::CapturedBy).eq(caller.user_id));
    }
    if any.is_empty() {
        // No grant reads events: a condition no row meets.
        any = any.add(Expr::val(1).eq(0));
    }
    any
}

/// The filters of the standard event query; every list is OR within itself
/// and AND with the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub event_types: Vec<String>,
    pub actions: Vec<String>,
    /// CBV short names or other URIs as stored.
    pub biz_steps: Vec<String>,
    pub dispositions: Vec<String>,
    pub read_points: Vec<String>,
    pub biz_locations: Vec<String>,
    /// MATCH_epc: in epcList, childEPCs, inputEPCList or outputEPCList.
    pub epcs: Vec<String>,
    /// MATCH_anyEPC: as `epcs`, or the parentID.
    pub any_epcs: Vec<String>,
    /// MATCH_epcClass: an EPC class in a quantity list.
    pub epc_classes: Vec<String>,
    /// Event time in milliseconds, at or after / before.
    pub event_time_from: Option<i64>,
    pub event_time_to: Option<i64>,
    pub record_time_from: Option<i64>,
    pub record_time_to: Option<i64>,
    /// Capture order: only events stored after this key.
    pub after: Option<i64>,
}

fn in_list(column: EpcisEvents, values: &[String]) -> Option<Condition> {
    (!values.is_empty()).then(|| Condition::all().add(Expr::col(column).is_in(values.iter().map(String::as_str))))
}

fn epc_match(values: &[String], kinds: &[&str]) -> Option<Condition> {
    (!values.is_empty()).then(|| {
        let sub = Query::select()
            .column(EpcisEventEpcs::EventPk)
            .from(EpcisEventEpcs::Table)
            .and_where(Expr::col(EpcisEventEpcs::Epc).is_in(values.iter().map(String::as_str)))
            .and_where(Expr::col(EpcisEventEpcs::Kind).is_in(kinds.iter().copied()))
            .to_owned();
        Condition::all().add(Expr::col(EpcisEvents::Id).in_subquery(sub))
    })
}

/// Up to `limit` events matching `filter` that `caller` may read, in
/// capture order after `filter.after`; the second value tells whether more
/// follow.
pub async fn query_events(
    db: &Db,
    caller: &Principal,
    filter: &EventFilter,
    limit: u64,
) -> Result<(Vec<StoredEvent>, bool), CoreError> {
    let mut q = select_events();
    q.cond_where(visible_to(caller));
    let conditions = [
        in_list(EpcisEvents::EventType, &filter.event_types),
        in_list(EpcisEvents::Action, &filter.actions),
        in_list(EpcisEvents::BizStep, &filter.biz_steps),
        in_list(EpcisEvents::Disposition, &filter.dispositions),
        in_list(EpcisEvents::ReadPoint, &filter.read_points),
        in_list(EpcisEvents::BizLocation, &filter.biz_locations),
        epc_match(&filter.epcs, &["epc"]),
        epc_match(&filter.any_epcs, &["epc", "parent"]),
        epc_match(&filter.epc_classes, &["class"]),
    ];
    for c in conditions.into_iter().flatten() {
        q.cond_where(c);
    }
    let bounds = [
        (EpcisEvents::EventTime, filter.event_time_from, true),
        (EpcisEvents::EventTime, filter.event_time_to, false),
        (EpcisEvents::RecordTime, filter.record_time_from, true),
        (EpcisEvents::RecordTime, filter.record_time_to, false),
    ];
    for (column, bound, lower) in bounds {
        if let Some(ms) = bound {
            q.and_where(if lower {
                Expr::col(column).gte(ms)
            } else {
                Expr::col(column).lt(ms)
            });
        }
    }
    if let Some(after) = filter.after {
        q.and_where(Expr::col(EpcisEvents::Id).gt(after));
    }
    q.order_by(EpcisEvents::Id, Order::Asc).limit(limit + 1);
    let rows: Vec<EventRow> = db.fetch_all(&q).await?;
    let more = rows.len() as u64 > limit;
    let events = rows
        .into_iter()
        .take(limit as usize)
        .map(StoredEvent::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, more))
}
