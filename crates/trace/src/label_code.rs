//! 农药标签二维码 (pesticide label QR code): the 32-digit 单元识别代码 (unit
//! identification code) that MOA announcement No. 2579 (农业部公告第2579号,
//! 2017) requires on every sales package of a pesticide, and the QR content
//! (追溯网址 + code) that carries it.
//!
//! | positions | content |
//! |---|---|
//! | 1 | 登记证类别 registration category ([`RegistrationCategory`]) |
//! | 2–7 | last six digits of the registration number (`PD20180001` → `180001`) |
//! | 8 | 生产类型 production type ([`ProductionType`]) |
//! | 9–11 | 产品规格码 product specification code, assigned by the company, 001–999 |
//! | 12–32 | 随机码 random serial, 21 digits, unique per sales package |
//!
//! Parse errors carry the 1-based position of the first character that is
//! wrong, so a form can point at it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use thiserror::Error;

/// Number of digits in a label code.
pub const LABEL_CODE_LEN: usize = 32;

/// Position 1: the kind of registration certificate (农药登记证类别).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RegistrationCategory {
    /// `1`: 农药登记证, registration numbers `PD…`.
    #[serde(rename = "PD")]
    Pesticide,
    /// `2`: 卫生用农药登记证 (household/public-health pesticides), numbers `WP…`.
    #[serde(rename = "WP")]
    Hygiene,
    /// `3`: 临时登记 (temporary registration). The announcement names no
    /// prefix; `LS…` (农药临时登记) is assumed, and `WL…` (卫生用农药临时登记)
    /// is accepted as well. Temporary registrations were abolished by the
    /// 2017 农药管理条例, so this value only appears on legacy stock.
    #[serde(rename = "LS")]
    Temporary,
}

impl RegistrationCategory {
    /// The category for a digit of position 1.
    pub fn from_digit(digit: u8) -> Option<Self> {
        match digit {
            1 => Some(Self::Pesticide),
            2 => Some(Self::Hygiene),
            3 => Some(Self::Temporary),
            _ => None,
        }
    }

    /// The digit written at position 1.
    pub fn digit(self) -> u8 {
        match self {
            Self::Pesticide => 1,
            Self::Hygiene => 2,
            Self::Temporary => 3,
        }
    }

    /// Registration-number prefixes of this category.
    pub fn prefixes(self) -> &'static [&'static str] {
        match self {
            Self::Pesticide => &["PD"],
            Self::Hygiene => &["WP"],
            Self::Temporary => &["LS", "WL"],
        }
    }
}

/// Position 8: who made the packaged product (生产类型).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductionType {
    /// `1`: made by the registration holder itself (登记证持有人生产, 自产).
    HolderProduced,
    /// `2`: made under contract (委托加工).
    ContractManufactured,
    /// `3`: repackaged under contract (委托分装).
    ContractRepackaged,
}

impl ProductionType {
    /// The production type for a digit of position 8.
    pub fn from_digit(digit: u8) -> Option<Self> {
        match digit {
            1 => Some(Self::HolderProduced),
            2 => Some(Self::ContractManufactured),
            3 => Some(Self::ContractRepackaged),
            _ => None,
        }
    }

    /// The digit written at position 8.
    pub fn digit(self) -> u8 {
        match self {
            Self::HolderProduced => 1,
            Self::ContractManufactured => 2,
            Self::ContractRepackaged => 3,
        }
    }
}

/// A parsed, valid label code. `to_string()` gives the 32 digits back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct LabelCode {
    category: RegistrationCategory,
    registration_suffix: String,
    production_type: ProductionType,
    specification: String,
    serial: String,
}

impl LabelCode {
    pub fn category(&self) -> RegistrationCategory {
        self.category
    }

    /// Positions 2–7: the last six digits of the registration number.
    pub fn registration_suffix(&self) -> &str {
        &self.registration_suffix
    }

    pub fn production_type(&self) -> ProductionType {
        self.production_type
    }

    /// Positions 9–11, `"001"`–`"999"`.
    pub fn specification(&self) -> &str {
        &self.specification
    }

    /// Positions 12–32, 21 digits.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Whether a registration number such as `PD20180001` can be the one this
    /// code was issued under: its prefix fits the category and its last six
    /// digits are the code's. Numbers with fewer than six digits never match,
    /// since the announcement has their code digits looked up rather than
    /// derived.
    pub fn matches_registration_number(&self, number: &str) -> bool {
        let number = number.trim();
        let split = number.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(number.len());
        let (prefix, digits) = number.split_at(split);
        self.category.prefixes().iter().any(|p| p.eq_ignore_ascii_case(prefix))
            && digits.len() >= 6
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits[digits.len() - 6..] == self.registration_suffix
    }
}

