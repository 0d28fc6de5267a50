//! 农资经营台账 pages: a farm-input shop's stock, its real-name ledger and
//! the forms that write it (进货 stock in, 销售 sale, 冲销 reversal, CSV
//! import), and the supervision page officials read (化肥农药减量: sales per
//! child region and per month, anomalies, CSV export).
//!
//! Every read and write goes through the trace slice's ledger functions
//! with the viewer's principal, so who may see or write what is exactly
//! what the API allows, and the ledger shows buyers' ID numbers masked as
//! the API does. Forms post without JavaScript; a refused entry comes back
//! on its form with the reason in the viewer's language.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use shuxiang_core::CoreError;
use shuxiang_core::auth::{Principal, Scope};
use shuxiang_core::region::RegionCode;
use shuxiang_core::regions;
use shuxiang_trace::ledger::import::{self, ImportOutcome, LineError};
use shuxiang_trace::ledger::model::{EntryType, RawEntry};
use shuxiang_trace::ledger::service::{self, SUPERVISORS, WRITERS};
use shuxiang_trace::ledger::stats::{self, Group, STATS_READERS, StatsQuery, StatsRow};
use shuxiang_trace::ledger::store::{AnomalyKind, AnomalyQuery, Dealer, LedgerEntry, LedgerQuery};
use shuxiang_trace::products::{self, Product, ProductKind, ProductQuery};

use super::admin::form_status;
use super::common::{
    Chrome, PageError, PageForm, PageQuery, PageResult, Signed, encode_query_value, local_time, non_empty, render,
    texts_in,
};
use crate::error::AppError;
use crate::extract::ClientIp;
use crate::i18n::Lang;
use crate::state::AppState;

/// Ledger entries per page.
const PAGE_SIZE: u64 = 50;
/// Products offered in the forms' select (the registry's own maximum).
const MAX_PRODUCTS: u64 = 1000;
/// Anomalies listed on the supervision page.
const MAX_ANOMALIES: u64 = 200;

pub struct InputsTexts {
    pub dealers: &'static str,
    pub no_dealers: &'static str,
    pub name: &'static str,
    pub licence: &'static str,
    pub region: &'static str,
    pub address: &'static str,
    pub supervision: &'static str,
    pub stock: &'static str,
    pub no_stock: &'static str,
    pub product: &'static str,
    pub kind: &'static str,
    pub quantity: &'static str,
    pub unit: &'static str,
    pub ledger: &'static str,
    pub date: &'static str,
    pub entry_type: &'static str,
    pub stock_in: &'static str,
    pub sale: &'static str,
    pub reversal: &'static str,
    pub label_codes: &'static str,
    pub label_codes_hint: &'static str,
    pub batch: &'static str,
    pub supplier: &'static str,
    pub buyer: &'static str,
    pub buyer_name: &'static str,
    pub buyer_id_number: &'static str,
    pub buyer_phone: &'static str,
    pub buyer_village: &'static str,
    pub village: &'static str,
    pub crop: &'static str,
    pub restricted_hint: &'static str,
    pub reason: &'static str,
    pub reverse: &'static str,
    pub reversed: &'static str,
    pub record: &'static str,
    pub import_csv: &'static str,
    pub import_hint: &'static str,
    pub import: &'static str,
    pub line: &'static str,
    pub field: &'static str,
    pub problem: &'static str,
    pub saved: &'static str,
    pub imported: &'static str,
    pub restricted: &'static str,
    pub banned: &'static str,
    pub pesticide: &'static str,
    pub fertilizer: &'static str,
    pub all_kinds: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub show: &'static str,
    pub by_region: &'static str,
    pub by_month: &'static str,
    pub month: &'static str,
    pub kg: &'static str,
    pub litres: &'static str,
    pub pieces: &'static str,
    pub sales: &'static str,
    pub no_sales: &'static str,
    pub anomalies: &'static str,
    pub no_anomalies: &'static str,
    pub at: &'static str,
    pub dealer: &'static str,
    pub detail: &'static str,
    pub export_csv: &'static str,
    pub up: &'static str,
}

