//! The IoT API: the device registry (register, list, show, change, re-key,
//! CSV import), telemetry from devices over HTTP, and series reads (raw
//! points, roll-ups, latest values, CSV export).
//!
//! `POST /api/v1/telemetry` authenticates the device by its own token
//! (`Authorization: Bearer sxd_...`), never a user's; user tokens there are
//! 401. Everything else is for signed-in users, scoped as described in
//! [`crate::devices`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, patch, post};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_http::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use shuxiang_http::state::KeepCaches;
use shuxiang_http::{Access, ApiResult, ApiRoute, AppError, AppState};

use crate::devices::{self, Device, DeviceQuery, DeviceUpdate, MANAGERS, NewDevice, OWNERS};
use crate::ingest::{self, IngestReport, TelemetryState};
use crate::model::{DeviceType, Metric};
use crate::series::{self, MAX_RAW_LIMIT, Step};

/// Raw points a series read returns unless `limit` says otherwise.
const DEFAULT_RAW_LIMIT: usize = 10_000;
/// The window a series read covers when `from` is not given.
const DEFAULT_WINDOW_HOURS: i64 = 24;

fn telemetry(state: &AppState) -> Result<&TelemetryState, AppError> {
    state.slice::<TelemetryState>().ok_or_else(|| {
        CoreError::Internal(
            "the telemetry state is missing from AppState (build it with shuxiang_web::new_state)".into(),
        )
        .into()
    })
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn parse_id(raw: &str) -> Result<i64, CoreError> {
    raw.parse()
        .map_err(|_| CoreError::malformed("invalid_id", format!("device id {raw:?} is not a number")))
}

// ---- device authentication ----

/// A device authenticated by its bearer token (not a user).
pub struct DeviceAuth(pub Device);

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_string())
            .ok_or(CoreError::Unauthenticated)?;
        let t = telemetry(state)?;
        Ok(Self(ingest::authenticate_token(t.db(), &token).await?))
    }
}

// ---- JSON shapes ----

fn metric_json(m: &Metric) -> Value {
    json!({
        "key": m.key(), "name_zh": m.spec.name_zh, "unit": m.spec.unit,
        "min": m.min, "max": m.max, "boolean": m.spec.boolean,
    })
}

fn device_json(d: &Device) -> Value {
    let mut v = json!(d);
    v["metrics"] = d.metrics().iter().map(metric_json).collect();
    v
}

async fn latest_json(state: &AppState, d: &Device) -> Result<Value, CoreError> {
    let latest = series::latest(&state.db, d.id).await?;
    Ok(latest
        .into_iter()
        .map(|(metric, p)| {
            let unit = d.device_type.metric(&metric).map_or("", |m| m.unit);
            json!({"metric": metric, "ts": rfc3339(p.ts_ms), "value": p.value, "unit": unit})
        })
        .collect())
}

// ---- routes ----

fn device_schema(required: &[&str], with_disabled: bool) -> Value {
    let range = json!({"type": "object", "required": ["min", "max"], "additionalProperties": false,
        "properties": {"min": {"type": "number"}, "max": {"type": "number"}}});
    let mut props = json!({
        "name": {"type": "string", "maxLength": 100},
        "type": {"type": "string", "enum": DeviceType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()},
        "village": {"type": "string", "description": "12-digit village-level region code"},
        "location": {"type": "object", "required": ["lon", "lat"], "additionalProperties": false,
            "properties": {"lon": {"type": "number"}, "lat": {"type": "number"}},
            "description": "WGS84; must lie within the village's county"},
        "owner": {"type": "string", "description": "username of the owner (a farmer or staff covering the village); default: you"},
        "ranges": {"type": "object", "additionalProperties": range,
            "description": "narrower valid ranges per metric, inside the physical range"},
    });
    if with_disabled {
        props["disabled"] = json!({"type": "boolean", "description": "a disabled device's telemetry is refused (403)"});
        if let Some(p) = props.as_object_mut() {
            p.remove("type");
        }
    }
    json!({"type": "object", "required": required, "additionalProperties": false, "properties": props})
}

