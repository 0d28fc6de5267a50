//! 农资 farm-input checks over the API: validating the 32-digit pesticide
//! label code (MOA announcement No. 2579) as dealers and inspectors scan it,
//! with the failing position when it is wrong.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_http::extract::{ApiJson, Auth};
use shuxiang_http::{Access, ApiRoute};

use crate::label_code::{LabelCode, LabelCodeError, parse_label_qr};

pub fn routes() -> Vec<ApiRoute> {
    vec![ApiRoute {
        method: Method::POST,
        path: "/api/v1/inputs/validate-code",
        summary: "Parse a pesticide label code (32 digits, or the QR content carrying it); 422 names the failing position",
        tag: "inputs",
        access: Access::Authenticated,
        body: Some(
            json!({"type": "object", "required": ["code"], "properties": {"code": {"type": "string", "description": "32 digits or the label's QR content"}}}),
        ),
        query: &[],
        ok_status: 200,
        handler: post(validate_code),
    }]
}

#[derive(Deserialize)]
struct ValidateCode {
    code: String,
}

/// A parsed label code as the API shows it: its fields and the code itself.
pub(crate) fn label_json(code: &LabelCode) -> Value {
    let mut out = json!(code);
    out["code"] = json!(code.to_string());
    out
}

/// 422 naming the failing position, for every route that takes a label code.
pub(crate) fn invalid_label_code(e: &LabelCodeError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": "invalid_label_code", "message": e.to_string(), "position": e.position})),
    )
        .into_response()
}

/// Any signed-in user may check a code: it reveals nothing stored.
async fn validate_code(_caller: Auth, ApiJson(body): ApiJson<ValidateCode>) -> Response {
    match parse_label_qr(&body.code) {
        Ok(code) => Json(label_json(&code)).into_response(),
        Err(e) => invalid_label_code(&e),
    }
}
