//! 化肥农药减量 input-reduction supervision: quantities of pesticides and
//! fertilizers sold, per child region or per month, for a region and period.
//!
//! Sales count where the inputs are used, the buyer's village, not where
//! the shop stands. Quantities are summed per dimension: mass in kg, volume
//! in litres (never converted into each other, since densities differ) and
//! packages whose content the ledger does not state as pieces. Reversals are
//! entries with negated amounts dated like the entry they reverse, so they
//! net out of the period the mistake was in; `sales` counts sales net of
//! reversals.
//!
//! Administrators and officials read the statistics of their scope,
//! village staff those of their village (or wider scope), experts those of
//! their scope to advise on reduction: they are aggregates and reveal no
//! buyer. Dealers, farmers and carriers do not read them.

use std::collections::BTreeMap;

use sea_query::{Expr, ExprTrait, Order, Query};
use serde::{Deserialize, Serialize};
use shuxiang_core::auth::{Principal, Role};
use shuxiang_core::db::Db;
use shuxiang_core::{CoreError, RegionCode, RegionLevel, regions};

use super::model::{Dimension, parse_query_date};
use super::store::DealerLedger;
use crate::products::ProductKind;

/// Who reads the statistics of their scope.
pub const STATS_READERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff, Role::Expert];

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    County,
    Township,
    Village,
    Month,
}

impl Group {
    fn level(self) -> Option<RegionLevel> {
        match self {
            Self::County => Some(RegionLevel::County),
            Self::Township => Some(RegionLevel::Township),
            Self::Village => Some(RegionLevel::Village),
            Self::Month => None,
        }
    }

    fn for_level(level: RegionLevel) -> Option<Self> {
        match level {
            RegionLevel::County => Some(Self::County),
            RegionLevel::Township => Some(Self::Township),
            RegionLevel::Village => Some(Self::Village),
            _ => None,
        }
    }
}

/// What to count.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatsQuery {
    /// Default: the caller's scope when they hold exactly one.
    pub region: Option<String>,
    /// First business date, inclusive (YYYY-MM-DD).
    pub from: Option<String>,
    /// Last business date, inclusive.
    pub to: Option<String>,
    /// Default: the region's child level (`month` for a village).
    pub group: Option<Group>,
    pub kind: Option<ProductKind>,
    /// `csv` for the CSV export.
    pub format: Option<String>,
}

/// Sales of one kind in one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsRow {
    /// A region code, or a month (YYYY-MM).
    pub group: String,
    /// The region's name (none for months).
    pub name: Option<String>,
    pub kind: ProductKind,
    pub kg: f64,
    pub litres: f64,
    pub pieces: i64,
    /// Sales net of reversals.
    pub sales: i64,
}

/// The statistics of a region and period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub region: String,
    pub region_name: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub group: Group,
    pub rows: Vec<StatsRow>,
}

#[derive(sqlx::FromRow)]
struct SumRow {
    grp: String,
    product_kind: String,
    dimension: String,
    amount: i64,
    sales: i64,
}

fn region_to_count(caller: &Principal, raw: Option<&str>) -> Result<RegionCode, CoreError> {
    if let Some(r) = raw {
        return RegionCode::parse(r);
    }
    match caller.scopes(Some(STATS_READERS)) {
        Some(scopes) if scopes.len() == 1 => Ok(scopes[0].clone()),
        _ => Err(CoreError::invalid(
            "region_required",
            "give region=CODE: your roles cover more than one region",
        )),
    }
}