const SERIES_QUERY: &[(&str, &str)] = &[
    ("metric", "metric key, e.g. vwc (required)"),
    ("from", "RFC 3339 start, inclusive (default: 24 h before to)"),
    ("to", "RFC 3339 end, exclusive (default: now)"),
    (
        "step",
        "1m, 1h or 1d for roll-ups (min, max, avg, count, last); raw points when absent",
    ),
    ("limit", "raw points at most (default 10000, at most 100000)"),
];

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/devices",
            summary: "Register a device in a village; answers its id and token (shown once)",
            tag: "iot",
            access: Access::Roles(MANAGERS),
            body: Some(device_schema(&["name", "type", "village", "location"], false)),
            query: &[],
            ok_status: 201,
            handler: post(create_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/devices",
            summary: "Devices in your scope, or your own",
            tag: "iot",
            access: Access::Roles(OWNERS),
            body: None,
            query: &[
                ("region", "only devices in this region or below"),
                (
                    "type",
                    "soil_moisture, weather, water_quality, water_meter or cold_chain",
                ),
                ("after", "devices with ids above this (paging)"),
                ("limit", "at most this many (default 100, at most 1000)"),
            ],
            ok_status: 200,
            handler: routing::get(list_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/devices/import",
            summary: "Register devices from CSV (text/csv: name,type,village,lon,lat); all or nothing, errors name line and field; answers ids and tokens once",
            tag: "iot",
            access: Access::Roles(MANAGERS),
            body: None,
            query: &[],
            ok_status: 201,
            handler: post(import_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/devices/{id}",
            summary: "One device with its metrics, latest values and refused-point counts",
            tag: "iot",
            access: Access::Roles(OWNERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: routing::get(get_route),
        },
        ApiRoute {
            method: Method::PATCH,
            path: "/api/v1/devices/{id}",
            summary: "Change a device's name, village, location, owner, ranges or disabled flag (audited from → to)",
            tag: "iot",
            access: Access::Roles(MANAGERS),
            body: Some(device_schema(&[], true)),
            query: &[],
            ok_status: 200,
            handler: patch(update_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/devices/{id}/token",
            summary: "Give a device a new token (shown once); the old one stops working",
            tag: "iot",
            access: Access::Roles(MANAGERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: post(rotate_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/telemetry",
            summary: "Telemetry from a device (Authorization: Bearer DEVICE_TOKEN): ThingsBoard or SenML JSON, up to 10,000 points; answered after commit with the points accepted and those refused, each with its reason",
            tag: "iot",
            // No user may call it: the device's own token is checked by
            // `DeviceAuth`, which the user-role model cannot describe.
            access: Access::Public,
            body: Some(
                json!({"oneOf": [{"type": "object"}, {"type": "array"}], "description": "ThingsBoard JSON ({\"vwc\": 23.4}, {\"ts\": ms, \"values\": {...}} or an array of those) or a SenML JSON array (RFC 8428)"}),
            ),
            query: &[],
            ok_status: 200,
            handler: post(telemetry_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/devices/{id}/series",
            summary: "A metric's raw points ({\"points\": [{ts, value}]}) or roll-ups ({\"points\": [{ts, min, max, avg, count, last}]}) over a window",
            tag: "iot",
            access: Access::Roles(OWNERS),
            body: None,
            query: SERIES_QUERY,
            ok_status: 200,
            handler: routing::get(series_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/devices/{id}/series.csv",
            summary: "The same series as CSV (ts,value or ts,min,max,avg,count,last)",
            tag: "iot",
            access: Access::Roles(OWNERS),
            body: None,
            query: SERIES_QUERY,
            ok_status: 200,
            handler: routing::get(series_csv_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/devices/{id}/latest",
            summary: "A device's latest value of each metric",
            tag: "iot",
            access: Access::Roles(OWNERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: routing::get(latest_route),
        },
    ]
}

// ---- handlers ----

async fn create_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewDevice>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let r = devices::create(&state.db, &a.principal, &a.actor(&ip), body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": r.device.id, "token": r.token, "device": device_json(&r.device)})),
    ))
}

async fn list_route(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(filter): ApiQuery<DeviceQuery>,
) -> ApiResult<Json<Value>> {
    let list = devices::list(&state.db, &a.principal, &filter).await?;
    Ok(Json(
        json!({"devices": list.iter().map(device_json).collect::<Vec<_>>()}),
    ))
}

async fn get_route(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let d = devices::get_visible(&state.db, &a.principal, parse_id(&id)?).await?;
    let mut v = device_json(&d);
    v["latest"] = latest_json(&state, &d).await?;
    v["rejections"] = json!(devices::rejections(&state.db, d.id).await?);
    Ok(Json(v))
}

async fn update_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeviceUpdate>,
) -> ApiResult<Json<Value>> {
    let d = devices::update(&state.db, &a.principal, &a.actor(&ip), parse_id(&id)?, body).await?;
    telemetry(&state)?.forget_devices();
    Ok(Json(device_json(&d)))
}

async fn rotate_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let token = devices::rotate_token(&state.db, &a.principal, &a.actor(&ip), id).await?;
    telemetry(&state)?.forget_devices();
    Ok(Json(json!({"id": id, "token": token})))
}

/// A body that could not be read: too large is 413, anything else 400.
fn body_rejection(r: BytesRejection) -> Response {
    let status = r.status();
    let (code, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
        (
            "payload_too_large",
            "the body is larger than the server accepts".to_string(),
        )
    } else {
        ("malformed_body", r.body_text())
    };
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| matches!(m.trim().to_ascii_lowercase().as_str(), "text/csv" | "text/plain"))
}

async fn import_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = match body {
        Ok(b) => b,
        Err(r) => return Ok(body_rejection(r)),
    };
    if !is_csv(&headers) {
        return Err(CoreError::malformed(
            "unsupported_content_type",
            "send the devices as CSV with Content-Type: text/csv",
        )
        .into());
    }
    let text = std::str::from_utf8(&body)
        .map_err(|e| CoreError::malformed("invalid_csv", format!("the file is not UTF-8: {e}")))?;
    let imported = devices::import_csv(&state.db, &a.principal, &a.actor(&ip), text).await?;
    let list: Vec<Value> = imported
        .iter()
        .map(|i| json!({"line": i.line, "id": i.device.id, "name": i.device.name, "token": i.token}))
        .collect();
    Ok((StatusCode::CREATED, Json(json!({"devices": list}))).into_response())
}

async fn telemetry_route(
    State(state): State<AppState>,
    DeviceAuth(device): DeviceAuth,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let received_at_ms = Utc::now().timestamp_millis();
    let body = match body {
        Ok(b) => b,
        Err(r) => return Ok(body_rejection(r)),
    };
    let report: IngestReport = ingest::ingest(telemetry(&state)?, &device, &body, received_at_ms).await?;
    let mut response = Json(report).into_response();
    response.extensions_mut().insert(KeepCaches);
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
struct SeriesQuery {
    metric: Option<String>,
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    limit: Option<usize>,
}

/// A series request after checking: metric, window in ms, step.
struct SeriesRequest {
    device: Device,
    metric: &'static str,
    from_ms: i64,
    to_ms: i64,
    step: Option<Step>,
    limit: usize,
}

/// RFC 3339; a `+` that arrived as a space (unencoded in the query) is
/// taken back.
fn parse_time(name: &str, raw: &str) -> Result<i64, CoreError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .or_else(|_| DateTime::parse_from_rfc3339(&raw.trim().replace(' ', "+")))
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            CoreError::malformed(
                "invalid_time",
                format!("{name} must be an RFC 3339 time such as 2025-11-30T08:00:00+08:00, not {raw:?}"),
            )
        })
}