static ZH: InputsTexts = InputsTexts {
    dealers: "农资经营店",
    no_dealers: "没有可查看的农资经营店。",
    name: "店名",
    licence: "经营许可证号",
    region: "所在地",
    address: "地址",
    supervision: "农资监管",
    stock: "库存",
    no_stock: "暂无库存记录。",
    product: "产品",
    kind: "类别",
    quantity: "数量",
    unit: "单位",
    ledger: "经营台账",
    date: "日期",
    entry_type: "类型",
    stock_in: "进货",
    sale: "销售",
    reversal: "冲销",
    label_codes: "标签码（每行一个）",
    label_codes_hint: "可扫码录入；未填数量时按标签码个数计件。",
    batch: "生产批号",
    supplier: "供货单位",
    buyer: "购买人",
    buyer_name: "购买人姓名",
    buyer_id_number: "身份证号",
    buyer_phone: "联系电话",
    buyer_village: "使用地村代码（12位）",
    village: "使用地",
    crop: "作物/用途",
    restricted_hint: "限用农药须填写购买人真实姓名和身份证号；禁用农药不得销售。",
    reason: "冲销原因",
    reverse: "冲销",
    reversed: "已冲销",
    record: "记录",
    import_csv: "导入台账（CSV）",
    import_hint: "首行为列名：type,date,product_id,quantity,unit,label_codes,batch,supplier,buyer_name,buyer_id_number,buyer_phone,buyer_village,crop；任一行有误则全部不导入。",
    import: "导入",
    line: "行",
    field: "字段",
    problem: "问题",
    saved: "已记录。",
    imported: "已导入。",
    restricted: "限用",
    banned: "禁用",
    pesticide: "农药",
    fertilizer: "肥料",
    all_kinds: "全部",
    from: "起始日期",
    to: "截止日期",
    show: "查询",
    by_region: "分地区销量",
    by_month: "逐月销量",
    month: "月份",
    kg: "千克",
    litres: "升",
    pieces: "件",
    sales: "笔数",
    no_sales: "该时段没有销售记录。",
    anomalies: "异常",
    no_anomalies: "没有异常。",
    at: "时间",
    dealer: "经营店",
    detail: "详情",
    export_csv: "导出 CSV",
    up: "上一级",
};

static EN: InputsTexts = InputsTexts {
    dealers: "Farm-input shops",
    no_dealers: "No farm-input shops you may see.",
    name: "Shop",
    licence: "Licence number",
    region: "Region",
    address: "Address",
    supervision: "Farm-input supervision",
    stock: "Stock",
    no_stock: "No stock recorded yet.",
    product: "Product",
    kind: "Kind",
    quantity: "Quantity",
    unit: "Unit",
    ledger: "Ledger",
    date: "Date",
    entry_type: "Type",
    stock_in: "Stock in",
    sale: "Sale",
    reversal: "Reversal",
    label_codes: "Label codes (one per line)",
    label_codes_hint: "Scan them in; without a quantity each code counts as one piece.",
    batch: "Production batch",
    supplier: "Supplier",
    buyer: "Buyer",
    buyer_name: "Buyer's real name",
    buyer_id_number: "ID number",
    buyer_phone: "Phone",
    buyer_village: "Village of use (12-digit code)",
    village: "Village of use",
    crop: "Crop or use",
    restricted_hint: "Restricted-use pesticides need the buyer's real name and ID number; banned ones may not be sold.",
    reason: "Reason",
    reverse: "Reverse",
    reversed: "reversed",
    record: "Record",
    import_csv: "Import a ledger (CSV)",
    import_hint: "Header row: type,date,product_id,quantity,unit,label_codes,batch,supplier,buyer_name,buyer_id_number,buyer_phone,buyer_village,crop; one bad line and nothing is imported.",
    import: "Import",
    line: "Line",
    field: "Field",
    problem: "Problem",
    saved: "Recorded.",
    imported: "Imported.",
    restricted: "restricted",
    banned: "banned",
    pesticide: "Pesticide",
    fertilizer: "Fertilizer",
    all_kinds: "All",
    from: "From",
    to: "To",
    show: "Show",
    by_region: "Sales by region",
    by_month: "Sales by month",
    month: "Month",
    kg: "kg",
    litres: "L",
    pieces: "pieces",
    sales: "Sales",
    no_sales: "No sales in this period.",
    anomalies: "Anomalies",
    no_anomalies: "No anomalies.",
    at: "At",
    dealer: "Shop",
    detail: "Detail",
    export_csv: "Export CSV",
    up: "Up one level",
};

fn texts(lang: Lang) -> &'static InputsTexts {
    texts_in(lang, &ZH, &EN)
}

fn kind_label(kind: ProductKind, lang: Lang) -> &'static str {
    match kind {
        ProductKind::Pesticide => texts(lang).pesticide,
        ProductKind::Fertilizer => texts(lang).fertilizer,
    }
}

fn anomaly_label(kind: AnomalyKind, lang: Lang) -> &'static str {
    match (kind, lang) {
        (AnomalyKind::BannedProductSale, Lang::Zh) => "销售禁用农药（已拒绝）",
        (AnomalyKind::BannedProductSale, Lang::En) => "Banned product sale (refused)",
        (AnomalyKind::LabelCodeSoldTwice, Lang::Zh) => "标签码重复销售（已拒绝）",
        (AnomalyKind::LabelCodeSoldTwice, Lang::En) => "Label code sold twice (refused)",
        (AnomalyKind::RestrictedWithoutBuyerId, Lang::Zh) => "限用农药缺少购买人身份（已拒绝）",
        (AnomalyKind::RestrictedWithoutBuyerId, Lang::En) => "Restricted product without buyer ID (refused)",
        (AnomalyKind::NegativeStock, Lang::Zh) => "库存为负",
        (AnomalyKind::NegativeStock, Lang::En) => "Negative stock",
    }
}