/// Sales quantities under `q.region`, grouped.
pub async fn sales_stats(db: &Db, caller: &Principal, q: &StatsQuery) -> Result<Stats, CoreError> {
    caller.require_role(STATS_READERS)?;
    let code = region_to_count(caller, q.region.as_deref())?;
    let region = regions::resolve(db, &code)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no region with code {code}")))?;
    let code = region.code();
    caller.require(STATS_READERS, &code)?;
    for (field, d) in [("from", &q.from), ("to", &q.to)] {
        if let Some(d) = d {
            parse_query_date(d, field)?;
        }
    }
    let group = match q.group {
        Some(g) => g,
        None => code.level().child().and_then(Group::for_level).unwrap_or(Group::Month),
    };
    let key = match group.level() {
        Some(level) if level > code.level() => format!("substr(buyer_village, 1, {})", level.code_len()),
        Some(level) => {
            return Err(CoreError::invalid(
                "invalid_group",
                format!(
                    "group {} is not below region {code} ({})",
                    level.as_str(),
                    code.level().as_str()
                ),
            ));
        }
        None => "substr(entry_date, 1, 7)".to_string(),
    };
    let (lo, hi) = code.subtree_range();
    let mut sql = Query::select();
    sql.expr_as(Expr::cust(key.clone()), "grp")
        .column(DealerLedger::ProductKind)
        .column(DealerLedger::Dimension)
        .expr_as(Expr::cust("CAST(SUM(base_amount) AS BIGINT)"), "amount")
        .expr_as(
            Expr::cust("CAST(SUM(CASE WHEN reverses_id IS NULL THEN 1 ELSE -1 END) AS BIGINT)"),
            "sales",
        )
        .from(DealerLedger::Table)
        .and_where(Expr::col(DealerLedger::EntryType).eq("sale"))
        .and_where(Expr::col(DealerLedger::BuyerVillage).gte(lo))
        .and_where(Expr::col(DealerLedger::BuyerVillage).lt(hi))
        .add_group_by([
            Expr::cust(key.clone()),
            Expr::col(DealerLedger::ProductKind),
            Expr::col(DealerLedger::Dimension),
        ])
        .order_by_expr(Expr::cust(key), Order::Asc);
    if let Some(from) = &q.from {
        sql.and_where(Expr::col(DealerLedger::EntryDate).gte(from.as_str()));
    }
    if let Some(to) = &q.to {
        sql.and_where(Expr::col(DealerLedger::EntryDate).lte(to.as_str()));
    }
    if let Some(kind) = q.kind {
        sql.and_where(Expr::col(DealerLedger::ProductKind).eq(kind.as_str()));
    }
    let sums: Vec<SumRow> = db.fetch_all(&sql).await?;
    let mut rows: BTreeMap<(String, &'static str), StatsRow> = BTreeMap::new();
    for s in sums {
        let kind = match s.product_kind.as_str() {
            "pesticide" => ProductKind::Pesticide,
            "fertilizer" => ProductKind::Fertilizer,
            other => return Err(CoreError::Internal(format!("stored product kind {other:?}"))),
        };
        let row = rows.entry((s.grp.clone(), kind.as_str())).or_insert_with(|| StatsRow {
            group: s.grp.clone(),
            name: None,
            kind,
            kg: 0.0,
            litres: 0.0,
            pieces: 0,
            sales: 0,
        });
        match Dimension::parse_stored(&s.dimension)? {
            Dimension::Mass => row.kg += s.amount as f64 / 1000.0,
            Dimension::Volume => row.litres += s.amount as f64 / 1000.0,
            Dimension::Count => row.pieces += s.amount,
        }
        row.sales += s.sales;
    }
    let mut rows: Vec<StatsRow> = rows.into_values().collect();
    if group != Group::Month {
        let codes: Vec<RegionCode> = rows.iter().filter_map(|r| RegionCode::parse(&r.group).ok()).collect();
        let names = regions::names(db, &codes).await?;
        for r in &mut rows {
            r.name = names.iter().find(|(c, _)| *c == r.group).map(|(_, n)| n.clone());
        }
    }
    Ok(Stats {
        region: code.to_string(),
        region_name: region.name,
        from: q.from.clone(),
        to: q.to.clone(),
        group,
        rows,
    })
}

/// The statistics as CSV: `group,name,kind,kg,litres,pieces,sales`.
pub fn stats_csv(stats: &Stats) -> Result<String, CoreError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| CoreError::Internal(format!("writing CSV: {e}"));
    w.write_record(["group", "name", "kind", "kg", "litres", "pieces", "sales"])
        .map_err(err)?;
    for r in &stats.rows {
        w.write_record([
            r.group.clone(),
            r.name.clone().unwrap_or_default(),
            r.kind.as_str().to_string(),
            r.kg.to_string(),
            r.litres.to_string(),
            r.pieces.to_string(),
            r.sales.to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| CoreError::Internal(format!("writing CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| CoreError::Internal(e.to_string()))
}
