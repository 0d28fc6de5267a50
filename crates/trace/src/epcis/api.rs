//! The EPCIS 2.0 REST routes under `/api/v1/epcis`: capture of documents
//! through capture jobs, capture of single events, the standard event query
//! with keyset paging, and single events by event ID. Access is described
//! in the module [`super`].
//!
//! Capture bodies are JSON / JSON-LD, or XML (`Content-Type:
//! application/xml` or `text/xml`), which is read into the JSON form here,
//! before a job exists, so an unreadable document is refused at once with
//! its line and column and everything after is the JSON path.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_http::extract::{ApiQuery, Auth, ClientIp};
use shuxiang_http::{Access, ApiResult, ApiRoute, AppState};

use super::capture::{self, ErrorBehaviour, EventCaptureError};
use super::model::{EPCIS_CONTEXT, HASH_ID_KEY, cbv_short_name, parse_time_ms};
use super::store::{self, Capturer, EventFilter};
use super::validate::Violation;
use super::{CAPTURERS, capture_region, xml};

/// Largest capture body (document or event) accepted: 1 MiB, below the
/// server's 2 MiB limit for any request; larger bodies get 413 with our
/// JSON error.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Events per query page by default and at most.
pub const DEFAULT_PER_PAGE: u64 = 30;
pub const MAX_PER_PAGE: u64 = 1000;

const ERROR_BEHAVIOUR_HEADER: &str = "GS1-Capture-Error-Behaviour";

const QUERY_PARAMS: &[(&str, &str)] = &[
    (
        "eventType",
        "ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent or AssociationEvent; comma-separated for any of several",
    ),
    (
        "EQ_action",
        "ADD, OBSERVE or DELETE; comma-separated for any of several",
    ),
    (
        "EQ_bizStep",
        "business step: CBV short name (shipping), URN or web URI; comma-separated for any of several",
    ),
    ("EQ_disposition", "disposition, as EQ_bizStep"),
    (
        "EQ_readPoint",
        "read point ID (exact); comma-separated for any of several",
    ),
    (
        "EQ_bizLocation",
        "business location ID (exact); comma-separated for any of several",
    ),
    (
        "MATCH_epc",
        "an EPC in epcList, childEPCs, inputEPCList or outputEPCList (exact); comma-separated",
    ),
    ("MATCH_anyEPC", "as MATCH_epc, or the parentID"),
    (
        "MATCH_epcClass",
        "an EPC class in a quantity list (exact); comma-separated",
    ),
    ("GE_eventTime", "event time at or after (RFC 3339)"),
    ("LT_eventTime", "event time before (RFC 3339)"),
    ("GE_recordTime", "record time at or after (RFC 3339)"),
    ("LT_recordTime", "record time before (RFC 3339)"),
    ("perPage", "events per page (default 30, at most 1000)"),
    (
        "nextPageToken",
        "opaque token of the next page, from the Link header (rel=\"next\") of the previous one",
    ),
];

fn document_schema() -> Value {
    json!({"type": "object", "required": ["@context", "type", "schemaVersion", "creationDate", "epcisBody"],
        "description": "an EPCISDocument (GS1 EPCIS 2.0 JSON/JSON-LD); validated against the GS1 EPCIS JSON schema by the capture job",
        "properties": {"type": {"const": "EPCISDocument"}, "epcisBody": {"type": "object", "required": ["eventList"]}}})
}