/// The units the forms offer: the value the ledger parses, and its label.
const UNITS: [(&str, &str, &str); 6] = [
    ("kg", "千克 kg", "kg"),
    ("g", "克 g", "g"),
    ("t", "吨 t", "t"),
    ("l", "升 L", "L"),
    ("ml", "毫升 mL", "mL"),
    ("piece", "件/瓶/袋", "pieces"),
];

fn unit_label(unit: &str, lang: Lang) -> String {
    UNITS
        .iter()
        .find(|u| u.0 == unit)
        .map(|u| if lang == Lang::Zh { u.1 } else { u.2 })
        .unwrap_or(unit)
        .to_owned()
}

/// A decimal without trailing zeros: 9.5, not 9.500.
fn amount(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

// ---- errors on forms ----

/// A refusal shown on the form that caused it.
pub struct FormError {
    /// What went wrong, in the viewer's language.
    pub text: String,
    /// The service's own message (names the value), for the record.
    pub detail: String,
}

/// The field a ledger error names: its messages are `field: why`.
fn field_label(field: &str, lang: Lang) -> Option<&'static str> {
    let t = texts(lang);
    Some(match field {
        "product_id" => t.product,
        "quantity" => t.quantity,
        "unit" => t.unit,
        "date" => t.date,
        "label_codes" => t.label_codes,
        "batch" => t.batch,
        "supplier" => t.supplier,
        "buyer_name" => t.buyer_name,
        "buyer_id_number" => t.buyer_id_number,
        "buyer_phone" => t.buyer_phone,
        "buyer_village" => t.buyer_village,
        "crop" => t.crop,
        "reason" => t.reason,
        _ => return None,
    })
}

/// The reason for a refusal in the viewer's language, by the error's code.
fn explain(code: &str, lang: Lang) -> Option<&'static str> {
    let zh = lang == Lang::Zh;
    Some(match code {
        "banned_product" if zh => "该产品为禁用农药，不得销售。此次销售尝试已报告县级农业农村部门。",
        "banned_product" => {
            "This product is banned (禁用) and may not be sold. The attempt has been reported to the county."
        }
        "buyer_id_required" if zh => "限用农药须登记购买人真实姓名和身份证号。此次销售尝试已报告县级农业农村部门。",
        "buyer_id_required" => {
            "A restricted-use (限用) product needs the buyer's real name and ID number. The attempt has been reported to the county."
        }
        "label_code_sold" if zh => "该标签码已经售出，不能重复销售。此次销售尝试已报告县级农业农村部门。",
        "label_code_sold" => "This label code has already been sold. The attempt has been reported to the county.",
        "invalid_id_number" if zh => "身份证号无效（应为18位，校验位正确）。",
        "invalid_id_number" => "The ID number is not valid (18 characters with a correct check character).",
        "missing_field" if zh => "请填写必填项。",
        "missing_field" => "A required field is empty.",
        "invalid_quantity" if zh => "数量应为大于零的数字。",
        "invalid_quantity" => "The quantity must be a number above zero.",
        "invalid_unit" if zh => "单位无效。",
        "invalid_unit" => "The unit is not valid.",
        "invalid_date" if zh => "日期应为 YYYY-MM-DD，且不晚于今天。",
        "invalid_date" => "The date must be YYYY-MM-DD and not in the future.",
        "invalid_label_code" | "label_code_mismatch" | "duplicate_label_code" if zh => {
            "标签码无效、重复，或不属于该产品的登记证号。"
        }
        "invalid_label_code" | "label_code_mismatch" | "duplicate_label_code" => {
            "A label code is invalid, repeated, or does not belong to this product's registration."
        }
        "invalid_product" | "unknown_product" if zh => "请选择已登记的产品。",
        "invalid_product" | "unknown_product" => "Choose a registered product.",
        "invalid_village" | "unknown_village" if zh => "使用地应为已知的12位村代码。",
        "invalid_village" | "unknown_village" => "The village of use must be a known 12-digit village code.",
        "invalid_phone" if zh => "电话号码应为5至20位数字。",
        "invalid_phone" => "A phone number is 5 to 20 digits.",
        "invalid_text" if zh => "文字过长或含有控制字符。",
        "invalid_text" => "The text is too long or holds control characters.",
        "already_reversed" if zh => "该记录已经冲销过。",
        "already_reversed" => "This entry is already reversed.",
        "cannot_reverse_reversal" if zh => "冲销记录不能再冲销，请重新录入正确的记录。",
        "cannot_reverse_reversal" => "A reversal cannot be reversed; record the entry again instead.",
        _ => return None,
    })
}

