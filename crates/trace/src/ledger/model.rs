//! The ledger's types and their validation, without I/O: 居民身份证 numbers
//! (GB 11643 check digit) and their masking, quantities with units
//! normalised to grams, millilitres or pieces, business dates, and the
//! product rules of a sale (禁用 banned refused, 限用 restricted only to a
//! named buyer with an ID number, label codes of the product's registration).
//!
//! Errors name the field they concern, so one entry posted over the API and
//! one line of an imported CSV report the same way.

use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use shuxiang_core::{CoreError, RegionCode, RegionLevel};

use crate::label_code::parse_label_qr;
use crate::products::{Product, ProductKind};

const MAX_TEXT: usize = 200;
/// Most label codes one entry may carry (one per sales package).
pub const MAX_LABEL_CODES: usize = 1000;
/// Largest amount of one entry in base units: 1,000 t, 1,000 m³ or a
/// million pieces is beyond any farm-input shop.
const MAX_BASE_AMOUNT: i64 = 1_000_000_000;

/// A value refused, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    #[serde(rename = "error")]
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}

impl From<FieldError> for CoreError {
    fn from(e: FieldError) -> Self {
        CoreError::invalid(e.code, format!("{}: {}", e.field, e.message))
    }
}

/// 进货 stock in, or 销售 a sale out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    StockIn,
    Sale,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StockIn => "stock_in",
            Self::Sale => "sale",
        }
    }

    /// `stock_in`/`sale`, or 进货/销售 as paper ledgers head the column.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "stock_in" | "进货" => Some(Self::StockIn),
            "sale" | "销售" => Some(Self::Sale),
            _ => None,
        }
    }

    pub(crate) fn parse_stored(s: &str) -> Result<Self, CoreError> {
        Self::parse(s).ok_or_else(|| CoreError::Internal(format!("stored entry type {s:?} is unknown")))
    }
}

/// What a quantity measures; sums are only taken within one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Stored in grams, reported in kg.
    Mass,
    /// Stored in millilitres, reported in litres.
    Volume,
    /// Packages (瓶, 袋, 包, 件) whose content the unit does not state.
    Count,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mass => "mass",
            Self::Volume => "volume",
            Self::Count => "count",
        }
    }

    pub(crate) fn parse_stored(s: &str) -> Result<Self, CoreError> {
        match s {
            "mass" => Ok(Self::Mass),
            "volume" => Ok(Self::Volume),
            "count" => Ok(Self::Count),
            other => Err(CoreError::Internal(format!("stored dimension {other:?} is unknown"))),
        }
    }
}

/// A unit a quantity may be given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    T,
    Kg,
    G,
    L,
    Ml,
    Piece,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::T => "t",
            Self::Kg => "kg",
            Self::G => "g",
            Self::L => "l",
            Self::Ml => "ml",
            Self::Piece => "piece",
        }
    }

    /// English symbols in any case, or the Chinese words for them.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "t" | "吨" => Some(Self::T),
            "kg" | "千克" | "公斤" => Some(Self::Kg),
            "g" | "克" => Some(Self::G),
            "l" | "升" => Some(Self::L),
            "ml" | "毫升" => Some(Self::Ml),
            "piece" | "pieces" | "件" | "瓶" | "袋" | "包" | "盒" | "桶" => Some(Self::Piece),
            _ => None,
        }
    }

    pub fn dimension(self) -> Dimension {
        match self {
            Self::T | Self::Kg | Self::G => Dimension::Mass,
            Self::L | Self::Ml => Dimension::Volume,
            Self::Piece => Dimension::Count,
        }
    }

    /// Decimal places a quantity in this unit may have so that it is a whole
    /// number of base units (g, mL, pieces).
    fn base_decimals(self) -> u32 {
        match self {
            Self::T => 6,
            Self::Kg | Self::L => 3,
            Self::G | Self::Ml | Self::Piece => 0,
        }
    }
}

/// A validated quantity: as written, and in base units of its dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    pub text: String,
    pub unit: Unit,
    pub base_amount: i64,
}

/// A quantity as sent: a JSON number or a decimal string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuantityInput {
    Number(serde_json::Number),
    Text(String),
}

impl QuantityInput {
    pub fn as_text(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Text(s) => s.trim().to_string(),
        }
    }
}

