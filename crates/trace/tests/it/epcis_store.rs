//! The EPCIS event store and capture jobs on both backends: hash IDs against
//! the GS1 reference vectors, trace-log inclusion, rollback and proceed,
//! idempotent re-capture, restart of pending jobs, every query filter,
//! paging and read scopes.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use shuxiang_core::auth::{Actor, Credential, Grant, Principal, Role, Scope};
use shuxiang_core::db::Db;
use shuxiang_core::db_test;
use shuxiang_core::region::RegionCode;
use shuxiang_trace::epcis::capture::{self, CaptureJob, ErrorBehaviour, JobStatus};
use shuxiang_trace::epcis::model::{HASH_ID_KEY, NewEvent};
use shuxiang_trace::epcis::store::{self, Capturer, EventFilter, Planned, StoredEvent};
use shuxiang_trace::epcis::validate::check_document;
use shuxiang_trace::epcis_hash::{Context, event_hash_id};
use shuxiang_trace::log_store::{self, TRACE_MIGRATIONS};
use shuxiang_trace::merkle::{leaf_hash, verify_inclusion};

fn principal(user_id: i64, role: Role, scope: &str) -> Principal {
    Principal {
        user_id,
        username: format!("user{user_id}"),
        display_name: format!("user{user_id}"),
        grants: vec![Grant {
            role,
            scope: if scope == "*" {
                Scope::All
            } else {
                Scope::Region(RegionCode::parse(scope).unwrap())
            },
        }],
        credential: Credential::ApiToken,
        expires_at: None,
    }
}

fn actor(p: &Principal) -> Actor {
    p.actor(Some("127.0.0.1".into()))
}

fn national() -> Principal {
    principal(1, Role::Admin, "*")
}

fn event(n: u32, step: &str, time: &str) -> Value {
    json!({
        "type": "ObjectEvent", "action": "OBSERVE", "bizStep": step,
        "eventTime": time, "eventTimeZoneOffset": "+08:00",
        "epcList": [format!("urn:epc:id:sgtin:0614141.107346.{n}")],
        "readPoint": {"id": format!("urn:epc:id:sgln:0614141.00001.{n}")}
    })
}

fn document(events: Vec<Value>) -> Value {
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-03-01T08:00:00Z",
        "epcisBody": {"eventList": events}
    })
}

fn numbered(count: u32) -> Vec<Value> {
    (0..count)
        .map(|n| {
            event(
                n,
                "shipping",
                &format!("2026-03-01T08:{:02}:{:02}+08:00", n / 60, n % 60),
            )
        })
        .collect()
}

/// Submits a document as `p` and runs the pending jobs, as the API does.
async fn capture_as(db: &Db, p: &Principal, region: &str, behaviour: ErrorBehaviour, doc: &Value) -> CaptureJob {
    let job = capture::submit(db, p, &actor(p), region, behaviour, &doc.to_string())
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    capture::run_pending(db).await.unwrap();
    capture::get_job(db, p, &job.capture_id).await.unwrap()
}

async fn all_events(db: &Db) -> Vec<StoredEvent> {
    store::query_events(db, &national(), &EventFilter::default(), 100_000)
        .await
        .unwrap()
        .0
}

async fn ids(db: &Db, p: &Principal, filter: EventFilter) -> Vec<String> {
    let (events, _) = store::query_events(db, p, &filter, 1000).await.unwrap();
    events.into_iter().map(|e| e.event_id).collect()
}

/// Asserts the event's leaf is in the log: its inclusion proof verifies
/// against the log's root.
async fn assert_logged(db: &Db, hash_id: &str) {
    let proof = log_store::inclusion_proof(db, hash_id, None).await.unwrap();
    let root = log_store::root_at(db, proof.tree_size).await.unwrap();
    verify_inclusion(
        &leaf_hash(hash_id.as_bytes()),
        proof.leaf_index,
        proof.tree_size,
        &proof.proof,
        &root,
    )
    .unwrap_or_else(|e| panic!("{hash_id}: {e:?}"));
}

fn vector_examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/epcis/event-hash-vectors/examples");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonld") && p.with_extension("hashes").exists())
        .collect();
    found.sort();
    found
}