/// The error as its form shows it; faults and denials become error pages.
fn on_form(e: CoreError, lang: Lang) -> Result<(StatusCode, FormError), PageError> {
    let e = AppError::from(e);
    let status = form_status(&e);
    if status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        )
    {
        return Err(e.into());
    }
    let detail = e.public_message();
    let field = detail.split_once(": ").and_then(|(f, _)| field_label(f, lang));
    let text = match (explain(e.code(), lang), field) {
        (Some(why), Some(f)) => format!("{f}{}{why}", if lang == Lang::Zh { "：" } else { ": " }),
        (Some(why), None) => why.to_owned(),
        (None, _) => detail.clone(),
    };
    Ok((status, FormError { text, detail }))
}

// ---- the list of shops ----

pub struct DealerRow {
    pub id: i64,
    pub name: String,
    pub licence: String,
    pub region: String,
    pub address: String,
}

#[derive(Template)]
#[template(path = "inputs_dealers.html")]
struct DealersPage {
    c: Chrome,
    it: &'static InputsTexts,
    rows: Vec<DealerRow>,
    /// Where the supervision link leads (viewers who may read statistics).
    supervision_href: Option<String>,
}

#[derive(Deserialize)]
pub struct RegionParam {
    region: Option<String>,
}

/// Region names by code, for the codes given.
async fn names_of(state: &AppState, codes: impl IntoIterator<Item = String>) -> PageResult<HashMap<String, String>> {
    let mut parsed: Vec<RegionCode> = codes.into_iter().filter_map(|c| RegionCode::parse(&c).ok()).collect();
    parsed.sort();
    parsed.dedup();
    Ok(regions::names(&state.db, &parsed)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .collect())
}

/// `GET /dealers?region=`: the shops of a region (officials), or a dealer's own.
pub async fn dealers(State(state): State<AppState>, s: Signed, PageQuery(q): PageQuery<RegionParam>) -> PageResult {
    let p = &s.auth.principal;
    let region = non_empty(&q.region);
    let list = service::list_dealers(&state.db, p, region)
        .await
        .map_err(AppError::from)?;
    let names = names_of(&state, list.iter().map(|d| d.region.clone())).await?;
    let rows = list
        .into_iter()
        .map(|d| DealerRow {
            region: names.get(&d.region).cloned().unwrap_or_else(|| d.region.clone()),
            id: d.id,
            name: d.name,
            licence: d.licence_number,
            address: d.address,
        })
        .collect();
    let supervision_href = p
        .grants
        .iter()
        .any(|g| SUPERVISORS.contains(&g.role))
        .then(|| match region {
            Some(r) => format!("/inputs?region={}", encode_query_value(r)),
            None => "/inputs".to_owned(),
        });
    render(
        StatusCode::OK,
        &DealersPage {
            c: s.chrome(),
            it: texts(s.lang),
            rows,
            supervision_href,
        },
    )
}

// ---- one shop ----

pub struct StockRow {
    pub product: String,
    pub kind: &'static str,
    pub quantity: String,
    pub unit: String,
    pub negative: bool,
}

pub struct EntryRow {
    pub id: i64,
    pub date: String,
    pub entry_type: &'static str,
    pub is_reversal: bool,
    pub product: String,
    pub quantity: String,
    pub unit: String,
    pub label_codes: Vec<String>,
    pub batch: String,
    /// The supplier of a stock-in, or the buyer of a sale (ID masked).
    pub party: String,
    pub village: String,
    pub crop: String,
    pub reason: String,
    pub can_reverse: bool,
    pub reversed: bool,
}

pub struct ProductOption {
    pub id: i64,
    pub label: String,
}

/// The fields of the stock-in and sale forms, kept to show again with an error.
#[derive(Default, Deserialize)]
pub struct EntryForm {
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    quantity: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    label_codes: String,
    #[serde(default)]
    batch: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    supplier: String,
    #[serde(default)]
    buyer_name: String,
    #[serde(default)]
    buyer_id_number: String,
    #[serde(default)]
    buyer_phone: String,
    #[serde(default)]
    buyer_village: String,
    #[serde(default)]
    crop: String,
}

