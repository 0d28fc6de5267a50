//! The stored region tree: lookups, children, name search, village types,
//! idempotent bulk import with descendant counts, and boundaries.

use std::collections::HashMap;

use sea_query::{Expr, ExprTrait, Iden, LikeExpr, OnConflict, Order, Query};
use serde::Serialize;

use crate::cache;
use crate::db::{Db, Tx};
use crate::error::{CoreError, Result};
use crate::region::{RegionCode, RegionLevel, VillageType};
use crate::time::{Timestamp, now};

#[derive(Iden)]
pub(crate) enum Regions {
    Table,
    Code,
    Name,
    Level,
    Parent,
    VillageType,
    NCity,
    NCounty,
    NTownship,
    NVillage,
    UpdatedAt,
}

#[derive(Iden)]
enum RegionBoundaries {
    Table,
    Code,
    Geometry,
    Simplified,
    MinLon,
    MinLat,
    MaxLon,
    MaxLat,
    UpdatedAt,
}

/// A region as stored, with its descendant counts per level.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Region {
    pub code: String,
    pub name: String,
    pub level: String,
    pub parent: Option<String>,
    pub village_type: Option<String>,
    pub n_city: i64,
    pub n_county: i64,
    pub n_township: i64,
    pub n_village: i64,
}

/// Descendant counts per level (`{"city":11,"county":100,...}`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DescendantCounts {
    pub city: i64,
    pub county: i64,
    pub township: i64,
    pub village: i64,
}

impl Region {
    pub fn code(&self) -> RegionCode {
        RegionCode::parse(&self.code).expect("stored codes are valid")
    }

    pub fn level(&self) -> RegionLevel {
        RegionLevel::parse(&self.level).expect("stored levels are valid")
    }

    pub fn village_type(&self) -> Option<VillageType> {
        self.village_type.as_deref().and_then(|t| VillageType::parse(t).ok())
    }

    pub fn counts(&self) -> DescendantCounts {
        DescendantCounts {
            city: self.n_city,
            county: self.n_county,
            township: self.n_township,
            village: self.n_village,
        }
    }
}

fn region_columns() -> [Regions; 9] {
    [
        Regions::Code,
        Regions::Name,
        Regions::Level,
        Regions::Parent,
        Regions::VillageType,
        Regions::NCity,
        Regions::NCounty,
        Regions::NTownship,
        Regions::NVillage,
    ]
}

pub async fn get(db: &Db, code: &RegionCode) -> Result<Option<Region>> {
    let q = Query::select()
        .columns(region_columns())
        .from(Regions::Table)
        .and_where(Expr::col(Regions::Code).eq(code.as_str()))
        .to_owned();
    db.fetch_optional(&q).await
}

/// Resolves a code as users write it, accepting zero-padded forms
/// (`360000` → 江西省) when no region has the literal code.
pub async fn resolve(db: &Db, code: &RegionCode) -> Result<Option<Region>> {
    let candidates = code.lookup_candidates();
    let q = Query::select()
        .columns(region_columns())
        .from(Regions::Table)
        .and_where(Expr::col(Regions::Code).is_in(candidates.iter().map(|c| c.as_str())))
        .to_owned();
    let found: Vec<Region> = db.fetch_all(&q).await?;
    Ok(candidates
        .iter()
        .find_map(|c| found.iter().find(|r| r.code == c.as_str()).cloned()))
}

