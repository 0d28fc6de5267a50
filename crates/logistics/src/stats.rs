//! 物流统计 the overview numbers officials see for a region: shipments per
//! pickup region (village, or township for station pickups) by status, the
//! on-time rate of deliveries (delivered by the deadline), and the rate of
//! handovers whose measured temperature lay outside the shipment's band.
//!
//! Cold-chain reports are computed on demand from the IoT readings and not
//! stored, so the excursion figure here rests on the temperatures recorded
//! at handover; it is a floor, not the logger-based excursion rate.

use std::collections::BTreeMap;

use sea_query::{Alias, Expr, ExprTrait, Func, Order, Query};
use serde::Serialize;
use shuxiang_core::auth::Principal;
use shuxiang_core::{CoreError, Db, RegionCode};

use crate::coldchain::{Band, TemperatureClass, resolve_band};
use crate::shipments::{LogisticsHandovers, LogisticsShipments, REGION_READERS, Status};
use crate::store;

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub region: String,
    pub totals: RegionStats,
    /// One entry per pickup region below `region`, by code.
    pub by_region: Vec<RegionStats>,
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

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The overview of `region`, for administrators, officials and village
/// staff whose scope covers it.
pub async fn stats(db: &Db, caller: &Principal, region: &RegionCode) -> Result<Stats, CoreError> {
    caller.require_role(REGION_READERS)?;
    caller.require(REGION_READERS, region)?;
    let within = store::in_scopes(LogisticsShipments::RegionCode, Some(std::slice::from_ref(region)));
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
        .cond_where(store::in_scopes(
            (LogisticsShipments::Table, LogisticsShipments::RegionCode),
            Some(std::slice::from_ref(region)),
        ))
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
        totals,
        by_region,
    })
}