impl EntryForm {
    /// The form as the ledger's raw entry. Label codes come one per line
    /// (scanners end each with a newline) or separated by commas; without a
    /// quantity each code is one piece, as a scanned shelf is counted.
    fn raw(&self, entry_type: EntryType) -> RawEntry {
        let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let label_codes: Vec<String> = self
            .label_codes
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '，' | '；'))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let (quantity, unit) = match opt(&self.quantity) {
            None if !label_codes.is_empty() => (Some(label_codes.len().to_string()), Some("piece".to_owned())),
            q => (q, opt(&self.unit)),
        };
        let sale = entry_type == EntryType::Sale;
        RawEntry {
            date: opt(&self.date),
            product_id: opt(&self.product_id),
            quantity,
            unit,
            label_codes,
            batch: opt(&self.batch),
            supplier: opt(&self.supplier).filter(|_| !sale),
            buyer_name: opt(&self.buyer_name).filter(|_| sale),
            buyer_id_number: opt(&self.buyer_id_number).filter(|_| sale),
            buyer_phone: opt(&self.buyer_phone).filter(|_| sale),
            buyer_village: opt(&self.buyer_village).filter(|_| sale),
            crop: opt(&self.crop).filter(|_| sale),
        }
    }
}

#[derive(Default, Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csv: String,
}

#[derive(Default, Deserialize)]
pub struct ReversalForm {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub struct DealerParams {
    /// Entries older than this id (paging back).
    before: Option<i64>,
    /// What the last form post did: `stock_in`, `sale`, `reversal`, `import`.
    done: Option<String>,
}

/// What a failed form post leaves on the shop's page.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    stock_form: EntryForm,
    sale_form: EntryForm,
    stock_error: Option<FormError>,
    sale_error: Option<FormError>,
    import_csv: String,
    import_error: Option<FormError>,
    import_lines: Vec<LineError>,
    /// The entry whose reversal was refused, and why.
    reversal_error: Option<(i64, FormError)>,
}

#[derive(Template)]
#[template(path = "inputs_dealer.html")]
struct DealerPage {
    c: Chrome,
    it: &'static InputsTexts,
    dealer: Dealer,
    region_name: String,
    stock: Vec<StockRow>,
    entries: Vec<EntryRow>,
    newest_href: Option<String>,
    next_href: Option<String>,
    /// The viewer keeps this shop's ledger: the forms show.
    can_write: bool,
    products: Vec<ProductOption>,
    units: Vec<(&'static str, String)>,
    notice: Option<&'static str>,
    o: Outcome,
}

fn parse_id(raw: &str, what: &str) -> Result<i64, PageError> {
    raw.parse()
        .map_err(|_| PageError::not_found(format!("no {what} {raw}")))
}

/// The owner of the shop, holding role dealer over it, writes its ledger.
fn may_write(p: &Principal, dealer: &Dealer) -> bool {
    dealer
        .region_code()
        .is_ok_and(|r| p.user_id == dealer.owner_user_id && p.can(WRITERS, &r))
}

fn product_label(p: &Product, lang: Lang) -> String {
    let t = texts(lang);
    let mut label = p.name.clone();
    if let Some(n) = &p.registration_number {
        label.push_str(&format!(" {n}"));
    }
    if p.banned {
        label.push_str(&format!(" [{}]", t.banned));
    } else if p.restricted_use {
        label.push_str(&format!(" [{}]", t.restricted));
    }
    label
}

fn party_of(e: &LedgerEntry) -> String {
    match e.entry_type {
        EntryType::StockIn => e.supplier.clone().unwrap_or_default(),
        EntryType::Sale => [&e.buyer_name, &e.buyer_id_number, &e.buyer_phone]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" · "),
    }
}

pub async fn dealer_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<DealerParams>,
) -> PageResult {
    let id = parse_id(&id, "dealer")?;
    let notice = match q.done.as_deref() {
        Some("import") => Some(texts(s.lang).imported),
        Some(_) => Some(texts(s.lang).saved),
        None => None,
    };
    render_dealer(&state, &s, id, q.before, notice, Outcome::default()).await
}

