//! Fuzzes the pesticide label code (农药标签二维码) parsers: arbitrary text
//! must parse or fail with a position inside the input's reach, and every
//! parsed code must print back to a code that parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shuxiang_trace::label_code::{parse_label_code, parse_label_qr};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_label_code(text) {
        Ok(code) => assert_eq!(code.to_string(), text),
        Err(e) => assert!((1..=33).contains(&e.position), "{e}"),
    }
    if let Ok(code) = parse_label_qr(text) {
        assert_eq!(parse_label_code(&code.to_string()), Ok(code));
    }
});
