//! 物流统计 the overview numbers officials see for a region: shipments per
//! pickup region (village, or township for station pickups) by status, the
//! on-time rate of deliveries (delivered by the deadline), the rate of
//! handovers whose measured temperature lay outside the shipment's band,
//! the network per tier (三级物流体系), and empty running (空驶率).
//!
//! Cold-chain reports are computed on demand from the IoT readings and not
//! stored, so the excursion figure here rests on the temperatures recorded
//! at handover; it is a floor, not the logger-based excursion rate.
//!
//! Per tier (province, city, county, village): the sites registered in the
//! region and how many of them have cold storage, and the region's
//! shipments that start at or go to a site of that tier. Shipments picked
//! up at a field edge rather than a site count in no tier's `from`, and a
//! county's shipments to a city warehouse count in the city tier's `to`
//! although the warehouse itself lies outside the county.
//!
//! Empty running is read from the stored dispatch plans of depots in the
//! region ([`crate::plans`]) that no re-plan replaced. A village collection run leaves its depot
//! empty and fills up stop by stop, so its empty kilometres are the leg from
//! the depot to the first pickup, measured as the planner measured it
//! (great-circle distance times the plan's road factor); total kilometres
//! are the routes' planned distances, back to the depot included. The ratio
//! is empty over total kilometres across all routes, `None` without routes.
//! These are planned, not driven, kilometres.
//!
//! The optional period is a range of local (UTC+8) days, both ends
//! included: it selects shipments by their ready time and plans by their
//! day; the sites are counted as they are now.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use sea_query::{Alias, Condition, Expr, ExprTrait, Func, Order, Query};
use serde::{Deserialize, Serialize};
use shuxiang_core::auth::Principal;
use shuxiang_core::time::Timestamp;
use shuxiang_core::{CoreError, Db, RegionCode};

use crate::coldchain::{Band, TemperatureClass, resolve_band};
use crate::network::{LogisticsSites, Tier};
use crate::plans::{LogisticsPlanRoutes, LogisticsPlanStops, LogisticsPlans, haversine_km, is_current};
use crate::shipments::{LogisticsHandovers, LogisticsShipments, REGION_READERS, Status};
use crate::store;

/// China Standard Time, the clock the period's days are kept in.
const CHINA_OFFSET_S: i64 = 8 * 3600;
const TIERS: [Tier; 4] = [Tier::Province, Tier::City, Tier::County, Tier::Village];

/// Local days `from` to `to`, both included; an open end is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    #[serde(default)]
    pub from: Option<NaiveDate>,
    #[serde(default)]
    pub to: Option<NaiveDate>,
}

impl Period {
    fn validate(&self) -> Result<(), CoreError> {
        match (self.from, self.to) {
            (Some(f), Some(t)) if f > t => Err(CoreError::invalid(
                "invalid_period",
                format!("the period's start {f} comes after its end {t}"),
            )),
            _ => Ok(()),
        }
    }

    /// Midnight starting `day` in China, as UTC.
    fn midnight(day: NaiveDate) -> Timestamp {
        day.and_time(chrono::NaiveTime::MIN).and_utc() - chrono::Duration::seconds(CHINA_OFFSET_S)
    }

    /// Shipments whose ready time falls in the period.
    fn shipments(&self) -> Condition {
        let col = (LogisticsShipments::Table, LogisticsShipments::ReadyAt);
        let mut c = Condition::all();
        if let Some(f) = self.from {
            c = c.add(Expr::col(col).gte(Self::midnight(f)));
        }
        if let Some(t) = self.to {
            c = c.add(Expr::col(col).lt(Self::midnight(t) + chrono::Duration::days(1)));
        }
        c
    }

    /// Plans of a day in the period; days are stored as `YYYY-MM-DD`, whose
    /// text order is date order.
    fn plans(&self) -> Condition {
        let col = (LogisticsPlans::Table, LogisticsPlans::Day);
        let mut c = Condition::all();
        if let Some(f) = self.from {
            c = c.add(Expr::col(col).gte(f.to_string()));
        }
        if let Some(t) = self.to {
            c = c.add(Expr::col(col).lte(t.to_string()));
        }
        c
    }
}

/// Counts for one region (a pickup region, or the whole region asked for).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RegionStats {
    pub region_code: String,
    pub shipments: i64,
    /// Shipments per status (`booked`, `planned`, …); statuses without
    /// shipments are left out.
    pub by_status: BTreeMap<&'static str, i64>,
    pub delivered: i64,
    /// Delivered by the deadline.
    pub on_time: i64,
    /// `on_time / delivered`; `None` before any delivery.
    pub on_time_rate: Option<f64>,
    /// Handovers with a measured temperature.
    pub handovers_measured: i64,
    /// Of those, measured outside the shipment's band.
    pub handover_excursions: i64,
    pub handover_excursion_rate: Option<f64>,
}