async fn render_dealer(
    state: &AppState,
    s: &Signed,
    id: i64,
    before: Option<i64>,
    notice: Option<&'static str>,
    o: Outcome,
) -> PageResult {
    let lang = s.lang;
    let it = texts(lang);
    let p = &s.auth.principal;
    let dealer = service::get_dealer(&state.db, p, id).await.map_err(AppError::from)?;
    let stock = service::stock(&state.db, p, id).await.map_err(AppError::from)?;
    let query = LedgerQuery {
        before_id: before,
        limit: Some(PAGE_SIZE),
        ..LedgerQuery::default()
    };
    let ledger = service::ledger(&state.db, p, id, &query)
        .await
        .map_err(AppError::from)?;
    let all_products = products::list(
        &state.db,
        &ProductQuery {
            limit: Some(MAX_PRODUCTS),
            ..ProductQuery::default()
        },
    )
    .await
    .map_err(AppError::from)?;
    let product_names: HashMap<i64, String> = all_products.iter().map(|p| (p.id, p.name.clone())).collect();
    let name_of = |id: i64| product_names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
    let names = names_of(
        state,
        ledger
            .iter()
            .filter_map(|e| e.buyer_village.clone())
            .chain([dealer.region.clone()]),
    )
    .await?;
    let can_write = may_write(p, &dealer);
    let reversed: BTreeSet<i64> = ledger.iter().filter_map(|e| e.reverses_id).collect();
    let entries = ledger
        .iter()
        .map(|e| {
            let village = e
                .buyer_village
                .as_ref()
                .map(|v| names.get(v).map(|n| format!("{n} {v}")).unwrap_or_else(|| v.clone()))
                .unwrap_or_default();
            EntryRow {
                id: e.id,
                date: e.date.clone(),
                entry_type: match (e.reverses_id, e.entry_type) {
                    (Some(_), _) => it.reversal,
                    (None, EntryType::StockIn) => it.stock_in,
                    (None, EntryType::Sale) => it.sale,
                },
                is_reversal: e.reverses_id.is_some(),
                product: name_of(e.product_id),
                quantity: e.quantity.clone(),
                unit: unit_label(&e.unit, lang),
                label_codes: e.label_codes.clone(),
                batch: e.batch.clone().unwrap_or_default(),
                party: party_of(e),
                village,
                crop: e.crop.clone().unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                can_reverse: can_write && e.reverses_id.is_none() && !reversed.contains(&e.id),
                reversed: reversed.contains(&e.id),
            }
        })
        .collect();
    let stock = stock
        .iter()
        .map(|l| StockRow {
            product: name_of(l.product_id),
            kind: kind_label(l.product_kind, lang),
            quantity: amount(l.quantity),
            unit: unit_label(l.unit, lang),
            negative: l.base_amount < 0,
        })
        .collect();
    let next_href = (ledger.len() as u64 == PAGE_SIZE)
        .then(|| ledger.last().map(|e| format!("/dealers/{id}?before={}", e.id)))
        .flatten();
    render(
        o.status.unwrap_or(StatusCode::OK),
        &DealerPage {
            c: s.chrome(),
            it,
            region_name: names
                .get(&dealer.region)
                .cloned()
                .unwrap_or_else(|| dealer.region.clone()),
            dealer,
            stock,
            entries,
            newest_href: before.map(|_| format!("/dealers/{id}")),
            next_href,
            can_write,
            products: all_products
                .iter()
                .map(|p| ProductOption {
                    id: p.id,
                    label: product_label(p, lang),
                })
                .collect(),
            units: UNITS.iter().map(|u| (u.0, unit_label(u.0, lang))).collect(),
            notice,
            o,
        },
    )
}

/// Where a successful post sends the browser: the shop's page, newest first.
fn back_to(id: i64, done: &str) -> PageResult {
    Ok(Redirect::to(&format!("/dealers/{id}?done={done}")).into_response())
}

/// `POST /dealers/{id}/stock-in`: records a stock-in from the form.
pub async fn stock_in(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path(id): Path<String>,
    PageForm(form): PageForm<EntryForm>,
) -> PageResult {
    record(&state, &s, &ip, &id, form, EntryType::StockIn).await
}

/// `POST /dealers/{id}/sales`: records a real-name sale from the form.
pub async fn sale(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path(id): Path<String>,
    PageForm(form): PageForm<EntryForm>,
) -> PageResult {
    record(&state, &s, &ip, &id, form, EntryType::Sale).await
}

/// Records a stock-in or a sale; a refused one comes back on its own form
/// with the reason, the other form left empty.
async fn record(
    state: &AppState,
    s: &Signed,
    ip: &ClientIp,
    id: &str,
    form: EntryForm,
    entry_type: EntryType,
) -> PageResult {
    let id = parse_id(id, "dealer")?;
    let raw = form.raw(entry_type);
    let (caller, actor) = (&s.auth.principal, &s.auth.actor(ip));
    let recorded = match entry_type {
        EntryType::StockIn => service::record_stock_in(&state.db, caller, actor, id, raw).await,
        EntryType::Sale => service::record_sale(&state.db, caller, actor, id, raw).await,
    };
    let Err(e) = recorded else {
        return back_to(id, entry_type.as_str());
    };
    let (status, error) = on_form(e, s.lang)?;
    let mut o = Outcome {
        status: Some(status),
        ..Outcome::default()
    };
    match entry_type {
        EntryType::StockIn => (o.stock_form, o.stock_error) = (form, Some(error)),
        EntryType::Sale => (o.sale_form, o.sale_error) = (form, Some(error)),
    }
    render_dealer(state, s, id, None, None, o).await
}

