//! The logistics slice's tables and the helpers its stores share:
//! validation of names and coordinates, and region-scope conditions.

use sea_query::{Condition, Expr, ExprTrait, IntoColumnRef};
use shuxiang_core::CoreError;
use shuxiang_core::RegionCode;
use shuxiang_core::db::SliceMigrations;

/// The logistics slice's tables.
pub static LOGISTICS_MIGRATIONS: SliceMigrations = SliceMigrations {
    slice: "logistics",
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

pub(crate) const MAX_NAME: usize = 200;
pub(crate) const DEFAULT_LIMIT: u64 = 100;
pub(crate) const MAX_LIMIT: u64 = 1000;

/// Trimmed text of 1 to `max` characters without control characters.
pub(crate) fn text(raw: &str, max: usize, code: &'static str, what: &str) -> Result<String, CoreError> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            code,
            format!("{what} must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(s.to_string())
}

pub(crate) fn optional_text(
    raw: Option<&str>,
    max: usize,
    code: &'static str,
    what: &str,
) -> Result<Option<String>, CoreError> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| text(s, max, code, what))
        .transpose()
}

/// A point in China (longitude 73–136° E, latitude 3–54° N, WGS-84): the
/// platform serves Chinese villages, so anything else is a typing error
/// such as swapped coordinates.
pub(crate) fn coordinates(lon: f64, lat: f64) -> Result<(f64, f64), CoreError> {
    if lon.is_finite() && lat.is_finite() && (73.0..=136.0).contains(&lon) && (3.0..=54.0).contains(&lat) {
        Ok((lon, lat))
    } else {
        Err(CoreError::invalid(
            "invalid_location",
            format!("({lon}, {lat}) is not a longitude/latitude in China (73–136° E, 3–54° N)"),
        ))
    }
}

/// A positive finite amount no larger than `max`.
pub(crate) fn positive(value: f64, max: f64, code: &'static str, what: &str) -> Result<f64, CoreError> {
    if value.is_finite() && value > 0.0 && value <= max {
        Ok(value)
    } else {
        Err(CoreError::invalid(
            code,
            format!("{what} must be above 0 and at most {max}, not {value}"),
        ))
    }
}

/// Rows whose `col` lies in one of `scopes`' subtrees; `None` means every row.
pub(crate) fn in_scopes(col: impl IntoColumnRef + Clone, scopes: Option<&[RegionCode]>) -> Condition {
    match scopes {
        None => Condition::all(),
        Some(scopes) => {
            let mut any = Condition::any();
            for code in scopes {
                let (lo, hi) = code.subtree_range();
                any = any.add(Expr::col(col.clone()).gte(lo).and(Expr::col(col.clone()).lt(hi)));
            }
            if scopes.is_empty() {
                any = any.add(Expr::val(1).eq(0));
            }
            any
        }
    }
}

pub(crate) fn parse_id(raw: &str, what: &str) -> Result<i64, CoreError> {
    raw.parse()
        .map_err(|_| CoreError::malformed("invalid_id", format!("{what} id {raw:?} is not a number")))
}

/// `HH:MM` within a day.
pub(crate) fn clock(raw: &str, code: &'static str, what: &str) -> Result<String, CoreError> {
    let ok = raw.len() == 5
        && raw.as_bytes()[2] == b':'
        && raw[..2]
            .parse::<u32>()
            .is_ok_and(|h| h < 24 && raw[..2].bytes().all(|b| b.is_ascii_digit()))
        && raw[3..]
            .parse::<u32>()
            .is_ok_and(|m| m < 60 && raw[3..].bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(CoreError::invalid(
            code,
            format!("{what} must be a time HH:MM, not {raw:?}"),
        ))
    }
}
