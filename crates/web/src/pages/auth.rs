//! Signing in and out through forms, and the start page that sends each
//! user to the region they work in.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use shuxiang_core::auth::{self, Credential, Scope};
use shuxiang_core::{CoreError, RegionCode, regions};

use super::common::{Chrome, PageError, PageForm, PageQuery, PageResult, Signed, Visitor, render, safe_next};
use crate::api::auth::{cleared_session_cookie, session_cookie};
use crate::extract::ClientIp;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    next: String,
    username: String,
    error: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn valid_next(next: Option<&str>) -> String {
    next.and_then(safe_next).unwrap_or("/").to_string()
}

pub async fn login_form(v: Visitor, PageQuery(q): PageQuery<NextQuery>) -> PageResult {
    let page = LoginPage {
        c: v.chrome(),
        next: valid_next(q.next.as_deref()),
        username: String::new(),
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    v: Visitor,
    ip: ClientIp,
    jar: CookieJar,
    PageForm(form): PageForm<LoginForm>,
) -> PageResult {
    let next = valid_next(form.next.as_deref());
    let refused = match auth::login(
        &state.db,
        &form.username,
        &form.password,
        &ip.0,
        state.config.session_ttl,
    )
    .await
    {
        Ok(signed) => return Ok((jar.add(session_cookie(&state, signed.token)), Redirect::to(&next)).into_response()),
        Err(e) => e,
    };
    let t = v.lang.texts();
    let (status, error, retry) = match refused {
        CoreError::BadCredentials => (StatusCode::UNAUTHORIZED, t.bad_credentials, None),
        CoreError::TooManyAttempts { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            t.too_many_attempts,
            Some(retry_after_secs),
        ),
        other => return Err(other.into()),
    };
    let page = LoginPage {
        c: v.chrome(),
        next,
        username: form.username,
        error: Some(error),
    };
    let mut resp = render(status, &page)?;
    if let Some(secs) = retry {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(resp)
}

pub async fn logout(State(state): State<AppState>, s: Signed, ip: ClientIp, jar: CookieJar) -> PageResult {
    if s.auth.principal.credential == Credential::Session {
        auth::logout(&state.db, &s.auth.principal, &s.auth.secret, Some(ip.0)).await?;
    }
    Ok((jar.add(cleared_session_cookie()), Redirect::to("/login")).into_response())
}

/// The start page: the widest region the user works in.
pub async fn home(State(state): State<AppState>, s: Signed) -> PageResult<Response> {
    let code: RegionCode = match s.auth.principal.home_scope() {
        Scope::Region(code) => code,
        Scope::All => {
            let jiangxi = RegionCode::parse("36")?;
            if regions::get(&state.db, &jiangxi).await?.is_some() {
                jiangxi
            } else {
                let first = regions::roots(&state.db).await?.into_iter().next();
                first
                    .map(|r| r.code())
                    .ok_or_else(|| PageError::not_found("no regions are loaded"))?
            }
        }
    };
    Ok(Redirect::to(&format!("/regions/{code}")).into_response())
}
