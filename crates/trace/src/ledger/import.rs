//! CSV import of a shop's existing ledger (导入台账), all or nothing: every
//! line is checked first and every error is reported with its line and
//! field; only a file without errors is written, in one transaction.
//!
//! The file is UTF-8 (a BOM is ignored) with a header row naming columns in
//! any order:
//!
//! | column | required | content |
//! |---|---|---|
//! | `type` | yes | `stock_in` or `sale` (also 进货 / 销售) |
//! | `date` | yes | business date, `YYYY-MM-DD` |
//! | `product_id` | yes | id in the product registry |
//! | `quantity` | yes | positive decimal |
//! | `unit` | yes | `t`, `kg`, `g`, `l`, `ml`, `piece` (or 吨, 千克, 克, 升, 毫升, 瓶, 袋, 件…) |
//! | `label_codes` | no | pesticide label codes separated by `;`, `\|` or spaces |
//! | `batch` | no | 生产批号 production batch |
//! | `supplier` | stock in | who delivered |
//! | `buyer_name`, `buyer_id_number`, `buyer_phone` | restricted sales: name and ID | the buyer |
//! | `buyer_village` | sales | 12-digit village code where the inputs are used |
//! | `crop` | no | crop or use |
//!
//! The same rules as for entries posted one by one apply, except that a
//! refused line (a banned product, a restricted one without ID, a label code
//! already sold) is reported as a line error and raises no anomaly: the file
//! is a record of the past being corrected before import, not a sale being
//! attempted. Stock that is negative after the import is flagged once per
//! product, as imported history often starts part-way through.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde::Serialize;
use serde_json::json;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{Actor, Principal};
use shuxiang_core::db::Db;
use shuxiang_core::{CoreError, RegionCode};

use super::model::{Dimension, Draft, EntryType, FieldError, RawEntry, product_rules, validate_draft};
use super::service::{check_stock, product_of, village_exists, writable_dealer};
use super::store::{self, LedgerEntry};
use crate::products::Product;

/// Most data lines one import may hold.
pub const MAX_LINES: usize = 20_000;
/// The columns an import file may have.
pub const COLUMNS: [&str; 13] = [
    "type",
    "date",
    "product_id",
    "quantity",
    "unit",
    "label_codes",
    "batch",
    "supplier",
    "buyer_name",
    "buyer_id_number",
    "buyer_phone",
    "buyer_village",
    "crop",
];
const REQUIRED: [&str; 5] = ["type", "date", "product_id", "quantity", "unit"];

/// One refused value of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line of the file (the header is line 1).
    pub line: u64,
    pub field: String,
    pub error: String,
    pub message: String,
}

impl LineError {
    fn new(line: u64, field: &str, error: &str, message: impl Into<String>) -> Self {
        Self {
            line,
            field: field.into(),
            error: error.into(),
            message: message.into(),
        }
    }

    fn from_field(line: u64, e: FieldError) -> Self {
        Self::new(line, e.field, e.code, e.message)
    }
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSummary {
    pub stock_in: usize,
    pub sales: usize,
    pub entry_ids: Vec<i64>,
}

/// The outcome of an import: written, or refused with every error.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportOutcome {
    Imported(ImportSummary),
    Rejected(Vec<LineError>),
}

/// One data line that passed the field checks.
struct Line {
    line: u64,
    draft: Draft,
}

