//! `AppError`: one error for every handler. API routes render it as JSON
//! `{"error": code, "message": text}` with the matching 4xx/5xx status;
//! pages render it as an HTML page (see `pages::error_page`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shuxiang_core::CoreError;

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AppError(#[from] pub CoreError);

impl AppError {
    pub fn status(&self) -> StatusCode {
        match &self.0 {
            CoreError::Malformed { .. } => StatusCode::BAD_REQUEST,
            CoreError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            CoreError::NotFound(_) | CoreError::Missing { .. } => StatusCode::NOT_FOUND,
            CoreError::Conflict { .. } => StatusCode::CONFLICT,
            CoreError::Unauthenticated | CoreError::BadCredentials => StatusCode::UNAUTHORIZED,
            CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
            CoreError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            CoreError::Database(_) | CoreError::Migrate(_) | CoreError::Io(_) | CoreError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The message shown to clients: server faults are logged, not exposed.
    pub fn public_message(&self) -> String {
        if self.status().is_server_error() {
            tracing::error!(error = %self.0, "request failed");
            "internal error; the event has been logged".to_string()
        } else {
            self.0.to_string()
        }
    }

    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self(CoreError::NotFound(what.into()))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({"error": self.code(), "message": self.public_message()});
        let mut resp = (status, Json(body)).into_response();
        if let CoreError::TooManyAttempts { retry_after_secs } = self.0 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, AppError>;