db_test!([&TRACE_MIGRATIONS] async fn stored_hash_ids_equal_the_reference_vectors(db) {
    let admin = national();
    let files = vector_examples();
    assert!(files.len() >= 10, "{} vector files", files.len());
    let mut captured_through_jobs = 0;
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let expected: Vec<String> = std::fs::read_to_string(path.with_extension("hashes"))
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let schema_valid = check_document(doc.clone()).is_ok_and(|d| d.event_violations.is_empty());
        if schema_valid {
            // The capture path end to end.
            let job = capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &doc).await;
            assert_eq!(job.status, JobStatus::Succeeded, "{name}: {:?}", job.errors);
            captured_through_jobs += 1;
        } else {
            // Vectors that exercise hashing beyond the schema (custom
            // contexts, odd values): stored through the store directly.
            let context = Context::from_document(&doc);
            let body = &doc["epcisBody"];
            let list = body.get("eventList").unwrap_or(&body["queryResults"]["resultsBody"]["eventList"]);
            let events: Vec<NewEvent> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    NewEvent::from_event(e, &context, doc.get("@context")).unwrap_or_else(|v| panic!("{name}: {v}"))
                })
                .collect();
            let capturer = Capturer { user_id: Some(1), region: "*".into(), capture_id: None };
            let mut tx = db.begin().await.unwrap();
            store::store_events(&mut tx, &capturer, &events, capture::now_ms()).await.unwrap();
            tx.commit().await.unwrap();
        }
        for hash in &expected {
            let stored = store::get_event(&db, hash)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{name}: {hash} not stored"));
            assert_eq!(&stored.hash_id, hash, "{name}");
            assert_logged(&db, hash).await;
        }
    }
    assert!(captured_through_jobs >= 5, "only {captured_through_jobs} vector documents went through capture jobs");
});

db_test!([&TRACE_MIGRATIONS] async fn a_stored_event_hashes_to_its_hash_id_on_its_own(db) {
    let admin = national();
    let mut doc = document(numbered(3));
    // A namespace only the document declares: the stored event must carry it.
    doc["@context"] = json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"ex": "https://example.com/ns/"}]);
    doc["epcisBody"]["eventList"][1]["ex:batch"] = json!("B-7");
    doc["epcisBody"]["eventList"][2]["eventID"] = json!("urn:uuid:3f0a6d8e-25b7-4b39-9a3c-0c8f5f7d1b11");
    let expected = shuxiang_trace::epcis_hash::document_hash_ids(&doc).unwrap();
    let job = capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &doc).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.errors);
    for (i, hash) in expected.iter().enumerate() {
        let stored = store::get_event(&db, hash).await.unwrap().unwrap();
        let mut served = stored.to_json();
        let served_hash = served.as_object_mut().unwrap().remove(HASH_ID_KEY);
        assert_eq!(event_hash_id(&served, &Context::standard()).unwrap(), *hash, "event {i}");
        assert!(served["recordTime"].is_string());
        if i == 2 {
            assert_eq!(stored.event_id, "urn:uuid:3f0a6d8e-25b7-4b39-9a3c-0c8f5f7d1b11");
            assert_eq!(served_hash, Some(json!(hash)));
            assert_eq!(store::get_event(&db, "urn:uuid:3f0a6d8e-25b7-4b39-9a3c-0c8f5f7d1b11").await.unwrap().unwrap().hash_id, *hash);
        } else {
            assert_eq!(stored.event_id, *hash);
            assert_eq!(served_hash, None);
        }
    }
});

db_test!([&TRACE_MIGRATIONS] async fn rollback_stores_nothing_when_one_event_fails(db) {
    let admin = national();
    let mut events = numbered(4);
    events[2]["action"] = json!("JUMP");
    let job = capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &document(events)).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(!job.running && !job.success);
    assert_eq!(job.captured_count, 0);
    assert_eq!(job.event_count, 4);
    assert_eq!(job.errors[0].pointer, "/epcisBody/eventList/2/action", "{:?}", job.errors);
    assert!(all_events(&db).await.is_empty());
    assert_eq!(log_store::size(&db).await.unwrap(), 0);
});