/// [`resolve`] and the found region's ancestors' (code, name), in one query:
/// the candidates and all their ancestors are read together.
pub async fn resolve_with_ancestors(db: &Db, code: &RegionCode) -> Result<Option<(Region, Vec<(String, String)>)>> {
    let candidates = code.lookup_candidates();
    let mut wanted: Vec<String> = Vec::new();
    for c in &candidates {
        wanted.push(c.to_string());
        wanted.extend(c.ancestors().iter().map(|a| a.to_string()));
    }
    wanted.sort();
    wanted.dedup();
    let q = Query::select()
        .columns(region_columns())
        .from(Regions::Table)
        .and_where(Expr::col(Regions::Code).is_in(wanted))
        .to_owned();
    let found: Vec<Region> = db.fetch_all(&q).await?;
    let Some(region) = candidates
        .iter()
        .find_map(|c| found.iter().find(|r| r.code == c.as_str()))
    else {
        return Ok(None);
    };
    let ancestors = region
        .code()
        .ancestors()
        .iter()
        .filter_map(|a| {
            found
                .iter()
                .find(|r| r.code == a.as_str())
                .map(|r| (r.code.clone(), r.name.clone()))
        })
        .collect();
    Ok(Some((region.clone(), ancestors)))
}

/// Like [`resolve`], but a missing region is a 404.
pub async fn require(db: &Db, code: &RegionCode) -> Result<Region> {
    resolve(db, code)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no region with code {code}")))
}

pub async fn children(db: &Db, code: &RegionCode) -> Result<Vec<Region>> {
    let q = Query::select()
        .columns(region_columns())
        .from(Regions::Table)
        .and_where(Expr::col(Regions::Parent).eq(code.as_str()))
        .order_by(Regions::Code, Order::Asc)
        .to_owned();
    db.fetch_all(&q).await
}

/// Regions without a parent: the provinces loaded.
pub async fn roots(db: &Db) -> Result<Vec<Region>> {
    let q = Query::select()
        .columns(region_columns())
        .from(Regions::Table)
        .and_where(Expr::col(Regions::Parent).is_null())
        .order_by(Regions::Code, Order::Asc)
        .to_owned();
    db.fetch_all(&q).await
}

/// Names of the given codes, in the order given (missing ones skipped).
pub async fn names(db: &Db, codes: &[RegionCode]) -> Result<Vec<(String, String)>> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let q = Query::select()
        .columns([Regions::Code, Regions::Name])
        .from(Regions::Table)
        .and_where(Expr::col(Regions::Code).is_in(codes.iter().map(|c| c.as_str())))
        .to_owned();
    let found: Vec<(String, String)> = db.fetch_all(&q).await?;
    Ok(codes
        .iter()
        .filter_map(|c| found.iter().find(|(k, _)| k == c.as_str()).cloned())
        .collect())
}

/// Regions whose name contains `q`, limited to the given scopes (`None`: all).
/// Names that start with `q` come first, then higher levels before lower.
pub async fn search(db: &Db, q: &str, scopes: Option<&[RegionCode]>, limit: u64) -> Result<Vec<Region>> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(Vec::new());
    }
    let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let mut stmt = Query::select();
    stmt.columns(region_columns())
        .from(Regions::Table)
        .and_where(Expr::col(Regions::Name).like(LikeExpr::new(format!("%{escaped}%")).escape('\\')));
    if let Some(scopes) = scopes {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let mut any = sea_query::Condition::any();
        for s in scopes {
            let (lo, hi) = s.subtree_range();
            any = any.add(Expr::col(Regions::Code).gte(lo).and(Expr::col(Regions::Code).lt(hi)));
        }
        stmt.cond_where(any);
    }
    stmt.order_by_expr(
        Expr::case(
            Expr::col(Regions::Name).like(LikeExpr::new(format!("{escaped}%")).escape('\\')),
            0,
        )
        .finally(1)
        .into(),
        Order::Asc,
    )
    .order_by_expr(Expr::cust("length(code)"), Order::Asc)
    .order_by(Regions::Code, Order::Asc)
    .limit(limit);
    db.fetch_all(&stmt).await
}

pub async fn set_village_type(tx: &mut Tx, code: &RegionCode, vt: Option<VillageType>) -> Result<()> {
    let q = Query::update()
        .table(Regions::Table)
        .values([
            (Regions::VillageType, vt.map(|v| v.as_str().to_string()).into()),
            (Regions::UpdatedAt, now().into()),
        ])
        .and_where(Expr::col(Regions::Code).eq(code.as_str()))
        .to_owned();
    if tx.execute(&q).await? == 0 {
        return Err(CoreError::NotFound(format!("no region with code {code}")));
    }
    cache::bump(tx, cache::REGIONS).await
}

