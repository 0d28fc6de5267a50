//! Fuzzes the EPCIS event hash (事件哈希) over arbitrary JSON documents: any
//! input that parses as JSON must hash or fail with a `HashError`, never
//! panic, and hashing must be deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shuxiang_trace::epcis_hash::{Context, document_hash_ids, event_hash_id};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // The same value as a whole document and as a bare event, so both the
    // document walk and the event renderer see every input.
    let first = document_hash_ids(&value);
    assert_eq!(first, document_hash_ids(&value));
    let context = Context::from_document(&value);
    let _ = event_hash_id(&value, &context);
});