/// `POST /dealers/{id}/ledger/{entry}/reversal`: reverses one entry.
pub async fn reverse(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path((id, entry)): Path<(String, String)>,
    PageForm(form): PageForm<ReversalForm>,
) -> PageResult {
    let id = parse_id(&id, "dealer")?;
    let entry = parse_id(&entry, "entry")?;
    match service::reverse(
        &state.db,
        &s.auth.principal,
        &s.auth.actor(&ip),
        id,
        entry,
        &form.reason,
    )
    .await
    {
        Ok(_) => back_to(id, "reversal"),
        Err(e) => {
            let (status, error) = on_form(e, s.lang)?;
            let o = Outcome {
                status: Some(status),
                reversal_error: Some((entry, error)),
                ..Outcome::default()
            };
            render_dealer(&state, &s, id, None, None, o).await
        }
    }
}

/// `POST /dealers/{id}/import`: imports a pasted CSV ledger, all or nothing.
pub async fn import_csv(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path(id): Path<String>,
    PageForm(form): PageForm<ImportForm>,
) -> PageResult {
    let id = parse_id(&id, "dealer")?;
    let outcome = import::import_ledger(&state.db, &s.auth.principal, &s.auth.actor(&ip), id, &form.csv).await;
    let o = match outcome {
        Ok(ImportOutcome::Imported(_)) => return back_to(id, "import"),
        Ok(ImportOutcome::Rejected(lines)) => Outcome {
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            import_csv: form.csv,
            import_lines: lines,
            ..Outcome::default()
        },
        Err(e) => {
            let (status, error) = on_form(e, s.lang)?;
            Outcome {
                status: Some(status),
                import_csv: form.csv,
                import_error: Some(error),
                ..Outcome::default()
            }
        }
    };
    render_dealer(&state, &s, id, None, None, o).await
}

// ---- supervision ----

pub struct SumRow {
    pub label: String,
    /// The drill-down link, for region rows below a village.
    pub href: Option<String>,
    pub kind: &'static str,
    pub kg: String,
    pub litres: String,
    pub pieces: String,
    pub sales: i64,
}

pub struct AnomalyRow {
    pub at: String,
    pub kind: &'static str,
    pub dealer_id: i64,
    pub dealer: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "inputs_supervision.html")]
struct SupervisionPage {
    c: Chrome,
    it: &'static InputsTexts,
    region_code: String,
    region_name: String,
    up_href: Option<String>,
    from: String,
    to: String,
    kind: String,
    /// The child level's name (county, township, village); none at a village.
    child_level: Option<&'static str>,
    by_region: Vec<SumRow>,
    by_month: Vec<SumRow>,
    charts: Vec<String>,
    /// `None` when the viewer does not supervise shops (village staff, experts).
    anomalies: Option<Vec<AnomalyRow>>,
    dealers_href: String,
    export_href: String,
}

#[derive(Deserialize)]
pub struct SupervisionParams {
    region: Option<String>,
    from: Option<String>,
    to: Option<String>,
    kind: Option<String>,
}

/// The viewer's narrowest scope under a role that reads statistics.
fn default_region(p: &Principal) -> String {
    p.grants
        .iter()
        .filter(|g| STATS_READERS.contains(&g.role))
        .filter_map(|g| match &g.scope {
            Scope::Region(c) => Some(c.to_string()),
            Scope::All => None,
        })
        .max_by_key(String::len)
        .unwrap_or_else(|| "36".to_owned())
}

fn sum_row(r: &StatsRow, label: String, href: Option<String>, lang: Lang) -> SumRow {
    SumRow {
        label,
        href,
        kind: kind_label(r.kind, lang),
        kg: amount(r.kg),
        litres: amount(r.litres),
        pieces: r.pieces.to_string(),
        sales: r.sales,
    }
}