fn event_schema() -> Value {
    json!({"type": "object", "required": ["@context", "type", "eventTime", "eventTimeZoneOffset"],
        "description": "one EPCIS 2.0 event (ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent or AssociationEvent), validated against the GS1 EPCIS JSON schema"})
}

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/epcis/capture",
            summary: "Capture an EPCIS 2.0 document, JSON-LD or XML (Content-Type application/xml or text/xml; malformed XML 400 malformed_xml, elements outside EPCIS 2.0 422 unsupported_xml, both with line and column) (≤ 1 MiB, else 413): 202 with Location of the capture job. Header GS1-Capture-Error-Behaviour: rollback (default, all or nothing) or proceed (store the valid events, report the others). Events are filed under the caller's scope region (?region= picks one); each gets eventID = its hash ID ni:///sha-256;…?ver=CBV2.0 unless it has one, and is appended to the trace log",
            tag: "epcis",
            access: Access::Roles(CAPTURERS),
            body: Some(document_schema()),
            query: &[(
                "region",
                "region code to file the events under, within the caller's scope",
            )],
            ok_status: 202,
            handler: post(capture_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/epcis/capture",
            summary: "The caller's capture jobs, newest first (at most 100)",
            tag: "epcis",
            access: Access::Roles(CAPTURERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(list_jobs_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/epcis/capture/{captureID}",
            summary: "One of the caller's capture jobs: running, success, status (pending, succeeded, partial, failed), counts and errors with JSON pointers",
            tag: "epcis",
            access: Access::Roles(CAPTURERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(job_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/epcis/events",
            summary: "Capture one EPCIS event synchronously, JSON-LD or XML (a bare event element or an EPCISDocument with one event): 201 with Location, eventID and x-shuxiang:hashID (its standard hash ID, also its trace-log leaf); an identical event captured before answers with the stored eventID; 422 names the JSON pointer of the failing part",
            tag: "epcis",
            access: Access::Roles(CAPTURERS),
            body: Some(event_schema()),
            query: &[(
                "region",
                "region code to file the event under, within the caller's scope",
            )],
            ok_status: 201,
            handler: post(capture_event_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/epcis/events",
            summary: "Events the caller may read (scope readers: filed in their scope; dealers, farmers, carriers: their own) as an EPCISQueryDocument in capture order; Link rel=\"next\" for the next page. Events whose eventID is the capturer's own carry their hash ID as x-shuxiang:hashID",
            tag: "epcis",
            access: Access::Authenticated,
            body: None,
            query: QUERY_PARAMS,
            ok_status: 200,
            handler: get(query_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/epcis/events/{eventID}",
            summary: "One event by its eventID or hash ID (URL-encoded), with x-shuxiang:hashID when the eventID is the capturer's own",
            tag: "epcis",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(event_route),
        },
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionParam {
    region: Option<String>,
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(json!({"error": "payload_too_large", "message": format!("capture bodies are at most {MAX_DOCUMENT_BYTES} bytes; split the document")})),
    )
        .into_response()
}

fn invalid(code: &str, violations: &[Violation]) -> Response {
    let first = violations.first();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": code,
            "message": first.map(ToString::to_string).unwrap_or_default(),
            "pointer": first.map(|v| v.pointer.as_str()).unwrap_or_default(),
            "errors": violations,
        })),
    )
        .into_response()
}

fn parse_json(body: &[u8]) -> Result<Value, CoreError> {
    serde_json::from_slice(body).map_err(|e| {
        CoreError::malformed(
            "malformed_json",
            format!("the body is not JSON (line {}, column {}): {e}", e.line(), e.column()),
        )
    })
}

fn is_xml(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(xml::is_xml_content_type)
}

/// Reads an XML body into JSON off the async threads (a 1 MiB document
/// takes milliseconds of CPU).
async fn read_xml(body: Bytes, read: fn(&[u8]) -> Result<Value, xml::XmlError>) -> Result<Value, CoreError> {
    tokio::task::spawn_blocking(move || read(&body))
        .await
        .map_err(|e| CoreError::Internal(format!("reading an XML body: {e}")))?
        .map_err(CoreError::from)
}

/// Percent-encodes everything but unreserved characters, for event IDs in
/// paths (`ni:///sha-256;…?ver=CBV2.0` has `/`, `;` and `?`).
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn location(path: &str) -> HeaderValue {
    HeaderValue::from_str(path).expect("percent-encoded paths are valid header values")
}

async fn capture_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiQuery(params): ApiQuery<RegionParam>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let region = capture_region(&a.principal, params.region.as_deref())?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Ok(too_large());
    }
    let behaviour = ErrorBehaviour::parse(
        headers
            .get(ERROR_BEHAVIOUR_HEADER)
            .map(|v| v.to_str().unwrap_or("(not text)")),
    )?;
    let json_text;
    let text = if is_xml(&headers) {
        let document = read_xml(body, xml::document_to_json).await?;
        json_text = document.to_string();
        json_text.as_str()
    } else {
        let text = std::str::from_utf8(&body)
            .map_err(|_| CoreError::malformed("malformed_json", "the body is not UTF-8 JSON"))?;
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| {
            CoreError::malformed(
                "malformed_json",
                format!("the body is not JSON (line {}, column {}): {e}", e.line(), e.column()),
            )
        })?;
        text
    };
    let job = capture::submit(&state.db, &a.principal, &a.actor(&ip), &region, behaviour, text).await?;
    let db = state.db.clone();
    // Errors are recorded on the jobs themselves; one the worker could not
    // record leaves its job pending for the next run.
    tokio::spawn(async move { capture::run_pending(&db).await });
    let mut resp = (StatusCode::ACCEPTED, Json(&job)).into_response();
    resp.headers_mut().insert(
        header::LOCATION,
        location(&format!("/api/v1/epcis/capture/{}", job.capture_id)),
    );
    Ok(resp)
}

