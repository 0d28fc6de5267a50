//! EPCIS 事件 events as the store keeps them: the standard hash ID, the
//! event ID, and the fields the standard queries filter on (event type,
//! action, event time in milliseconds, business step, disposition, read
//! point, business location, the EPCs and EPC classes named), pulled out of
//! a schema-valid event.
//!
//! Business steps and dispositions are kept as CBV short names
//! (`shipping`), whichever of the three spellings the capturer used
//! (`shipping`, `urn:epcglobal:cbv:bizstep:shipping`,
//! `https://ref.gs1.org/cbv/BizStep-shipping`), so `EQ_bizStep` matches
//! them all; values outside the CBV are kept as written.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::validate::Violation;
use crate::epcis_hash::{Context, HashError, event_hash_id};

/// The JSON key under which an event carries its hash ID when its event ID
/// is the capturer's own.
pub const HASH_ID_KEY: &str = "x-shuxiang:hashID";

/// The standard context every stored event refers to when its document
/// gave none.
pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

/// How an event names an EPC, for the matching query parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EpcKind {
    /// `epcList`, `childEPCs`, `inputEPCList`, `outputEPCList` (MATCH_epc).
    Epc,
    /// `parentID` (MATCH_anyEPC with the above).
    Parent,
    /// `epcClass` in the quantity lists (MATCH_epcClass).
    Class,
}

impl EpcKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Epc => "epc",
            Self::Parent => "parent",
            Self::Class => "class",
        }
    }
}

/// An event ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The capturer's `eventID`, or the hash ID when they gave none.
    pub event_id: String,
    /// `ni:///sha-256;<hex>?ver=CBV2.0`.
    pub hash_id: String,
    pub event_type: String,
    pub action: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub event_time: i64,
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub read_point: Option<String>,
    pub biz_location: Option<String>,
    /// Distinct (kind, EPC) pairs.
    pub epcs: BTreeSet<(EpcKind, String)>,
    /// The event as it will be served: with its `eventID` and the `@context`
    /// of its document, so it hashes to `hash_id` on its own.
    pub body: Map<String, Value>,
}

impl NewEvent {
    /// Builds the row of a schema-valid event of a document whose prefixes
    /// are `context` and whose `@context` is `document_context`. Errors
    /// point into the event (`/eventTime`).
    pub fn from_event(event: &Value, context: &Context, document_context: Option<&Value>) -> Result<Self, Violation> {
        let map = event
            .as_object()
            .ok_or_else(|| Violation::new("", "an EPCIS event must be a JSON object"))?;
        let hash_id = event_hash_id(event, context).map_err(hash_violation)?;
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_owned);
        let time = map.get("eventTime").and_then(Value::as_str).unwrap_or_default();
        let event_time = parse_time_ms(time)
            .ok_or_else(|| Violation::new("/eventTime", format!("{time:?} is not a date-time with a UTC offset")))?;
        let event_id = text("eventID")
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| hash_id.clone());
        let mut body = map.clone();
        body.insert("eventID".into(), Value::String(event_id.clone()));
        if !body.contains_key("@context") {
            let context = document_context
                .cloned()
                .unwrap_or_else(|| Value::String(EPCIS_CONTEXT.to_owned()));
            body.insert("@context".into(), context);
        }
        body.remove(HASH_ID_KEY);
        Ok(Self {
            event_type: text("type").unwrap_or_default(),
            action: text("action"),
            event_time,
            biz_step: text("bizStep").map(|s| cbv_short_name(&s, "bizstep", "BizStep")),
            disposition: text("disposition").map(|s| cbv_short_name(&s, "disp", "Disp")),
            read_point: location_id(map.get("readPoint")),
            biz_location: location_id(map.get("bizLocation")),
            epcs: epcs(map),
            event_id,
            hash_id,
            body,
        })
    }
}

fn hash_violation(e: HashError) -> Violation {
    match e {
        HashError::MissingEventTime | HashError::InvalidTime { .. } => Violation::new("/eventTime", e.to_string()),
        HashError::MissingEventType => Violation::new("/type", e.to_string()),
        _ => Violation::new("", e.to_string()),
    }
}

/// Milliseconds since the epoch of an RFC 3339 date-time.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The RFC 3339 UTC form of milliseconds since the epoch.
pub fn format_time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The CBV short name of a business step (`urn` = `bizstep`, `web` =
/// `BizStep`) or disposition (`disp`, `Disp`) in any of its spellings;
/// anything else as written.
pub fn cbv_short_name(value: &str, urn: &str, web: &str) -> String {
    let value = value.trim();
    let prefixes = [
        format!("urn:epcglobal:cbv:{urn}:"),
        format!("https://ref.gs1.org/cbv/{web}-"),
        format!("https://gs1.org/voc/{web}-"),
        format!("cbv:{web}-"),
        format!("gs1:{web}-"),
    ];
    prefixes
        .iter()
        .find_map(|p| value.strip_prefix(p.as_str()))
        .filter(|short| !short.is_empty())
        .unwrap_or(value)
        .to_owned()
}

fn location_id(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Object(m) => m.get("id").and_then(Value::as_str).map(str::to_owned),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn epcs(map: &Map<String, Value>) -> BTreeSet<(EpcKind, String)> {
    let mut out = BTreeSet::new();
    for key in ["epcList", "childEPCs", "inputEPCList", "outputEPCList"] {
        for epc in map.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(epc) = epc.as_str() {
                out.insert((EpcKind::Epc, epc.to_owned()));
            }
        }
    }
    if let Some(parent) = map.get("parentID").and_then(Value::as_str) {
        out.insert((EpcKind::Parent, parent.to_owned()));
    }
    for key in [
        "quantityList",
        "childQuantityList",
        "inputQuantityList",
        "outputQuantityList",
    ] {
        for q in map.get(key).and_then(Value::as_array).into_iter().flatten() {
            if let Some(class) = q.get("epcClass").and_then(Value::as_str) {
                out.insert((EpcKind::Class, class.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn business_steps_in_every_spelling_have_one_short_name() {
        for s in [
            "shipping",
            "urn:epcglobal:cbv:bizstep:shipping",
            "https://ref.gs1.org/cbv/BizStep-shipping",
            "cbv:BizStep-shipping",
        ] {
            assert_eq!(cbv_short_name(s, "bizstep", "BizStep"), "shipping", "{s}");
        }
        assert_eq!(
            cbv_short_name("https://example.com/steps/pick", "bizstep", "BizStep"),
            "https://example.com/steps/pick"
        );
        assert_eq!(
            cbv_short_name("urn:epcglobal:cbv:disp:in_transit", "disp", "Disp"),
            "in_transit"
        );
    }

    #[test]
    fn times_keep_milliseconds_across_offsets() {
        assert_eq!(parse_time_ms("1970-01-01T08:00:00.250+08:00"), Some(250));
        assert_eq!(parse_time_ms("2005-04-03T20:33:31.116-06:00"), Some(1_112_582_011_116));
        assert_eq!(parse_time_ms("2005-04-03"), None);
        assert_eq!(format_time_ms(1_112_582_011_116), "2005-04-04T02:33:31.116Z");
    }
}
