//! The JSON API under `/api/v1`. Every route is declared once, as an
//! [`ApiRoute`], and that single list builds both the router and the OpenAPI
//! document, so the two cannot disagree; the authorisation-matrix test walks
//! the same list.

pub mod audit;
pub mod auth;
pub mod regions;
mod tokens;
mod users;

use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

pub use shuxiang_http::route::{Access, ApiRoute};

use crate::state::AppState;

/// Every API route of the kernel and the slices; a slice adds its own here
/// with one line.
pub fn routes() -> Vec<ApiRoute> {
    let mut all = Vec::new();
    all.extend(auth::routes());
    all.extend(regions::routes());
    all.extend(users::routes());
    all.extend(tokens::routes());
    all.extend(audit::routes());
    all.extend(shuxiang_trace::api::routes());
    all.extend(shuxiang_trace::input_api::routes());
    all.extend(shuxiang_trace::products::routes());
    all.extend(shuxiang_trace::epcis::api::routes());
    all.extend(shuxiang_trace::ledger::api::routes());
    all.extend(shuxiang_trace::produce::api::routes());
    all.extend(shuxiang_telemetry::api::routes());
    all.extend(shuxiang_telemetry::alarm::api::routes());
    all.extend(shuxiang_logistics::api::routes());
    all
}

pub fn router() -> Router<AppState> {
    let mut r = Router::new().route("/api/v1/openapi.json", get(openapi_json));
    for route in routes() {
        r = r.route(route.path, route.handler);
    }
    // Unknown API paths answer in the API's JSON; other paths fall through to
    // the pages' HTML 404.
    r.route("/api/{*rest}", any(api_not_found))
}

async fn api_not_found(uri: axum::http::Uri) -> crate::error::AppError {
    crate::error::AppError::not_found(format!("no route {}", uri.path()))
}

async fn openapi_json() -> Json<Value> {
    Json(openapi())
}

fn error_responses(access: Access) -> Map<String, Value> {
    let err = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut m = Map::new();
    m.insert("400".into(), err("Malformed input"));
    m.insert("404".into(), err("Not found"));
    m.insert("422".into(), err("Invalid values"));
    if !matches!(access, Access::Public) {
        m.insert("401".into(), err("Not signed in"));
        m.insert("403".into(), err("Outside the caller's role or region scope"));
    }
    m
}

/// The OpenAPI 3.1 description of every route.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(
            r.query.iter().map(|(name, d)| json!({"name": name, "in": "query", "required": false, "description": d, "schema": {"type": "string"}})),
        );
        let mut responses = error_responses(r.access);
        responses.insert(r.ok_status.to_string(), json!({"description": "Success"}));
        let mut op = json!({
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": format!("{}_{}", r.method.as_str().to_lowercase(), r.path.trim_start_matches("/api/v1/").replace(['/', '{', '}'], "_")),
            "parameters": params,
            "responses": responses,
        });
        match r.access {
            Access::Public => {
                op["security"] = json!([]);
            }
            Access::Authenticated => {
                op["x-shuxiang-access"] = json!("any signed-in user, limited to their scope");
            }
            Access::Roles(roles) => {
                op["x-shuxiang-access"] = json!(roles.iter().map(|r| r.as_str()).collect::<Vec<_>>());
            }
        }
        if let Some(schema) = &r.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_lowercase()] = op;
    }
    for (path, summary) in [
        ("/healthz", "Liveness"),
        ("/readyz", "Readiness: database reachable and migrations applied"),
        ("/metrics", "Prometheus metrics"),
    ] {
        paths.insert(path.into(), json!({"get": {"summary": summary, "tags": ["operations"], "security": [], "responses": {"200": {"description": "OK"}}}}));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Shuxiang (数乡) API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Jiangxi digital-village platform. Errors are JSON {\"error\": code, \"message\": text}."
        },
        "paths": paths,
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "session token from /api/v1/auth/login or an API token"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": crate::extract::SESSION_COOKIE}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}}
                }
            }
        }
    })
}
