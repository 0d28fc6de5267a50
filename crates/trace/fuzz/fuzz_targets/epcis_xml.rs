//! Fuzzes the EPCIS XML reader (XML 绑定): any body must read into a JSON
//! document or fail with an `XmlError` whose line and column lie inside the
//! input, never panic; reading is deterministic; what it reads re-reads the
//! same from its JSON text, is checked by the schema and hashed without
//! panicking; and the single-event reader holds to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shuxiang_trace::epcis::model::NewEvent;
use shuxiang_trace::epcis::validate::{check_document, parse_document};
use shuxiang_trace::epcis::xml::{XmlError, document_to_json, event_to_json};
use shuxiang_trace::epcis_hash::{Context, document_hash_ids};

fn position_inside(data: &[u8], e: &XmlError) {
    let (line, column) = match e {
        XmlError::Malformed { line, column, .. } | XmlError::Unsupported { line, column, .. } => (*line, *column),
    };
    let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
    assert!(line >= 1 && line <= lines, "line {line} of {lines}");
    assert!(column >= 1 && column <= data.len() + 1, "column {column}");
}

fuzz_target!(|data: &[u8]| {
    match document_to_json(data) {
        Ok(document) => {
            assert_eq!(
                document_to_json(data).ok().as_ref(),
                Some(&document),
                "reading is deterministic"
            );
            let text = document.to_string();
            let parsed = parse_document(text.as_bytes());
            assert_eq!(parsed.is_ok(), check_document(document.clone()).is_ok());
            let _ = document_hash_ids(&document);
            if let Ok(checked) = parsed {
                let context = Context::from_document(&checked.value);
                for (i, event) in checked.events().iter().enumerate() {
                    if !checked.event_violations.contains_key(&i) {
                        let _ = NewEvent::from_event(event, &context, checked.value.get("@context"));
                    }
                }
            }
        }
        Err(e) => {
            position_inside(data, &e);
            assert_eq!(document_to_json(data).err().as_ref(), Some(&e));
        }
    }
    match event_to_json(data) {
        Ok(event) => {
            let _ = shuxiang_trace::epcis_hash::event_hash_id(&event, &Context::from_document(&event));
        }
        Err(e) => position_inside(data, &e),
    }
});
