//! Route declarations: each API route is described once (method, path,
//! contract, access) together with its handler, so the router, the OpenAPI
//! document and the authorisation-matrix test all read the same list.

use axum::http::Method;
use axum::routing::MethodRouter;
use serde_json::Value;
use shuxiang_core::auth::Role;

use crate::state::AppState;

/// Who may call a route, as documented (each handler enforces it).
#[derive(Debug, Clone, Copy)]
pub enum Access {
    Public,
    /// Any signed-in user; data is still limited to their scope.
    Authenticated,
    /// One of these roles, over a scope covering the region concerned.
    Roles(&'static [Role]),
}

/// One API route: its contract for the OpenAPI document and its handler.
pub struct ApiRoute {
    pub method: Method,
    /// axum path syntax, e.g. `/api/v1/regions/{code}`.
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub access: Access,
    /// JSON Schema of the request body, if it takes one.
    pub body: Option<Value>,
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    pub ok_status: u16,
    pub handler: MethodRouter<AppState>,
}