async fn list_jobs_route(State(state): State<AppState>, a: Auth) -> ApiResult<Response> {
    a.principal.require_role(CAPTURERS)?;
    Ok(Json(capture::list_jobs(&state.db, &a.principal).await?).into_response())
}

async fn job_route(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Response> {
    a.principal.require_role(CAPTURERS)?;
    Ok(Json(capture::get_job(&state.db, &a.principal, &id).await?).into_response())
}

async fn capture_event_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiQuery(params): ApiQuery<RegionParam>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let region = capture_region(&a.principal, params.region.as_deref())?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Ok(too_large());
    }
    let event = if is_xml(&headers) {
        read_xml(body, xml::event_to_json).await?
    } else {
        parse_json(&body)?
    };
    let capturer = Capturer {
        user_id: Some(a.principal.user_id),
        region,
        capture_id: None,
    };
    match capture::capture_event(&state.db, &a.actor(&ip), &capturer, &event).await {
        Ok((event_id, hash_id)) => {
            let mut resp = (
                StatusCode::CREATED,
                Json(json!({"eventID": event_id, HASH_ID_KEY: hash_id})),
            )
                .into_response();
            resp.headers_mut().insert(
                header::LOCATION,
                location(&format!("/api/v1/epcis/events/{}", encode_path_segment(&event_id))),
            );
            Ok(resp)
        }
        Err(EventCaptureError::Invalid(violations)) => Ok(invalid("invalid_event", &violations)),
        Err(EventCaptureError::Core(e)) => Err(e.into()),
    }
}

/// The standard query parameters as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryParams {
    #[serde(rename = "eventType")]
    pub event_type: Option<String>,
    #[serde(rename = "EQ_action")]
    pub eq_action: Option<String>,
    #[serde(rename = "EQ_bizStep")]
    pub eq_biz_step: Option<String>,
    #[serde(rename = "EQ_disposition")]
    pub eq_disposition: Option<String>,
    #[serde(rename = "EQ_readPoint")]
    pub eq_read_point: Option<String>,
    #[serde(rename = "EQ_bizLocation")]
    pub eq_biz_location: Option<String>,
    #[serde(rename = "MATCH_epc")]
    pub match_epc: Option<String>,
    #[serde(rename = "MATCH_anyEPC")]
    pub match_any_epc: Option<String>,
    #[serde(rename = "MATCH_epcClass")]
    pub match_epc_class: Option<String>,
    #[serde(rename = "GE_eventTime")]
    pub ge_event_time: Option<String>,
    #[serde(rename = "LT_eventTime")]
    pub lt_event_time: Option<String>,
    #[serde(rename = "GE_recordTime")]
    pub ge_record_time: Option<String>,
    #[serde(rename = "LT_recordTime")]
    pub lt_record_time: Option<String>,
    #[serde(rename = "perPage")]
    pub per_page: Option<String>,
    #[serde(rename = "nextPageToken")]
    pub next_page_token: Option<String>,
}