pub async fn count(db: &Db) -> Result<i64> {
    let q = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from(Regions::Table)
        .to_owned();
    let (n,): (i64,) = db.fetch_one(&q).await?;
    Ok(n)
}

/// One region as read from an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionRecord {
    pub code: RegionCode,
    pub name: String,
}

/// Rows per multi-row INSERT: 4 binds a row keeps the statement under
/// SQLite's 32,766-parameter limit and PostgreSQL's 65,535.
const UPSERT_CHUNK: usize = 5_000;

/// Writes `records` in one transaction: new codes inserted, changed names
/// updated, identical rows left untouched (so a re-import writes nothing).
/// Returns how many rows were written.
pub async fn upsert(db: &Db, records: &[RegionRecord], progress: &(dyn Fn(u64) + Sync)) -> Result<u64> {
    let mut tx = db.begin().await?;
    let at: Timestamp = now();
    let mut written = 0;
    for chunk in records.chunks(UPSERT_CHUNK) {
        let mut q = Query::insert();
        q.into_table(Regions::Table).columns([
            Regions::Code,
            Regions::Name,
            Regions::Level,
            Regions::Parent,
            Regions::UpdatedAt,
        ]);
        for r in chunk {
            q.values_panic([
                r.code.as_str().into(),
                r.name.as_str().into(),
                r.code.level().as_str().into(),
                r.code.parent().map(|p| p.to_string()).into(),
                at.into(),
            ]);
        }
        q.on_conflict(
            OnConflict::column(Regions::Code)
                .update_columns([Regions::Name, Regions::Level, Regions::Parent, Regions::UpdatedAt])
                .action_and_where(Expr::cust(
                    "regions.name <> excluded.name OR regions.level <> excluded.level \
                     OR regions.parent IS DISTINCT FROM excluded.parent",
                ))
                .to_owned(),
        );
        written += tx.execute(&q).await?;
        progress(chunk.len() as u64);
    }
    refresh_counts(&mut tx).await?;
    cache::bump(&mut tx, cache::REGIONS).await?;
    tx.commit().await?;
    Ok(written)
}

/// Recomputes every region's descendant counts from the stored codes and
/// writes only the rows whose counts changed.
async fn refresh_counts(tx: &mut Tx) -> Result<()> {
    let q = Query::select()
        .columns([
            Regions::Code,
            Regions::NCity,
            Regions::NCounty,
            Regions::NTownship,
            Regions::NVillage,
        ])
        .from(Regions::Table)
        .to_owned();
    let rows: Vec<(String, i64, i64, i64, i64)> = tx.fetch_all(&q).await?;
    let mut counts: HashMap<&str, [i64; 4]> = HashMap::with_capacity(rows.len() / 8);
    for (code, ..) in &rows {
        let slot = match code.len() {
            4 => 0,
            6 => 1,
            9 => 2,
            12 => 3,
            _ => continue,
        };
        for len in [2, 4, 6, 9] {
            if len < code.len() {
                counts.entry(&code[..len]).or_default()[slot] += 1;
            }
        }
    }
    let changed: Vec<(&str, [i64; 4])> = rows
        .iter()
        .filter_map(|(code, c, co, t, v)| {
            let want = counts.get(code.as_str()).copied().unwrap_or_default();
            (want != [*c, *co, *t, *v]).then_some((code.as_str(), want))
        })
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    tx.execute_raw(
        "CREATE TEMPORARY TABLE IF NOT EXISTS region_counts_tmp \
         (code TEXT PRIMARY KEY, n_city BIGINT, n_county BIGINT, n_township BIGINT, n_village BIGINT)",
    )
    .await?;
    tx.execute_raw("DELETE FROM region_counts_tmp").await?;
    for chunk in changed.chunks(UPSERT_CHUNK) {
        let mut q = Query::insert();
        q.into_table("region_counts_tmp")
            .columns(["code", "n_city", "n_county", "n_township", "n_village"]);
        for (code, c) in chunk {
            q.values_panic([(*code).into(), c[0].into(), c[1].into(), c[2].into(), c[3].into()]);
        }
        tx.execute(&q).await?;
    }
    tx.execute_raw(
        "UPDATE regions SET n_city = t.n_city, n_county = t.n_county, n_township = t.n_township, \
         n_village = t.n_village FROM region_counts_tmp t WHERE regions.code = t.code",
    )
    .await?;
    tx.execute_raw("DROP TABLE region_counts_tmp").await?;
    Ok(())
}

