//! 运单 shipments of the village-to-city flow (出村进城): a pickup booked by
//! a farmer, cooperative or service station, planned onto a vehicle, picked
//! up, carried and delivered, with handover records (交接) and proof of
//! delivery (签收). The trace codes (追溯码) of the goods travel with it.
//!
//! Status moves only forward along
//! `booked → planned → picked_up → in_transit → delivered`, or from booked
//! or planned to `cancelled`; a planned shipment may be re-planned onto
//! another vehicle. Anything else is 409 `illegal_transition`.
//!
//! Who sees and does what (every check is against the caller's grants):
//! - booking: administrators, village staff and farmers whose scope covers
//!   the pickup's region;
//! - reading: the booker; administrators, officials and village staff over
//!   the pickup's region; carriers over the region of the vehicle it is
//!   planned on (dealers and experts never);
//! - planning onto a vehicle: administrators, officials and carriers whose
//!   scope covers both the pickup's region and the vehicle's depot;
//! - pickup, transit, handovers and delivery: carriers over the vehicle's
//!   region, administrators and officials over the pickup's region;
//! - cancelling: the booker, and administrators, officials and village
//!   staff over the pickup's region.

use chrono::Duration;
use sea_query::{Condition, Expr, ExprTrait, Iden, LockType, Order, Query};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{Actor, Principal, Role};
use shuxiang_core::db::{Db, Tx};
use shuxiang_core::regions;
use shuxiang_core::time::{Timestamp, now};
use shuxiang_core::{CoreError, RegionCode, RegionLevel};

use crate::coldchain::{Band, BandSource, TemperatureClass, resolve_band};
use crate::network::{self, LogisticsVehicles, Vehicle};
use crate::store::{self, DEFAULT_LIMIT, MAX_LIMIT, MAX_NAME};

/// Who may book a pickup (over the pickup's region).
pub const BOOKERS: &[Role] = &[Role::Admin, Role::VillageStaff, Role::Farmer];
/// Who reads every shipment picked up in their region.
pub const REGION_READERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff];
/// Who plans shipments onto vehicles and moves them.
pub const OPERATORS: &[Role] = &[Role::Admin, Role::Official, Role::Carrier];
/// Who may cancel any shipment of their region (bookers cancel their own).
pub const CANCELLERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff];
/// Every role that can see some shipment.
pub const ANY_READER: &[Role] = &[
    Role::Admin,
    Role::Official,
    Role::VillageStaff,
    Role::Farmer,
    Role::Carrier,
];

const MAX_WEIGHT_KG: f64 = 50_000.0;
const MAX_VOLUME_M3: f64 = 200.0;
const MAX_COMMODITY: usize = 50;
const MAX_TRACE_CODES: usize = 100;
const MAX_TRACE_CODE: usize = 128;
const MAX_NOTE: usize = 500;
/// How far ahead of the server clock a recorded time may be (clock skew of
/// handheld devices).
const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

#[derive(Iden, Clone, Copy)]
pub(crate) enum LogisticsShipments {
    Table,
    Id,
    RegionCode,
    BookedBy,
    Goods,
    Commodity,
    WeightKg,
    VolumeM3,
    TemperatureClass,
    BandMinC,
    BandMaxC,
    BandSet,
    ReadyAt,
    Deadline,
    OriginSiteId,
    OriginName,
    OriginLon,
    OriginLat,
    DestinationSiteId,
    DestinationName,
    DestinationLon,
    DestinationLat,
    TraceCodes,
    Status,
    VehicleId,
    VehicleRegion,
    DeliveredAt,
    ReceiverName,
    DeliveryNote,
    CancelReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden, Clone, Copy)]
pub(crate) enum LogisticsHandovers {
    Table,
    ShipmentId,
    Seq,
    At,
    FromParty,
    ToParty,
    TemperatureC,
    SignatureName,
    Note,
    RecordedBy,
}

/// Which shipments carry a trace code, by the code's canonical form.
#[derive(Iden, Clone, Copy)]
pub(crate) enum LogisticsShipmentTraceCodes {
    Table,
    ShipmentId,
    TraceCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Booked,
    Planned,
    PickedUp,
    InTransit,
    Delivered,
    Cancelled,
}

impl Status {
    const ALL: [Status; 6] = [
        Self::Booked,
        Self::Planned,
        Self::PickedUp,
        Self::InTransit,
        Self::Delivered,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Planned => "planned",
            Self::PickedUp => "picked_up",
            Self::InTransit => "in_transit",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse_stored(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| CoreError::Internal(format!("stored shipment status {s:?} is unknown")))
    }

    /// Whether a shipment may move from `self` to `to` (planned → planned is
    /// a re-plan onto another vehicle).
    pub fn may_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Booked, Planned)
                | (Planned, Planned)
                | (Planned, PickedUp)
                | (PickedUp, InTransit)
                | (InTransit, Delivered)
                | (Booked, Cancelled)
                | (Planned, Cancelled)
        )
    }
}

/// Where goods are picked up or delivered: a site of the network, or a
/// point with coordinates (a village field edge, a buyer's shop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<i64>,
    /// A buyer's or point's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub lon: Option<f64>,
    #[serde(default)]
    pub lat: Option<f64>,
    /// For a pickup point: its village (or township) code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_code: Option<String>,
}

/// 交接 one handover of the goods from one party to the next.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handover {
    pub seq: i64,
    pub at: Timestamp,
    pub from_party: String,
    pub to_party: String,
    /// Temperature of the goods measured at handover.
    pub temperature_c: Option<f64>,
    /// Name of the person who signed for the goods.
    pub signature_name: String,
    pub note: Option<String>,
    pub recorded_by: i64,
}

