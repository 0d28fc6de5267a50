//! Event IDs in the event store on both backends: `event_id` holds only a
//! capturer's own eventID (NULL when the ID is the hash ID), an event is
//! found by either ID, no ID names two events, and migration 0006 keeps the
//! events of an older database readable under the same IDs and keys.

use std::path::Path;
use std::sync::LazyLock;

use sea_query::{Expr, ExprTrait, Iden, Order, Query};
use serde_json::{Value, json};
use shuxiang_core::auth::{Credential, Grant, Principal, Role, Scope};
use shuxiang_core::db::{Db, SliceMigrations};
use shuxiang_core::db_test;
use shuxiang_trace::epcis::capture::{self, ErrorBehaviour, JobStatus};
use shuxiang_trace::epcis::model::{HASH_ID_KEY, NewEvent};
use shuxiang_trace::epcis::store::{self, Capturer, EventFilter, Planned};
use shuxiang_trace::epcis_hash::Context;
use shuxiang_trace::log_store::TRACE_MIGRATIONS;
use sqlx::migrate::Migrator;

#[derive(Iden)]
enum EpcisEvents {
    Table,
    Id,
    EventId,
    HashId,
    EventType,
    EventTime,
    RecordTime,
    Body,
    Region,
}

#[derive(Iden)]
enum EpcisEventEpcs {
    Table,
    Epc,
    Kind,
    EventPk,
}

fn admin() -> Principal {
    Principal {
        user_id: 1,
        username: "admin".into(),
        display_name: "admin".into(),
        grants: vec![Grant {
            role: Role::Admin,
            scope: Scope::All,
        }],
        credential: Credential::ApiToken,
        expires_at: None,
    }
}

fn capturer() -> Capturer {
    Capturer {
        user_id: Some(1),
        region: "*".into(),
        capture_id: None,
    }
}

