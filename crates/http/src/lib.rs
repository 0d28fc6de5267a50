//! The HTTP kernel every slice builds its routes and pages on: application
//! state, the error that renders as the API's JSON, request extractors
//! (caller, client address, language, JSON bodies), route declarations for
//! the OpenAPI document, metrics and UI texts. `shuxiang-web` assembles the
//! slices' routes into one app; slices depend on this crate, not on web.

pub mod error;
pub mod extract;
pub mod i18n;
pub mod metrics;
pub mod route;
pub mod state;

pub use error::{ApiResult, AppError};
pub use route::{Access, ApiRoute};
pub use state::{AppState, WebConfig};