/// A stored boundary: the full GeoJSON geometry and a simplified copy for maps.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Boundary {
    pub code: String,
    pub geometry: String,
    pub simplified: String,
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

/// The stored fields of a boundary, in `Boundary`'s order.
fn boundary_columns() -> [RegionBoundaries; 7] {
    [
        RegionBoundaries::Code,
        RegionBoundaries::Geometry,
        RegionBoundaries::Simplified,
        RegionBoundaries::MinLon,
        RegionBoundaries::MinLat,
        RegionBoundaries::MaxLon,
        RegionBoundaries::MaxLat,
    ]
}

pub async fn boundary(db: &Db, code: &RegionCode) -> Result<Option<Boundary>> {
    let q = Query::select()
        .columns(boundary_columns())
        .from(RegionBoundaries::Table)
        .and_where(Expr::col(RegionBoundaries::Code).eq(code.as_str()))
        .to_owned();
    db.fetch_optional(&q).await
}

/// Simplified boundaries of `code`'s children, for drawing a map of it.
pub async fn child_boundaries(db: &Db, code: &RegionCode) -> Result<Vec<(String, String)>> {
    let q = Query::select()
        .column((RegionBoundaries::Table, RegionBoundaries::Code))
        .column((RegionBoundaries::Table, RegionBoundaries::Simplified))
        .from(RegionBoundaries::Table)
        .inner_join(
            Regions::Table,
            Expr::col((Regions::Table, Regions::Code)).equals((RegionBoundaries::Table, RegionBoundaries::Code)),
        )
        .and_where(Expr::col((Regions::Table, Regions::Parent)).eq(code.as_str()))
        .order_by((RegionBoundaries::Table, RegionBoundaries::Code), Order::Asc)
        .to_owned();
    db.fetch_all(&q).await
}

/// Stores boundaries (code, full GeoJSON, simplified GeoJSON, bbox) in one
/// transaction, replacing any earlier ones; returns rows written.
pub async fn upsert_boundaries(db: &Db, rows: &[Boundary]) -> Result<u64> {
    let mut tx = db.begin().await?;
    let at = now();
    let mut written = 0;
    for b in rows {
        let q = Query::insert()
            .into_table(RegionBoundaries::Table)
            .columns(boundary_columns().into_iter().chain([RegionBoundaries::UpdatedAt]))
            .values_panic([
                b.code.as_str().into(),
                b.geometry.as_str().into(),
                b.simplified.as_str().into(),
                b.min_lon.into(),
                b.min_lat.into(),
                b.max_lon.into(),
                b.max_lat.into(),
                at.into(),
            ])
            .on_conflict(
                OnConflict::column(RegionBoundaries::Code)
                    .update_columns(
                        boundary_columns()
                            .into_iter()
                            .skip(1)
                            .chain([RegionBoundaries::UpdatedAt]),
                    )
                    .action_and_where(Expr::cust("region_boundaries.geometry <> excluded.geometry"))
                    .to_owned(),
            )
            .to_owned();
        written += tx.execute(&q).await?;
    }
    cache::bump(&mut tx, cache::REGIONS).await?;
    tx.commit().await?;
    Ok(written)
}