/// A positive decimal in `unit`, exact to one base unit (1 g, 1 mL, one piece).
pub fn parse_quantity(raw: &str, unit_raw: &str) -> Result<Quantity, FieldError> {
    let unit = Unit::parse(unit_raw).ok_or_else(|| {
        FieldError::new(
            "unit",
            "invalid_unit",
            format!("unit {unit_raw:?} is not one of t, kg, g, l, ml, piece"),
        )
    })?;
    let bad = |why: &str| FieldError::new("quantity", "invalid_quantity", format!("quantity {raw:?} {why}"));
    let raw = raw.trim();
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("must be a positive decimal number"));
    }
    let frac = frac.trim_end_matches('0');
    let places = unit.base_decimals();
    if frac.len() > places as usize {
        return Err(bad(&format!(
            "is finer than one {} allows ({places} decimal places)",
            unit.as_str()
        )));
    }
    let scale = 10i64.pow(places);
    let int_value: i64 = int.parse().map_err(|_| bad("is too large"))?;
    let frac_value: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<width$}", width = places as usize)
            .parse()
            .map_err(|_| bad("is not a number"))?
    };
    let base_amount = int_value
        .checked_mul(scale)
        .and_then(|v| v.checked_add(frac_value))
        .filter(|v| *v <= MAX_BASE_AMOUNT)
        .ok_or_else(|| bad("is too large for one entry"))?;
    if base_amount <= 0 {
        return Err(bad("must be more than zero"));
    }
    let int = int.trim_start_matches('0');
    let text = match (int.is_empty(), frac.is_empty()) {
        (true, true) => "0".to_string(),
        (true, false) => format!("0.{frac}"),
        (false, true) => int.to_string(),
        (false, false) => format!("{int}.{frac}"),
    };
    Ok(Quantity {
        text,
        unit,
        base_amount,
    })
}

/// Today in China (UTC+8), the day a shop writes in its ledger.
pub fn today() -> NaiveDate {
    (Utc::now() + Duration::hours(8)).date_naive()
}

/// `YYYY-MM-DD`, not after tomorrow (a clock a little ahead is tolerated).
pub fn parse_date(raw: &str) -> Result<NaiveDate, FieldError> {
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| FieldError::new("date", "invalid_date", format!("date {raw:?} is not YYYY-MM-DD")))?;
    if date > today() + Duration::days(1) {
        return Err(FieldError::new(
            "date",
            "invalid_date",
            format!("date {date} is in the future"),
        ));
    }
    Ok(date)
}

/// A `YYYY-MM-DD` bound of a query (`from`/`to`); any date, future ones included.
pub fn parse_query_date(raw: &str, field: &'static str) -> Result<NaiveDate, FieldError> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| FieldError::new(field, "invalid_date", format!("{field} {raw:?} is not YYYY-MM-DD")))
}

/// Weights of the first 17 digits for the GB 11643 check digit (ISO 7064 MOD 11-2).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// An 18-character 居民身份证 number: 17 digits, a valid birth date at
/// positions 7–14 and the GB 11643 check character (a digit or `X`).
/// Returns it with `x` upper-cased.
pub fn validate_id_number(raw: &str) -> Result<String, FieldError> {
    let id = raw.trim().to_ascii_uppercase();
    let bad = |why: String| FieldError::new("buyer_id_number", "invalid_id_number", why);
    let bytes = id.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return Err(bad("an ID number is 17 digits and a check digit or X".into()));
    }
    if NaiveDate::parse_from_str(&id[6..14], "%Y%m%d").is_err() {
        return Err(bad(format!("positions 7–14 ({}) are not a birth date", &id[6..14])));
    }
    let sum: u32 = bytes[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let expected = ID_CHECK[(sum % 11) as usize];
    if bytes[17] != expected {
        return Err(bad(format!(
            "the check character is {}, not {}",
            expected as char, bytes[17] as char
        )));
    }
    Ok(id)
}

/// 360102********123X: the registration region and the last four are
/// shown, the birth date hidden.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

fn optional_text(raw: Option<&str>, field: &'static str) -> Result<Option<String>, FieldError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.chars().count() <= MAX_TEXT && !s.chars().any(char::is_control) => Ok(Some(s.to_string())),
        Some(_) => Err(FieldError::new(
            field,
            "invalid_text",
            format!("at most {MAX_TEXT} characters without control characters"),
        )),
    }
}

fn required_text(raw: Option<&str>, field: &'static str) -> Result<String, FieldError> {
    optional_text(raw, field)?.ok_or_else(|| FieldError::new(field, "missing_field", "is required"))
}

fn validate_phone(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(p) if (5..=20).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'+') => {
            Ok(Some(p.to_string()))
        }
        Some(_) => Err(FieldError::new(
            "buyer_phone",
            "invalid_phone",
            "a phone is 5–20 digits",
        )),
    }
}

