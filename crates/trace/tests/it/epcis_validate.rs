//! EPCIS document and event validation against the GS1 schema: the GS1
//! example documents pass, broken variants fail with the JSON pointer of
//! the broken part.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use shuxiang_trace::epcis::validate::{DocumentError, check_document, parse_document, validate_event};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/epcis/gs1-examples/JSON")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "jsonld") {
            out.push(path);
        }
    }
}

/// Every GS1 JSON-LD example document: (path, parsed).
pub fn example_documents() -> Vec<(PathBuf, Value)> {
    let mut paths = Vec::new();
    walk(&examples(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// Examples the GS1 repository ships that are not valid EPCIS documents by
/// its own schema, with the reason (checked: they must keep failing).
const INVALID_EXAMPLES: &[(&str, &str)] = &[];

/// A small valid document to break.
fn document() -> Value {
    json!({
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T08:00:00Z",
        "epcisBody": {"eventList": [
            {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
             "eventTime": "2026-03-01T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
             "epcList": ["urn:epc:id:sgtin:0614141.107346.1"]},
            {"type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
             "eventTime": "2026-03-01T09:00:00+08:00", "eventTimeZoneOffset": "+08:00",
             "epcList": ["urn:epc:id:sgtin:0614141.107346.2"]}
        ]}
    })
}

#[test]
fn gs1_example_documents_are_valid() {
    let docs = example_documents();
    assert!(docs.len() >= 40, "expected the GS1 examples, found {}", docs.len());
    let mut checked_events = 0;
    for (path, value) in docs {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let known_invalid = INVALID_EXAMPLES.iter().any(|(n, _)| *n == name);
        if value["type"] != "EPCISDocument" {
            // The query document example is not capturable.
            assert!(
                matches!(check_document(value), Err(DocumentError::Invalid(v)) if v[0].pointer == "/type"),
                "{name}"
            );
            continue;
        }
        let result = check_document(value);
        match (&result, known_invalid) {
            (Ok(doc), false) => {
                assert!(doc.event_violations.is_empty(), "{name}: {:?}", doc.event_violations);
                checked_events += doc.events().len();
            }
            (Ok(doc), true) => assert!(!doc.event_violations.is_empty(), "{name} is valid now"),
            (Err(e), false) => panic!("{name}: {e}"),
            (Err(_), true) => {}
        }
    }
    assert!(checked_events >= 50, "only {checked_events} events checked");
}

/// Breaks `document()` with `edit` and expects the first violation (of the
/// document or of an event) at `pointer`.
fn violation_pointer(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut doc = document();
    edit(&mut doc);
    match check_document(doc) {
        Ok(d) => d
            .event_violations
            .values()
            .flatten()
            .map(|v| v.pointer.clone())
            .collect(),
        Err(DocumentError::Invalid(v)) => v.into_iter().map(|v| v.pointer).collect(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn broken_documents_fail_at_the_broken_part() {
    assert!(violation_pointer(|_| {}).is_empty(), "the base document is valid");
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "/epcisBody/eventList/1/action",
            Box::new(|d| d["epcisBody"]["eventList"][1]["action"] = json!("JUMP")),
        ),
        (
            "/epcisBody/eventList/0",
            Box::new(|d| {
                d["epcisBody"]["eventList"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("eventTime");
            }),
        ),
        (
            "/epcisBody/eventList/0/eventTimeZoneOffset",
            Box::new(|d| d["epcisBody"]["eventList"][0]["eventTimeZoneOffset"] = json!("8 hours")),
        ),
        (
            "/epcisBody/eventList/1/epcList",
            Box::new(|d| d["epcisBody"]["eventList"][1]["epcList"] = json!("urn:epc:id:sgtin:0614141.107346.2")),
        ),
        (
            "/epcisBody/eventList/0/type",
            Box::new(|d| d["epcisBody"]["eventList"][0]["type"] = json!("HarvestEvent")),
        ),
        ("/schemaVersion", Box::new(|d| d["schemaVersion"] = json!(2))),
        (
            "",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("creationDate");
            }),
        ),
        ("/epcisBody", Box::new(|d| d["epcisBody"] = json!({"events": []}))),
        ("/type", Box::new(|d| d["type"] = json!("EPCISMasterDataDocument"))),
    ];
    for (pointer, edit) in cases {
        let found = violation_pointer(edit);
        assert!(
            found.iter().any(|p| p == pointer),
            "expected a violation at {pointer:?}, got {found:?}"
        );
    }
}

#[test]
fn an_invalid_event_leaves_the_others_valid() {
    let mut doc = document();
    doc["epcisBody"]["eventList"][1]["action"] = json!("JUMP");
    let d = check_document(doc).unwrap();
    assert_eq!(d.event_violations.keys().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(d.events().len(), 2);
}

#[test]
fn non_json_bodies_name_line_and_column() {
    match parse_document(b"{\n  \"type\": \"EPCISDocument\",\n  oops\n}") {
        Err(DocumentError::NotJson { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
    assert!(matches!(parse_document(b"[1, 2]"), Err(DocumentError::Invalid(v)) if v[0].pointer.is_empty()));
}

#[test]
fn single_events_need_a_known_type_and_a_context() {
    let mut event = document()["epcisBody"]["eventList"][0].clone();
    event["@context"] = json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]);
    assert_eq!(validate_event(&event), Ok(()));

    let mut no_context = event.clone();
    no_context.as_object_mut().unwrap().remove("@context");
    assert!(validate_event(&no_context).is_err());

    let mut unknown = event.clone();
    unknown["type"] = json!("EPCISDocument");
    assert_eq!(validate_event(&unknown).unwrap_err()[0].pointer, "/type");

    let mut bad_step = event.clone();
    bad_step["readPoint"] = json!("not an object");
    let errors = validate_event(&bad_step).unwrap_err();
    assert!(errors.iter().any(|v| v.pointer == "/readPoint"), "{errors:?}");

    assert_eq!(validate_event(&json!([event])).unwrap_err()[0].pointer, "");
}

#[test]
fn large_documents_are_prepared_in_document_order() {
    use shuxiang_trace::epcis::capture::prepare_document;
    use shuxiang_trace::epcis_hash::document_hash_ids;

    let base = document()["epcisBody"]["eventList"][0].clone();
    let events: Vec<Value> = (0..300)
        .map(|n| {
            let mut e = base.clone();
            e["epcList"] = json!([format!("urn:epc:id:sgtin:0614141.107346.{n}")]);
            e
        })
        .collect();
    let mut doc = document();
    doc["epcisBody"]["eventList"] = json!(events);
    let expected = document_hash_ids(&doc).unwrap();
    doc["epcisBody"]["eventList"][250]["action"] = json!("JUMP");
    let prepared = prepare_document(doc.to_string().as_bytes());
    assert_eq!(prepared.event_count, 300);
    assert!(
        prepared
            .errors
            .iter()
            .any(|e| e.pointer == "/epcisBody/eventList/250/action")
    );
    assert!(
        prepared
            .errors
            .iter()
            .all(|e| e.pointer.starts_with("/epcisBody/eventList/250")),
        "{:?}",
        prepared.errors
    );
    let positions: Vec<usize> = prepared.events.iter().map(|(i, _)| *i).collect();
    assert_eq!(positions, (0..300).filter(|i| *i != 250).collect::<Vec<_>>());
    for (i, e) in &prepared.events {
        assert_eq!(e.hash_id, expected[*i], "event {i}");
    }

    let broken = prepare_document(b"{\"type\": \"EPCISDocument\"");
    assert_eq!((broken.event_count, broken.errors.len()), (0, 1));
    assert!(broken.errors[0].detail.contains("line 1"), "{:?}", broken.errors);
}
