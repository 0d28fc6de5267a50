//! Regions over the API: lookup with descendant counts, children, search,
//! boundaries as GeoJSON, and village types (集聚提升/城郊融合/特色保护/搬迁撤并).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{Principal, Role};
use shuxiang_core::regions::{self, Region};
use shuxiang_core::{CoreError, RegionCode, RegionLevel, VillageType};

use super::{Access, ApiRoute};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use crate::state::{AppState, CachedRegion};

/// Roles that may classify villages.
pub const VILLAGE_TYPE_EDITORS: &[Role] = &[Role::Admin, Role::Official];

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/regions",
            summary: "Search regions by name within the caller's scope (without q: the caller's top regions)",
            tag: "regions",
            access: Access::Authenticated,
            body: None,
            query: &[
                ("q", "part of a region name"),
                ("limit", "at most this many (default 50, max 500)"),
            ],
            ok_status: 200,
            handler: get(search),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/regions/{code}",
            summary: "One region with its level, parent, ancestors and descendant counts per level",
            tag: "regions",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_region),
        },
        ApiRoute {
            method: Method::PATCH,
            path: "/api/v1/regions/{code}",
            summary: "Set a village's type: agglomeration, suburban, characteristic, relocation (or null)",
            tag: "regions",
            access: Access::Roles(VILLAGE_TYPE_EDITORS),
            body: Some(
                json!({"type": "object", "required": ["village_type"], "properties": {"village_type": {"type": ["string", "null"], "enum": ["agglomeration", "suburban", "characteristic", "relocation", null]}}}),
            ),
            query: &[],
            ok_status: 200,
            handler: axum::routing::patch(patch_region),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/regions/{code}/children",
            summary: "The regions directly below, in code order",
            tag: "regions",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(children),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/regions/{code}/boundary",
            summary: "The region's boundary as a GeoJSON Feature (GCJ-02 lon/lat); 404 where none is stored",
            tag: "regions",
            access: Access::Authenticated,
            body: None,
            query: &[("detail", "full (default) or simplified")],
            ok_status: 200,
            handler: get(boundary),
        },
    ]
}

/// A region as the API shows it.
pub fn region_json(r: &Region) -> Value {
    json!({
        "code": r.code,
        "name": r.name,
        "level": r.level,
        "parent": r.parent,
        "village_type": r.village_type,
        "counts": r.counts(),
    })
}

/// The region and its ancestors, through the node's region cache.
async fn cached_region(state: &AppState, raw: &str) -> ApiResult<Arc<CachedRegion>> {
    state.sync_caches().await;
    if let Some(hit) = state.region_cache.get(&raw.to_string()) {
        return Ok(hit);
    }
    let code = RegionCode::parse(raw)?;
    let (region, ancestors) = regions::resolve_with_ancestors(&state.db, &code)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no region with code {code}")))?;
    let entry = Arc::new(CachedRegion { region, ancestors });
    state.region_cache.insert(raw.to_string(), entry.clone());
    Ok(entry)
}

/// Parses the path code, finds the region and checks the caller may see it.
pub async fn visible_region(state: &AppState, p: &Principal, raw: &str) -> ApiResult<Region> {
    let entry = cached_region(state, raw).await?;
    p.require_see(&entry.region.code())?;
    Ok(entry.region.clone())
}

async fn get_region(State(state): State<AppState>, a: Auth, Path(code): Path<String>) -> ApiResult<Json<Value>> {
    let entry = cached_region(&state, &code).await?;
    a.principal.require_see(&entry.region.code())?;
    let mut body = region_json(&entry.region);
    body["ancestors"] = entry
        .ancestors
        .iter()
        .map(|(code, name)| json!({"code": code, "name": name}))
        .collect();
    Ok(Json(body))
}