/// The fields of one entry as sent, before validation (JSON body or CSV line).
#[derive(Debug, Clone, Default)]
pub struct RawEntry {
    pub date: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<String>,
    pub unit: Option<String>,
    pub label_codes: Vec<String>,
    pub batch: Option<String>,
    pub supplier: Option<String>,
    pub buyer_name: Option<String>,
    pub buyer_id_number: Option<String>,
    pub buyer_phone: Option<String>,
    pub buyer_village: Option<String>,
    pub crop: Option<String>,
}

/// A real-name buyer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    pub name: Option<String>,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    /// 村 where the inputs will be used; sales statistics count them there.
    pub village: RegionCode,
    /// 作物/用途 crop or use.
    pub crop: Option<String>,
}

/// An entry whose fields are valid on their own; the product rules and the
/// shop's state are checked afterwards.
#[derive(Debug, Clone)]
pub struct Draft {
    pub entry_type: EntryType,
    pub date: NaiveDate,
    pub product_id: i64,
    pub quantity: Quantity,
    /// Normalised 32-digit codes, without repeats.
    pub label_codes: Vec<String>,
    /// 生产批号 production batch.
    pub batch: Option<String>,
    pub supplier: Option<String>,
    pub buyer: Option<Buyer>,
}

/// The value, or `None` with its error noted.
fn keep<T>(errors: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

/// Validates every field of `raw` as an entry of `entry_type`, reporting
/// every wrong field rather than the first.
pub fn validate_draft(entry_type: EntryType, raw: &RawEntry) -> Result<Draft, Vec<FieldError>> {
    let mut errors = Vec::new();
    let date = match raw.date.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(d) => keep(&mut errors, parse_date(d)),
        None => Some(today()),
    };
    let product_id = keep(
        &mut errors,
        raw.product_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| FieldError::new("product_id", "missing_field", "is required"))
            .and_then(|s| {
                s.parse::<i64>().map_err(|_| {
                    FieldError::new(
                        "product_id",
                        "invalid_product",
                        format!("product id {s:?} is not a number"),
                    )
                })
            }),
    );
    let quantity = match (raw.quantity.as_deref(), raw.unit.as_deref()) {
        (Some(q), Some(u)) => keep(&mut errors, parse_quantity(q, u)),
        (None, _) => keep(
            &mut errors,
            Err(FieldError::new("quantity", "missing_field", "is required")),
        ),
        (_, None) => keep(
            &mut errors,
            Err(FieldError::new("unit", "missing_field", "is required")),
        ),
    };
    let label_codes = keep(&mut errors, normalise_label_codes(&raw.label_codes));
    let batch = keep(&mut errors, optional_text(raw.batch.as_deref(), "batch"));
    let (supplier, buyer) = match entry_type {
        EntryType::StockIn => (
            keep(&mut errors, required_text(raw.supplier.as_deref(), "supplier")).map(Some),
            None,
        ),
        EntryType::Sale => {
            let name = keep(&mut errors, optional_text(raw.buyer_name.as_deref(), "buyer_name"));
            let id_number = keep(
                &mut errors,
                raw.buyer_id_number
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(validate_id_number)
                    .transpose(),
            );
            let phone = keep(&mut errors, validate_phone(raw.buyer_phone.as_deref()));
            let village = keep(&mut errors, validate_village(raw.buyer_village.as_deref()));
            let crop = keep(&mut errors, optional_text(raw.crop.as_deref(), "crop"));
            let buyer = match (name, id_number, phone, village, crop) {
                (Some(name), Some(id_number), Some(phone), Some(village), Some(crop)) => Some(Buyer {
                    name,
                    id_number,
                    phone,
                    village,
                    crop,
                }),
                _ => None,
            };
            (Some(None), buyer)
        }
    };
    match (date, product_id, quantity, label_codes, batch, supplier) {
        (Some(date), Some(product_id), Some(quantity), Some(label_codes), Some(batch), Some(supplier))
            if errors.is_empty() && (entry_type == EntryType::StockIn || buyer.is_some()) =>
        {
            Ok(Draft {
                entry_type,
                date,
                product_id,
                quantity,
                label_codes,
                batch,
                supplier,
                buyer,
            })
        }
        _ => Err(errors),
    }
}

fn validate_village(raw: Option<&str>) -> Result<RegionCode, FieldError> {
    let raw = raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| FieldError::new("buyer_village", "missing_field", "is required"))?;
    match RegionCode::parse(raw) {
        Ok(code) if code.level() == RegionLevel::Village => Ok(code),
        _ => Err(FieldError::new(
            "buyer_village",
            "invalid_village",
            format!("{raw:?} is not a 12-digit village code"),
        )),
    }
}

