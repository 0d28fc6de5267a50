//! Sign-in and sign-out over the API; the session token is returned and also
//! set as an HttpOnly cookie for the web UI.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;
use shuxiang_core::auth::{self, Credential};

use super::{Access, ApiRoute};
use crate::error::ApiResult;
use crate::extract::{ApiJson, Auth, ClientIp, SESSION_COOKIE};
use crate::state::AppState;

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/auth/login",
            summary: "Sign in; returns a session token and sets the session cookie",
            tag: "auth",
            access: Access::Public,
            body: Some(
                json!({"type": "object", "required": ["username", "password"], "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}),
            ),
            query: &[],
            ok_status: 200,
            handler: post(login),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/auth/logout",
            summary: "Sign out: ends the session",
            tag: "auth",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 204,
            handler: post(logout),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/auth/me",
            summary: "The signed-in user and their roles",
            tag: "auth",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(me),
        },
    ]
}

#[derive(Deserialize)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// The session cookie: HttpOnly, SameSite=Lax, lasting as long as the session.
pub fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies)
        .path("/")
        .max_age(time::Duration::seconds(state.config.session_ttl.num_seconds()))
        .build()
}

pub fn cleared_session_cookie() -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .max_age(time::Duration::ZERO)
        .build()
}

async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    jar: CookieJar,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<impl IntoResponse> {
    let signed = auth::login(
        &state.db,
        &body.username,
        &body.password,
        &ip.0,
        state.config.session_ttl,
    )
    .await?;
    let p = &signed.principal;
    let body = json!({
        "token": signed.token,
        "expires_at": signed.expires_at,
        "user": {"id": p.user_id, "username": p.username, "display_name": p.display_name, "roles": p.grants},
    });
    Ok((jar.add(session_cookie(&state, signed.token)), Json(body)))
}

async fn logout(State(state): State<AppState>, ip: ClientIp, jar: CookieJar, a: Auth) -> ApiResult<impl IntoResponse> {
    if a.principal.credential == Credential::Session {
        auth::logout(&state.db, &a.principal, &a.secret, Some(ip.0)).await?;
    }
    Ok((jar.add(cleared_session_cookie()), StatusCode::NO_CONTENT))
}

async fn me(a: Auth) -> Json<serde_json::Value> {
    Json(serde_json::to_value(&a.principal).unwrap_or_default())
}
