//! JSON routes of produce traceability: producers' batches and steps, and
//! the public side of a trace code (its facts with their verification, and
//! its QR image). The consumer's phone page `/t/{code}` is in the web crate.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_core::region::RegionCode;
use shuxiang_http::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use shuxiang_http::{Access, ApiResult, ApiRoute, AppError, AppState};

use super::store::{self, MAX_PACKAGES, PRODUCERS};
use super::verify::verify_scan;
use super::{Batch, BatchStep, NewBatch, TraceCode};
use crate::keys::TraceLogKeys;

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/produce/batches",
            summary: "Register a production batch in a village; returns it with its trace code (commissioning event logged)",
            tag: "produce",
            access: Access::Roles(PRODUCERS),
            body: Some(json!({
                "type": "object",
                "required": ["crop", "village", "producer_name"],
                "properties": {
                    "crop": {"type": "string"}, "village": {"type": "string", "description": "12-digit village code"},
                    "producer_name": {"type": "string"}, "parcel": {"type": "string"},
                    "lon": {"type": "number"}, "lat": {"type": "number"},
                    "planted_on": {"type": "string", "format": "date"}
                }
            })),
            query: &[],
            ok_status: 201,
            handler: post(create_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/produce/batches",
            summary: "Batches the caller may see (own, or in their scope), newest first",
            tag: "produce",
            access: Access::Authenticated,
            body: None,
            query: &[
                ("region", "only batches in this region"),
                ("limit", "at most this many (default 100)"),
            ],
            ok_status: 200,
            handler: get(list_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/produce/batches/{id}",
            summary: "One batch with its event hash IDs and package codes",
            tag: "produce",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/produce/batches/{id}/steps",
            summary: "Record a step: {\"step\":\"input\",product_id,label_code?,applied_on,amount,unit} | {\"step\":\"harvest\",harvested_on,quantity_kg} | {\"step\":\"test\",tested_on,item,passed,lab}",
            tag: "produce",
            access: Access::Roles(PRODUCERS),
            body: Some(
                json!({"type": "object", "required": ["step"], "properties": {"step": {"enum": ["input", "harvest", "test"]}}}),
            ),
            query: &[],
            ok_status: 200,
            handler: post(step_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/produce/batches/{id}/packages",
            summary: "Label packages of a harvested batch: new trace codes aggregated under it (packing event)",
            tag: "produce",
            access: Access::Roles(PRODUCERS),
            body: Some(
                json!({"type": "object", "required": ["count"], "properties": {"count": {"type": "integer", "minimum": 1, "maximum": MAX_PACKAGES}}}),
            ),
            query: &[],
            ok_status: 201,
            handler: post(packages_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/trace-codes/{code}",
            summary: "Public: what a trace code traces to — the batch's logged events and their verification against the signed checkpoint",
            tag: "produce",
            access: Access::Public,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(scan_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/trace-codes/{code}/qr",
            summary: "Public: the QR image of a trace code's consumer page (format=svg, default, or png with scale pixels per module)",
            tag: "produce",
            access: Access::Public,
            body: None,
            query: &[
                ("format", "svg or png"),
                ("scale", "PNG pixels per module, 1–32 (default 8)"),
            ],
            ok_status: 200,
            handler: get(qr_route),
        },
    ]
}

fn parse_id(raw: &str) -> Result<i64, CoreError> {
    raw.parse()
        .map_err(|_| CoreError::malformed("invalid_id", format!("batch id {raw:?} is not a number")))
}

/// A code from a URL, or 404: a malformed code was never issued.
pub fn parse_code(raw: &str) -> Result<TraceCode, CoreError> {
    TraceCode::parse(raw)
        .map_err(|e| CoreError::missing("unknown_trace_code", format!("{raw:?} is not a trace code: {e}")))
}

async fn create_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewBatch>,
) -> ApiResult<(StatusCode, Json<Batch>)> {
    Ok((
        StatusCode::CREATED,
        Json(store::create_batch(&state.db, &a.principal, &a.actor(&ip), body).await?),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    region: Option<String>,
    limit: Option<u64>,
}

async fn list_route(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let region = q.region.as_deref().map(RegionCode::parse).transpose()?;
    let batches = store::list_batches(&state.db, &a.principal, region.as_ref(), q.limit).await?;
    Ok(Json(json!({ "batches": batches })))
}

async fn get_route(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Batch>> {
    Ok(Json(store::get_batch(&state.db, &a.principal, parse_id(&id)?).await?))
}

async fn step_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(step): ApiJson<BatchStep>,
) -> ApiResult<Json<Batch>> {
    Ok(Json(
        store::record_step(&state.db, &a.principal, &a.actor(&ip), parse_id(&id)?, step).await?,
    ))
}

#[derive(Deserialize)]
struct PackagesBody {
    count: u32,
}

async fn packages_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PackagesBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let codes = store::add_packages(&state.db, &a.principal, &a.actor(&ip), parse_id(&id)?, body.count).await?;
    let codes: Vec<Value> = codes
        .iter()
        .map(|c| json!({"code": c.as_str(), "grouped": c.grouped(), "trace_path": format!("/t/{c}")}))
        .collect();
    Ok((StatusCode::CREATED, Json(json!({ "packages": codes }))))
}

fn keys(state: &AppState) -> Result<&TraceLogKeys, AppError> {
    state.slice::<TraceLogKeys>().ok_or_else(|| {
        AppError(CoreError::Internal(
            "the trace log keys are missing from AppState (build it with shuxiang_web::new_state)".into(),
        ))
    })
}

async fn scan_route(State(state): State<AppState>, Path(code): Path<String>) -> ApiResult<Json<Value>> {
    let code = parse_code(&code)?;
    let scanned = store::scan(&state.db, &code)
        .await?
        .ok_or_else(|| CoreError::missing("unknown_trace_code", format!("trace code {code} was never issued")))?;
    let v = verify_scan(&state.db, &keys(&state)?.signer.verifier(), &scanned).await?;
    Ok(Json(json!({
        "code": code.as_str(),
        "batch_code": scanned.batch_code,
        "is_package": scanned.is_package,
        "village": scanned.village,
        "events": scanned.events.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "verification": {
            "verified": v.verified, "pending": v.pending, "checkpoint_size": v.checkpoint_size,
            "failed": v.failed.iter().map(|(id, why)| json!({"event": id, "reason": why})).collect::<Vec<_>>(),
        },
    })))
}

#[derive(Deserialize)]
struct QrQuery {
    format: Option<String>,
    scale: Option<usize>,
}

/// The consumer page's absolute URL as the request reached us: the QR must
/// carry a full address for a phone camera to open it.
fn page_url(headers: &HeaderMap, code: &TraceCode) -> String {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}/t/{code}")
}

async fn qr_route(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(q): Query<QrQuery>,
) -> ApiResult<Response> {
    let code = parse_code(&code)?;
    if !store::code_exists(&state.db, &code).await? {
        return Err(CoreError::missing("unknown_trace_code", format!("trace code {code} was never issued")).into());
    }
    let url = page_url(&headers, &code);
    let qr_failed = |e: String| AppError(CoreError::Internal(format!("QR of {url}: {e}")));
    match q.format.as_deref().unwrap_or("svg") {
        "svg" => {
            let svg = super::qr::svg(&url).map_err(|e| qr_failed(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"))], svg).into_response())
        }
        "png" => {
            let png = super::qr::png(&url, q.scale.unwrap_or(8)).map_err(|e| qr_failed(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))], png).into_response())
        }
        other => Err(CoreError::malformed("invalid_format", format!("format {other:?} is not svg or png")).into()),
    }
}