/// One tier of the network as seen from the region (see the module's
/// definitions).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierStats {
    pub tier: Tier,
    /// Sites of this tier registered in the region.
    pub sites: i64,
    /// Of those, with cold storage (冷库).
    pub cold_storage_sites: i64,
    /// The region's shipments picked up at a site of this tier.
    pub shipments_from: i64,
    /// The region's shipments bound for a site of this tier.
    pub shipments_to: i64,
}

/// 空驶 planned empty running of the region's collection runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EmptyRunning {
    pub plans: i64,
    pub routes: i64,
    /// Depot to first pickup, summed over the routes.
    pub empty_km: f64,
    pub total_km: f64,
    /// `empty_km / total_km`; `None` without planned kilometres.
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub region: String,
    /// The period asked for (local days, both included).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub totals: RegionStats,
    /// One entry per pickup region below `region`, by code.
    pub by_region: Vec<RegionStats>,
    /// Province, city, county and village tiers, in that order.
    pub tiers: Vec<TierStats>,
    pub empty_running: EmptyRunning,
}

#[derive(sqlx::FromRow)]
struct CountRow {
    region_code: String,
    status: String,
    n: i64,
    on_time: i64,
}

#[derive(sqlx::FromRow)]
struct HandoverRow {
    region_code: String,
    temperature_c: f64,
    commodity: String,
    temperature_class: String,
    band_min_c: Option<f64>,
    band_max_c: Option<f64>,
    band_set: bool,
}

