//! Reading the audit log: administrators and officials, limited to their scope.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_core::audit::{self, AuditQuery};
use shuxiang_core::auth::{Principal, Role, Scope};

use super::{Access, ApiRoute};
use crate::error::ApiResult;
use crate::extract::{ApiQuery, Auth};
use crate::state::AppState;

pub const AUDIT_READERS: &[Role] = &[Role::Admin, Role::Official];

pub fn routes() -> Vec<ApiRoute> {
    vec![ApiRoute {
        method: Method::GET,
        path: "/api/v1/audit",
        summary: "Audit entries (who, when, what, from where), newest first, within the caller's scope",
        tag: "audit",
        access: Access::Roles(AUDIT_READERS),
        body: None,
        query: &[
            ("action", "e.g. auth.login, user.create, region.update"),
            ("actor", "username"),
            ("before", "entries with id below this"),
            ("limit", "default 100, max 1000"),
        ],
        ok_status: 200,
        handler: get(list),
    }]
}

#[derive(Deserialize)]
pub struct AuditParams {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<u64>,
}

/// The scopes whose entries `p` may read: `None` for a national reader.
pub fn audit_scopes(p: &Principal) -> Option<Vec<Scope>> {
    p.scopes(Some(AUDIT_READERS))
        .map(|codes| codes.into_iter().map(Scope::Region).collect())
}

pub async fn entries(state: &AppState, p: &Principal, params: AuditParams) -> ApiResult<Vec<audit::AuditEntry>> {
    p.require_role(AUDIT_READERS)?;
    let scopes = audit_scopes(p);
    let q = AuditQuery {
        action: params.action,
        actor: params.actor,
        before_id: params.before,
        limit: params.limit.unwrap_or(100),
    };
    Ok(audit::list(&state.db, scopes.as_deref(), &q).await?)
}

async fn list(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Json<Value>> {
    let rows = entries(&state, &a.principal, params).await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|e| {
            let mut v = json!(e);
            v["detail"] = e.detail_json();
            v
        })
        .collect();
    Ok(Json(json!({"entries": out})))
}