impl fmt::Display for LabelCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}{}{}",
            self.category.digit(),
            self.registration_suffix,
            self.production_type.digit(),
            self.specification,
            self.serial
        )
    }
}

impl FromStr for LabelCode {
    type Err = LabelCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_label_code(s)
    }
}

/// What is wrong with a label code, and at which 1-based character position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("label code position {position}: {kind}")]
pub struct LabelCodeError {
    /// 1-based position of the first wrong character; for a code that is too
    /// short, the first missing position; for one too long, 33.
    pub position: usize,
    pub kind: LabelCodeErrorKind,
}

impl LabelCodeError {
    fn at(position: usize, kind: LabelCodeErrorKind) -> Self {
        Self { position, kind }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LabelCodeErrorKind {
    #[error("expected a digit, found {0:?}")]
    NotADigit(char),
    #[error("the code has {0} digits, expected 32")]
    TooShort(usize),
    #[error("the code has {0} characters, expected 32")]
    TooLong(usize),
    #[error("unknown registration category {0} (1 = PD, 2 = WP, 3 = temporary)")]
    UnknownCategory(u8),
    #[error("unknown production type {0} (1 = holder, 2 = contract manufacturing, 3 = contract repackaging)")]
    UnknownProductionType(u8),
    #[error("product specification code 000 is not allowed")]
    ZeroSpecification,
    #[error("the QR content carries no label code")]
    NoCode,
}

/// Parses exactly 32 digits, with no surrounding whitespace.
pub fn parse_label_code(code: &str) -> Result<LabelCode, LabelCodeError> {
    let mut length = 0;
    for (i, c) in code.chars().enumerate() {
        if i == LABEL_CODE_LEN {
            return Err(LabelCodeError::at(
                LABEL_CODE_LEN + 1,
                LabelCodeErrorKind::TooLong(code.chars().count()),
            ));
        }
        if !c.is_ascii_digit() {
            return Err(LabelCodeError::at(i + 1, LabelCodeErrorKind::NotADigit(c)));
        }
        length += 1;
    }
    if length < LABEL_CODE_LEN {
        return Err(LabelCodeError::at(length + 1, LabelCodeErrorKind::TooShort(length)));
    }
    // All 32 characters are ASCII digits from here on, so byte slicing is safe.
    let digit = |position: usize| code.as_bytes()[position - 1] - b'0';
    let category = RegistrationCategory::from_digit(digit(1))
        .ok_or_else(|| LabelCodeError::at(1, LabelCodeErrorKind::UnknownCategory(digit(1))))?;
    let production_type = ProductionType::from_digit(digit(8))
        .ok_or_else(|| LabelCodeError::at(8, LabelCodeErrorKind::UnknownProductionType(digit(8))))?;
    let specification = &code[8..11];
    if specification == "000" {
        return Err(LabelCodeError::at(9, LabelCodeErrorKind::ZeroSpecification));
    }
    Ok(LabelCode {
        category,
        registration_suffix: code[1..7].to_owned(),
        production_type,
        specification: specification.to_owned(),
        serial: code[11..].to_owned(),
    })
}

/// Parses scanned QR content: a tracing URL whose `code` query parameter or,
/// failing that, last path segment is the code
/// (`http://…/query?code=<32 digits>`, `https://…/t/<32 digits>`), or a bare
/// code. Surrounding whitespace is ignored; error positions count within the
/// code itself.
pub fn parse_label_qr(content: &str) -> Result<LabelCode, LabelCodeError> {
    let content = content.trim();
    let Some((_, rest)) = content.split_once("://") else {
        return parse_label_code(content);
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parameter = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key.eq_ignore_ascii_case("code").then_some(value)
    });
    if let Some(code) = parameter {
        return parse_label_code(code);
    }
    // The first segment after the scheme is the host, never the code.
    let segment = location
        .split_once('/')
        .and_then(|(_, path)| path.split('/').rfind(|s| !s.is_empty()));
    match segment {
        Some(code) => parse_label_code(code),
        None => Err(LabelCodeError::at(1, LabelCodeErrorKind::NoCode)),
    }
}