#[derive(sqlx::FromRow)]
struct RouteRow {
    plan_id: i64,
    road_factor: f64,
    depot_lon: f64,
    depot_lat: f64,
    distance_km: f64,
    first_lon: Option<f64>,
    first_lat: Option<f64>,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn tier_of(stored: &str) -> Result<Tier, CoreError> {
    TIERS
        .into_iter()
        .find(|t| t.as_str() == stored)
        .ok_or_else(|| CoreError::Internal(format!("stored tier {stored:?} is unknown")))
}

/// The overview of `region` over all time; see [`stats_in`].
pub async fn stats(db: &Db, caller: &Principal, region: &RegionCode) -> Result<Stats, CoreError> {
    stats_in(db, caller, region, &Period::default()).await
}

/// The overview of `region` over `period`, for administrators, officials
/// and village staff whose scope covers it.
pub async fn stats_in(db: &Db, caller: &Principal, region: &RegionCode, period: &Period) -> Result<Stats, CoreError> {
    caller.require_role(REGION_READERS)?;
    caller.require(REGION_READERS, region)?;
    period.validate()?;
    // `in_scopes` is an any-of condition: the period joins it under an all.
    let within = Condition::all()
        .add(store::in_scopes(
            (LogisticsShipments::Table, LogisticsShipments::RegionCode),
            Some(std::slice::from_ref(region)),
        ))
        .add(period.shipments());
    // SQLite keeps UTC timestamps as RFC 3339 text, whose order is time
    // order, so the comparison holds on both backends.
    let on_time = Expr::case(
        Expr::col(LogisticsShipments::DeliveredAt).lte(Expr::col(LogisticsShipments::Deadline)),
        1,
    )
    .finally(0);
    let q = Query::select()
        .column(LogisticsShipments::RegionCode)
        .column(LogisticsShipments::Status)
        .expr_as(Func::count(Expr::col(LogisticsShipments::Id)), Alias::new("n"))
        .expr_as(
            Func::coalesce([Func::sum(on_time).into(), Expr::val(0)]),
            Alias::new("on_time"),
        )
        .from(LogisticsShipments::Table)
        .cond_where(within.clone())
        .group_by_col(LogisticsShipments::RegionCode)
        .group_by_col(LogisticsShipments::Status)
        .order_by(LogisticsShipments::RegionCode, Order::Asc)
        .to_owned();
    let counts: Vec<CountRow> = db.fetch_all(&q).await?;

    let q = Query::select()
        .column((LogisticsShipments::Table, LogisticsShipments::RegionCode))
        .column((LogisticsHandovers::Table, LogisticsHandovers::TemperatureC))
        .columns([
            (LogisticsShipments::Table, LogisticsShipments::Commodity),
            (LogisticsShipments::Table, LogisticsShipments::TemperatureClass),
            (LogisticsShipments::Table, LogisticsShipments::BandMinC),
            (LogisticsShipments::Table, LogisticsShipments::BandMaxC),
            (LogisticsShipments::Table, LogisticsShipments::BandSet),
        ])
        .from(LogisticsHandovers::Table)
        .inner_join(
            LogisticsShipments::Table,
            Expr::col((LogisticsShipments::Table, LogisticsShipments::Id))
                .equals((LogisticsHandovers::Table, LogisticsHandovers::ShipmentId)),
        )
        .cond_where(within.clone())
        .and_where(Expr::col((LogisticsHandovers::Table, LogisticsHandovers::TemperatureC)).is_not_null())
        .to_owned();
    let handovers: Vec<HandoverRow> = db.fetch_all(&q).await?;

    let mut per: BTreeMap<String, RegionStats> = BTreeMap::new();
    for row in counts {
        let status = Status::parse_stored(&row.status)?;
        let s = per.entry(row.region_code.clone()).or_insert_with(|| RegionStats {
            region_code: row.region_code.clone(),
            ..Default::default()
        });
        s.shipments += row.n;
        *s.by_status.entry(status.as_str()).or_default() += row.n;
        if status == Status::Delivered {
            s.delivered += row.n;
            s.on_time += row.on_time;
        }
    }
    for h in handovers {
        let class = TemperatureClass::parse_stored(&h.temperature_class)?;
        let own = h.band_set.then_some(Band {
            min_c: h.band_min_c,
            max_c: h.band_max_c,
        });
        let (band, _) = resolve_band(own, &h.commodity, class);
        let s = per.entry(h.region_code.clone()).or_insert_with(|| RegionStats {
            region_code: h.region_code.clone(),
            ..Default::default()
        });
        s.handovers_measured += 1;
        if band.side(h.temperature_c).is_some() {
            s.handover_excursions += 1;
        }
    }
    let mut totals = RegionStats {
        region_code: region.to_string(),
        ..Default::default()
    };
    let mut by_region: Vec<RegionStats> = per.into_values().collect();
    for s in &mut by_region {
        s.on_time_rate = rate(s.on_time, s.delivered);
        s.handover_excursion_rate = rate(s.handover_excursions, s.handovers_measured);
        totals.shipments += s.shipments;
        totals.delivered += s.delivered;
        totals.on_time += s.on_time;
        totals.handovers_measured += s.handovers_measured;
        totals.handover_excursions += s.handover_excursions;
        for (k, v) in &s.by_status {
            *totals.by_status.entry(k).or_default() += v;
        }
    }
    totals.on_time_rate = rate(totals.on_time, totals.delivered);
    totals.handover_excursion_rate = rate(totals.handover_excursions, totals.handovers_measured);
    Ok(Stats {
        region: region.to_string(),
        from: period.from,
        to: period.to,
        totals,
        by_region,
        tiers: tiers(db, region, &within).await?,
        empty_running: empty_running(db, region, period).await?,
    })
}

/// The network per tier: sites in `region`, and the shipments matching
/// `within` by the tier of their origin and destination sites.
async fn tiers(db: &Db, region: &RegionCode, within: &Condition) -> Result<Vec<TierStats>, CoreError> {
    let mut out: Vec<TierStats> = TIERS
        .into_iter()
        .map(|tier| TierStats {
            tier,
            sites: 0,
            cold_storage_sites: 0,
            shipments_from: 0,
            shipments_to: 0,
        })
        .collect();
    let index = |stored: &str| -> Result<usize, CoreError> {
        let t = tier_of(stored)?;
        Ok(TIERS.iter().position(|x| *x == t).unwrap_or_default())
    };

    let q = Query::select()
        .column(LogisticsSites::Tier)
        .column(LogisticsSites::ColdStorage)
        .expr(Func::count(Expr::col(LogisticsSites::Id)))
        .from(LogisticsSites::Table)
        .cond_where(store::in_scopes(
            LogisticsSites::RegionCode,
            Some(std::slice::from_ref(region)),
        ))
        .group_by_col(LogisticsSites::Tier)
        .group_by_col(LogisticsSites::ColdStorage)
        .to_owned();
    let sites: Vec<(String, bool, i64)> = db.fetch_all(&q).await?;
    for (tier, cold, n) in sites {
        let t = &mut out[index(&tier)?];
        t.sites += n;
        if cold {
            t.cold_storage_sites += n;
        }
    }

    for (end, origin) in [
        (LogisticsShipments::OriginSiteId, true),
        (LogisticsShipments::DestinationSiteId, false),
    ] {
        let q = Query::select()
            .column((LogisticsSites::Table, LogisticsSites::Tier))
            .expr(Func::count(Expr::col((
                LogisticsShipments::Table,
                LogisticsShipments::Id,
            ))))
            .from(LogisticsShipments::Table)
            .inner_join(
                LogisticsSites::Table,
                Expr::col((LogisticsSites::Table, LogisticsSites::Id)).equals((LogisticsShipments::Table, end)),
            )
            .cond_where(within.clone())
            .group_by_col((LogisticsSites::Table, LogisticsSites::Tier))
            .to_owned();
        let rows: Vec<(String, i64)> = db.fetch_all(&q).await?;
        for (tier, n) in rows {
            let t = &mut out[index(&tier)?];
            if origin {
                t.shipments_from += n;
            } else {
                t.shipments_to += n;
            }
        }
    }
    Ok(out)
}

/// Empty and total planned kilometres of the routes of plans made for
/// depots in `region` on days of `period` (see the module's definition).
async fn empty_running(db: &Db, region: &RegionCode, period: &Period) -> Result<EmptyRunning, CoreError> {
    let q = Query::select()
        .expr_as(
            Expr::col((LogisticsPlans::Table, LogisticsPlans::Id)),
            Alias::new("plan_id"),
        )
        .column((LogisticsPlans::Table, LogisticsPlans::RoadFactor))
        .expr_as(
            Expr::col((LogisticsSites::Table, LogisticsSites::Lon)),
            Alias::new("depot_lon"),
        )
        .expr_as(
            Expr::col((LogisticsSites::Table, LogisticsSites::Lat)),
            Alias::new("depot_lat"),
        )
        .column((LogisticsPlanRoutes::Table, LogisticsPlanRoutes::DistanceKm))
        .expr_as(
            Expr::col((LogisticsShipments::Table, LogisticsShipments::OriginLon)),
            Alias::new("first_lon"),
        )
        .expr_as(
            Expr::col((LogisticsShipments::Table, LogisticsShipments::OriginLat)),
            Alias::new("first_lat"),
        )
        .from(LogisticsPlanRoutes::Table)
        .inner_join(
            LogisticsPlans::Table,
            Expr::col((LogisticsPlans::Table, LogisticsPlans::Id))
                .equals((LogisticsPlanRoutes::Table, LogisticsPlanRoutes::PlanId)),
        )
        .inner_join(
            LogisticsSites::Table,
            Expr::col((LogisticsSites::Table, LogisticsSites::Id))
                .equals((LogisticsPlans::Table, LogisticsPlans::DepotSiteId)),
        )
        .left_join(
            LogisticsPlanStops::Table,
            Condition::all()
                .add(
                    Expr::col((LogisticsPlanStops::Table, LogisticsPlanStops::PlanId))
                        .equals((LogisticsPlanRoutes::Table, LogisticsPlanRoutes::PlanId)),
                )
                .add(
                    Expr::col((LogisticsPlanStops::Table, LogisticsPlanStops::VehicleId))
                        .equals((LogisticsPlanRoutes::Table, LogisticsPlanRoutes::VehicleId)),
                )
                .add(Expr::col((LogisticsPlanStops::Table, LogisticsPlanStops::Seq)).eq(1)),
        )
        .left_join(
            LogisticsShipments::Table,
            Expr::col((LogisticsShipments::Table, LogisticsShipments::Id))
                .equals((LogisticsPlanStops::Table, LogisticsPlanStops::ShipmentId)),
        )
        .cond_where(
            Condition::all()
                .add(store::in_scopes(
                    (LogisticsPlans::Table, LogisticsPlans::RegionCode),
                    Some(std::slice::from_ref(region)),
                ))
                .add(period.plans())
                // A re-planned day counts once, as last planned.
                .add(is_current()),
        )
        .to_owned();
    let rows: Vec<RouteRow> = db.fetch_all(&q).await?;
    let mut out = EmptyRunning::default();
    let mut plans = HashSet::new();
    for r in rows {
        plans.insert(r.plan_id);
        out.routes += 1;
        out.total_km += r.distance_km;
        if let (Some(lon), Some(lat)) = (r.first_lon, r.first_lat) {
            out.empty_km += haversine_km((r.depot_lon, r.depot_lat), (lon, lat)) * r.road_factor;
        }
    }
    out.plans = plans.len() as i64;
    out.ratio = (out.total_km > 0.0).then(|| out.empty_km / out.total_km);
    Ok(out)
}
