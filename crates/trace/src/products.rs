//! 农资产品登记 the farm-input product registry: registered pesticides (农药)
//! and fertilizers (肥料), with their registration numbers, makers, active
//! ingredients and the 限用 (restricted use) and 禁用 (banned) flags.
//!
//! Products are national reference data, not tied to a region: officials and
//! administrators of any scope register and change them, every signed-in
//! role reads them. Every write is audited in its own transaction; a change
//! of a flag is recorded with its value before and after.
//!
//! A scanned pesticide label code (see [`crate::label_code`]) leads to the
//! products it can belong to: those whose registration number has the
//! code's category prefix and ends in its six digits.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, patch, post};
use sea_query::{Condition, Expr, ExprTrait, Func, Iden, LikeExpr, LockType, Order, Query};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use shuxiang_core::CoreError;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{Actor, Principal, Role};
use shuxiang_core::db::{Db, Tx, on_unique};
use shuxiang_core::time::{Timestamp, now};
use shuxiang_http::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use shuxiang_http::{Access, ApiResult, ApiRoute, AppState};

use crate::input_api::{invalid_label_code, label_json};
use crate::label_code::{LabelCode, parse_label_code};

/// Who may register and change products.
pub const EDITORS: &[Role] = &[Role::Admin, Role::Official];

const MAX_NAME: usize = 200;
const MAX_REGISTRATION: usize = 100;
const MAX_INGREDIENTS: usize = 20;
const MAX_INGREDIENT_NAME: usize = 100;
const MAX_CONTENT: usize = 50;
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

#[derive(Iden)]
enum InputProducts {
    Table,
    Id,
    Kind,
    Name,
    RegistrationNumber,
    Maker,
    ActiveIngredients,
    RestrictedUse,
    Banned,
    CreatedAt,
    UpdatedAt,
}

/// 农药 or 肥料.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    Pesticide,
    Fertilizer,
}

impl ProductKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pesticide => "pesticide",
            Self::Fertilizer => "fertilizer",
        }
    }

    fn parse_stored(s: &str) -> Result<Self, CoreError> {
        match s {
            "pesticide" => Ok(Self::Pesticide),
            "fertilizer" => Ok(Self::Fertilizer),
            other => Err(CoreError::Internal(format!("stored product kind {other:?} is unknown"))),
        }
    }
}

/// 有效成分 one active ingredient and its content, e.g. 吡虫啉 `25%`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveIngredient {
    pub name: String,
    /// As printed on the label: `25%`, `200克/升`.
    pub content: String,
}

/// A registered product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub id: i64,
    pub kind: ProductKind,
    pub name: String,
    /// `PD20180001` for pesticides; free text (`农肥(2019)准字1234号`) or none
    /// for fertilizers.
    pub registration_number: Option<String>,
    pub maker: String,
    pub active_ingredients: Vec<ActiveIngredient>,
    /// 限用: restricted use.
    pub restricted_use: bool,
    /// 禁用: banned.
    pub banned: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: i64,
    kind: String,
    name: String,
    registration_number: Option<String>,
    maker: String,
    active_ingredients: String,
    restricted_use: bool,
    banned: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<ProductRow> for Product {
    type Error = CoreError;

    fn try_from(r: ProductRow) -> Result<Self, CoreError> {
        let active_ingredients = serde_json::from_str(&r.active_ingredients)
            .map_err(|e| CoreError::Internal(format!("active ingredients of product {}: {e}", r.id)))?;
        Ok(Self {
            id: r.id,
            kind: ProductKind::parse_stored(&r.kind)?,
            name: r.name,
            registration_number: r.registration_number,
            maker: r.maker,
            active_ingredients,
            restricted_use: r.restricted_use,
            banned: r.banned,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A product to register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub kind: ProductKind,
    pub name: String,
    #[serde(default)]
    pub registration_number: Option<String>,
    pub maker: String,
    #[serde(default)]
    pub active_ingredients: Vec<ActiveIngredient>,
    #[serde(default)]
    pub restricted_use: bool,
    #[serde(default)]
    pub banned: bool,
}

/// The fields to change; absent ones stay. The kind never changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductUpdate {
    pub name: Option<String>,
    pub registration_number: Option<String>,
    pub maker: Option<String>,
    pub active_ingredients: Option<Vec<ActiveIngredient>>,
    pub restricted_use: Option<bool>,
    pub banned: Option<bool>,
}

/// Filter for listing products.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProductQuery {
    /// Part of the name or of the registration number.
    pub q: Option<String>,
    pub kind: Option<ProductKind>,
    pub banned: Option<bool>,
    pub limit: Option<u64>,
}

// ---- validation ----

fn validate_text(raw: &str, max: usize, code: &'static str, what: &str) -> Result<String, CoreError> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            code,
            format!("{what} must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(s.to_string())
}

/// Pesticides need `PD`, `WP` or `LS` and eight digits (`PD20180001`);
/// fertilizers may have a free-text number or none.
fn validate_registration_number(kind: ProductKind, raw: Option<&str>) -> Result<Option<String>, CoreError> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty());
    match kind {
        ProductKind::Pesticide => {
            let number = raw.map(str::to_ascii_uppercase).unwrap_or_default();
            let ok = number.len() == 10
                && ["PD", "WP", "LS"].contains(&&number[..2])
                && number[2..].bytes().all(|b| b.is_ascii_digit());
            if ok {
                Ok(Some(number))
            } else {
                Err(CoreError::invalid(
                    "invalid_registration_number",
                    format!(
                        "a pesticide registration number is PD, WP or LS and 8 digits (e.g. PD20180001), not {:?}",
                        raw.unwrap_or_default()
                    ),
                ))
            }
        }
        ProductKind::Fertilizer => raw
            .map(|r| {
                validate_text(
                    r,
                    MAX_REGISTRATION,
                    "invalid_registration_number",
                    "a fertilizer registration number",
                )
            })
            .transpose(),
    }
}