db_test!([&TRACE_MIGRATIONS] async fn proceed_stores_the_valid_events_and_reports_the_rest(db) {
    let admin = national();
    let mut events = numbered(4);
    events[2]["action"] = json!("JUMP");
    events[3]["eventTimeZoneOffset"] = json!("eight");
    let job = capture_as(&db, &admin, "*", ErrorBehaviour::Proceed, &document(events)).await;
    assert_eq!(job.status, JobStatus::Partial);
    assert!(!job.running && !job.success);
    assert_eq!(job.captured_count, 2);
    let pointers: Vec<&str> = job.errors.iter().map(|e| e.pointer.as_str()).collect();
    assert!(pointers.contains(&"/epcisBody/eventList/2/action"), "{pointers:?}");
    assert!(pointers.contains(&"/epcisBody/eventList/3/eventTimeZoneOffset"), "{pointers:?}");
    let stored = all_events(&db).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(log_store::size(&db).await.unwrap(), 2);
    for e in &stored {
        assert_logged(&db, &e.hash_id).await;
    }
});

db_test!([&TRACE_MIGRATIONS] async fn documents_broken_outside_the_events_fail_whole(db) {
    let admin = national();
    let mut doc = document(numbered(2));
    doc.as_object_mut().unwrap().remove("schemaVersion");
    let job = capture_as(&db, &admin, "*", ErrorBehaviour::Proceed, &doc).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.errors.iter().any(|e| e.pointer.is_empty() && e.detail.contains("schemaVersion")), "{:?}", job.errors);
    assert!(all_events(&db).await.is_empty());
});

db_test!([&TRACE_MIGRATIONS] async fn recapturing_an_identical_document_is_idempotent(db) {
    let admin = national();
    let doc = document(numbered(5));
    let first = capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &doc).await;
    assert_eq!((first.status, first.captured_count), (JobStatus::Succeeded, 5));
    let size = log_store::size(&db).await.unwrap();
    let again = capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &doc).await;
    assert_eq!((again.status, again.captured_count), (JobStatus::Succeeded, 5), "{:?}", again.errors);
    assert_eq!(all_events(&db).await.len(), 5);
    assert_eq!(log_store::size(&db).await.unwrap(), size);

    // A single event identical to a stored one answers with its event ID.
    let mut single = numbered(5)[4].clone();
    single["@context"] = doc["@context"].clone();
    let capturer = Capturer { user_id: Some(1), region: "*".into(), capture_id: None };
    let (event_id, hash_id) = capture::capture_event(&db, &actor(&admin), &capturer, &single).await.unwrap();
    assert_eq!(event_id, hash_id);
    assert!(store::get_event(&db, &hash_id).await.unwrap().is_some());
    assert_eq!(all_events(&db).await.len(), 5);
});

db_test!([&TRACE_MIGRATIONS] async fn a_taken_event_id_is_a_conflict(db) {
    let admin = national();
    let mut first = numbered(1);
    first[0]["eventID"] = json!("urn:uuid:11111111-2222-4333-8444-555555555555");
    assert_eq!(capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &document(first)).await.status, JobStatus::Succeeded);

    let mut events = numbered(3);
    events.remove(0);
    events[1]["eventID"] = json!("urn:uuid:11111111-2222-4333-8444-555555555555");
    let job = capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &document(events.clone())).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.errors[0].pointer, "/epcisBody/eventList/1/eventID");
    assert_eq!(all_events(&db).await.len(), 1);

    let job = capture_as(&db, &admin, "*", ErrorBehaviour::Proceed, &document(events)).await;
    assert_eq!((job.status, job.captured_count), (JobStatus::Partial, 1));
    assert_eq!(all_events(&db).await.len(), 2);

    // The same through the store's plan.
    let e = NewEvent::from_event(&json!({"eventID": "urn:uuid:11111111-2222-4333-8444-555555555555",
        "type": "ObjectEvent", "action": "ADD", "eventTime": "2026-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00"}),
        &Context::standard(), None).unwrap();
    let mut tx = db.begin().await.unwrap();
    let plan = store::plan_events(&mut tx, &[e.clone(), e]).await.unwrap();
    assert!(matches!(plan[0], Planned::Conflict { .. }), "{plan:?}");
});