/// The events of a GS1 hash-vector document, as the store takes them.
fn vector_events(name: &str) -> Vec<NewEvent> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/epcis/event-hash-vectors/examples")
        .join(format!("{name}.jsonld"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let context = Context::from_document(&doc);
    let body = &doc["epcisBody"];
    let list = body
        .get("eventList")
        .unwrap_or(&body["queryResults"]["resultsBody"]["eventList"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| NewEvent::from_event(e, &context, doc.get("@context")).unwrap())
        .collect()
}

/// The first hash recorded for a vector document.
fn vector_hash(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/epcis/event-hash-vectors/examples")
        .join(format!("{name}.hashes"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

fn new_event(value: Value) -> NewEvent {
    NewEvent::from_event(&value, &Context::standard(), None).unwrap()
}

fn object_event(serial: u32) -> Value {
    json!({
        "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
        "eventTime": "2026-03-01T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
        "epcList": [format!("urn:epc:id:sgtin:0614141.107346.{serial}")]
    })
}

/// Every stored row's key and raw `event_id` and `hash_id` columns, in
/// capture order.
async fn stored_columns(db: &Db) -> Vec<(i64, Option<String>, String)> {
    let q = Query::select()
        .columns([EpcisEvents::Id, EpcisEvents::EventId, EpcisEvents::HashId])
        .from(EpcisEvents::Table)
        .order_by(EpcisEvents::Id, Order::Asc)
        .to_owned();
    db.fetch_all(&q).await.unwrap()
}

async fn store(db: &Db, events: &[NewEvent]) -> Vec<Planned> {
    let mut tx = db.begin().await.unwrap();
    let plan = store::store_events(&mut tx, &capturer(), events, capture::now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    plan
}

async fn plan(db: &Db, events: &[NewEvent]) -> Vec<Planned> {
    let mut tx = db.begin().await.unwrap();
    store::plan_events(&mut tx, events).await.unwrap()
}

db_test!([&TRACE_MIGRATIONS] async fn an_own_event_id_is_kept_and_both_ids_find_the_event(db) {
    // A GS1 vector whose eventID is not its hash ID, and one without eventID.
    let own = vector_events("epcisDocHavingEventWithComment").remove(0);
    let plain = vector_events("ReferenceEventHashAlgorithm").remove(0);
    assert_eq!(own.hash_id, vector_hash("epcisDocHavingEventWithComment"));
    assert_ne!(own.event_id, own.hash_id);
    assert_eq!(plain.event_id, plain.hash_id);
    assert_eq!(store(&db, &[own.clone(), plain.clone()]).await, vec![Planned::New, Planned::New]);

    // Only the own ID takes a place in the event-ID column.
    let columns = stored_columns(&db).await;
    assert_eq!(
        columns.iter().map(|(_, e, h)| (e.clone(), h.clone())).collect::<Vec<_>>(),
        vec![(Some(own.event_id.clone()), own.hash_id.clone()), (None, plain.hash_id.clone())]
    );

    for id in [&own.event_id, &own.hash_id] {
        let found = store::get_event(&db, id).await.unwrap().unwrap_or_else(|| panic!("{id} not found"));
        assert_eq!((found.event_id.as_str(), found.hash_id.as_str()), (own.event_id.as_str(), own.hash_id.as_str()));
        assert_eq!(found.to_json()[HASH_ID_KEY], json!(own.hash_id));
    }
    let found = store::get_event(&db, &plain.hash_id).await.unwrap().unwrap();
    assert_eq!(found.event_id, plain.hash_id);
    assert!(found.to_json().get(HASH_ID_KEY).is_none());

    // The query reads the same IDs.
    let (events, _) = store::query_events(&db, &admin(), &EventFilter::default(), 10).await.unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, vec![own.event_id.as_str(), plain.hash_id.as_str()]);

    // Storing them again answers with the stored IDs.
    assert_eq!(
        store(&db, &[own.clone(), plain.clone()]).await,
        vec![
            Planned::Existing { event_id: own.event_id.clone() },
            Planned::Existing { event_id: plain.hash_id.clone() }
        ]
    );
    assert_eq!(stored_columns(&db).await.len(), 2);
});

db_test!([&TRACE_MIGRATIONS] async fn no_id_names_two_events(db) {
    let taken = "urn:uuid:6f1c2a34-8b2d-4e6f-9a1b-2c3d4e5f6071";
    let mut with_id = object_event(1);
    with_id["eventID"] = json!(taken);
    let plain = new_event(object_event(2));
    let with_id = new_event(with_id);
    store(&db, &[with_id.clone(), plain.clone()]).await;

    let with = |serial: u32, id: &str| {
        let mut v = object_event(serial);
        v["eventID"] = json!(id);
        new_event(v)
    };
    // Another event claiming a stored own ID, a stored hash ID (of an event
    // without own ID, and of one with), or an ID given earlier in the same
    // document.
    let claims = [
        with(3, taken),
        with(4, &plain.hash_id),
        with(5, &with_id.hash_id),
    ];
    for claim in &claims {
        assert_eq!(plan(&db, std::slice::from_ref(claim)).await, vec![Planned::Conflict { event_id: claim.event_id.clone() }]);
    }
    let fresh = new_event(object_event(6));
    let after = with(7, &fresh.hash_id);
    assert_eq!(
        plan(&db, &[fresh.clone(), after.clone()]).await,
        vec![Planned::New, Planned::Conflict { event_id: fresh.hash_id.clone() }]
    );
    // An event whose hash ID is another event's own ID.
    let own_taker = with(8, &fresh.hash_id);
    store(&db, std::slice::from_ref(&own_taker)).await;
    assert_eq!(plan(&db, std::slice::from_ref(&fresh)).await, vec![Planned::Conflict { event_id: fresh.hash_id.clone() }]);

    // Through a capture job the claim is refused with its pointer.
    let mut claim = object_event(10);
    claim["eventID"] = json!(plain.hash_id);
    let doc = json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-03-01T08:00:00Z",
        "epcisBody": {"eventList": [object_event(9), claim]}
    });
    let p = admin();
    let job = capture::submit(&db, &p, &p.actor(None), "*", ErrorBehaviour::Rollback, &doc.to_string()).await.unwrap();
    capture::run_pending(&db).await.unwrap();
    let job = capture::get_job(&db, &p, &job.capture_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.errors[0].pointer, "/epcisBody/eventList/1/eventID", "{:?}", job.errors);

    // The unique index refuses a duplicate own ID even past the plan.
    let mut tx = db.begin().await.unwrap();
    let duplicate = with(11, taken);
    assert!(store::insert_events(&mut tx, &capturer(), &[&duplicate], capture::now_ms()).await.is_err());
    drop(tx);
    assert_eq!(stored_columns(&db).await.len(), 3);
});

db_test!([&TRACE_MIGRATIONS] async fn a_concurrent_writer_sees_an_own_id_taken_before_it(db) {
    // Writer 1 stores an event whose own ID is the hash ID of the event
    // writer 2 stores at the same moment: one of the two must be refused,
    // whichever order the two plans would run in on their own.
    let taken = new_event(object_event(20));
    let mut claim = object_event(21);
    claim["eventID"] = json!(taken.hash_id);
    let claim = new_event(claim);
    let mut first = db.begin().await.unwrap();
    let plan = store::store_events(&mut first, &capturer(), std::slice::from_ref(&claim), capture::now_ms()).await.unwrap();
    assert_eq!(plan, vec![Planned::New]);
    let second = tokio::spawn({
        let (db, taken) = (db.clone(), taken.clone());
        async move { store(&db, &[taken]).await }
    });
    // Give the second writer time to plan while the first is open.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), vec![Planned::Conflict { event_id: taken.hash_id.clone() }]);
    let hashes: Vec<String> = stored_columns(&db).await.into_iter().map(|(_, _, hash)| hash).collect();
    assert_eq!(hashes, vec![claim.hash_id.clone()]);
});

/// The trace slice as it stood before migration 0006.
static BEFORE_0006: LazyLock<SliceMigrations> = LazyLock::new(|| {
    let until = |m: &Migrator| Migrator::with_migrations(m.iter().filter(|m| m.version < 6).cloned().collect());
    SliceMigrations {
        slice: TRACE_MIGRATIONS.slice,
        sqlite: until(&TRACE_MIGRATIONS.sqlite),
        postgres: until(&TRACE_MIGRATIONS.postgres),
    }
});

/// Writes `e` as the store did before 0006: `event_id` always filled.
async fn insert_old_style(db: &Db, e: &NewEvent) -> i64 {
    let q = Query::insert()
        .into_table(EpcisEvents::Table)
        .columns([
            EpcisEvents::EventId,
            EpcisEvents::HashId,
            EpcisEvents::EventType,
            EpcisEvents::EventTime,
            EpcisEvents::RecordTime,
            EpcisEvents::Body,
            EpcisEvents::Region,
        ])
        .values_panic([
            e.event_id.as_str().into(),
            e.hash_id.as_str().into(),
            e.event_type.as_str().into(),
            e.event_time.into(),
            e.event_time.into(),
            serde_json::to_string(&e.body).unwrap().into(),
            "*".into(),
        ])
        .returning_col(EpcisEvents::Id)
        .to_owned();
    let mut tx = db.begin().await.unwrap();
    let (pk,): (i64,) = tx.fetch_one(&q).await.unwrap();
    for (kind, epc) in &e.epcs {
        let q = Query::insert()
            .into_table(EpcisEventEpcs::Table)
            .columns([EpcisEventEpcs::Epc, EpcisEventEpcs::Kind, EpcisEventEpcs::EventPk])
            .values_panic([epc.as_str().into(), kind.as_str().into(), pk.into()])
            .to_owned();
        tx.execute(&q).await.unwrap();
    }
    tx.commit().await.unwrap();
    pk
}

db_test!([&*BEFORE_0006] async fn migrating_keeps_stored_events_under_their_ids(db) {
    let mut events = vector_events("ReferenceEventHashAlgorithm");
    events.extend(vector_events("ReferenceEventHashAlgorithm2"));
    events.extend(vector_events("epcisQueryDocument"));
    events.extend(vector_events("ReferenceEventHashAlgorithm3"));
    assert!(events.iter().any(|e| e.event_id != e.hash_id) && events.iter().any(|e| e.event_id == e.hash_id));
    assert!(events.iter().any(|e| !e.epcs.is_empty()));
    let mut pks = Vec::new();
    for e in &events {
        pks.push(insert_old_style(&db, e).await);
    }
    // The newest event is gone before the migration: its key must not be
    // handed out again after it.
    let last = insert_old_style(&db, &new_event(object_event(1))).await;
    let q = Query::delete()
        .from_table(EpcisEventEpcs::Table)
        .and_where(Expr::col(EpcisEventEpcs::EventPk).eq(last))
        .to_owned();
    db.execute(&q).await.unwrap();
    let q = Query::delete().from_table(EpcisEvents::Table).and_where(Expr::col(EpcisEvents::Id).eq(last)).to_owned();
    db.execute(&q).await.unwrap();

    db.migrate(&[&TRACE_MIGRATIONS]).await.unwrap();
    assert_eq!(db.pending_migrations(&[&TRACE_MIGRATIONS]).await.unwrap(), 0);

    let columns = stored_columns(&db).await;
    assert_eq!(columns.len(), events.len());
    for ((e, pk), (id, event_id, hash_id)) in events.iter().zip(&pks).zip(&columns) {
        assert_eq!((id, hash_id), (pk, &e.hash_id));
        assert_eq!(event_id.as_deref(), (e.event_id != e.hash_id).then_some(e.event_id.as_str()));
        for key in [&e.event_id, &e.hash_id] {
            let found = store::get_event(&db, key).await.unwrap().unwrap_or_else(|| panic!("{key} lost"));
            assert_eq!((found.pk, &found.event_id, &found.hash_id), (*pk, &e.event_id, &e.hash_id));
        }
        // The EPC rows still point at the event.
        for (_, epc) in &e.epcs {
            let filter = EventFilter { any_epcs: vec![epc.clone()], ..EventFilter::default() };
            let (found, _) = store::query_events(&db, &admin(), &filter, 100).await.unwrap();
            assert!(found.iter().any(|f| f.pk == *pk), "{epc} lost its event {pk}");
        }
    }

    // New events go on after the last key ever given, under the new rules.
    let next = new_event(object_event(2));
    assert_eq!(store(&db, std::slice::from_ref(&next)).await, vec![Planned::New]);
    let stored = store::get_event(&db, &next.hash_id).await.unwrap().unwrap();
    assert!(stored.pk > last, "key {} reused after {last}", stored.pk);
    let own = events.iter().find(|e| e.event_id != e.hash_id).unwrap();
    let mut claim = object_event(3);
    claim["eventID"] = json!(own.event_id);
    let claim = new_event(claim);
    let mut tx = db.begin().await.unwrap();
    assert!(store::insert_events(&mut tx, &capturer(), &[&claim], capture::now_ms()).await.is_err(), "the own-ID index is unique");
});
