//! User administration over the API.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, patch, post};
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_core::auth::{self, NewUser, Role, UserUpdate};

use super::{Access, ApiRoute};
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, ClientIp};
use crate::state::AppState;

const ADMINS: &[Role] = &[Role::Admin];
const ADMINS_AND_OFFICIALS: &[Role] = &[Role::Admin, Role::Official];

fn grant_schema() -> Value {
    json!({"type": "object", "required": ["role", "scope"], "properties": {
        "role": {"type": "string", "enum": Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>()},
        "scope": {"type": "string", "description": "region code (2/4/6/9/12 digits) or * for the whole country"}
    }})
}

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/users",
            summary: "Create a user with roles, each scoped to a region",
            tag: "users",
            access: Access::Roles(ADMINS),
            body: Some(
                json!({"type": "object", "required": ["username", "password", "display_name", "roles"], "properties": {
                    "username": {"type": "string"}, "password": {"type": "string", "minLength": 10},
                    "display_name": {"type": "string"}, "phone": {"type": "string"},
                    "roles": {"type": "array", "items": grant_schema(), "minItems": 1}
                }}),
            ),
            query: &[],
            ok_status: 201,
            handler: post(create),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/users",
            summary: "Users within the caller's scope (phones masked unless the caller administers them)",
            tag: "users",
            access: Access::Roles(ADMINS_AND_OFFICIALS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(list),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/users/{id}",
            summary: "One user",
            tag: "users",
            access: Access::Roles(ADMINS_AND_OFFICIALS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_one),
        },
        ApiRoute {
            method: Method::PATCH,
            path: "/api/v1/users/{id}",
            summary: "Change a user's name, password, phone, roles or disabled flag",
            tag: "users",
            access: Access::Roles(ADMINS),
            body: Some(json!({"type": "object", "properties": {
                "display_name": {"type": "string"}, "password": {"type": "string"}, "phone": {"type": "string"},
                "disabled": {"type": "boolean"}, "roles": {"type": "array", "items": grant_schema()}
            }})),
            query: &[],
            ok_status: 200,
            handler: patch(update),
        },
    ]
}

fn parse_id(raw: &str) -> Result<i64, CoreError> {
    raw.parse()
        .map_err(|_| CoreError::malformed("invalid_id", format!("user id {raw:?} is not a number")))
}

async fn create(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let user = auth::create_user(&state.db, &a.principal, &a.actor(&ip), body).await?;
    Ok((StatusCode::CREATED, Json(json!(user))))
}

async fn list(State(state): State<AppState>, a: Auth) -> ApiResult<Json<Value>> {
    let users = auth::list_users(&state.db, &a.principal).await?;
    Ok(Json(json!({"users": users})))
}

async fn get_one(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    a.principal.require_role(ADMINS_AND_OFFICIALS)?;
    Ok(Json(json!(
        auth::get_user(&state.db, &a.principal, parse_id(&id)?).await?
    )))
}

async fn update(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserUpdate>,
) -> ApiResult<Json<Value>> {
    let user = auth::update_user(&state.db, &a.principal, &a.actor(&ip), parse_id(&id)?, body).await?;
    Ok(Json(json!(user)))
}