fn validate_ingredients(list: &[ActiveIngredient]) -> Result<Vec<ActiveIngredient>, CoreError> {
    if list.len() > MAX_INGREDIENTS {
        return Err(CoreError::invalid(
            "invalid_active_ingredients",
            format!("at most {MAX_INGREDIENTS} active ingredients"),
        ));
    }
    list.iter()
        .map(|i| {
            Ok(ActiveIngredient {
                name: validate_text(
                    &i.name,
                    MAX_INGREDIENT_NAME,
                    "invalid_active_ingredients",
                    "an active ingredient's name",
                )?,
                content: validate_text(
                    &i.content,
                    MAX_CONTENT,
                    "invalid_active_ingredients",
                    "an active ingredient's content",
                )?,
            })
        })
        .collect()
}

fn registration_taken(err: CoreError, number: Option<&str>) -> CoreError {
    on_unique(
        err,
        "registration_taken",
        format!(
            "registration number {:?} is already registered",
            number.unwrap_or_default()
        ),
    )
}

// ---- store ----

fn columns() -> [InputProducts; 10] {
    [
        InputProducts::Id,
        InputProducts::Kind,
        InputProducts::Name,
        InputProducts::RegistrationNumber,
        InputProducts::Maker,
        InputProducts::ActiveIngredients,
        InputProducts::RestrictedUse,
        InputProducts::Banned,
        InputProducts::CreatedAt,
        InputProducts::UpdatedAt,
    ]
}

fn ingredients_json(list: &[ActiveIngredient]) -> String {
    json!(list).to_string()
}

/// Registers a product; only administrators and officials (of any scope) may.
pub async fn create(db: &Db, caller: &Principal, actor: &Actor, new: NewProduct) -> Result<Product, CoreError> {
    caller.require_role(EDITORS)?;
    let name = validate_text(&new.name, MAX_NAME, "invalid_name", "the product name")?;
    let maker = validate_text(&new.maker, MAX_NAME, "invalid_maker", "the maker")?;
    let registration_number = validate_registration_number(new.kind, new.registration_number.as_deref())?;
    let active_ingredients = validate_ingredients(&new.active_ingredients)?;
    let at = now();
    let mut tx = db.begin().await?;
    let ins = Query::insert()
        .into_table(InputProducts::Table)
        .columns(columns().into_iter().skip(1))
        .values_panic([
            new.kind.as_str().into(),
            name.as_str().into(),
            registration_number.clone().into(),
            maker.as_str().into(),
            ingredients_json(&active_ingredients).into(),
            new.restricted_use.into(),
            new.banned.into(),
            at.into(),
            at.into(),
        ])
        .returning_col(InputProducts::Id)
        .to_owned();
    let (id,): (i64,) = tx
        .fetch_one(&ins)
        .await
        .map_err(|e| registration_taken(e, registration_number.as_deref()))?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "input_product.create",
            target: format!("input_product:{id}"),
            region: None,
            detail: json!({
                "kind": new.kind, "name": name, "registration_number": registration_number,
                "restricted_use": new.restricted_use, "banned": new.banned,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Product {
        id,
        kind: new.kind,
        name,
        registration_number,
        maker,
        active_ingredients,
        restricted_use: new.restricted_use,
        banned: new.banned,
        created_at: at,
        updated_at: at,
    })
}

pub async fn get(db: &Db, id: i64) -> Result<Product, CoreError> {
    let q = Query::select()
        .columns(columns())
        .from(InputProducts::Table)
        .and_where(Expr::col(InputProducts::Id).eq(id))
        .to_owned();
    let row: Option<ProductRow> = db.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no product {id}")))?
        .try_into()
}

/// Products by id, filtered by kind, the banned flag and a search text that
/// matches part of the name (ignoring ASCII case) or of the registration
/// number.
pub async fn list(db: &Db, filter: &ProductQuery) -> Result<Vec<Product>, CoreError> {
    let mut q = Query::select();
    q.columns(columns())
        .from(InputProducts::Table)
        .order_by(InputProducts::Id, Order::Asc)
        .limit(filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT));
    if let Some(text) = filter.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let like = |s: String| LikeExpr::new(format!("%{s}%")).escape('\\');
        q.cond_where(
            Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(InputProducts::Name))).like(like(escaped.to_lowercase())))
                .add(Expr::col(InputProducts::RegistrationNumber).like(like(escaped.to_uppercase()))),
        );
    }
    if let Some(kind) = filter.kind {
        q.and_where(Expr::col(InputProducts::Kind).eq(kind.as_str()));
    }
    if let Some(banned) = filter.banned {
        q.and_where(Expr::col(InputProducts::Banned).eq(banned));
    }
    let rows: Vec<ProductRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(Product::try_from).collect()
}