#[derive(sqlx::FromRow)]
struct HandoverRow {
    seq: i64,
    at: Timestamp,
    from_party: String,
    to_party: String,
    temperature_c: Option<f64>,
    signature_name: String,
    note: Option<String>,
    recorded_by: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHandover {
    pub from_party: String,
    pub to_party: String,
    /// Defaults to now.
    #[serde(default)]
    pub at: Option<Timestamp>,
    #[serde(default)]
    pub temperature_c: Option<f64>,
    pub signature_name: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// 签收 proof of delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofOfDelivery {
    pub receiver_name: String,
    /// Defaults to now.
    #[serde(default)]
    pub at: Option<Timestamp>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shipment {
    pub id: i64,
    /// The pickup's region.
    pub region_code: String,
    pub booked_by: i64,
    pub goods: String,
    pub commodity: String,
    pub weight_kg: f64,
    pub volume_m3: f64,
    pub temperature_class: TemperatureClass,
    /// The band the goods must stay in, and where it came from.
    pub band: Band,
    pub band_source: BandSource,
    pub ready_at: Timestamp,
    pub deadline: Timestamp,
    pub origin: Place,
    pub destination: Place,
    pub trace_codes: Vec<String>,
    pub status: Status,
    pub vehicle_id: Option<i64>,
    pub vehicle_region: Option<String>,
    pub handovers: Vec<Handover>,
    pub delivered_at: Option<Timestamp>,
    pub receiver_name: Option<String>,
    pub delivery_note: Option<String>,
    /// Delivered by the deadline (`None` until delivered).
    pub on_time: Option<bool>,
    pub cancel_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ShipmentRow {
    id: i64,
    region_code: String,
    booked_by: i64,
    goods: String,
    commodity: String,
    weight_kg: f64,
    volume_m3: f64,
    temperature_class: String,
    band_min_c: Option<f64>,
    band_max_c: Option<f64>,
    band_set: bool,
    ready_at: Timestamp,
    deadline: Timestamp,
    origin_site_id: Option<i64>,
    origin_name: Option<String>,
    origin_lon: f64,
    origin_lat: f64,
    destination_site_id: Option<i64>,
    destination_name: Option<String>,
    destination_lon: f64,
    destination_lat: f64,
    trace_codes: String,
    status: String,
    vehicle_id: Option<i64>,
    vehicle_region: Option<String>,
    delivered_at: Option<Timestamp>,
    receiver_name: Option<String>,
    delivery_note: Option<String>,
    cancel_reason: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl ShipmentRow {
    fn into_shipment(self, handovers: Vec<Handover>) -> Result<Shipment, CoreError> {
        let class = TemperatureClass::parse_stored(&self.temperature_class)?;
        let own = self.band_set.then_some(Band {
            min_c: self.band_min_c,
            max_c: self.band_max_c,
        });
        let (band, band_source) = resolve_band(own, &self.commodity, class);
        let trace_codes = serde_json::from_str(&self.trace_codes)
            .map_err(|e| CoreError::Internal(format!("trace codes of shipment {}: {e}", self.id)))?;
        Ok(Shipment {
            id: self.id,
            region_code: self.region_code.clone(),
            booked_by: self.booked_by,
            goods: self.goods,
            commodity: self.commodity,
            weight_kg: self.weight_kg,
            volume_m3: self.volume_m3,
            temperature_class: class,
            band,
            band_source,
            ready_at: self.ready_at,
            deadline: self.deadline,
            origin: Place {
                site_id: self.origin_site_id,
                name: self.origin_name,
                lon: Some(self.origin_lon),
                lat: Some(self.origin_lat),
                region_code: Some(self.region_code),
            },
            destination: Place {
                site_id: self.destination_site_id,
                name: self.destination_name,
                lon: Some(self.destination_lon),
                lat: Some(self.destination_lat),
                region_code: None,
            },
            trace_codes,
            status: Status::parse_stored(&self.status)?,
            vehicle_id: self.vehicle_id,
            vehicle_region: self.vehicle_region,
            handovers,
            on_time: self.delivered_at.map(|d| d <= self.deadline),
            delivered_at: self.delivered_at,
            receiver_name: self.receiver_name,
            delivery_note: self.delivery_note,
            cancel_reason: self.cancel_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A pickup to book.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewShipment {
    /// What is carried, e.g. 白菜 20 箱.
    pub goods: String,
    /// A commodity key; `leafy_vegetables` and `bananas` bring their own
    /// band (see [`crate::coldchain::COMMODITY_BANDS`]).
    pub commodity: String,
    pub weight_kg: f64,
    pub volume_m3: f64,
    pub temperature_class: TemperatureClass,
    /// Overrides the commodity's or class's band.
    #[serde(default)]
    pub band: Option<Band>,
    pub ready_at: Timestamp,
    pub deadline: Timestamp,
    pub origin: Place,
    pub destination: Place,
    #[serde(default)]
    pub trace_codes: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ShipmentQuery {
    pub status: Option<Status>,
    /// Pickups in this region and below.
    pub region: Option<RegionCode>,
    pub vehicle_id: Option<i64>,
    pub limit: Option<u64>,
}

/// A status change with what it needs: a handover for pickup (and
/// optionally for departure), proof of delivery, a reason to cancel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: Status,
    #[serde(default)]
    pub handover: Option<NewHandover>,
    #[serde(default)]
    pub proof_of_delivery: Option<ProofOfDelivery>,
    #[serde(default)]
    pub reason: Option<String>,
}

// ---- validation ----

/// Crockford base32 as the trace slice writes its codes.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Length of a trace slice code.
const TRACE_CODE_LEN: usize = 16;

/// The form a trace code is indexed and looked up by, so the code on a label
/// matches however a scanner or a person delivers it. It mirrors the trace
/// slice's `TraceCode` form, which this slice may not depend on: text that
/// is sixteen Crockford base32 characters once dashes and spaces are dropped
/// is upper-cased, with O read as 0 and I, L as 1; any other code (GS1, a
/// partner's own scheme) is only trimmed. The check character is not
/// verified: a mistyped code simply finds nothing. Migration 0003 applies
/// the same rule in SQL to the codes booked before the index existed.
pub fn canonical_trace_code(raw: &str) -> String {
    let folded: String = raw
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    if folded.len() == TRACE_CODE_LEN && folded.bytes().all(|b| CROCKFORD.contains(&b)) {
        folded
    } else {
        raw.trim().to_string()
    }
}

/// Trace codes are checked for shape only (printable ASCII without spaces,
/// at most 128 characters, no two with the same
/// [canonical form](canonical_trace_code)); the trace slice resolves them.
pub fn validate_trace_codes(codes: &[String]) -> Result<Vec<String>, CoreError> {
    if codes.len() > MAX_TRACE_CODES {
        return Err(CoreError::invalid(
            "invalid_trace_codes",
            format!("at most {MAX_TRACE_CODES} trace codes"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(codes.len());
    for (i, raw) in codes.iter().enumerate() {
        let code = raw.trim();
        if code.is_empty() || code.len() > MAX_TRACE_CODE || !code.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CoreError::invalid(
                "invalid_trace_codes",
                format!(
                    "trace code {} ({raw:?}) must be 1 to {MAX_TRACE_CODE} printable ASCII characters without spaces",
                    i + 1
                ),
            ));
        }
        if out
            .iter()
            .any(|c| canonical_trace_code(c) == canonical_trace_code(code))
        {
            return Err(CoreError::invalid(
                "invalid_trace_codes",
                format!("trace code {code} is listed twice"),
            ));
        }
        out.push(code.to_string());
    }
    Ok(out)
}

/// A resolved place: (site, name, lon, lat, region code if known).
struct Resolved {
    site_id: Option<i64>,
    name: Option<String>,
    lon: f64,
    lat: f64,
    region: Option<RegionCode>,
}

async fn resolve_place(db: &Db, place: &Place, what: &'static str, need_region: bool) -> Result<Resolved, CoreError> {
    let code = if what == "origin" {
        "invalid_origin"
    } else {
        "invalid_destination"
    };
    let name = store::optional_text(place.name.as_deref(), MAX_NAME, code, "a place name")?;
    if let Some(id) = place.site_id {
        if place.lon.is_some() || place.lat.is_some() || place.region_code.is_some() {
            return Err(CoreError::invalid(
                code,
                format!("the {what} is either a site_id or a point (lon, lat), not both"),
            ));
        }
        let site = match network::get_site(db, id).await {
            Ok(s) => s,
            Err(CoreError::NotFound(m)) => return Err(CoreError::invalid(code, m)),
            Err(e) => return Err(e),
        };
        let region = RegionCode::parse(&site.region_code)
            .map_err(|_| CoreError::Internal(format!("site {id} has a bad region code")))?;
        return Ok(Resolved {
            site_id: Some(id),
            name: name.or(Some(site.name)),
            lon: site.lon,
            lat: site.lat,
            region: Some(region),
        });
    }
    let (Some(lon), Some(lat)) = (place.lon, place.lat) else {
        return Err(CoreError::invalid(
            code,
            format!("the {what} needs a site_id or both lon and lat"),
        ));
    };
    let (lon, lat) = store::coordinates(lon, lat)?;
    let region = match place.region_code.as_deref() {
        Some(_) if !need_region => {
            return Err(CoreError::invalid(
                code,
                format!("a {what} point takes a name, not a region_code"),
            ));
        }
        Some(raw) => {
            let region = RegionCode::parse(raw).map_err(|_| {
                CoreError::invalid(code, format!("the {what}'s region code {raw:?} is not a region code"))
            })?;
            if !matches!(region.level(), RegionLevel::Village | RegionLevel::Township) {
                return Err(CoreError::invalid(
                    code,
                    format!("the {what}'s region {region} must be a village or township code"),
                ));
            }
            if regions::get(db, &region).await?.is_none() {
                return Err(CoreError::invalid(
                    "unknown_region",
                    format!("no region with code {region}"),
                ));
            }
            Some(region)
        }
        None if need_region => {
            return Err(CoreError::invalid(
                code,
                format!("a {what} point needs the region_code of its village"),
            ));
        }
        None => None,
    };
    if !need_region && name.is_none() {
        return Err(CoreError::invalid(
            code,
            format!("a {what} point needs the buyer's or place's name"),
        ));
    }
    Ok(Resolved {
        site_id: None,
        name,
        lon,
        lat,
        region,
    })
}

fn check_time(at: Option<Timestamp>, not_before: Option<Timestamp>, what: &str) -> Result<Timestamp, CoreError> {
    let now = now();
    let at = at.unwrap_or(now);
    if at > now + MAX_CLOCK_SKEW {
        return Err(CoreError::invalid(
            "invalid_time",
            format!("{what} {at} lies in the future"),
        ));
    }
    if let Some(before) = not_before
        && at < before
    {
        return Err(CoreError::invalid(
            "invalid_time",
            format!("{what} {at} is before the previous record at {before}"),
        ));
    }
    Ok(at)
}

fn validate_handover(h: &NewHandover, previous: Option<Timestamp>) -> Result<(Timestamp, NewHandover), CoreError> {
    let at = check_time(h.at, previous, "the handover time")?;
    if let Some(t) = h.temperature_c
        && (!t.is_finite() || !(-60.0..=60.0).contains(&t))
    {
        return Err(CoreError::invalid(
            "invalid_handover",
            format!("the handover temperature must be between -60 and 60 °C, not {t}"),
        ));
    }
    Ok((
        at,
        NewHandover {
            from_party: store::text(&h.from_party, MAX_NAME, "invalid_handover", "from_party")?,
            to_party: store::text(&h.to_party, MAX_NAME, "invalid_handover", "to_party")?,
            at: Some(at),
            temperature_c: h.temperature_c,
            signature_name: store::text(&h.signature_name, MAX_NAME, "invalid_handover", "signature_name")?,
            note: store::optional_text(h.note.as_deref(), MAX_NOTE, "invalid_handover", "the note")?,
        },
    ))
}

// ---- access ----

fn region_of(s: &Shipment) -> Result<RegionCode, CoreError> {
    RegionCode::parse(&s.region_code)
        .map_err(|_| CoreError::Internal(format!("shipment {} has a bad region code", s.id)))
}

fn vehicle_region_of(s: &Shipment) -> Option<RegionCode> {
    s.vehicle_region.as_deref().and_then(|r| RegionCode::parse(r).ok())
}

/// Whether the caller may read the shipment (see the module's rules).
pub fn may_read(caller: &Principal, s: &Shipment) -> bool {
    let Ok(region) = region_of(s) else { return false };
    caller.can(REGION_READERS, &region)
        || (s.booked_by == caller.user_id && caller.grants.iter().any(|g| BOOKERS.contains(&g.role)))
        || vehicle_region_of(s).is_some_and(|v| caller.can(&[Role::Carrier], &v))
}

/// Whether the caller may move the shipment along its route.
fn may_operate(caller: &Principal, s: &Shipment) -> Result<bool, CoreError> {
    Ok(caller.can(&[Role::Admin, Role::Official], &region_of(s)?)
        || vehicle_region_of(s).is_some_and(|v| caller.can(&[Role::Carrier], &v)))
}

fn forbidden(id: i64) -> CoreError {
    CoreError::Forbidden(format!("shipment {id} is outside your role's scope"))
}

// ---- store ----

fn columns() -> [LogisticsShipments; 31] {
    use LogisticsShipments::*;
    [
        Id,
        RegionCode,
        BookedBy,
        Goods,
        Commodity,
        WeightKg,
        VolumeM3,
        TemperatureClass,
        BandMinC,
        BandMaxC,
        BandSet,
        ReadyAt,
        Deadline,
        OriginSiteId,
        OriginName,
        OriginLon,
        OriginLat,
        DestinationSiteId,
        DestinationName,
        DestinationLon,
        DestinationLat,
        TraceCodes,
        Status,
        VehicleId,
        VehicleRegion,
        DeliveredAt,
        ReceiverName,
        DeliveryNote,
        CancelReason,
        CreatedAt,
        UpdatedAt,
    ]
}

fn handover_columns() -> [LogisticsHandovers; 9] {
    use LogisticsHandovers::*;
    [
        ShipmentId,
        Seq,
        At,
        FromParty,
        ToParty,
        TemperatureC,
        SignatureName,
        Note,
        RecordedBy,
    ]
}

/// Books a pickup; it starts as `booked`.
pub async fn book(db: &Db, caller: &Principal, actor: &Actor, new: NewShipment) -> Result<Shipment, CoreError> {
    caller.require_role(BOOKERS)?;
    let goods = store::text(&new.goods, MAX_NAME, "invalid_goods", "the goods")?;
    let commodity = store::text(&new.commodity, MAX_COMMODITY, "invalid_commodity", "the commodity")?;
    let weight_kg = store::positive(new.weight_kg, MAX_WEIGHT_KG, "invalid_weight", "the weight (kg)")?;
    let volume_m3 = store::positive(new.volume_m3, MAX_VOLUME_M3, "invalid_volume", "the volume (m³)")?;
    if let Some(b) = &new.band {
        b.validate()?;
    }
    if new.ready_at >= new.deadline {
        return Err(CoreError::invalid(
            "invalid_window",
            format!(
                "the deadline {} must come after the ready time {}",
                new.deadline, new.ready_at
            ),
        ));
    }
    let trace_codes = validate_trace_codes(&new.trace_codes)?;
    let origin = resolve_place(db, &new.origin, "origin", true).await?;
    let region = origin
        .region
        .clone()
        .ok_or_else(|| CoreError::Internal("a resolved origin has a region".into()))?;
    caller.require(BOOKERS, &region)?;
    let destination = resolve_place(db, &new.destination, "destination", false).await?;
    let at = now();
    let mut tx = db.begin().await?;
    let ins = Query::insert()
        .into_table(LogisticsShipments::Table)
        .columns(columns().into_iter().skip(1))
        .values_panic([
            region.as_str().into(),
            caller.user_id.into(),
            goods.as_str().into(),
            commodity.as_str().into(),
            weight_kg.into(),
            volume_m3.into(),
            new.temperature_class.as_str().into(),
            new.band.and_then(|b| b.min_c).into(),
            new.band.and_then(|b| b.max_c).into(),
            new.band.is_some().into(),
            new.ready_at.into(),
            new.deadline.into(),
            origin.site_id.into(),
            origin.name.clone().into(),
            origin.lon.into(),
            origin.lat.into(),
            destination.site_id.into(),
            destination.name.clone().into(),
            destination.lon.into(),
            destination.lat.into(),
            json!(trace_codes).to_string().into(),
            Status::Booked.as_str().into(),
            Option::<i64>::None.into(),
            Option::<String>::None.into(),
            Option::<Timestamp>::None.into(),
            Option::<String>::None.into(),
            Option::<String>::None.into(),
            Option::<String>::None.into(),
            at.into(),
            at.into(),
        ])
        .returning_col(LogisticsShipments::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&ins).await?;
    index_trace_codes(&mut tx, id, &trace_codes).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "shipment.book",
            target: format!("shipment:{id}"),
            region: Some(region.to_string()),
            detail: json!({"goods": goods, "commodity": commodity, "weight_kg": weight_kg, "volume_m3": volume_m3,
                "temperature_class": new.temperature_class, "trace_codes": trace_codes}),
        },
    )
    .await?;
    let shipment = load(&mut tx, id, false).await?;
    tx.commit().await?;
    Ok(shipment)
}

/// Adds a shipment's codes to the trace-code index inside the transaction
/// that writes them (codes are distinct by canonical form, see
/// [`validate_trace_codes`]).
async fn index_trace_codes(tx: &mut Tx, id: i64, codes: &[String]) -> Result<(), CoreError> {
    if codes.is_empty() {
        return Ok(());
    }
    let mut q = Query::insert();
    q.into_table(LogisticsShipmentTraceCodes::Table).columns([
        LogisticsShipmentTraceCodes::ShipmentId,
        LogisticsShipmentTraceCodes::TraceCode,
    ]);
    for code in codes {
        q.values_panic([id.into(), canonical_trace_code(code).into()]);
    }
    tx.execute(&q).await?;
    Ok(())
}

/// Up to `limit` shipments carrying `code` (any printed form), newest
/// first, with their handovers and without access checks: callers decide
/// what of them to show.
pub(crate) async fn carrying_trace_code(db: &Db, code: &str, limit: u64) -> Result<Vec<Shipment>, CoreError> {
    let q = Query::select()
        .column(LogisticsShipmentTraceCodes::ShipmentId)
        .from(LogisticsShipmentTraceCodes::Table)
        .and_where(Expr::col(LogisticsShipmentTraceCodes::TraceCode).eq(canonical_trace_code(code)))
        .order_by(LogisticsShipmentTraceCodes::ShipmentId, Order::Desc)
        .limit(limit)
        .to_owned();
    // One transaction, so each shipment and its handovers agree.
    let mut tx = db.begin().await?;
    let ids: Vec<(i64,)> = tx.fetch_all(&q).await?;
    let mut out = Vec::with_capacity(ids.len());
    for (id,) in ids {
        out.push(load(&mut tx, id, false).await?);
    }
    tx.commit().await?;
    Ok(out)
}

async fn handovers(tx: &mut Tx, id: i64) -> Result<Vec<Handover>, CoreError> {
    let q = Query::select()
        .columns(handover_columns().into_iter().skip(1))
        .from(LogisticsHandovers::Table)
        .and_where(Expr::col(LogisticsHandovers::ShipmentId).eq(id))
        .order_by(LogisticsHandovers::Seq, Order::Asc)
        .to_owned();
    let rows: Vec<HandoverRow> = tx.fetch_all(&q).await?;
    Ok(rows
        .into_iter()
        .map(|r| Handover {
            seq: r.seq,
            at: r.at,
            from_party: r.from_party,
            to_party: r.to_party,
            temperature_c: r.temperature_c,
            signature_name: r.signature_name,
            note: r.note,
            recorded_by: r.recorded_by,
        })
        .collect())
}

/// The shipment with its handovers, inside `tx` (locked when `lock`).
async fn load(tx: &mut Tx, id: i64, lock: bool) -> Result<Shipment, CoreError> {
    let mut q = Query::select();
    q.columns(columns())
        .from(LogisticsShipments::Table)
        .and_where(Expr::col(LogisticsShipments::Id).eq(id));
    if lock {
        q.lock(LockType::Update);
    }
    let row: Option<ShipmentRow> = tx.fetch_optional(&q).await?;
    let row = row.ok_or_else(|| CoreError::NotFound(format!("no shipment {id}")))?;
    let hs = handovers(tx, id).await?;
    row.into_shipment(hs)
}

/// A shipment without access checks, for the slice's own reports.
pub(crate) async fn shipment_by_id(db: &Db, id: i64) -> Result<Shipment, CoreError> {
    // Read through a transaction so the row and its handovers agree.
    let mut tx = db.begin().await?;
    let s = load(&mut tx, id, false).await?;
    tx.commit().await?;
    Ok(s)
}

/// A shipment the caller may read (404 if none, 403 if not theirs to see).
pub async fn get(db: &Db, caller: &Principal, id: i64) -> Result<Shipment, CoreError> {
    caller.require_role(ANY_READER)?;
    let s = shipment_by_id(db, id).await?;
    if !may_read(caller, &s) {
        return Err(forbidden(id));
    }
    Ok(s)
}

/// The shipments the caller may read, newest first (handovers not loaded:
/// `handovers` is empty in lists).
pub async fn list(db: &Db, caller: &Principal, filter: &ShipmentQuery) -> Result<Vec<Shipment>, CoreError> {
    caller.require_role(ANY_READER)?;
    let mut visible = Condition::any();
    for g in &caller.grants {
        let scope = match &g.scope {
            shuxiang_core::auth::Scope::All => None,
            shuxiang_core::auth::Scope::Region(c) => Some(vec![c.clone()]),
        };
        if REGION_READERS.contains(&g.role) {
            visible = visible.add(store::in_scopes(LogisticsShipments::RegionCode, scope.as_deref()));
        }
        if BOOKERS.contains(&g.role) {
            visible = visible.add(Expr::col(LogisticsShipments::BookedBy).eq(caller.user_id));
        }
        if g.role == Role::Carrier {
            visible = visible.add(
                Condition::all()
                    .add(Expr::col(LogisticsShipments::VehicleRegion).is_not_null())
                    .add(store::in_scopes(LogisticsShipments::VehicleRegion, scope.as_deref())),
            );
        }
    }
    let mut q = Query::select();
    q.columns(columns())
        .from(LogisticsShipments::Table)
        .cond_where(visible)
        .order_by(LogisticsShipments::Id, Order::Desc)
        .limit(filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT));
    if let Some(st) = filter.status {
        q.and_where(Expr::col(LogisticsShipments::Status).eq(st.as_str()));
    }
    if let Some(region) = &filter.region {
        q.cond_where(store::in_scopes(
            LogisticsShipments::RegionCode,
            Some(std::slice::from_ref(region)),
        ));
    }
    if let Some(v) = filter.vehicle_id {
        q.and_where(Expr::col(LogisticsShipments::VehicleId).eq(v));
    }
    let rows: Vec<ShipmentRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(|r| r.into_shipment(Vec::new())).collect()
}

/// Booked shipments picked up in `region` whose window `[ready_at,
/// deadline]` overlaps `[from, to)`, by id, for dispatch planning.
pub(crate) async fn booked_between(
    db: &Db,
    region: &RegionCode,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Shipment>, CoreError> {
    let q = Query::select()
        .columns(columns())
        .from(LogisticsShipments::Table)
        .cond_where(store::in_scopes(
            LogisticsShipments::RegionCode,
            Some(std::slice::from_ref(region)),
        ))
        .and_where(Expr::col(LogisticsShipments::Status).eq(Status::Booked.as_str()))
        .and_where(Expr::col(LogisticsShipments::ReadyAt).lt(to))
        .and_where(Expr::col(LogisticsShipments::Deadline).gte(from))
        .order_by(LogisticsShipments::Id, Order::Asc)
        .to_owned();
    let rows: Vec<ShipmentRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(|r| r.into_shipment(Vec::new())).collect()
}

/// The load already committed on a vehicle: (kg, m³).
pub(crate) async fn committed_load(db: &Db, vehicle: i64) -> Result<(f64, f64), CoreError> {
    let mut tx = db.begin().await?;
    let load = locked_load(&mut tx, vehicle).await?;
    tx.commit().await?;
    Ok(load)
}

/// [`committed_load`] inside `tx`, holding the vehicle's row until it ends.
pub(crate) async fn locked_load(tx: &mut Tx, vehicle: i64) -> Result<(f64, f64), CoreError> {
    // Ids start at 1, so excepting 0 counts every shipment.
    vehicle_load(tx, vehicle, 0).await
}

/// Marks booked shipments planned on vehicles inside `tx`; 409
/// `shipments_changed` if one is no longer booked (planned or cancelled
/// meanwhile), so a plan never overrides a newer decision.
pub(crate) async fn mark_planned(tx: &mut Tx, assignments: &[(i64, &Vehicle)]) -> Result<(), CoreError> {
    let at = now();
    for (shipment, vehicle) in assignments {
        let to = Some((vehicle.id, vehicle.region_code.as_str()));
        move_for_plan(tx, *shipment, (Status::Booked, None), (Status::Planned, to), at).await?;
    }
    Ok(())
}

/// Puts shipments an earlier plan put on a vehicle back to booked inside
/// `tx`, so a re-plan may place them anew; 409 `shipments_changed` if one
/// is no longer planned on that vehicle (picked up, cancelled, moved).
pub(crate) async fn release_planned(tx: &mut Tx, planned: &[(i64, i64)]) -> Result<(), CoreError> {
    let at = now();
    for (shipment, vehicle) in planned {
        move_for_plan(
            tx,
            *shipment,
            (Status::Planned, Some(*vehicle)),
            (Status::Booked, None),
            at,
        )
        .await?;
    }
    Ok(())
}

/// Moves one shipment from `from` (on that vehicle, when one is given) to
/// `to` with its vehicle (id, region) set or cleared; 409
/// `shipments_changed` when it is no longer where the plan saw it.
async fn move_for_plan(
    tx: &mut Tx,
    shipment: i64,
    from: (Status, Option<i64>),
    to: (Status, Option<(i64, &str)>),
    at: Timestamp,
) -> Result<(), CoreError> {
    let mut q = Query::update()
        .table(LogisticsShipments::Table)
        .values([
            (LogisticsShipments::Status, to.0.as_str().into()),
            (LogisticsShipments::VehicleId, to.1.map(|(id, _)| id).into()),
            (
                LogisticsShipments::VehicleRegion,
                to.1.map(|(_, region)| region.to_owned()).into(),
            ),
            (LogisticsShipments::UpdatedAt, at.into()),
        ])
        .and_where(Expr::col(LogisticsShipments::Id).eq(shipment))
        .and_where(Expr::col(LogisticsShipments::Status).eq(from.0.as_str()))
        .to_owned();
    if let Some(vehicle) = from.1 {
        q.and_where(Expr::col(LogisticsShipments::VehicleId).eq(vehicle));
    }
    if tx.execute(&q).await? != 1 {
        return Err(CoreError::conflict(
            "shipments_changed",
            format!("shipment {shipment} changed while planning; plan again"),
        ));
    }
    Ok(())
}

fn illegal(s: &Shipment, to: Status) -> CoreError {
    CoreError::conflict(
        "illegal_transition",
        format!(
            "shipment {} is {} and cannot become {}",
            s.id,
            s.status.as_str(),
            to.as_str()
        ),
    )
}

/// Locks a vehicle's row until the transaction ends. Writers lock the
/// vehicle before its shipments, in that order everywhere, so they cannot
/// deadlock.
async fn lock_vehicle(tx: &mut Tx, vehicle: i64) -> Result<(), CoreError> {
    let q = Query::select()
        .column(LogisticsVehicles::Id)
        .from(LogisticsVehicles::Table)
        .and_where(Expr::col(LogisticsVehicles::Id).eq(vehicle))
        .lock(LockType::Update)
        .to_owned();
    let _: Option<(i64,)> = tx.fetch_optional(&q).await?;
    Ok(())
}

/// Load already committed on `vehicle` (planned, picked up or in transit),
/// other than `except`: (kg, m³). Locks the vehicle's row first, so two
/// plans for one vehicle cannot both see room that only one of them gets.
async fn vehicle_load(tx: &mut Tx, vehicle: i64, except: i64) -> Result<(f64, f64), CoreError> {
    lock_vehicle(tx, vehicle).await?;
    let q = Query::select()
        .columns([LogisticsShipments::WeightKg, LogisticsShipments::VolumeM3])
        .from(LogisticsShipments::Table)
        .and_where(Expr::col(LogisticsShipments::VehicleId).eq(vehicle))
        .and_where(Expr::col(LogisticsShipments::Id).ne(except))
        .and_where(Expr::col(LogisticsShipments::Status).is_in([
            Status::Planned.as_str(),
            Status::PickedUp.as_str(),
            Status::InTransit.as_str(),
        ]))
        .to_owned();
    let rows: Vec<(f64, f64)> = tx.fetch_all(&q).await?;
    Ok(rows.iter().fold((0.0, 0.0), |(w, v), (rw, rv)| (w + rw, v + rv)))
}

/// Plans a booked (or re-plans a planned) shipment onto a vehicle: the
/// vehicle's refrigeration must suit the goods (422 `incompatible_vehicle`)
/// and its committed load plus this one must fit its capacity in kg and m³
/// (409 `over_capacity`).
pub async fn assign(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    vehicle_id: i64,
) -> Result<Shipment, CoreError> {
    caller.require_role(OPERATORS)?;
    let vehicle: Vehicle = match network::vehicle_by_id(db, vehicle_id).await {
        Ok(v) => v,
        Err(CoreError::NotFound(m)) => return Err(CoreError::invalid("unknown_vehicle", m)),
        Err(e) => return Err(e),
    };
    let mut tx = db.begin().await?;
    lock_vehicle(&mut tx, vehicle.id).await?;
    let s = load(&mut tx, id, true).await?;
    caller.require(OPERATORS, &region_of(&s)?)?;
    caller.require(OPERATORS, &network::vehicle_region(&vehicle)?)?;
    if !s.status.may_become(Status::Planned) {
        return Err(illegal(&s, Status::Planned));
    }
    if !vehicle.refrigeration.can_carry(s.temperature_class) {
        return Err(CoreError::invalid(
            "incompatible_vehicle",
            format!(
                "{} goods cannot ride on {} ({} vehicle)",
                s.temperature_class.as_str(),
                vehicle.plate,
                vehicle.refrigeration.as_str()
            ),
        ));
    }
    let (kg, m3) = vehicle_load(&mut tx, vehicle.id, s.id).await?;
    if kg + s.weight_kg > vehicle.capacity_kg || m3 + s.volume_m3 > vehicle.capacity_m3 {
        return Err(CoreError::conflict(
            "over_capacity",
            format!(
                "{} carries {kg} kg / {m3} m³ already; adding {} kg / {} m³ exceeds {} kg / {} m³",
                vehicle.plate, s.weight_kg, s.volume_m3, vehicle.capacity_kg, vehicle.capacity_m3
            ),
        ));
    }
    let q = Query::update()
        .table(LogisticsShipments::Table)
        .values([
            (LogisticsShipments::Status, Status::Planned.as_str().into()),
            (LogisticsShipments::VehicleId, vehicle.id.into()),
            (LogisticsShipments::VehicleRegion, vehicle.region_code.as_str().into()),
            (LogisticsShipments::UpdatedAt, now().into()),
        ])
        .and_where(Expr::col(LogisticsShipments::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "shipment.plan",
            target: format!("shipment:{id}"),
            region: Some(s.region_code.clone()),
            detail: json!({"from": s.status, "vehicle_id": vehicle.id, "previous_vehicle_id": s.vehicle_id}),
        },
    )
    .await?;
    let out = load(&mut tx, id, false).await?;
    tx.commit().await?;
    Ok(out)
}

async fn insert_handover(
    tx: &mut Tx,
    caller: &Principal,
    s: &Shipment,
    h: &NewHandover,
    at: Timestamp,
) -> Result<(), CoreError> {
    let seq = s.handovers.last().map_or(1, |h| h.seq + 1);
    let q = Query::insert()
        .into_table(LogisticsHandovers::Table)
        .columns(handover_columns())
        .values_panic([
            s.id.into(),
            seq.into(),
            at.into(),
            h.from_party.as_str().into(),
            h.to_party.as_str().into(),
            h.temperature_c.into(),
            h.signature_name.as_str().into(),
            h.note.clone().into(),
            caller.user_id.into(),
        ])
        .to_owned();
    tx.execute(&q).await?;
    Ok(())
}

/// Moves a shipment to its next status (see the module's rules): pickup
/// needs a handover, departure may carry one, delivery needs proof of
/// delivery, cancelling takes an optional reason. Recorded times never go
/// back before the previous handover.
pub async fn change_status(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    change: StatusChange,
) -> Result<Shipment, CoreError> {
    let to = change.status;
    match to {
        Status::Cancelled => caller.require_role(&[Role::Admin, Role::Official, Role::VillageStaff, Role::Farmer])?,
        Status::PickedUp | Status::InTransit | Status::Delivered => caller.require_role(OPERATORS)?,
        Status::Booked | Status::Planned => {
            return Err(CoreError::invalid(
                "invalid_status",
                "a shipment is booked by POST /api/v1/shipments and planned by its assign route",
            ));
        }
    }
    let mut tx = db.begin().await?;
    let s = load(&mut tx, id, true).await?;
    let allowed = if to == Status::Cancelled {
        caller.can(CANCELLERS, &region_of(&s)?)
            || (s.booked_by == caller.user_id && caller.grants.iter().any(|g| BOOKERS.contains(&g.role)))
    } else {
        may_operate(caller, &s)?
    };
    if !allowed {
        return Err(forbidden(id));
    }
    if !s.status.may_become(to) {
        return Err(illegal(&s, to));
    }
    let previous = s.handovers.last().map(|h| h.at);
    let mut values = vec![
        (LogisticsShipments::Status, to.as_str().into()),
        (LogisticsShipments::UpdatedAt, now().into()),
    ];
    let mut detail = json!({"from": s.status, "to": to});
    match to {
        Status::PickedUp | Status::InTransit => {
            let handover = match (&change.handover, to) {
                (Some(h), _) => Some(validate_handover(h, previous)?),
                (None, Status::PickedUp) => {
                    return Err(CoreError::invalid(
                        "missing_handover",
                        "a pickup records the handover from the shipper to the carrier",
                    ));
                }
                (None, _) => None,
            };
            if let Some((at, h)) = handover {
                insert_handover(&mut tx, caller, &s, &h, at).await?;
                detail["handover"] = json!({"from_party": h.from_party, "to_party": h.to_party, "at": at});
            }
        }
        Status::Delivered => {
            let Some(pod) = &change.proof_of_delivery else {
                return Err(CoreError::invalid(
                    "missing_proof_of_delivery",
                    "a delivery needs proof_of_delivery with the receiver's name",
                ));
            };
            let at = check_time(pod.at, previous, "the delivery time")?;
            let receiver = store::text(
                &pod.receiver_name,
                MAX_NAME,
                "invalid_proof_of_delivery",
                "receiver_name",
            )?;
            let note = store::optional_text(pod.note.as_deref(), MAX_NOTE, "invalid_proof_of_delivery", "the note")?;
            values.push((LogisticsShipments::DeliveredAt, at.into()));
            values.push((LogisticsShipments::ReceiverName, receiver.as_str().into()));
            values.push((LogisticsShipments::DeliveryNote, note.into()));
            detail["delivered_at"] = json!(at);
            detail["on_time"] = json!(at <= s.deadline);
        }
        Status::Cancelled => {
            let reason = store::optional_text(change.reason.as_deref(), MAX_NOTE, "invalid_reason", "the reason")?;
            detail["reason"] = json!(reason);
            values.push((LogisticsShipments::CancelReason, reason.into()));
        }
        Status::Booked | Status::Planned => unreachable!("rejected above"),
    }
    let q = Query::update()
        .table(LogisticsShipments::Table)
        .values(values)
        .and_where(Expr::col(LogisticsShipments::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "shipment.status",
            target: format!("shipment:{id}"),
            region: Some(s.region_code.clone()),
            detail,
        },
    )
    .await?;
    let out = load(&mut tx, id, false).await?;
    tx.commit().await?;
    Ok(out)
}

/// Records a handover on the way (a hub, a second driver) of a shipment
/// that is picked up or in transit; otherwise 409 `not_under_way`.
pub async fn add_handover(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    handover: NewHandover,
) -> Result<Shipment, CoreError> {
    caller.require_role(OPERATORS)?;
    let mut tx = db.begin().await?;
    let s = load(&mut tx, id, true).await?;
    if !may_operate(caller, &s)? {
        return Err(forbidden(id));
    }
    if !matches!(s.status, Status::PickedUp | Status::InTransit) {
        return Err(CoreError::conflict(
            "not_under_way",
            format!(
                "shipment {id} is {}; handovers are recorded on the way",
                s.status.as_str()
            ),
        ));
    }
    let (at, h) = validate_handover(&handover, s.handovers.last().map(|h| h.at))?;
    insert_handover(&mut tx, caller, &s, &h, at).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "shipment.handover",
            target: format!("shipment:{id}"),
            region: Some(s.region_code.clone()),
            detail: json!({"from_party": h.from_party, "to_party": h.to_party, "at": at,
                "temperature_c": h.temperature_c}),
        },
    )
    .await?;
    let out = load(&mut tx, id, false).await?;
    tx.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_forward_transitions_are_legal() {
        use Status::*;
        let legal = [
            (Booked, Planned),
            (Planned, Planned),
            (Planned, PickedUp),
            (PickedUp, InTransit),
            (InTransit, Delivered),
            (Booked, Cancelled),
            (Planned, Cancelled),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(from.may_become(to), legal.contains(&(from, to)), "{from:?} → {to:?}");
            }
        }
    }

    #[test]
    fn trace_codes_are_canonical_in_every_printed_form() {
        for printed in [
            "7K3MQ9T2ABCDEF01",
            "7K3M-Q9T2-ABCD-EF01",
            " 7k3m q9t2 abcd ef01 ",
            "7K3M-Q9T2-ABCD-EFO1",
            "7K3M-Q9T2-ABCD-EFOl",
        ] {
            assert_eq!(canonical_trace_code(printed), "7K3MQ9T2ABCDEF01", "{printed:?}");
        }
        // Other schemes are only trimmed: U is not Crockford, 15 is too short.
        assert_eq!(canonical_trace_code(" 7K3M-Q9T2-ABCD-EFU1"), "7K3M-Q9T2-ABCD-EFU1");
        assert_eq!(canonical_trace_code("abc-def"), "abc-def");
        assert_eq!(
            canonical_trace_code("https://t.example/01/0695"),
            "https://t.example/01/0695"
        );
    }

    #[test]
    fn trace_codes_are_checked_for_shape_only() {
        let ok = validate_trace_codes(&[" 3601020020010001 ".into(), "https://t.example/01/0695".into()]).unwrap();
        assert_eq!(ok, ["3601020020010001", "https://t.example/01/0695"]);
        for bad in [
            vec!["".to_string()],
            vec!["a b".into()],
            vec!["码".into()],
            vec!["x".into(), "x".into()],
        ] {
            assert_eq!(
                validate_trace_codes(&bad).unwrap_err().code(),
                "invalid_trace_codes",
                "{bad:?}"
            );
        }
        assert!(validate_trace_codes(&["x".repeat(129)]).is_err());
        let same = validate_trace_codes(&["7K3M-Q9T2-ABCD-EF01".into(), "7k3mq9t2abcdef01".into()]);
        assert_eq!(same.unwrap_err().code(), "invalid_trace_codes");
        let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
        assert!(validate_trace_codes(&many).is_err());
    }
}