/// Parses the file into drafts, collecting every field error.
fn parse_lines(text: &str) -> (Vec<Line>, Vec<LineError>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_ascii_lowercase()).collect(),
        Err(e) => return (lines, vec![LineError::new(1, "header", "invalid_csv", e.to_string())]),
    };
    for h in &headers {
        if !COLUMNS.contains(&h.as_str()) {
            errors.push(LineError::new(
                1,
                h,
                "unknown_column",
                format!("column {h:?} is not one of {}", COLUMNS.join(", ")),
            ));
        }
    }
    for r in REQUIRED {
        if !headers.iter().any(|h| h == r) {
            errors.push(LineError::new(
                1,
                r,
                "missing_column",
                format!("the header has no {r} column"),
            ));
        }
    }
    if !errors.is_empty() {
        return (lines, errors);
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let mut count = 0;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(LineError::new(line, "line", "invalid_csv", e.to_string()));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        count += 1;
        if count > MAX_LINES {
            errors.push(LineError::new(
                line,
                "line",
                "too_many_lines",
                format!("an import holds at most {MAX_LINES} lines"),
            ));
            break;
        }
        let get = |name: &str| {
            col(name)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let Some(entry_type) = get("type").as_deref().and_then(EntryType::parse) else {
            errors.push(LineError::new(
                line,
                "type",
                "invalid_type",
                format!("type {:?} is not stock_in or sale", get("type").unwrap_or_default()),
            ));
            continue;
        };
        if get("date").is_none() {
            errors.push(LineError::new(line, "date", "missing_field", "is required"));
            continue;
        }
        let raw = RawEntry {
            date: get("date"),
            product_id: get("product_id"),
            quantity: get("quantity"),
            unit: get("unit"),
            label_codes: get("label_codes")
                .map(|c| {
                    c.split(|ch: char| ch == ';' || ch == '|' || ch.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            batch: get("batch"),
            supplier: get("supplier"),
            buyer_name: get("buyer_name"),
            buyer_id_number: get("buyer_id_number"),
            buyer_phone: get("buyer_phone"),
            buyer_village: get("buyer_village"),
            crop: get("crop"),
        };
        match validate_draft(entry_type, &raw) {
            Ok(draft) => lines.push(Line { line, draft }),
            Err(errs) => errors.extend(errs.into_iter().map(|e| LineError::from_field(line, e))),
        }
    }
    if count == 0 && errors.is_empty() {
        errors.push(LineError::new(
            1,
            "line",
            "empty_file",
            "the file holds no ledger lines",
        ));
    }
    (lines, errors)
}

/// Imports a CSV ledger into the caller's own shop.
pub async fn import_ledger(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    dealer_id: i64,
    text: &str,
) -> Result<ImportOutcome, CoreError> {
    let dealer = writable_dealer(db, caller, dealer_id).await?;
    let (lines, mut errors) = parse_lines(text);
    let mut products: HashMap<i64, Option<Product>> = HashMap::new();
    let mut villages: HashMap<RegionCode, bool> = HashMap::new();
    let mut codes_in_file: HashMap<&str, u64> = HashMap::new();
    for l in &lines {
        let id = l.draft.product_id;
        if let Entry::Vacant(slot) = products.entry(id) {
            let found = match product_of(db, id).await {
                Ok(p) => Some(p),
                Err(e) if e.code() == "unknown_product" => None,
                Err(e) => return Err(e),
            };
            slot.insert(found);
        }
        match &products[&id] {
            None => errors.push(LineError::new(
                l.line,
                "product_id",
                "unknown_product",
                format!("no product {id}"),
            )),
            Some(product) => {
                if let Err(refusal) = product_rules(&l.draft, product) {
                    errors.push(LineError::from_field(l.line, refusal.field_error(product)));
                }
            }
        }
        if let Some(b) = &l.draft.buyer {
            let known = match villages.get(&b.village) {
                Some(k) => *k,
                None => {
                    let k = village_exists(db, &b.village).await?;
                    villages.insert(b.village.clone(), k);
                    k
                }
            };
            if !known {
                errors.push(LineError::new(
                    l.line,
                    "buyer_village",
                    "unknown_village",
                    format!("{} is not a known village", b.village),
                ));
            }
        }
        if l.draft.entry_type == EntryType::Sale {
            for code in &l.draft.label_codes {
                if let Some(first) = codes_in_file.insert(code, l.line) {
                    errors.push(LineError::new(
                        l.line,
                        "label_codes",
                        "label_code_sold",
                        format!("label code {code} is sold on line {first} already"),
                    ));
                }
            }
        }
    }
    let mut tx = db.begin().await?;
    let sale_codes: Vec<String> = codes_in_file.keys().map(|c| c.to_string()).collect();
    for (code, entry) in store::sold_codes(&mut tx, &sale_codes).await? {
        errors.push(LineError::new(
            codes_in_file[code.as_str()],
            "label_codes",
            "label_code_sold",
            format!("label code {code} is already sold (entry {entry})"),
        ));
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| a.line.cmp(&b.line).then_with(|| a.field.cmp(&b.field)));
        return Ok(ImportOutcome::Rejected(errors));
    }
    let mut summary = ImportSummary {
        stock_in: 0,
        sales: 0,
        entry_ids: Vec::with_capacity(lines.len()),
    };
    let mut last_sale: HashMap<(i64, Dimension), LedgerEntry> = HashMap::new();
    for l in &lines {
        let Some(product) = &products[&l.draft.product_id] else {
            continue;
        };
        let entry = store::insert_entry(&mut tx, &dealer, &l.draft, product, caller.user_id).await?;
        match l.draft.entry_type {
            EntryType::StockIn => summary.stock_in += 1,
            EntryType::Sale => {
                summary.sales += 1;
                store::mark_sold(&mut tx, entry.id, &l.draft.label_codes).await?;
                last_sale.insert((entry.product_id, entry.dimension), entry.clone());
            }
        }
        summary.entry_ids.push(entry.id);
    }
    for entry in last_sale.values() {
        check_stock(&mut tx, actor, &dealer, entry).await?;
    }
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "dealer_ledger.import",
            target: format!("dealer:{}", dealer.id),
            region: Some(dealer.region.clone()),
            detail: json!({"stock_in": summary.stock_in, "sales": summary.sales,
                "first_entry": summary.entry_ids.first(), "last_entry": summary.entry_ids.last()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ImportOutcome::Imported(summary))
}