db_test!([&TRACE_MIGRATIONS] async fn a_job_left_pending_by_a_restart_is_run_by_the_next_worker(db) {
    let farmer = principal(7, Role::Farmer, "360102");
    let job = capture::submit(&db, &farmer, &actor(&farmer), "360102", ErrorBehaviour::Rollback, &document(numbered(3)).to_string())
        .await
        .unwrap();
    // No worker ran (the node stopped): nothing stored, the job waits.
    let waiting = capture::get_job(&db, &farmer, &job.capture_id).await.unwrap();
    assert!(waiting.running && waiting.status == JobStatus::Pending);
    assert!(all_events(&db).await.is_empty());
    assert_eq!(capture::run_pending(&db).await.unwrap(), 1);
    let done = capture::get_job(&db, &farmer, &job.capture_id).await.unwrap();
    assert_eq!((done.status, done.captured_count, done.running), (JobStatus::Succeeded, 3, false));
    assert!(done.finished_at.is_some());
    assert_eq!(capture::run_pending(&db).await.unwrap(), 0);
    // Jobs are their submitter's.
    let other = principal(8, Role::Farmer, "360102");
    assert!(capture::get_job(&db, &other, &job.capture_id).await.is_err());
    assert!(capture::list_jobs(&db, &other).await.unwrap().is_empty());
    assert_eq!(capture::list_jobs(&db, &farmer).await.unwrap().len(), 1);
});

db_test!([&TRACE_MIGRATIONS] async fn every_query_filter_narrows_the_result(db) {
    let admin = national();
    let mut events = vec![
        event(1, "shipping", "2026-03-01T08:00:00+08:00"),
        event(2, "receiving", "2026-03-02T08:00:00+08:00"),
        event(3, "https://ref.gs1.org/cbv/BizStep-shipping", "2026-03-03T08:00:00+08:00"),
    ];
    events[0]["bizLocation"] = json!({"id": "urn:epc:id:sgln:0614141.00777.0"});
    events[1]["action"] = json!("ADD");
    events[1]["disposition"] = json!("in_progress");
    events[2]["type"] = json!("AggregationEvent");
    events[2]["action"] = json!("ADD");
    events[2]["parentID"] = json!("urn:epc:id:sscc:0614141.1234567890");
    events[2]["childEPCs"] = events[2]["epcList"].take();
    events[2].as_object_mut().unwrap().remove("epcList");
    events[2]["childQuantityList"] = json!([{"epcClass": "urn:epc:class:lgtin:4012345.012345.998877", "quantity": 200, "uom": "KGM"}]);
    let job = capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &document(events.clone())).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.errors);
    let all = all_events(&db).await;
    let id = |i: usize| all[i].event_id.clone();
    let f = EventFilter::default;
    assert_eq!(ids(&db, &admin, f()).await, vec![id(0), id(1), id(2)]);
    let cases: Vec<(&str, EventFilter, Vec<String>)> = vec![
        ("EQ_bizStep short", EventFilter { biz_steps: vec!["shipping".into()], ..f() }, vec![id(0), id(2)]),
        ("EQ_bizStep any of", EventFilter { biz_steps: vec!["receiving".into(), "x".into()], ..f() }, vec![id(1)]),
        ("EQ_disposition", EventFilter { dispositions: vec!["in_progress".into()], ..f() }, vec![id(1)]),
        ("EQ_action", EventFilter { actions: vec!["ADD".into()], ..f() }, vec![id(1), id(2)]),
        ("eventType", EventFilter { event_types: vec!["AggregationEvent".into()], ..f() }, vec![id(2)]),
        ("EQ_bizLocation", EventFilter { biz_locations: vec!["urn:epc:id:sgln:0614141.00777.0".into()], ..f() }, vec![id(0)]),
        ("EQ_readPoint", EventFilter { read_points: vec!["urn:epc:id:sgln:0614141.00001.2".into()], ..f() }, vec![id(1)]),
        ("MATCH_epc epcList", EventFilter { epcs: vec!["urn:epc:id:sgtin:0614141.107346.2".into()], ..f() }, vec![id(1)]),
        ("MATCH_epc childEPCs", EventFilter { epcs: vec!["urn:epc:id:sgtin:0614141.107346.3".into()], ..f() }, vec![id(2)]),
        ("MATCH_epc not parent", EventFilter { epcs: vec!["urn:epc:id:sscc:0614141.1234567890".into()], ..f() }, vec![]),
        ("MATCH_anyEPC parent", EventFilter { any_epcs: vec!["urn:epc:id:sscc:0614141.1234567890".into()], ..f() }, vec![id(2)]),
        ("MATCH_epcClass", EventFilter { epc_classes: vec!["urn:epc:class:lgtin:4012345.012345.998877".into()], ..f() }, vec![id(2)]),
        ("GE_eventTime", EventFilter { event_time_from: Some(all[1].event_time), ..f() }, vec![id(1), id(2)]),
        ("LT_eventTime", EventFilter { event_time_to: Some(all[1].event_time), ..f() }, vec![id(0)]),
        ("time window", EventFilter { event_time_from: Some(all[1].event_time), event_time_to: Some(all[2].event_time), ..f() }, vec![id(1)]),
        ("LT_recordTime", EventFilter { record_time_to: Some(all[0].record_time), ..f() }, vec![]),
        ("GE_recordTime", EventFilter { record_time_from: Some(all[0].record_time), ..f() }, vec![id(0), id(1), id(2)]),
        ("combined", EventFilter { biz_steps: vec!["shipping".into()], actions: vec!["ADD".into()], ..f() }, vec![id(2)]),
    ];
    for (name, filter, want) in cases {
        assert_eq!(ids(&db, &admin, filter).await, want, "{name}");
    }
});