/// The anomaly's detail as supervisors read it: product, date and the
/// masked buyer the refused attempt named.
fn anomaly_detail(a: &shuxiang_trace::ledger::store::Anomaly) -> String {
    let d = &a.detail;
    let field = |k: &str| d.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let mut parts: Vec<String> = [
        field("product_name"),
        field("registration_number"),
        field("date"),
        field("quantity").map(|q| format!("{q} {}", field("unit").unwrap_or_default())),
        field("buyer_name"),
        field("buyer_id_number"),
        a.label_code.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(balance) = d.get("balance").and_then(|v| v.as_i64()) {
        parts.push(balance.to_string());
    }
    parts.join(" · ")
}

/// `GET /inputs`: sales of pesticides and fertilizers under a region over
/// a period, per child region and per month, with the anomalies of its shops.
pub async fn supervision(
    State(state): State<AppState>,
    s: Signed,
    PageQuery(q): PageQuery<SupervisionParams>,
) -> PageResult {
    let lang = s.lang;
    let it = texts(lang);
    let p = &s.auth.principal;
    let region = non_empty(&q.region)
        .map(str::to_owned)
        .unwrap_or_else(|| default_region(p));
    let kind = match non_empty(&q.kind) {
        None => None,
        Some("pesticide") => Some(ProductKind::Pesticide),
        Some("fertilizer") => Some(ProductKind::Fertilizer),
        Some(other) => {
            return Err(CoreError::malformed(
                "invalid_query",
                format!("kind {other:?} is not pesticide or fertilizer"),
            )
            .into());
        }
    };
    let from = non_empty(&q.from).map(str::to_owned);
    let to = non_empty(&q.to).map(str::to_owned);
    let mut query = StatsQuery {
        region: Some(region),
        from: from.clone(),
        to: to.clone(),
        group: None,
        kind,
        format: None,
    };
    let by_child = stats::sales_stats(&state.db, p, &query).await.map_err(AppError::from)?;
    query.group = Some(Group::Month);
    let monthly = stats::sales_stats(&state.db, p, &query).await.map_err(AppError::from)?;
    let code = RegionCode::parse(&by_child.region).map_err(AppError::from)?;

    // Links keep the period and kind while moving between regions.
    let mut period = String::new();
    for (k, v) in [("from", &from), ("to", &to)] {
        if let Some(v) = v {
            period.push_str(&format!("&{k}={}", encode_query_value(v)));
        }
    }
    if let Some(k) = kind {
        period.push_str(&format!("&kind={}", k.as_str()));
    }
    let filter = |region: &str| format!("/inputs?region={}{period}", encode_query_value(region));
    let child_level = (by_child.group != Group::Month)
        .then(|| code.level().child().map(|l| lang.level_label(l)))
        .flatten();
    let by_region = if by_child.group == Group::Month {
        Vec::new()
    } else {
        by_child
            .rows
            .iter()
            .map(|r| {
                let label = match &r.name {
                    Some(n) => format!("{n} {}", r.group),
                    None => r.group.clone(),
                };
                sum_row(r, label, Some(filter(&r.group)), lang)
            })
            .collect()
    };
    let by_month: Vec<SumRow> = monthly
        .rows
        .iter()
        .map(|r| sum_row(r, r.group.clone(), None, lang))
        .collect();
    let charts = monthly_charts(&monthly.rows, it);

    let anomalies = if p.can(SUPERVISORS, &code) {
        let list = service::anomalies(
            &state.db,
            p,
            &AnomalyQuery {
                region: Some(code.to_string()),
                limit: Some(MAX_ANOMALIES),
                ..AnomalyQuery::default()
            },
        )
        .await
        .map_err(AppError::from)?;
        Some(
            list.iter()
                .map(|a| (local_time(&a.at), a))
                // The period is in local business days, as the ledger's dates are.
                .filter(|(at, _)| {
                    let day = &at[..10];
                    from.as_deref().is_none_or(|f| day >= f) && to.as_deref().is_none_or(|t| day <= t)
                })
                .map(|(at, a)| AnomalyRow {
                    at,
                    kind: anomaly_label(a.kind, lang),
                    dealer_id: a.dealer_id,
                    dealer: a.dealer_name.clone(),
                    detail: anomaly_detail(a),
                })
                .collect(),
        )
    } else {
        None
    };

    // The API's own export, so the file matches what the API would give.
    let export_href = format!(
        "/api/v1/inputs/stats?region={}{period}&format=csv",
        encode_query_value(&by_child.region)
    );
    render(
        StatusCode::OK,
        &SupervisionPage {
            c: s.chrome(),
            it,
            up_href: code
                .parent()
                .filter(|parent| p.can(STATS_READERS, parent))
                .map(|parent| filter(parent.as_str())),
            region_code: by_child.region.clone(),
            region_name: by_child.region_name.clone(),
            from: from.clone().unwrap_or_default(),
            to: to.clone().unwrap_or_default(),
            kind: kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
            child_level,
            by_region,
            by_month,
            charts,
            anomalies,
            dealers_href: format!("/dealers?region={}", encode_query_value(&by_child.region)),
            export_href,
        },
    )
}

/// Bars of the monthly sales: one chart per unit that has any, since kg,
/// litres and pieces do not add up.
fn monthly_charts(rows: &[StatsRow], it: &InputsTexts) -> Vec<String> {
    let mut months: BTreeMap<&str, [f64; 3]> = BTreeMap::new();
    for r in rows {
        let m = months.entry(r.group.as_str()).or_default();
        m[0] += r.kg;
        m[1] += r.litres;
        m[2] += r.pieces as f64;
    }
    let labels: Vec<String> = months.keys().map(|m| (*m).to_owned()).collect();
    [it.kg, it.litres, it.pieces]
        .into_iter()
        .enumerate()
        .filter_map(|(i, unit)| {
            let values: Vec<f64> = months.values().map(|v| v[i]).collect();
            values
                .iter()
                .any(|v| *v > 0.0)
                .then(|| crate::svgchart::bars(&labels, &values, unit))
        })
        .collect()
}
