//! Fuzzes the EPCIS capture parser (文档校验): any body must parse into a
//! checked document or fail with a `DocumentError`, never panic; every event
//! the schema accepts must yield a storable row (hash ID, event time) or a
//! violation with a pointer, and checking must be deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shuxiang_trace::epcis::model::NewEvent;
use shuxiang_trace::epcis::validate::{parse_document, validate_event};
use shuxiang_trace::epcis_hash::Context;

fuzz_target!(|data: &[u8]| {
    let first = parse_document(data);
    match &first {
        Ok(document) => {
            let again = parse_document(data).expect("parsing is deterministic");
            assert_eq!(again.event_violations, document.event_violations);
            let context = Context::from_document(&document.value);
            for (i, event) in document.events().iter().enumerate() {
                if document.event_violations.contains_key(&i) {
                    continue;
                }
                if let Ok(row) = NewEvent::from_event(event, &context, document.value.get("@context")) {
                    assert!(row.hash_id.starts_with("ni:///sha-256;"));
                }
            }
        }
        Err(e) => assert_eq!(parse_document(data).err().as_ref(), Some(e)),
    }
    // The same bytes as a single event (`POST /epcis/events`).
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = validate_event(&value);
    }
});
