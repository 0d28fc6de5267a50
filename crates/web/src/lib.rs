//! Shuxiang's HTTP face: the JSON API under `/api/v1`, the server-rendered
//! web UI, operations endpoints, and the router that composes each slice's
//! routes. Handlers here stay thin: rules live in the kernel and the slices.

pub mod api;
pub mod error;
pub mod extract;
pub mod i18n;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod state;
pub mod svgmap;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;

pub use error::AppError;
pub use state::{AppState, WebConfig};

/// Request bodies above this are refused before any handler runs (the
/// largest legitimate body today is a user with its roles).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The whole application: API, pages, static assets, operations endpoints.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(pages::router())
        .merge(ops::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), state::forget_on_write))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