async fn series_request(state: &AppState, a: &Auth, id: &str, q: SeriesQuery) -> Result<SeriesRequest, CoreError> {
    let device = devices::get_visible(&state.db, &a.principal, parse_id(id)?).await?;
    let key = q
        .metric
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| CoreError::invalid("missing_metric", "give the metric, e.g. ?metric=vwc"))?;
    let metric = device.device_type.metric(key).ok_or_else(|| {
        let known: Vec<&str> = device.device_type.metrics().iter().map(|m| m.key).collect();
        CoreError::invalid(
            "unknown_metric",
            format!(
                "{} devices have no metric {key:?}; they have {}",
                device.device_type.as_str(),
                known.join(", ")
            ),
        )
    })?;
    let to_ms = match q.to.as_deref() {
        Some(t) => parse_time("to", t)?,
        None => Utc::now().timestamp_millis(),
    };
    let from_ms = match q.from.as_deref() {
        Some(f) => parse_time("from", f)?,
        None => to_ms - Duration::hours(DEFAULT_WINDOW_HOURS).num_milliseconds(),
    };
    if from_ms >= to_ms {
        return Err(CoreError::invalid("invalid_window", "from must be before to"));
    }
    let step = q
        .step
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse::<Step>)
        .transpose()?;
    let limit = q.limit.unwrap_or(DEFAULT_RAW_LIMIT);
    if limit == 0 || limit > MAX_RAW_LIMIT {
        return Err(CoreError::invalid(
            "invalid_limit",
            format!("limit must be 1 to {MAX_RAW_LIMIT}"),
        ));
    }
    Ok(SeriesRequest {
        device,
        metric: metric.key,
        from_ms,
        to_ms,
        step,
        limit,
    })
}

