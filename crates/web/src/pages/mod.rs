//! The web UI: server-rendered pages in Chinese (English on request) that
//! work without JavaScript and check roles and region scopes exactly as the
//! API does, because they call the same functions.
//!
//! - `common`: layout data, the sign-in redirect, HTML error pages, the
//!   language cookie, the stylesheet
//! - `auth`: sign-in, sign-out, the start page
//! - `regions`: region pages at every level, village types, search
//! - `admin`: users (list, creation, editing), the audit log, API tokens
//! - `monitoring`: IoT dashboards (devices on the map, latest values,
//!   charts, alarms, the county overview)
//! - `trace`: the consumer's page of a scanned trace code
//! - `logistics`: officials' logistics overview on the county map and a
//!   shipment's printable cold-chain report
//! - `dispatch`: the dispatch planner's plans, route map, lock and re-plan,
//!   and the driver's run sheet
//! - `inputs`: farm-input shops' ledgers (stock in, real-name sales,
//!   reversals, CSV import) and their supervision (sales, anomalies)

mod admin;
mod auth;
mod common;
mod dispatch;
mod inputs;
mod logistics;
mod monitoring;
mod regions;
mod trace;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

async fn not_found(uri: axum::http::Uri) -> common::PageError {
    common::PageError::not_found(format!("no page {}", uri.path()))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(auth::home))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/regions/{code}", get(regions::region_page))
        .route("/regions/{code}/village-type", post(regions::set_type))
        .route("/search", get(regions::search))
        .route("/t/{code}", get(trace::trace_page))
        .route("/monitoring", get(monitoring::dashboard))
        .route("/monitoring/devices", post(monitoring::register))
        .route("/monitoring/devices/{id}", get(monitoring::device_page))
        .route("/monitoring/alarms/{id}/{action}", post(monitoring::alarm_action))
        .route("/dealers", get(inputs::dealers))
        .route("/dealers/{id}", get(inputs::dealer_page))
        .route("/dealers/{id}/stock-in", post(inputs::stock_in))
        .route("/dealers/{id}/sales", post(inputs::sale))
        .route("/dealers/{id}/import", post(inputs::import_csv))
        .route("/dealers/{id}/ledger/{entry}/reversal", post(inputs::reverse))
        .route("/inputs", get(inputs::supervision))
        .route("/logistics", get(logistics::overview))
        .route(
            "/logistics/shipments/{id}/cold-chain",
            get(logistics::cold_chain_report),
        )
        .route("/dispatch", get(dispatch::plans_page))
        .route("/dispatch/plans", post(dispatch::create_plan))
        .route("/dispatch/plans/{id}", get(dispatch::plan_page))
        .route("/dispatch/plans/{id}/replan", post(dispatch::replan))
        .route(
            "/dispatch/plans/{id}/vehicles/{vehicle_id}/run-sheet",
            get(dispatch::run_sheet),
        )
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{id}", get(admin::edit_user).post(admin::save_user))
        .route("/admin/audit", get(admin::audit))
        .route("/tokens", get(admin::tokens).post(admin::create_token))
        .route("/tokens/{id}/revoke", post(admin::revoke_token))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(common::shell))
        .route("/static/app.css", get(common::stylesheet))
}
