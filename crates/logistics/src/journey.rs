//! 物流轨迹 the logistics journey of a trace code, for the consumer who
//! scanned it and for third-party apps: which shipments carried the code,
//! from which village or site to which warehouse or buyer, when each step
//! happened, the temperatures measured at handovers, and whether the cold
//! chain held (from the vehicle's logger, or failing that from the handover
//! temperatures, saying which).
//!
//! Public by design, so it tells only facts about goods and places: no
//! booker, driver, signer or receiver, no phone, no plate, and no buyer's
//! name or location (a buyer may be a private person). Handover parties are
//! free text that often holds a name, so a handover shows only its kind,
//! time and temperature. Cancelled shipments never carried the goods and
//! are left out.

use serde::Serialize;
use shuxiang_core::time::Timestamp;
use shuxiang_core::{CoreError, Db, RegionCode, regions};

use crate::coldchain::{Band, Direction, TemperatureClass, TemperatureSource};
use crate::network::{self, SiteKind};
use crate::report::{self, DEFAULT_MAX_GAP_S, GapEntry, Verdict};
use crate::shipments::{self, Shipment, Status};

/// At most this many shipments per code (the newest), so one scan costs a
/// bounded number of queries and logger reads.
pub const MAX_JOURNEYS: u64 = 20;
/// Longer input is no code of any scheme the slice accepts (booking caps a
/// code at 128 characters; dashes and spaces may be added when typed).
pub const MAX_CODE_INPUT: usize = 256;

/// One end of a journey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// `site` (a place of the logistics network), `pickup_point` (a point in
    /// a village) or `buyer` (shown without name or location).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_kind: Option<SiteKind>,
    /// The site's name, or the pickup village's name.
    pub name: Option<String>,
    pub region_code: Option<String>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
}

/// A handover of the goods: `pickup` (the first, from the shipper) or
/// `transfer` (a hub, a second vehicle).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stop {
    pub at: Timestamp,
    pub kind: &'static str,
    pub temperature_c: Option<f64>,
    /// Whether the measured temperature lies in the band (`None` unmeasured).
    pub in_band: Option<bool>,
}

/// What the cold-chain verdict rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The readings of the logger on the vehicle.
    Logger,
    /// No logger: the temperatures measured at handovers only, which show
    /// moments, not the whole way.
    HandoverTemperatures,
    /// Neither a logger nor a measured handover.
    None,
}

/// An excursion out of the band, with its worst temperature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excursion {
    pub start: Timestamp,
    pub end: Timestamp,
    pub duration_s: f64,
    pub direction: Direction,
    /// The warmest reading of a warm excursion, the coldest of a cold one.
    pub peak_c: f64,
    pub ongoing: bool,
}

/// 冷链结论 whether the cold chain can be shown to have held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdChain {
    /// The report's verdict (see [`crate::report`]); `no_logger` with
    /// `basis: handover_temperatures` means only handovers were measured.
    pub verdict: Verdict,
    pub basis: Basis,
    /// Whether the goods have a band at all (ambient goods do not).
    pub applicable: bool,
    pub readings: usize,
    pub min_c: Option<f64>,
    pub max_c: Option<f64>,
    pub excursions: Vec<Excursion>,
    pub gaps: Vec<GapEntry>,
    /// Handovers with a measured temperature, and how many were out of band.
    pub handovers_measured: usize,
    pub handovers_out_of_band: usize,
}

/// One shipment that carried the code, as a consumer may see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    pub shipment_id: i64,
    pub commodity: String,
    pub temperature_class: TemperatureClass,
    pub band: Band,
    pub origin: Endpoint,
    pub destination: Endpoint,
    pub status: Status,
    pub booked_at: Timestamp,
    pub picked_up_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub deadline: Timestamp,
    pub on_time: Option<bool>,
    pub handovers: Vec<Stop>,
    pub cold_chain: ColdChain,
}

/// The journeys of the goods labelled `code` (any printed form, see
/// [`shipments::canonical_trace_code`]), oldest first; empty when no
/// shipment carried it. Public: no caller is needed.
pub async fn journeys_for_trace_code(
    db: &Db,
    source: &dyn TemperatureSource,
    code: &str,
) -> Result<Vec<Journey>, CoreError> {
    if code.len() > MAX_CODE_INPUT {
        return Ok(Vec::new());
    }
    let mut carried = shipments::carrying_trace_code(db, code, MAX_JOURNEYS).await?;
    carried.retain(|s| s.status != Status::Cancelled);
    carried.reverse();
    let mut out = Vec::with_capacity(carried.len());
    for s in &carried {
        out.push(journey(db, source, s).await?);
    }
    Ok(out)
}

