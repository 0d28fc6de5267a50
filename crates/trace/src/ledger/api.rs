//! The ledger's JSON routes: shops, stock-in, real-name sales, reversals, stock,
//! CSV import, the audited buyer reveal, and the supervision statistics and
//! anomalies. Permissions are enforced in `service` and `stats`; the
//! `Access` here documents them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_http::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use shuxiang_http::{Access, ApiResult, ApiRoute, AppState};

use super::import::{self, ImportOutcome};
use super::model::{QuantityInput, RawEntry};
use super::service::{self, BuyerDetails, LEDGER_READERS, NewDealer, SUPERVISORS, WRITERS};
use super::stats::{self, STATS_READERS, StatsQuery};
use super::store::{AnomalyQuery, Dealer, LedgerEntry, LedgerQuery};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StockInBody {
    product_id: i64,
    quantity: QuantityInput,
    unit: String,
    #[serde(default)]
    label_codes: Vec<String>,
    batch: Option<String>,
    supplier: String,
    date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaleBody {
    product_id: i64,
    quantity: QuantityInput,
    unit: String,
    #[serde(default)]
    label_codes: Vec<String>,
    batch: Option<String>,
    buyer_name: Option<String>,
    buyer_id_number: Option<String>,
    buyer_phone: Option<String>,
    buyer_village: String,
    crop: Option<String>,
    date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReversalBody {
    reason: String,
}

#[derive(Debug, Deserialize)]
struct DealerFilter {
    region: Option<String>,
}

fn entry_schema(extra: Value, required: &[&str]) -> Value {
    let mut props = json!({
        "product_id": {"type": "integer"},
        "quantity": {"type": ["number", "string"], "description": "positive decimal, exact to 1 g / 1 mL / 1 piece"},
        "unit": {"type": "string", "description": "t, kg, g, l, ml or piece (also 吨 千克 克 升 毫升 瓶 袋 件)"},
        "label_codes": {"type": "array", "items": {"type": "string"}, "description": "32-digit pesticide label codes (or QR content) of the packages"},
        "batch": {"type": "string", "description": "生产批号 production batch"},
        "date": {"type": "string", "description": "business date YYYY-MM-DD, default today (UTC+8)"}
    });
    if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": props})
}

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/dealers",
            summary: "Register a farm-input shop (农资经营店) with its licence, region and owner (a user with role dealer)",
            tag: "dealers",
            access: Access::Roles(SUPERVISORS),
            body: Some(json!({"type": "object", "additionalProperties": false,
                "required": ["name", "licence_number", "region", "address", "owner_user_id"], "properties": {
                "name": {"type": "string"}, "licence_number": {"type": "string", "description": "农药经营许可证"},
                "region": {"type": "string", "description": "county or township code"}, "address": {"type": "string"},
                "owner_user_id": {"type": "integer", "description": "a user holding role dealer over the region"}
            }})),
            query: &[],
            ok_status: 201,
            handler: post(create_dealer),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/dealers",
            summary: "Shops the caller may read: all in an official's scope, a dealer's own",
            tag: "dealers",
            access: Access::Roles(LEDGER_READERS),
            body: None,
            query: &[("region", "only shops under this region")],
            ok_status: 200,
            handler: get(list_dealers),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/dealers/{id}",
            summary: "One shop (its owner, or officials of its region)",
            tag: "dealers",
            access: Access::Roles(LEDGER_READERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_dealer),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/dealers/{id}/stock-in",
            summary: "Record a stock-in (进货) in the caller's own shop",
            tag: "dealers",
            access: Access::Roles(WRITERS),
            body: Some(entry_schema(
                json!({"supplier": {"type": "string"}}),
                &["product_id", "quantity", "unit", "supplier"],
            )),
            query: &[],
            ok_status: 201,
            handler: post(stock_in),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/dealers/{id}/sales",
            summary: "Record a real-name sale (实名销售); banned products are refused (422 banned_product) and restricted ones need the buyer's name and ID (422 buyer_id_required), both reported to the county; a label code sold twice is 409 label_code_sold",
            tag: "dealers",
            access: Access::Roles(WRITERS),
            body: Some(entry_schema(
                json!({
                    "buyer_name": {"type": "string"},
                    "buyer_id_number": {"type": "string", "description": "18-character 居民身份证 number, checked (GB 11643)"},
                    "buyer_phone": {"type": "string"},
                    "buyer_village": {"type": "string", "description": "12-digit village code where the inputs are used"},
                    "crop": {"type": "string", "description": "crop or use"}
                }),
                &["product_id", "quantity", "unit", "buyer_village"],
            )),
            query: &[],
            ok_status: 201,
            handler: post(sale),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/dealers/{id}/ledger/{entry}/reversal",
            summary: "Reverse (冲销) a ledger entry of the caller's own shop with a new entry; entries are never edited or deleted",
            tag: "dealers",
            access: Access::Roles(WRITERS),
            body: Some(
                json!({"type": "object", "additionalProperties": false, "required": ["reason"], "properties": {"reason": {"type": "string"}}}),
            ),
            query: &[],
            ok_status: 201,
            handler: post(reverse),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/dealers/{id}/ledger",
            summary: "A shop's ledger, newest first, buyers' ID numbers and phones masked",
            tag: "dealers",
            access: Access::Roles(LEDGER_READERS),
            body: None,
            query: &[
                ("from", "first business date YYYY-MM-DD"),
                ("to", "last business date YYYY-MM-DD"),
                ("type", "stock_in or sale"),
                ("product_id", "only this product"),
                ("before_id", "entries older than this id"),
                ("limit", "at most this many (default 100, at most 1000)"),
            ],
            ok_status: 200,
            handler: get(ledger),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/dealers/{id}/stock",
            summary: "A shop's stock per product: stock in minus sales, in kg, litres or pieces (negative when more was sold than recorded in)",
            tag: "dealers",
            access: Access::Roles(LEDGER_READERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(stock),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/dealers/{id}/ledger/import",
            summary: "Import an existing ledger as text/csv (columns: type,date,product_id,quantity,unit,label_codes,batch,supplier,buyer_name,buyer_id_number,buyer_phone,buyer_village,crop); all or nothing, 422 lists every error with line and field",
            tag: "dealers",
            access: Access::Roles(WRITERS),
            body: None,
            query: &[],
            ok_status: 201,
            handler: post(import_csv),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/dealers/{id}/ledger/{entry}/buyer",
            summary: "Reveal one sale's buyer (ID number and phone in full); audited",
            tag: "dealers",
            access: Access::Roles(SUPERVISORS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(reveal_buyer),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/inputs/stats",
            summary: "Pesticide and fertilizer sales (kg, litres, pieces) per child region or month, counted at the buyer's village (化肥农药减量); format=csv exports",
            tag: "inputs",
            access: Access::Roles(STATS_READERS),
            body: None,
            query: &[
                ("region", "region code (default: the caller's scope)"),
                ("from", "first business date YYYY-MM-DD"),
                ("to", "last business date YYYY-MM-DD"),
                (
                    "group",
                    "county, township, village or month (default: the region's child level)",
                ),
                ("kind", "pesticide or fertilizer"),
                ("format", "csv for a CSV file"),
            ],
            ok_status: 200,
            handler: get(stats_route),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/inputs/anomalies",
            summary: "Anomalies of shops in scope: banned sales attempted, label codes sold twice, restricted sales without buyer ID, negative stock",
            tag: "inputs",
            access: Access::Roles(SUPERVISORS),
            body: None,
            query: &[
                ("region", "region code (default: the caller's scope)"),
                (
                    "kind",
                    "banned_product_sale, label_code_sold_twice, restricted_without_buyer_id or negative_stock",
                ),
                ("dealer_id", "only this shop"),
                ("before_id", "anomalies older than this id"),
                ("limit", "at most this many (default 100, at most 1000)"),
            ],
            ok_status: 200,
            handler: get(anomalies),
        },
    ]
}

fn parse_id(raw: &str, what: &str) -> Result<i64, CoreError> {
    raw.parse()
        .map_err(|_| CoreError::malformed("invalid_id", format!("{what} id {raw:?} is not a number")))
}

async fn create_dealer(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewDealer>,
) -> ApiResult<(StatusCode, Json<Dealer>)> {
    let dealer = service::create_dealer(&state.db, &a.principal, &a.actor(&ip), body).await?;
    Ok((StatusCode::CREATED, Json(dealer)))
}

async fn list_dealers(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(f): ApiQuery<DealerFilter>,
) -> ApiResult<Json<Value>> {
    let dealers = service::list_dealers(&state.db, &a.principal, f.region.as_deref()).await?;
    Ok(Json(json!({"dealers": dealers})))
}

async fn get_dealer(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Dealer>> {
    Ok(Json(
        service::get_dealer(&state.db, &a.principal, parse_id(&id, "dealer")?).await?,
    ))
}

async fn stock_in(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<StockInBody>,
) -> ApiResult<(StatusCode, Json<LedgerEntry>)> {
    let raw = RawEntry {
        date: b.date,
        product_id: Some(b.product_id.to_string()),
        quantity: Some(b.quantity.as_text()),
        unit: Some(b.unit),
        label_codes: b.label_codes,
        batch: b.batch,
        supplier: Some(b.supplier),
        ..RawEntry::default()
    };
    let entry = service::record_stock_in(&state.db, &a.principal, &a.actor(&ip), parse_id(&id, "dealer")?, raw).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn sale(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SaleBody>,
) -> ApiResult<(StatusCode, Json<LedgerEntry>)> {
    let raw = RawEntry {
        date: b.date,
        product_id: Some(b.product_id.to_string()),
        quantity: Some(b.quantity.as_text()),
        unit: Some(b.unit),
        label_codes: b.label_codes,
        batch: b.batch,
        supplier: None,
        buyer_name: b.buyer_name,
        buyer_id_number: b.buyer_id_number,
        buyer_phone: b.buyer_phone,
        buyer_village: Some(b.buyer_village),
        crop: b.crop,
    };
    let entry = service::record_sale(&state.db, &a.principal, &a.actor(&ip), parse_id(&id, "dealer")?, raw).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn reverse(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path((id, entry)): Path<(String, String)>,
    ApiJson(b): ApiJson<ReversalBody>,
) -> ApiResult<(StatusCode, Json<LedgerEntry>)> {
    let entry = service::reverse(
        &state.db,
        &a.principal,
        &a.actor(&ip),
        parse_id(&id, "dealer")?,
        parse_id(&entry, "entry")?,
        &b.reason,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn ledger(
    State(state): State<AppState>,
    a: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> ApiResult<Json<Value>> {
    let entries = service::ledger(&state.db, &a.principal, parse_id(&id, "dealer")?, &q).await?;
    Ok(Json(json!({"entries": entries})))
}

async fn stock(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let stock = service::stock(&state.db, &a.principal, parse_id(&id, "dealer")?).await?;
    Ok(Json(json!({"stock": stock})))
}

async fn import_csv(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> ApiResult<Response> {
    let dealer_id = parse_id(&id, "dealer")?;
    let is_csv = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/csv"));
    if !is_csv {
        // Role and ownership first, so a stranger learns nothing from the format check.
        service::writable_dealer(&state.db, &a.principal, dealer_id).await?;
        return Err(CoreError::malformed(
            "unsupported_content_type",
            "send the ledger as CSV with Content-Type: text/csv",
        )
        .into());
    }
    match import::import_ledger(&state.db, &a.principal, &a.actor(&ip), dealer_id, &body).await? {
        ImportOutcome::Imported(summary) => Ok((StatusCode::CREATED, Json(summary)).into_response()),
        ImportOutcome::Rejected(errors) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "invalid_ledger_file",
                "message": format!("{} errors; nothing was imported", errors.len()),
                "errors": errors,
            })),
        )
            .into_response()),
    }
}

async fn reveal_buyer(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path((id, entry)): Path<(String, String)>,
) -> ApiResult<Json<BuyerDetails>> {
    Ok(Json(
        service::reveal_buyer(
            &state.db,
            &a.principal,
            &a.actor(&ip),
            parse_id(&id, "dealer")?,
            parse_id(&entry, "entry")?,
        )
        .await?,
    ))
}

async fn stats_route(State(state): State<AppState>, a: Auth, ApiQuery(q): ApiQuery<StatsQuery>) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(CoreError::malformed("invalid_query", format!("format {other:?} is not json or csv")).into());
        }
    };
    let s = stats::sales_stats(&state.db, &a.principal, &q).await?;
    if !csv {
        return Ok(Json(s).into_response());
    }
    let mut resp = stats::stats_csv(&s)?.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"input-sales-{}.csv\"", s.region)) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn anomalies(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(q): ApiQuery<AnomalyQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"anomalies": service::anomalies(&state.db, &a.principal, &q).await?}),
    ))
}
