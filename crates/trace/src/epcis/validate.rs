//! EPCIS 2.0 文档校验 validation of EPCIS JSON / JSON-LD documents and single
//! events against the GS1 EPCIS JSON schema (`EPCIS-JSON-Schema.json`, draft
//! 07, shipped in `data/epcis/gs1-examples/`), with the `jsonschema` crate
//! built without network or file retrieval: the schema is self-contained, so
//! nothing is ever fetched. Every violation names the JSON pointer of the
//! failing part of the input.
//!
//! A document is checked as a whole once; violations under
//! `/epcisBody/eventList/<n>` belong to event `n` (so the capture can proceed
//! with the other events), every other violation rejects the document.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use jsonschema::Validator;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// The GS1 schema; it dispatches on `type` to documents and event types.
const SCHEMA_TEXT: &str = include_str!("../../../../data/epcis/gs1-examples/EPCIS-JSON-Schema.json");

/// The event types of EPCIS 2.0 (the schema accepts any `type` at the root).
pub const EVENT_TYPES: [&str; 5] = [
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
];

/// Violations reported per document or event at most; the rest are counted
/// away, so a hostile document cannot make the report huge.
pub const MAX_VIOLATIONS: usize = 20;

/// Longest message kept per violation (the validator quotes the value).
const MAX_MESSAGE: usize = 300;

static SCHEMA: LazyLock<Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA_TEXT).expect("the shipped EPCIS schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the shipped EPCIS schema compiles")
});

/// One failed rule: where (JSON pointer into the submitted body) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

impl Violation {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let cut = message.floor_char_boundary(MAX_MESSAGE);
            message.truncate(cut);
            message.push('…');
        }
        Self {
            pointer: pointer.into(),
            message,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "{at}: {}", self.message)
    }
}

/// Why a submitted document cannot be captured at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    #[error("the body is not JSON (line {line}, column {column}): {message}")]
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the document does not follow the EPCIS schema: {}", first(.0))]
    Invalid(Vec<Violation>),
}

fn first(violations: &[Violation]) -> String {
    violations.first().map(ToString::to_string).unwrap_or_default()
}

/// A document whose envelope is valid, its events split out in order.
#[derive(Debug, Clone)]
pub struct Document {
    /// The whole document as sent (events included).
    pub value: Value,
    /// The violations of each invalid event, by index in `eventList`.
    pub event_violations: BTreeMap<usize, Vec<Violation>>,
}

impl Document {
    /// The events of the document in order.
    pub fn events(&self) -> &[Value] {
        events_of(&self.value)
    }
}

/// Schema violations of any value, at most [`MAX_VIOLATIONS`].
pub fn violations(value: &Value) -> Vec<Violation> {
    SCHEMA
        .iter_errors(value)
        .take(MAX_VIOLATIONS)
        .map(|e| Violation::new(e.instance_path().as_str(), e.to_string()))
        .collect()
}

/// Checks one event (`POST /epcis/events`): one of the five event types,
/// valid against the schema (which also requires its `@context`).
pub fn validate_event(event: &Value) -> Result<(), Vec<Violation>> {
    if !event.is_object() {
        return Err(vec![Violation::new("", "an EPCIS event must be a JSON object")]);
    }
    validate_event_type(event).map_err(|v| vec![v])?;
    let found = violations(event);
    if found.is_empty() { Ok(()) } else { Err(found) }
}

/// Parses and checks a capture body: JSON, an `EPCISDocument`, an envelope
/// valid against the schema. Invalid events do not fail the document; they
/// are listed in [`Document::event_violations`].
pub fn parse_document(bytes: &[u8]) -> Result<Document, DocumentError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| DocumentError::NotJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    check_document(value)
}

/// [`parse_document`] for a value already parsed.
pub fn check_document(value: Value) -> Result<Document, DocumentError> {
    let event_violations = document_violations(&value)?;
    Ok(Document {
        value,
        event_violations,
    })
}

/// Checks a parsed document: `Err` when the document as a whole is
/// invalid, otherwise the violations of each invalid event by index.
pub fn document_violations(value: &Value) -> Result<BTreeMap<usize, Vec<Violation>>, DocumentError> {
    match value.get("type").and_then(Value::as_str) {
        Some("EPCISDocument") => {}
        _ if !value.is_object() => {
            return Err(DocumentError::Invalid(vec![Violation::new(
                "",
                "an EPCIS document must be a JSON object",
            )]));
        }
        other => {
            return Err(DocumentError::Invalid(vec![Violation::new(
                "/type",
                format!("the capture interface takes an EPCISDocument, not {other:?}"),
            )]));
        }
    }
    let mut document_level = Vec::new();
    let mut event_violations: BTreeMap<usize, Vec<Violation>> = BTreeMap::new();
    // Not capped: one broken event must not hide another's violations; the
    // per-event and per-document lists are capped instead.
    for e in SCHEMA.iter_errors(value) {
        let pointer = e.instance_path().as_str().to_owned();
        let violation = Violation::new(pointer.as_str(), e.to_string());
        match event_index(&pointer) {
            Some(i) => {
                let list = event_violations.entry(i).or_default();
                if list.len() < MAX_VIOLATIONS {
                    list.push(violation);
                }
            }
            None if document_level.len() < MAX_VIOLATIONS => document_level.push(violation),
            None => {}
        }
    }
    if !document_level.is_empty() {
        return Err(DocumentError::Invalid(document_level));
    }
    // The schema lets unknown types through as extension events; the event
    // types are what we store and hash.
    for (i, event) in events_of(value).iter().enumerate() {
        if let Err(found) = validate_event_type(event) {
            event_violations.entry(i).or_default().insert(
                0,
                Violation::new(format!("/epcisBody/eventList/{i}{}", found.pointer), found.message),
            );
        }
    }
    Ok(event_violations)
}

/// The `epcisBody.eventList` of a document (empty if it has none).
pub fn events_of(document: &Value) -> &[Value] {
    document["epcisBody"]["eventList"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn validate_event_type(event: &Value) -> Result<(), Violation> {
    match event.get("type").and_then(Value::as_str) {
        Some(t) if EVENT_TYPES.contains(&t) => Ok(()),
        Some(t) => Err(Violation::new(
            "/type",
            format!("{t:?} is not an EPCIS event type ({})", EVENT_TYPES.join(", ")),
        )),
        None => Err(Violation::new("/type", "the event type `type` is required")),
    }
}

/// `n` of a pointer `/epcisBody/eventList/n[/…]`.
fn event_index(pointer: &str) -> Option<usize> {
    let rest = pointer.strip_prefix("/epcisBody/eventList/")?;
    rest.split('/').next()?.parse().ok()
}
