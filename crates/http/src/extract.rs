//! Request extractors: the authenticated caller (bearer token or session
//! cookie), the client address, the UI language and JSON bodies whose
//! failures become our error format instead of axum's plain text.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;
use shuxiang_core::CoreError;
use shuxiang_core::auth::{self, Principal};

use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "sx_session";
/// Name of the UI language cookie.
pub const LANG_COOKIE: &str = "sx_lang";

/// An authenticated caller, and the secret it presented (for sign-out).
pub struct Auth {
    pub principal: Principal,
    pub secret: String,
}

impl Auth {
    pub fn actor(&self, ip: &ClientIp) -> auth::Actor {
        self.principal.actor(Some(ip.0.clone()))
    }
}

fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// A cookie-authenticated write must come from our own pages: browsers send
/// `Origin` on cross-site POSTs, and a mismatch means a forged request.
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let Some(host) = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let (secret, from_cookie) = match bearer(parts) {
            Some(t) => (t, false),
            None => {
                let jar = CookieJar::from_headers(&parts.headers);
                match jar.get(SESSION_COOKIE) {
                    Some(c) => (c.value().to_string(), true),
                    None => return Err(CoreError::Unauthenticated.into()),
                }
            }
        };
        if from_cookie && !matches!(parts.method, Method::GET | Method::HEAD) && !same_origin(parts) {
            return Err(CoreError::Forbidden("cross-site request refused".into()).into());
        }
        state.sync_caches().await;
        let key = auth::hash_secret(&secret);
        if let Some(principal) = state.auth_cache.get(&key)
            && principal.expires_at.is_none_or(|t| t > shuxiang_core::time::now())
        {
            return Ok(Auth { principal, secret });
        }
        match auth::authenticate(&state.db, &secret).await? {
            Some(principal) => {
                state.auth_cache.insert(key, principal.clone());
                Ok(Auth { principal, secret })
            }
            None => Err(CoreError::Unauthenticated.into()),
        }
    }
}

/// The caller if signed in, for pages that also serve visitors.
pub struct MaybeAuth(pub Option<Auth>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match Auth::from_request_parts(parts, state).await {
            Ok(a) => Ok(Self(Some(a))),
            Err(AppError(CoreError::Unauthenticated)) => Ok(Self(None)),
            Err(e) => Err(e),
        }
    }
}

/// The client's address, for the audit log and sign-in throttling.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if state.config.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            if let Some(ip) = forwarded {
                return Ok(Self(ip));
            }
        }
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        Ok(Self(ip))
    }
}

impl FromRequestParts<AppState> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        let from_query = parts.uri.query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("lang="))
                .and_then(Lang::parse)
        });
        if let Some(l) = from_query {
            return Ok(l);
        }
        let jar = CookieJar::from_headers(&parts.headers);
        Ok(jar
            .get(LANG_COOKIE)
            .and_then(|c| Lang::parse(c.value()))
            .unwrap_or_default())
    }
}

/// A JSON body; syntax errors are 400 `malformed_json`, missing or mistyped
/// fields 422 `invalid_body`, a wrong content type 415-class 400.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection).into()),
        }
    }
}

fn json_rejection(r: JsonRejection) -> CoreError {
    match r {
        JsonRejection::JsonDataError(e) => CoreError::invalid("invalid_body", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => CoreError::malformed("malformed_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => CoreError::malformed(
            "unsupported_content_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        other => CoreError::malformed("malformed_body", other.body_text()),
    }
}

/// Query parameters; a value of the wrong type is 400 `invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => Err(CoreError::malformed("invalid_query", e.body_text()).into()),
        }
    }
}