async fn lock(tx: &mut Tx, id: i64) -> Result<Product, CoreError> {
    let q = Query::select()
        .columns(columns())
        .from(InputProducts::Table)
        .and_where(Expr::col(InputProducts::Id).eq(id))
        .lock(LockType::Update)
        .to_owned();
    let row: Option<ProductRow> = tx.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no product {id}")))?
        .try_into()
}

/// Changes a product; only administrators and officials may. The audit
/// entry names every changed field with its value before and after.
pub async fn update(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    upd: ProductUpdate,
) -> Result<Product, CoreError> {
    caller.require_role(EDITORS)?;
    let name = upd
        .name
        .as_deref()
        .map(|n| validate_text(n, MAX_NAME, "invalid_name", "the product name"))
        .transpose()?;
    let maker = upd
        .maker
        .as_deref()
        .map(|m| validate_text(m, MAX_NAME, "invalid_maker", "the maker"))
        .transpose()?;
    let ingredients = upd
        .active_ingredients
        .as_deref()
        .map(validate_ingredients)
        .transpose()?;
    if name.is_none()
        && maker.is_none()
        && ingredients.is_none()
        && upd.registration_number.is_none()
        && upd.restricted_use.is_none()
        && upd.banned.is_none()
    {
        return Err(CoreError::invalid("missing_field", "give at least one field to change"));
    }
    let mut tx = db.begin().await?;
    let old = lock(&mut tx, id).await?;
    let registration_number = match upd.registration_number.as_deref() {
        Some(r) => validate_registration_number(old.kind, Some(r))?,
        None => old.registration_number.clone(),
    };
    let new = Product {
        name: name.unwrap_or_else(|| old.name.clone()),
        registration_number,
        maker: maker.unwrap_or_else(|| old.maker.clone()),
        active_ingredients: ingredients.unwrap_or_else(|| old.active_ingredients.clone()),
        restricted_use: upd.restricted_use.unwrap_or(old.restricted_use),
        banned: upd.banned.unwrap_or(old.banned),
        updated_at: now(),
        ..old.clone()
    };
    let mut changes = Map::new();
    let mut note = |field: &str, from: Value, to: Value| {
        if from != to {
            changes.insert(field.into(), json!({"from": from, "to": to}));
        }
    };
    note("name", json!(old.name), json!(new.name));
    note(
        "registration_number",
        json!(old.registration_number),
        json!(new.registration_number),
    );
    note("maker", json!(old.maker), json!(new.maker));
    note(
        "active_ingredients",
        json!(old.active_ingredients),
        json!(new.active_ingredients),
    );
    note("restricted_use", json!(old.restricted_use), json!(new.restricted_use));
    note("banned", json!(old.banned), json!(new.banned));
    let q = Query::update()
        .table(InputProducts::Table)
        .values([
            (InputProducts::Name, new.name.as_str().into()),
            (
                InputProducts::RegistrationNumber,
                new.registration_number.clone().into(),
            ),
            (InputProducts::Maker, new.maker.as_str().into()),
            (
                InputProducts::ActiveIngredients,
                ingredients_json(&new.active_ingredients).into(),
            ),
            (InputProducts::RestrictedUse, new.restricted_use.into()),
            (InputProducts::Banned, new.banned.into()),
            (InputProducts::UpdatedAt, new.updated_at.into()),
        ])
        .and_where(Expr::col(InputProducts::Id).eq(id))
        .to_owned();
    tx.execute(&q)
        .await
        .map_err(|e| registration_taken(e, new.registration_number.as_deref()))?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "input_product.update",
            target: format!("input_product:{id}"),
            region: None,
            detail: Value::Object(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(new)
}

/// The pesticide products a label code can belong to: registration number
/// with the code's category prefix, ending in the code's six digits.
pub async fn by_label_code(db: &Db, code: &LabelCode) -> Result<Vec<Product>, CoreError> {
    // The suffix is six digits, so it needs no LIKE escaping.
    let q = Query::select()
        .columns(columns())
        .from(InputProducts::Table)
        .and_where(Expr::col(InputProducts::Kind).eq(ProductKind::Pesticide.as_str()))
        .and_where(Expr::col(InputProducts::RegistrationNumber).like(format!("%{}", code.registration_suffix())))
        .order_by(InputProducts::Id, Order::Asc)
        .to_owned();
    let rows: Vec<ProductRow> = db.fetch_all(&q).await?;
    Ok(rows
        .into_iter()
        .map(Product::try_from)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| {
            p.registration_number
                .as_deref()
                .is_some_and(|n| code.matches_registration_number(n))
        })
        .collect())
}