/// Each code parsed (32 digits or the label's QR content), without repeats.
fn normalise_label_codes(raw: &[String]) -> Result<Vec<String>, FieldError> {
    if raw.len() > MAX_LABEL_CODES {
        return Err(FieldError::new(
            "label_codes",
            "too_many_label_codes",
            format!("at most {MAX_LABEL_CODES} label codes per entry"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for r in raw {
        let code = parse_label_qr(r).map_err(|e| {
            FieldError::new(
                "label_codes",
                "invalid_label_code",
                format!("label code {:?}: {e}", r.trim()),
            )
        })?;
        let code = code.to_string();
        if out.contains(&code) {
            return Err(FieldError::new(
                "label_codes",
                "duplicate_label_code",
                format!("label code {code} is listed twice"),
            ));
        }
        out.push(code);
    }
    Ok(out)
}

/// What the product itself forbids for an entry: selling a banned product,
/// a restricted one without a named buyer and ID number, label codes of
/// another registration or on a fertilizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 禁用: refused and reported to the county.
    Banned,
    /// 限用 without the buyer's ID number (or name): refused and reported.
    RestrictedWithoutBuyerId,
    Invalid(FieldError),
}

impl Refusal {
    pub fn field_error(&self, product: &Product) -> FieldError {
        match self {
            Self::Banned => FieldError::new(
                "product_id",
                "banned_product",
                format!(
                    "{} ({}) is banned (禁用) and may not be sold; the attempt is reported to the county",
                    product.name,
                    product.registration_number.as_deref().unwrap_or("-")
                ),
            ),
            Self::RestrictedWithoutBuyerId => FieldError::new(
                "buyer_id_number",
                "buyer_id_required",
                format!(
                    "{} is restricted (限用): give the buyer's real name and ID number",
                    product.name
                ),
            ),
            Self::Invalid(e) => e.clone(),
        }
    }
}

/// Checks `draft` against its product.
pub fn product_rules(draft: &Draft, product: &Product) -> Result<(), Refusal> {
    if draft.entry_type == EntryType::Sale {
        if product.banned {
            return Err(Refusal::Banned);
        }
        let named = draft
            .buyer
            .as_ref()
            .is_some_and(|b| b.name.is_some() && b.id_number.is_some());
        if product.restricted_use && !named {
            return Err(Refusal::RestrictedWithoutBuyerId);
        }
    }
    if draft.label_codes.is_empty() {
        return Ok(());
    }
    let Some(number) = product
        .registration_number
        .as_deref()
        .filter(|_| product.kind == ProductKind::Pesticide)
    else {
        return Err(Refusal::Invalid(FieldError::new(
            "label_codes",
            "label_code_mismatch",
            format!(
                "{} is not a registered pesticide and carries no label codes",
                product.name
            ),
        )));
    };
    for code in &draft.label_codes {
        let parsed = parse_label_qr(code)
            .map_err(|e| Refusal::Invalid(FieldError::new("label_codes", "invalid_label_code", e.to_string())))?;
        if !parsed.matches_registration_number(number) {
            return Err(Refusal::Invalid(FieldError::new(
                "label_codes",
                "label_code_mismatch",
                format!("label code {code} does not belong to registration number {number}"),
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_normalise_to_base_units() {
        let q = parse_quantity("1.5", "KG").unwrap();
        assert_eq!((q.base_amount, q.unit, q.text.as_str()), (1500, Unit::Kg, "1.5"));
        assert_eq!(parse_quantity("0.250", "升").unwrap().base_amount, 250);
        assert_eq!(parse_quantity("2", "t").unwrap().base_amount, 2_000_000);
        assert_eq!(parse_quantity("3", "瓶").unwrap().unit.dimension(), Dimension::Count);
        for (q, u) in [
            ("0", "kg"),
            ("-1", "kg"),
            ("1.0001", "kg"),
            ("1.5", "g"),
            ("x", "kg"),
            ("1e3", "kg"),
        ] {
            assert_eq!(parse_quantity(q, u).unwrap_err().field, "quantity", "{q} {u}");
        }
        assert_eq!(parse_quantity("1", "gallon").unwrap_err().field, "unit");
        assert_eq!(
            parse_quantity("99999999999999999999", "kg").unwrap_err().code,
            "invalid_quantity"
        );
    }

    #[test]
    fn id_numbers_are_masked_keeping_region_and_last_four() {
        assert_eq!(mask_id_number("11010519491231002X"), "110105********002X");
    }
}
