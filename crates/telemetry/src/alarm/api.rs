//! The alarm API: rules (告警规则) CRUD, the alarm list and worklist
//! (`?status=active`), one alarm with its history, acknowledge and clear,
//! and per-region webhooks with their delivery outcomes. Who may do what is
//! described in [`super::store`]; handlers only translate.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post};
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_core::auth::Role;
use shuxiang_http::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use shuxiang_http::{Access, ApiResult, ApiRoute, AppState};

use super::notify;
use super::store::{
    self, AlarmQuery, EDITORS, NewRule, NewWebhook, RuleQuery, RuleUpdate, STAFF, WebhookQuery, WebhookUpdate,
};

/// Who may read alarms: staff of the region, farmers for their own devices.
const ALARM_READERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff, Role::Farmer];

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn parse_id(raw: &str, what: &str) -> Result<i64, CoreError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| CoreError::malformed("invalid_id", format!("{what} id {raw:?} is not a number")))
}

fn condition_schema() -> Value {
    json!({"type": "object", "required": ["kind"], "description": "one of the four kinds, with its fields", "oneOf": [
        {"properties": {"kind": {"const": "threshold"}, "metric": {"type": "string"}, "direction": {"enum": ["above", "below"]},
            "limit": {"type": "number"}, "hysteresis": {"type": "number", "minimum": 0, "description": "clears only when back past limit ∓ hysteresis"},
            "for_seconds": {"type": "integer", "minimum": 0, "maximum": 86400, "description": "debounce: past the limit this long before raising"}},
         "required": ["kind", "metric", "direction", "limit"], "additionalProperties": false},
        {"properties": {"kind": {"const": "rate_of_change"}, "metric": {"type": "string"},
            "limit_per_minute": {"type": "number", "exclusiveMinimum": 0}, "window_seconds": {"type": "integer", "minimum": 1, "maximum": 86400}},
         "required": ["kind", "metric", "limit_per_minute", "window_seconds"], "additionalProperties": false},
        {"properties": {"kind": {"const": "not_reporting"}, "minutes": {"type": "integer", "minimum": 1, "maximum": 10080}},
         "required": ["kind", "minutes"], "additionalProperties": false},
        {"properties": {"kind": {"const": "valid_range"}, "metric": {"type": "string"}, "min": {"type": "number"}, "max": {"type": "number"}},
         "required": ["kind", "metric", "min", "max"], "additionalProperties": false}
    ]})
}

fn severity_schema() -> Value {
    json!({"type": "string", "enum": ["critical", "major", "minor", "warning"]})
}

fn new_rule_schema() -> Value {
    json!({"type": "object", "required": ["name", "region", "severity", "condition"], "additionalProperties": false,
    "description": "exactly one of device_type and device_id",
    "properties": {
        "name": {"type": "string"},
        "region": {"type": "string", "description": "region code the rule applies in"},
        "device_type": {"type": "string", "enum": super::rules::DEVICE_TYPES},
        "device_id": {"type": "integer", "description": "one device; it must lie in the region"},
        "severity": severity_schema(),
        "condition": condition_schema(),
        "enabled": {"type": "boolean"}
    }})
}

fn rule_update_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "name": {"type": "string"}, "severity": severity_schema(), "condition": condition_schema(), "enabled": {"type": "boolean"}
    }})
}

fn webhook_schema(required: &[&str]) -> Value {
    json!({"type": "object", "required": required, "additionalProperties": false, "properties": {
        "region": {"type": "string", "description": "alarms of devices in this region are sent"},
        "url": {"type": "string", "description": "http:// URL receiving a JSON POST per transition; never shown again in full"},
        "enabled": {"type": "boolean"}
    }})
}

