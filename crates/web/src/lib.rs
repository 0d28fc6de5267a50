//! Shuxiang's HTTP face: assembles the kernel's and each slice's JSON routes
//! under `/api/v1`, the server-rendered web UI and the operations endpoints
//! into one app. Handlers stay thin: rules live in the kernel and the slices;
//! the shared HTTP pieces are in `shuxiang-http`.

pub mod api;
pub mod ops;
pub mod pages;
pub mod seams;
pub mod svgchart;
pub mod svgmap;

// The HTTP kernel's modules, under the paths the kernel's own routes use.
pub use shuxiang_http::{error, extract, i18n, metrics, state};

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;

use shuxiang_core::db::{CORE_MIGRATIONS, SliceMigrations};
pub use shuxiang_http::{AppError, AppState, WebConfig};

/// The migrations of the kernel and every slice, in the order they run.
pub fn all_migrations() -> Vec<&'static SliceMigrations> {
    vec![
        &CORE_MIGRATIONS,
        &shuxiang_trace::log_store::TRACE_MIGRATIONS,
        &shuxiang_telemetry::store::TELEMETRY_MIGRATIONS,
        &shuxiang_logistics::store::LOGISTICS_MIGRATIONS,
    ]
}

/// Application state over `db` with every slice's migrations known to
/// `/readyz` and every slice's own state: the trace log's signing key, the
/// telemetry slice's state (its point writer and alarm engine, which the
/// binary also hands to the MQTT gateway) and the cold chain's temperature
/// source.
pub fn new_state(
    db: shuxiang_core::Db,
    config: WebConfig,
    trace: shuxiang_trace::keys::TraceLogKeys,
    telemetry: shuxiang_telemetry::ingest::TelemetryState,
) -> AppState {
    let temperatures = seams::TelemetryTemperatures { db: db.clone() };
    AppState::new(db, config, all_migrations())
        .with_slice(trace)
        .with_slice(shuxiang_logistics::report::ColdChainSource(std::sync::Arc::new(
            temperatures,
        )))
        .with_slice(telemetry)
}

/// Request bodies above this are refused before any handler runs: the
/// largest legitimate bodies are a 10,000-point telemetry batch (~0.5 MiB),
/// a dealer's ledger CSV and an EPCIS capture document (slices refuse their
/// own, smaller, limits with the same JSON error).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The body limit's refusal in the API's error format, like every other.
async fn too_large_as_json(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status() != axum::http::StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return resp;
    }
    let body = serde_json::json!({
        "error": "payload_too_large",
        "message": format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
    });
    (axum::http::StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}

/// The whole application: API, pages, static assets, operations endpoints.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(pages::router())
        .merge(ops::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            state::forget_on_write,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(too_large_as_json))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