/// The rows of a series read: raw (ts, value) or roll-ups.
enum SeriesRows {
    Raw(Vec<series::RawPoint>),
    Rollups(Vec<series::Rollup>),
}

async fn read_series(state: &AppState, r: &SeriesRequest) -> Result<SeriesRows, CoreError> {
    Ok(match r.step {
        None => SeriesRows::Raw(series::raw(&state.db, r.device.id, r.metric, r.from_ms, r.to_ms, r.limit).await?),
        Some(step) => {
            SeriesRows::Rollups(series::rollup(&state.db, r.device.id, r.metric, r.from_ms, r.to_ms, step).await?)
        }
    })
}

async fn series_route(
    State(state): State<AppState>,
    a: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> ApiResult<Json<Value>> {
    let r = series_request(&state, &a, &id, q).await?;
    let points: Vec<Value> = match read_series(&state, &r).await? {
        SeriesRows::Raw(points) => points
            .iter()
            .map(|p| json!({"ts": rfc3339(p.ts_ms), "value": p.value}))
            .collect(),
        SeriesRows::Rollups(rows) => rows
            .iter()
            .map(|p| json!({"ts": rfc3339(p.ts_ms), "min": p.min, "max": p.max, "avg": p.avg, "count": p.count, "last": p.last}))
            .collect(),
    };
    Ok(Json(json!({
        "device_id": r.device.id,
        "metric": r.metric,
        "unit": r.device.device_type.metric(r.metric).map_or("", |m| m.unit),
        "from": rfc3339(r.from_ms),
        "to": rfc3339(r.to_ms),
        "step": r.step.map(Step::as_str),
        "points": points,
    })))
}

async fn series_csv_route(
    State(state): State<AppState>,
    a: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> ApiResult<Response> {
    let r = series_request(&state, &a, &id, q).await?;
    let mut out = String::new();
    match read_series(&state, &r).await? {
        SeriesRows::Raw(points) => {
            out.push_str("ts,value\n");
            for p in points {
                out.push_str(&format!("{},{}\n", rfc3339(p.ts_ms), p.value));
            }
        }
        SeriesRows::Rollups(rows) => {
            out.push_str("ts,min,max,avg,count,last\n");
            for p in rows {
                out.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    rfc3339(p.ts_ms),
                    p.min,
                    p.max,
                    p.avg,
                    p.count,
                    p.last
                ));
            }
        }
    }
    let disposition = format!("attachment; filename=\"device-{}-{}.csv\"", r.device.id, r.metric);
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn latest_route(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let d = devices::get_visible(&state.db, &a.principal, parse_id(&id)?).await?;
    Ok(Json(
        json!({"device_id": d.id, "latest": latest_json(&state, &d).await?}),
    ))
}