fn list(raw: &Option<String>) -> Vec<String> {
    raw.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn time(name: &str, raw: &Option<String>) -> Result<Option<i64>, CoreError> {
    raw.as_deref()
        .map(|t| {
            parse_time_ms(t).ok_or_else(|| {
                CoreError::malformed(
                    "invalid_query",
                    format!("{name} must be an RFC 3339 date-time with offset, not {t:?}"),
                )
            })
        })
        .transpose()
}

const TOKEN_PREFIX: &str = "e1:";

fn page_token(after: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{after}"))
}

fn parse_page_token(token: &str) -> Result<i64, CoreError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(TOKEN_PREFIX).and_then(|n| n.parse().ok()))
        .ok_or_else(|| CoreError::malformed("invalid_query", "nextPageToken is not a token this server issued"))
}

impl QueryParams {
    /// The store filter and page size these parameters ask for.
    pub fn to_filter(&self) -> Result<(EventFilter, u64), CoreError> {
        let per_page = match self.per_page.as_deref() {
            None => DEFAULT_PER_PAGE,
            Some(p) => p
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    CoreError::malformed(
                        "invalid_query",
                        format!("perPage must be a number from 1 to {MAX_PER_PAGE}"),
                    )
                })?
                .min(MAX_PER_PAGE),
        };
        let filter = EventFilter {
            event_types: list(&self.event_type),
            actions: list(&self.eq_action),
            biz_steps: list(&self.eq_biz_step)
                .iter()
                .map(|s| cbv_short_name(s, "bizstep", "BizStep"))
                .collect(),
            dispositions: list(&self.eq_disposition)
                .iter()
                .map(|s| cbv_short_name(s, "disp", "Disp"))
                .collect(),
            read_points: list(&self.eq_read_point),
            biz_locations: list(&self.eq_biz_location),
            epcs: list(&self.match_epc),
            any_epcs: list(&self.match_any_epc),
            epc_classes: list(&self.match_epc_class),
            event_time_from: time("GE_eventTime", &self.ge_event_time)?,
            event_time_to: time("LT_eventTime", &self.lt_event_time)?,
            record_time_from: time("GE_recordTime", &self.ge_record_time)?,
            record_time_to: time("LT_recordTime", &self.lt_record_time)?,
            after: self.next_page_token.as_deref().map(parse_page_token).transpose()?,
        };
        Ok((filter, per_page))
    }
}

async fn query_route(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(params): ApiQuery<QueryParams>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let (filter, per_page) = params.to_filter()?;
    let (events, more) = store::query_events(&state.db, &a.principal, &filter, per_page).await?;
    let body = json!({
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": shuxiang_core::time::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "epcisBody": {"queryResults": {
            "queryName": "SimpleEventQuery",
            "resultsBody": {"eventList": events.iter().map(store::StoredEvent::to_json).collect::<Vec<_>>()},
        }},
    });
    let mut resp = Json(body).into_response();
    if let (true, Some(last)) = (more, events.last()) {
        // The same filters, from after the last event served.
        let mut query: Vec<&str> = raw
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("nextPageToken="))
            .collect();
        let token = format!("nextPageToken={}", page_token(last.pk));
        query.push(&token);
        let link = format!("</api/v1/epcis/events?{}>; rel=\"next\"", query.join("&"));
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

async fn event_route(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Response> {
    let event = store::get_event(&state.db, &id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no EPCIS event {id}")))?;
    if !store::may_read(&a.principal, event.captured_by, &event.region) {
        return Err(CoreError::Forbidden("this event is outside what you may read".into()).into());
    }
    Ok(Json(event.to_json()).into_response())
}