pub fn routes() -> Vec<ApiRoute> {
    let mut webhook_update = webhook_schema(&[]);
    if let Some(p) = webhook_update["properties"].as_object_mut() {
        p.remove("region");
    }
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/alarm-rules",
            summary: "Create an alarm rule for a device type in a region or for one device",
            tag: "alarms",
            access: Access::Roles(EDITORS),
            body: Some(new_rule_schema()),
            query: &[],
            ok_status: 201,
            handler: post(create_rule_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/alarm-rules",
            summary: "Alarm rules that apply in the caller's scope (or in one region of it)",
            tag: "alarms",
            access: Access::Roles(STAFF),
            body: None,
            query: &[
                ("region", "region code within your scope"),
                ("limit", "at most this many (default 100, max 1000)"),
            ],
            ok_status: 200,
            handler: get(list_rules_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/alarm-rules/{id}",
            summary: "One alarm rule",
            tag: "alarms",
            access: Access::Roles(STAFF),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_rule_route),
        },
        ApiRoute {
            method: Method::PATCH,
            path: "/api/v1/alarm-rules/{id}",
            summary: "Change a rule's name, severity, condition or enabled flag (audited from → to)",
            tag: "alarms",
            access: Access::Roles(EDITORS),
            body: Some(rule_update_schema()),
            query: &[],
            ok_status: 200,
            handler: patch(update_rule_route),
        },
        ApiRoute {
            method: Method::DELETE,
            path: "/api/v1/alarm-rules/{id}",
            summary: "Delete a rule; its open alarms are cleared",
            tag: "alarms",
            access: Access::Roles(EDITORS),
            body: None,
            query: &[],
            ok_status: 204,
            handler: delete(delete_rule_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/alarms",
            summary: "Alarms in the caller's scope, newest first; status=active is the worklist of unacknowledged alarms",
            tag: "alarms",
            access: Access::Roles(ALARM_READERS),
            body: None,
            query: &[
                ("region", "region code within your scope"),
                ("status", "active | acknowledged | cleared"),
                ("device", "device id"),
                ("before", "only alarms with a smaller id (paging)"),
                ("limit", "at most this many (default 100, max 1000)"),
            ],
            ok_status: 200,
            handler: get(list_alarms_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/alarms/{id}",
            summary: "One alarm with its history of transitions (who, when)",
            tag: "alarms",
            access: Access::Roles(ALARM_READERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_alarm_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/alarms/{id}/acknowledge",
            summary: "Acknowledge an active alarm",
            tag: "alarms",
            access: Access::Roles(STAFF),
            body: None,
            query: &[],
            ok_status: 200,
            handler: post(acknowledge_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/alarms/{id}/clear",
            summary: "Clear an active or acknowledged alarm by hand",
            tag: "alarms",
            access: Access::Roles(STAFF),
            body: None,
            query: &[],
            ok_status: 200,
            handler: post(clear_route),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/alarm-webhooks",
            summary: "Send the region's alarm transitions to a URL",
            tag: "alarms",
            access: Access::Roles(EDITORS),
            body: Some(webhook_schema(&["region", "url"])),
            query: &[],
            ok_status: 201,
            handler: post(create_webhook_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/alarm-webhooks",
            summary: "Webhooks in the caller's scope (URLs shown as origin only)",
            tag: "alarms",
            access: Access::Roles(EDITORS),
            body: None,
            query: &[("region", "region code within your scope")],
            ok_status: 200,
            handler: get(list_webhooks_route),
        },
        ApiRoute {
            method: Method::PATCH,
            path: "/api/v1/alarm-webhooks/{id}",
            summary: "Change a webhook's URL or enabled flag",
            tag: "alarms",
            access: Access::Roles(EDITORS),
            body: Some(webhook_update),
            query: &[],
            ok_status: 200,
            handler: patch(update_webhook_route),
        },
        ApiRoute {
            method: Method::DELETE,
            path: "/api/v1/alarm-webhooks/{id}",
            summary: "Delete a webhook; its pending deliveries are abandoned",
            tag: "alarms",
            access: Access::Roles(EDITORS),
            body: None,
            query: &[],
            ok_status: 204,
            handler: delete(delete_webhook_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/alarm-webhooks/{id}/deliveries",
            summary: "A webhook's latest deliveries and their outcomes",
            tag: "alarms",
            access: Access::Roles(EDITORS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(deliveries_route),
        },
    ]
}

async fn create_rule_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewRule>,
) -> ApiResult<(StatusCode, Json<store::RuleView>)> {
    let rule = store::create_rule(&state.db, &a.principal, &a.actor(&ip), body, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

async fn list_rules_route(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(filter): ApiQuery<RuleQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"rules": store::list_rules(&state.db, &a.principal, &filter).await?}),
    ))
}

async fn get_rule_route(
    State(state): State<AppState>,
    a: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<store::RuleView>> {
    Ok(Json(
        store::get_rule(&state.db, &a.principal, parse_id(&id, "rule")?).await?,
    ))
}

async fn update_rule_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RuleUpdate>,
) -> ApiResult<Json<store::RuleView>> {
    let id = parse_id(&id, "rule")?;
    Ok(Json(
        store::update_rule(&state.db, &a.principal, &a.actor(&ip), id, body, now_ms()).await?,
    ))
}

async fn delete_rule_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "rule")?;
    store::delete_rule(&state.db, &a.principal, &a.actor(&ip), id, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_alarms_route(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(filter): ApiQuery<AlarmQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"alarms": store::list_alarms(&state.db, &a.principal, &filter).await?}),
    ))
}

async fn get_alarm_route(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let (alarm, history) = store::get_alarm(&state.db, &a.principal, parse_id(&id, "alarm")?).await?;
    let history: Vec<Value> = history
        .iter()
        .map(|h| {
            let mut v = json!(h);
            v["at"] = json!(h.at());
            v
        })
        .collect();
    let mut v = json!(alarm);
    v["history"] = Value::Array(history);
    Ok(Json(v))
}

async fn acknowledge_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
) -> ApiResult<Json<store::Alarm>> {
    let id = parse_id(&id, "alarm")?;
    Ok(Json(
        store::acknowledge(&state.db, &a.principal, &a.actor(&ip), id, now_ms()).await?,
    ))
}

async fn clear_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
) -> ApiResult<Json<store::Alarm>> {
    let id = parse_id(&id, "alarm")?;
    Ok(Json(
        store::clear(&state.db, &a.principal, &a.actor(&ip), id, now_ms()).await?,
    ))
}

async fn create_webhook_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewWebhook>,
) -> ApiResult<(StatusCode, Json<store::Webhook>)> {
    let hook = store::create_webhook(&state.db, &a.principal, &a.actor(&ip), body, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(hook)))
}

async fn list_webhooks_route(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(filter): ApiQuery<WebhookQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"webhooks": store::list_webhooks(&state.db, &a.principal, &filter).await?}),
    ))
}

async fn update_webhook_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WebhookUpdate>,
) -> ApiResult<Json<store::Webhook>> {
    let id = parse_id(&id, "webhook")?;
    Ok(Json(
        store::update_webhook(&state.db, &a.principal, &a.actor(&ip), id, body).await?,
    ))
}

async fn delete_webhook_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "webhook")?;
    store::delete_webhook(&state.db, &a.principal, &a.actor(&ip), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deliveries_route(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "webhook")?;
    Ok(Json(
        json!({"deliveries": notify::deliveries(&state.db, &a.principal, id).await?}),
    ))
}
