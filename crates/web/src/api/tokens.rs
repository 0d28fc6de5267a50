//! API tokens for other systems: created (secret shown once), listed, revoked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_core::auth;

use super::{Access, ApiRoute};
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, ClientIp};
use crate::state::AppState;

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/tokens",
            summary: "Create an API token acting with the caller's roles; the secret is returned once",
            tag: "tokens",
            access: Access::Authenticated,
            body: Some(
                json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650}}}),
            ),
            query: &[],
            ok_status: 201,
            handler: post(create),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/tokens",
            summary: "The caller's tokens (all tokens for a national administrator); never the secrets",
            tag: "tokens",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(list),
        },
        ApiRoute {
            method: Method::DELETE,
            path: "/api/v1/tokens/{id}",
            summary: "Revoke a token",
            tag: "tokens",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 204,
            handler: delete(revoke),
        },
    ]
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    expires_in_days: Option<i64>,
}

async fn create(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (token, secret) =
        auth::create_token(&state.db, &a.principal, &a.actor(&ip), &body.name, body.expires_in_days).await?;
    let mut out = json!(token);
    out["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list(State(state): State<AppState>, a: Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"tokens": auth::list_tokens(&state.db, &a.principal).await?}),
    ))
}

async fn revoke(State(state): State<AppState>, a: Auth, ip: ClientIp, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id: i64 = id
        .parse()
        .map_err(|_| CoreError::malformed("invalid_id", format!("token id {id:?} is not a number")))?;
    auth::revoke_token(&state.db, &a.principal, &a.actor(&ip), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