// ---- API ----

fn product_schema(required: &[&str]) -> Value {
    json!({"type": "object", "required": required, "additionalProperties": false, "properties": {
        "kind": {"type": "string", "enum": ["pesticide", "fertilizer"]},
        "name": {"type": "string"},
        "registration_number": {"type": "string", "description": "pesticides: PD, WP or LS and 8 digits (PD20180001); fertilizers: free text, optional"},
        "maker": {"type": "string"},
        "active_ingredients": {"type": "array", "items": {"type": "object", "required": ["name", "content"], "properties": {
            "name": {"type": "string"}, "content": {"type": "string", "description": "as on the label, e.g. 25%"}
        }}},
        "restricted_use": {"type": "boolean", "description": "限用"},
        "banned": {"type": "boolean", "description": "禁用"}
    }})
}

pub fn routes() -> Vec<ApiRoute> {
    let mut update_schema = product_schema(&[]);
    if let Some(properties) = update_schema["properties"].as_object_mut() {
        properties.remove("kind");
    }
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/inputs/products",
            summary: "Register a pesticide or fertilizer product (national reference data)",
            tag: "inputs",
            access: Access::Roles(EDITORS),
            body: Some(product_schema(&["kind", "name", "maker"])),
            query: &[],
            ok_status: 201,
            handler: post(create_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/inputs/products",
            summary: "Registered farm-input products, searched by name or registration number",
            tag: "inputs",
            access: Access::Authenticated,
            body: None,
            query: &[
                ("q", "part of the name or the registration number"),
                ("kind", "pesticide or fertilizer"),
                ("banned", "true or false"),
                ("limit", "at most this many (default 100, at most 1000)"),
            ],
            ok_status: 200,
            handler: routing::get(list_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/inputs/products/{id}",
            summary: "One registered farm-input product",
            tag: "inputs",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: routing::get(get_route),
        },
        ApiRoute {
            method: Method::PATCH,
            path: "/api/v1/inputs/products/{id}",
            summary: "Change a product's name, registration number, maker, ingredients or restricted/banned flags (audited from → to)",
            tag: "inputs",
            access: Access::Roles(EDITORS),
            body: Some(update_schema),
            query: &[],
            ok_status: 200,
            handler: patch(update_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/inputs/products/by-label-code/{code}",
            summary: "The pesticide products a 32-digit label code can belong to; 404 if none, 422 names the failing position",
            tag: "inputs",
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: routing::get(by_label_code_route),
        },
    ]
}

fn parse_id(raw: &str) -> Result<i64, CoreError> {
    raw.parse()
        .map_err(|_| CoreError::malformed("invalid_id", format!("product id {raw:?} is not a number")))
}

async fn create_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((
        StatusCode::CREATED,
        Json(create(&state.db, &a.principal, &a.actor(&ip), body).await?),
    ))
}

async fn list_route(
    State(state): State<AppState>,
    _caller: Auth,
    ApiQuery(filter): ApiQuery<ProductQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"products": list(&state.db, &filter).await?})))
}

async fn get_route(State(state): State<AppState>, _caller: Auth, Path(id): Path<String>) -> ApiResult<Json<Product>> {
    Ok(Json(get(&state.db, parse_id(&id)?).await?))
}

async fn update_route(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProductUpdate>,
) -> ApiResult<Json<Product>> {
    Ok(Json(
        update(&state.db, &a.principal, &a.actor(&ip), parse_id(&id)?, body).await?,
    ))
}

async fn by_label_code_route(
    State(state): State<AppState>,
    _caller: Auth,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let code = match parse_label_code(&code) {
        Ok(c) => c,
        Err(e) => return Ok(invalid_label_code(&e)),
    };
    let products = by_label_code(&state.db, &code).await?;
    if products.is_empty() {
        return Err(CoreError::NotFound(format!("no registered pesticide matches label code {code}")).into());
    }
    Ok(Json(json!({"label": label_json(&code), "products": products})).into_response())
}