async fn journey(db: &Db, source: &dyn TemperatureSource, s: &Shipment) -> Result<Journey, CoreError> {
    let handovers: Vec<Stop> = s
        .handovers
        .iter()
        .enumerate()
        .map(|(i, h)| Stop {
            at: h.at,
            kind: if i == 0 { "pickup" } else { "transfer" },
            temperature_c: h.temperature_c,
            in_band: h.temperature_c.map(|t| s.band.side(t).is_none()),
        })
        .collect();
    Ok(Journey {
        shipment_id: s.id,
        commodity: s.commodity.clone(),
        temperature_class: s.temperature_class,
        band: s.band,
        origin: origin(db, s).await?,
        destination: destination(db, s).await?,
        status: s.status,
        booked_at: s.created_at,
        picked_up_at: s.handovers.first().map(|h| h.at),
        delivered_at: s.delivered_at,
        deadline: s.deadline,
        on_time: s.on_time,
        cold_chain: cold_chain_verdict(db, source, s).await?,
        handovers,
    })
}

async fn site_endpoint(db: &Db, id: i64) -> Result<Endpoint, CoreError> {
    let site = network::get_site(db, id).await?;
    Ok(Endpoint {
        kind: "site",
        site_kind: Some(site.kind),
        name: Some(site.name),
        region_code: Some(site.region_code),
        lon: Some(site.lon),
        lat: Some(site.lat),
    })
}

/// A site by its registered name; a pickup point by its village's name, not
/// the booker's free-text label for it.
async fn origin(db: &Db, s: &Shipment) -> Result<Endpoint, CoreError> {
    if let Some(id) = s.origin.site_id {
        return site_endpoint(db, id).await;
    }
    let name = match RegionCode::parse(&s.region_code) {
        Ok(code) => regions::get(db, &code).await?.map(|r| r.name),
        Err(_) => None,
    };
    Ok(Endpoint {
        kind: "pickup_point",
        site_kind: None,
        name,
        region_code: Some(s.region_code.clone()),
        lon: s.origin.lon,
        lat: s.origin.lat,
    })
}

async fn destination(db: &Db, s: &Shipment) -> Result<Endpoint, CoreError> {
    match s.destination.site_id {
        Some(id) => site_endpoint(db, id).await,
        None => Ok(Endpoint {
            kind: "buyer",
            site_kind: None,
            name: None,
            region_code: None,
            lon: None,
            lat: None,
        }),
    }
}

/// The cold-chain verdict of a shipment: the logger's report when the
/// vehicle has one, and always the handover temperatures against the band,
/// which are the whole basis when there is no logger.
pub async fn cold_chain_verdict(db: &Db, source: &dyn TemperatureSource, s: &Shipment) -> Result<ColdChain, CoreError> {
    let r = report::report_of(db, source, s, DEFAULT_MAX_GAP_S).await?;
    let measured: Vec<f64> = s.handovers.iter().filter_map(|h| h.temperature_c).collect();
    let basis = if r.logger_device_id.is_some() && r.verdict != Verdict::NotStarted {
        Basis::Logger
    } else if !measured.is_empty() {
        Basis::HandoverTemperatures
    } else {
        Basis::None
    };
    Ok(ColdChain {
        verdict: r.verdict,
        basis,
        applicable: s.band.min_c.is_some() || s.band.max_c.is_some(),
        readings: r.readings,
        min_c: r.min_c,
        max_c: r.max_c,
        excursions: r
            .excursions
            .into_iter()
            .map(|e| Excursion {
                start: e.start,
                end: e.end,
                duration_s: e.duration_s,
                direction: e.direction,
                peak_c: match e.direction {
                    Direction::TooWarm => e.max_c,
                    Direction::TooCold => e.min_c,
                },
                ongoing: e.ongoing,
            })
            .collect(),
        gaps: r.gaps,
        handovers_measured: measured.len(),
        handovers_out_of_band: measured.iter().filter(|t| s.band.side(**t).is_some()).count(),
    })
}