db_test!([&TRACE_MIGRATIONS] async fn pages_cover_every_event_exactly_once(db) {
    let admin = national();
    for chunk in numbered(95).chunks(40) {
        let job = capture_as(&db, &admin, "*", ErrorBehaviour::Rollback, &document(chunk.to_vec())).await;
        assert_eq!(job.status, JobStatus::Succeeded);
    }
    let mut seen = Vec::new();
    let mut filter = EventFilter { biz_steps: vec!["shipping".into()], ..EventFilter::default() };
    let mut pages = 0;
    loop {
        let (events, more) = store::query_events(&db, &admin, &filter, 30).await.unwrap();
        pages += 1;
        assert!(events.len() <= 30);
        seen.extend(events.iter().map(|e| e.event_id.clone()));
        if !more {
            break;
        }
        filter.after = Some(events.last().unwrap().pk);
    }
    assert_eq!(pages, 4);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (95, 95));
    let stored: Vec<String> = all_events(&db).await.into_iter().map(|e| e.event_id).collect();
    assert_eq!(seen, stored, "capture order");
});

db_test!([&TRACE_MIGRATIONS] async fn readers_see_their_scope_and_owners_their_own(db) {
    let farmer = principal(10, Role::Farmer, "360102");
    let other_farmer = principal(11, Role::Farmer, "360102");
    let outsider = principal(12, Role::Carrier, "360103");
    let f_job = capture_as(&db, &farmer, "360102", ErrorBehaviour::Rollback, &document(numbered(2))).await;
    let mut out_events = numbered(4);
    out_events.drain(..2);
    let o_job = capture_as(&db, &outsider, "360103", ErrorBehaviour::Rollback, &document(out_events)).await;
    assert_eq!((f_job.status, o_job.status), (JobStatus::Succeeded, JobStatus::Succeeded));
    let all = all_events(&db).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].region, "360102");
    assert_eq!(all[2].region, "360103");
    let mine = vec![all[0].event_id.clone(), all[1].event_id.clone()];
    let theirs = vec![all[2].event_id.clone(), all[3].event_id.clone()];
    let f = EventFilter::default;
    assert_eq!(ids(&db, &farmer, f()).await, mine);
    assert!(ids(&db, &other_farmer, f()).await.is_empty());
    assert_eq!(ids(&db, &outsider, f()).await, theirs);
    assert_eq!(ids(&db, &principal(20, Role::Official, "360102"), f()).await, mine);
    assert_eq!(ids(&db, &principal(21, Role::Expert, "3601"), f()).await.len(), 4);
    assert_eq!(ids(&db, &principal(22, Role::VillageStaff, "360102002001"), f()).await, Vec::<String>::new());
    assert_eq!(ids(&db, &principal(23, Role::Dealer, "36"), f()).await, Vec::<String>::new());
    assert!(store::may_read(&farmer, all[0].captured_by, &all[0].region));
    assert!(!store::may_read(&other_farmer, all[0].captured_by, &all[0].region));
    assert!(!store::may_read(&principal(20, Role::Official, "360102"), all[2].captured_by, &all[2].region));
});