async fn children(State(state): State<AppState>, a: Auth, Path(code): Path<String>) -> ApiResult<Json<Value>> {
    let region = visible_region(&state, &a.principal, &code).await?;
    let kids = regions::children(&state.db, &region.code()).await?;
    Ok(Json(
        json!({"code": region.code, "regions": kids.iter().map(region_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<u64>,
}

async fn search(State(state): State<AppState>, a: Auth, ApiQuery(q): ApiQuery<SearchQuery>) -> ApiResult<Json<Value>> {
    let scopes = a.principal.scopes(None);
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let found = match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => regions::search(&state.db, text, scopes.as_deref(), limit).await?,
        None => match scopes {
            None => regions::roots(&state.db).await?,
            Some(codes) => {
                let mut out = Vec::new();
                for c in codes {
                    out.extend(regions::get(&state.db, &c).await?);
                }
                out
            }
        },
    };
    Ok(Json(
        json!({"regions": found.iter().map(region_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
struct BoundaryQuery {
    detail: Option<String>,
}

async fn boundary(
    State(state): State<AppState>,
    a: Auth,
    Path(code): Path<String>,
    ApiQuery(q): ApiQuery<BoundaryQuery>,
) -> ApiResult<Json<Value>> {
    let region = visible_region(&state, &a.principal, &code).await?;
    let simplified = match q.detail.as_deref() {
        None | Some("full") => false,
        Some("simplified") => true,
        Some(other) => {
            return Err(
                CoreError::invalid("invalid_detail", format!("detail {other:?} must be full or simplified")).into(),
            );
        }
    };
    let b = regions::boundary(&state.db, &region.code())
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no boundary stored for region {}", region.code)))?;
    let geometry: Value = serde_json::from_str(if simplified { &b.simplified } else { &b.geometry })
        .map_err(|e| CoreError::Internal(format!("stored boundary of {} is not JSON: {e}", region.code)))?;
    Ok(Json(json!({
        "type": "Feature",
        "bbox": [b.min_lon, b.min_lat, b.max_lon, b.max_lat],
        "properties": {"code": region.code, "name": region.name, "level": region.level, "crs": "GCJ-02"},
        "geometry": geometry,
    })))
}

/// Reads `village_type` from a PATCH body: a value sets it, `null` clears it.
pub fn parse_village_type_patch(body: &serde_json::Map<String, Value>) -> Result<Option<VillageType>, CoreError> {
    if let Some(extra) = body.keys().find(|k| k.as_str() != "village_type") {
        return Err(CoreError::invalid(
            "unknown_field",
            format!("field {extra:?} cannot be changed here"),
        ));
    }
    match body.get("village_type") {
        None => Err(CoreError::invalid("missing_field", "village_type is required")),
        Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => VillageType::parse(s).map(Some),
        Some(_) => Err(CoreError::invalid(
            "invalid_village_type",
            "village_type must be a string or null",
        )),
    }
}

/// Sets (or clears) a village's type, audited in the same transaction.
pub async fn set_village_type(
    state: &AppState,
    a: &Auth,
    ip: &ClientIp,
    region: &Region,
    vt: Option<VillageType>,
) -> ApiResult<()> {
    a.principal.require(VILLAGE_TYPE_EDITORS, &region.code())?;
    if region.level() != RegionLevel::Village {
        return Err(CoreError::invalid(
            "not_a_village",
            format!(
                "{} is a {}, and only villages have a village type",
                region.code, region.level
            ),
        )
        .into());
    }
    let mut tx = state.db.begin().await?;
    regions::set_village_type(&mut tx, &region.code(), vt).await?;
    audit::record(
        &mut tx,
        &a.actor(ip),
        AuditEvent {
            action: "region.update",
            target: format!("region:{}", region.code),
            region: Some(region.code.clone()),
            detail: json!({"village_type": {"from": region.village_type, "to": vt.map(|v| v.as_str())}}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn patch_region(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let region = visible_region(&state, &a.principal, &code).await?;
    let vt = parse_village_type_patch(&body)?;
    set_village_type(&state, &a, &ip, &region, vt).await?;
    let updated = regions::require(&state.db, &region.code()).await?;
    Ok(Json(region_json(&updated)))
}
