//! 农村物流网络 the rural logistics network: sites and vehicles.
//!
//! Sites are the three-tier operation centres (三级运营中心) and the places
//! goods pass through: supply-and-marketing cloud warehouses (供销云仓),
//! cold stores, post offices (邮政), 益农信息社 service stations and village
//! collection points (村级收集点). Vehicles carry a capacity in kg and m³, a
//! refrigeration class, a depot site, a driver, a shift and optionally the
//! IoT logger device that records their temperature.
//!
//! Who may do what:
//! - Sites are public infrastructure: every signed-in user reads all of them
//!   (a farmer books to a city warehouse outside their village's scope);
//!   administrators and officials whose scope covers a site's region create
//!   and change it.
//! - Vehicles belong to the region of their depot. Administrators, officials
//!   and carriers (物流/冷链 operators) whose scope covers that region
//!   register, read and change them: a carrier company manages its own fleet
//!   in the county it is registered for. Other roles do not see the fleet.
//! - A vehicle's depot never changes (register a new vehicle instead), so
//!   its scope is fixed at registration.

use sea_query::{Expr, ExprTrait, Iden, LockType, Order, Query};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{self, Actor, Principal, Role};
use shuxiang_core::db::{Db, Tx, on_unique};
use shuxiang_core::regions;
use shuxiang_core::time::{Timestamp, now};
use shuxiang_core::{CoreError, RegionCode, RegionLevel};

use crate::coldchain::TemperatureClass;
use crate::store::{self, DEFAULT_LIMIT, MAX_LIMIT, MAX_NAME};

/// Who may create and change sites (over the site's region).
pub const SITE_EDITORS: &[Role] = &[Role::Admin, Role::Official];
/// Who may register, read and change vehicles (over the depot's region).
pub const FLEET_MANAGERS: &[Role] = &[Role::Admin, Role::Official, Role::Carrier];

const MAX_CAPACITY_KG: f64 = 60_000.0;
const MAX_CAPACITY_M3: f64 = 200.0;
const MAX_SITE_CAPACITY_KG: f64 = 1.0e9;

#[derive(Iden, Clone, Copy)]
pub(crate) enum LogisticsSites {
    Table,
    Id,
    Name,
    Kind,
    Tier,
    RegionCode,
    Lon,
    Lat,
    CapacityKg,
    ColdStorage,
    OpeningHours,
    LoggerDeviceId,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden, Clone, Copy)]
pub(crate) enum LogisticsVehicles {
    Table,
    Id,
    Plate,
    CapacityKg,
    CapacityM3,
    Refrigeration,
    DepotSiteId,
    RegionCode,
    DriverUserId,
    ShiftStart,
    ShiftEnd,
    LoggerDeviceId,
    CreatedAt,
    UpdatedAt,
}

/// What a site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    /// 运营中心 of the province, a city or a county.
    OperationCentre,
    /// 供销云仓.
    CloudWarehouse,
    /// 冷库.
    ColdStore,
    /// 邮政网点.
    PostOffice,
    /// 益农信息社.
    ServiceStation,
    /// 村级收集点.
    CollectionPoint,
}

impl SiteKind {
    const ALL: [SiteKind; 6] = [
        Self::OperationCentre,
        Self::CloudWarehouse,
        Self::ColdStore,
        Self::PostOffice,
        Self::ServiceStation,
        Self::CollectionPoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OperationCentre => "operation_centre",
            Self::CloudWarehouse => "cloud_warehouse",
            Self::ColdStore => "cold_store",
            Self::PostOffice => "post_office",
            Self::ServiceStation => "service_station",
            Self::CollectionPoint => "collection_point",
        }
    }

    fn parse_stored(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| CoreError::Internal(format!("stored site kind {s:?} is unknown")))
    }
}

/// The network's tier: province, city, county or village (县乡村三级 and
/// the province's centre above them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Province,
    City,
    County,
    Village,
}

impl Tier {
    const ALL: [Tier; 4] = [Self::Province, Self::City, Self::County, Self::Village];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Province => "province",
            Self::City => "city",
            Self::County => "county",
            Self::Village => "village",
        }
    }

    fn parse_stored(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| CoreError::Internal(format!("stored tier {s:?} is unknown")))
    }

    /// The region levels a site of this tier is registered at; village-tier
    /// sites serve a village or a whole township.
    fn levels(self) -> &'static [RegionLevel] {
        match self {
            Self::Province => &[RegionLevel::Province],
            Self::City => &[RegionLevel::City],
            Self::County => &[RegionLevel::County],
            Self::Village => &[RegionLevel::Township, RegionLevel::Village],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub id: i64,
    pub name: String,
    pub kind: SiteKind,
    pub tier: Tier,
    pub region_code: String,
    pub lon: f64,
    pub lat: f64,
    /// Storage capacity.
    pub capacity_kg: Option<f64>,
    /// Has refrigerated storage (冷藏/冷冻库).
    pub cold_storage: bool,
    /// `HH:MM-HH:MM`.
    pub opening_hours: Option<String>,
    /// The IoT logger of the cold store.
    pub logger_device_id: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct SiteRow {
    id: i64,
    name: String,
    kind: String,
    tier: String,
    region_code: String,
    lon: f64,
    lat: f64,
    capacity_kg: Option<f64>,
    cold_storage: bool,
    opening_hours: Option<String>,
    logger_device_id: Option<i64>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<SiteRow> for Site {
    type Error = CoreError;

    fn try_from(r: SiteRow) -> Result<Self, CoreError> {
        Ok(Self {
            id: r.id,
            name: r.name,
            kind: SiteKind::parse_stored(&r.kind)?,
            tier: Tier::parse_stored(&r.tier)?,
            region_code: r.region_code,
            lon: r.lon,
            lat: r.lat,
            capacity_kg: r.capacity_kg,
            cold_storage: r.cold_storage,
            opening_hours: r.opening_hours,
            logger_device_id: r.logger_device_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    pub name: String,
    pub kind: SiteKind,
    pub tier: Tier,
    pub region_code: RegionCode,
    pub lon: f64,
    pub lat: f64,
    #[serde(default)]
    pub capacity_kg: Option<f64>,
    #[serde(default)]
    pub cold_storage: bool,
    #[serde(default)]
    pub opening_hours: Option<String>,
    #[serde(default)]
    pub logger_device_id: Option<i64>,
}

/// Changes to a site; absent fields stay. Kind, tier, region and location
/// are fixed at registration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteUpdate {
    pub name: Option<String>,
    pub capacity_kg: Option<f64>,
    pub cold_storage: Option<bool>,
    pub opening_hours: Option<String>,
    pub logger_device_id: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SiteQuery {
    /// Sites in this region and below.
    pub region: Option<RegionCode>,
    pub kind: Option<SiteKind>,
    pub tier: Option<Tier>,
    pub cold_storage: Option<bool>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vehicle {
    pub id: i64,
    /// 车牌号, e.g. 赣A12345.
    pub plate: String,
    pub capacity_kg: f64,
    pub capacity_m3: f64,
    pub refrigeration: TemperatureClass,
    pub depot_site_id: i64,
    /// The depot's region.
    pub region_code: String,
    pub driver_user_id: Option<i64>,
    /// `HH:MM`, local time; shifts end on the day they start.
    pub shift_start: String,
    pub shift_end: String,
    pub logger_device_id: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct VehicleRow {
    id: i64,
    plate: String,
    capacity_kg: f64,
    capacity_m3: f64,
    refrigeration: String,
    depot_site_id: i64,
    region_code: String,
    driver_user_id: Option<i64>,
    shift_start: String,
    shift_end: String,
    logger_device_id: Option<i64>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<VehicleRow> for Vehicle {
    type Error = CoreError;

    fn try_from(r: VehicleRow) -> Result<Self, CoreError> {
        Ok(Self {
            id: r.id,
            plate: r.plate,
            capacity_kg: r.capacity_kg,
            capacity_m3: r.capacity_m3,
            refrigeration: TemperatureClass::parse_stored(&r.refrigeration)?,
            depot_site_id: r.depot_site_id,
            region_code: r.region_code,
            driver_user_id: r.driver_user_id,
            shift_start: r.shift_start,
            shift_end: r.shift_end,
            logger_device_id: r.logger_device_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVehicle {
    pub plate: String,
    pub capacity_kg: f64,
    pub capacity_m3: f64,
    pub refrigeration: TemperatureClass,
    pub depot_site_id: i64,
    #[serde(default)]
    pub driver_user_id: Option<i64>,
    pub shift_start: String,
    pub shift_end: String,
    #[serde(default)]
    pub logger_device_id: Option<i64>,
}

/// Changes to a vehicle; absent fields stay. Plate and depot are fixed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleUpdate {
    pub capacity_kg: Option<f64>,
    pub capacity_m3: Option<f64>,
    pub refrigeration: Option<TemperatureClass>,
    pub driver_user_id: Option<i64>,
    pub shift_start: Option<String>,
    pub shift_end: Option<String>,
    pub logger_device_id: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct VehicleQuery {
    pub depot_site_id: Option<i64>,
    pub refrigeration: Option<TemperatureClass>,
    pub limit: Option<u64>,
}

// ---- validation ----

/// Province abbreviations that open a Chinese plate (赣 is Jiangxi).
const PLATE_PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

/// 车牌号: a province abbreviation, an issuing-office letter and 5 (fuel) or
/// 6 (new-energy) letters or digits, e.g. 赣A12345, 赣AD12345.
pub fn validate_plate(raw: &str) -> Result<String, CoreError> {
    let plate: String = raw.trim().to_uppercase();
    let mut chars = plate.chars();
    let province = chars.next();
    let office = chars.next();
    let rest: Vec<char> = chars.collect();
    let ok = province.is_some_and(|c| PLATE_PROVINCES.contains(c))
        && office.is_some_and(|c| c.is_ascii_uppercase())
        && (rest.len() == 5 || rest.len() == 6)
        && rest.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(plate)
    } else {
        Err(CoreError::invalid(
            "invalid_plate",
            format!("{raw:?} is not a plate number like 赣A12345 or 赣AD12345"),
        ))
    }
}

fn validate_opening_hours(raw: Option<&str>) -> Result<Option<String>, CoreError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        CoreError::invalid(
            "invalid_opening_hours",
            format!("opening hours are HH:MM-HH:MM with the opening first, not {raw:?}"),
        )
    };
    let (open, close) = raw.split_once('-').ok_or_else(bad)?;
    let open = store::clock(open.trim(), "invalid_opening_hours", "the opening time")?;
    let close = store::clock(close.trim(), "invalid_opening_hours", "the closing time")?;
    if open >= close {
        return Err(bad());
    }
    Ok(Some(format!("{open}-{close}")))
}

fn validate_shift(start: &str, end: &str) -> Result<(String, String), CoreError> {
    let start = store::clock(start.trim(), "invalid_shift", "the shift start")?;
    let end = store::clock(end.trim(), "invalid_shift", "the shift end")?;
    if start >= end {
        return Err(CoreError::invalid(
            "invalid_shift",
            format!("the shift must end after it starts on the same day ({start}-{end})"),
        ));
    }
    Ok((start, end))
}

fn validate_device(id: Option<i64>) -> Result<Option<i64>, CoreError> {
    match id {
        Some(d) if d <= 0 => Err(CoreError::invalid(
            "invalid_logger_device",
            format!("logger device id {d} is not an id"),
        )),
        other => Ok(other),
    }
}

fn validate_site_capacity(c: Option<f64>) -> Result<Option<f64>, CoreError> {
    c.map(|c| store::positive(c, MAX_SITE_CAPACITY_KG, "invalid_capacity", "the storage capacity (kg)"))
        .transpose()
}

/// The region must exist and lie at the tier's level.
async fn validate_site_region(db: &Db, tier: Tier, code: &RegionCode) -> Result<(), CoreError> {
    if !tier.levels().contains(&code.level()) {
        return Err(CoreError::invalid(
            "tier_mismatch",
            format!(
                "a {}-tier site is registered at {} level, but {code} is a {}",
                tier.as_str(),
                tier.levels()
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                code.level().as_str()
            ),
        ));
    }
    if regions::get(db, code).await?.is_none() {
        return Err(CoreError::invalid(
            "unknown_region",
            format!("no region with code {code}"),
        ));
    }
    Ok(())
}

async fn validate_driver(db: &Db, driver: Option<i64>) -> Result<Option<i64>, CoreError> {
    let Some(id) = driver else { return Ok(None) };
    match auth::get_user(db, &auth::operator(), id).await {
        Ok(_) => Ok(Some(id)),
        Err(CoreError::NotFound(_)) => Err(CoreError::invalid("unknown_driver", format!("no user {id}"))),
        Err(e) => Err(e),
    }
}

// ---- sites ----

fn site_columns() -> [LogisticsSites; 13] {
    [
        LogisticsSites::Id,
        LogisticsSites::Name,
        LogisticsSites::Kind,
        LogisticsSites::Tier,
        LogisticsSites::RegionCode,
        LogisticsSites::Lon,
        LogisticsSites::Lat,
        LogisticsSites::CapacityKg,
        LogisticsSites::ColdStorage,
        LogisticsSites::OpeningHours,
        LogisticsSites::LoggerDeviceId,
        LogisticsSites::CreatedAt,
        LogisticsSites::UpdatedAt,
    ]
}

fn region_of(site: &Site) -> Result<RegionCode, CoreError> {
    RegionCode::parse(&site.region_code)
        .map_err(|_| CoreError::Internal(format!("site {} has a bad region code", site.id)))
}

/// Registers a site; the caller must be an administrator or official over
/// its region.
pub async fn create_site(db: &Db, caller: &Principal, actor: &Actor, new: NewSite) -> Result<Site, CoreError> {
    caller.require_role(SITE_EDITORS)?;
    caller.require(SITE_EDITORS, &new.region_code)?;
    let name = store::text(&new.name, MAX_NAME, "invalid_name", "the site name")?;
    let (lon, lat) = store::coordinates(new.lon, new.lat)?;
    let capacity_kg = validate_site_capacity(new.capacity_kg)?;
    let opening_hours = validate_opening_hours(new.opening_hours.as_deref())?;
    let logger_device_id = validate_device(new.logger_device_id)?;
    if matches!(new.kind, SiteKind::CollectionPoint | SiteKind::ServiceStation) && new.tier != Tier::Village {
        return Err(CoreError::invalid(
            "tier_mismatch",
            format!("a {} is a village-tier site", new.kind.as_str()),
        ));
    }
    validate_site_region(db, new.tier, &new.region_code).await?;
    let at = now();
    let mut tx = db.begin().await?;
    let ins = Query::insert()
        .into_table(LogisticsSites::Table)
        .columns(site_columns().into_iter().skip(1))
        .values_panic([
            name.as_str().into(),
            new.kind.as_str().into(),
            new.tier.as_str().into(),
            new.region_code.as_str().into(),
            lon.into(),
            lat.into(),
            capacity_kg.into(),
            new.cold_storage.into(),
            opening_hours.clone().into(),
            logger_device_id.into(),
            at.into(),
            at.into(),
        ])
        .returning_col(LogisticsSites::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&ins).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "logistics_site.create",
            target: format!("logistics_site:{id}"),
            region: Some(new.region_code.to_string()),
            detail: json!({"name": name, "kind": new.kind, "tier": new.tier, "cold_storage": new.cold_storage}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Site {
        id,
        name,
        kind: new.kind,
        tier: new.tier,
        region_code: new.region_code.to_string(),
        lon,
        lat,
        capacity_kg,
        cold_storage: new.cold_storage,
        opening_hours,
        logger_device_id,
        created_at: at,
        updated_at: at,
    })
}

pub async fn get_site(db: &Db, id: i64) -> Result<Site, CoreError> {
    let q = Query::select()
        .columns(site_columns())
        .from(LogisticsSites::Table)
        .and_where(Expr::col(LogisticsSites::Id).eq(id))
        .to_owned();
    let row: Option<SiteRow> = db.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no site {id}")))?
        .try_into()
}

/// Sites by id, filtered by region subtree, kind, tier and cold storage.
pub async fn list_sites(db: &Db, filter: &SiteQuery) -> Result<Vec<Site>, CoreError> {
    let mut q = Query::select();
    q.columns(site_columns())
        .from(LogisticsSites::Table)
        .order_by(LogisticsSites::Id, Order::Asc)
        .limit(filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT));
    if let Some(region) = &filter.region {
        q.cond_where(store::in_scopes(
            LogisticsSites::RegionCode,
            Some(std::slice::from_ref(region)),
        ));
    }
    if let Some(kind) = filter.kind {
        q.and_where(Expr::col(LogisticsSites::Kind).eq(kind.as_str()));
    }
    if let Some(tier) = filter.tier {
        q.and_where(Expr::col(LogisticsSites::Tier).eq(tier.as_str()));
    }
    if let Some(cold) = filter.cold_storage {
        q.and_where(Expr::col(LogisticsSites::ColdStorage).eq(cold));
    }
    let rows: Vec<SiteRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(Site::try_from).collect()
}

async fn lock_site(tx: &mut Tx, id: i64) -> Result<Site, CoreError> {
    let q = Query::select()
        .columns(site_columns())
        .from(LogisticsSites::Table)
        .and_where(Expr::col(LogisticsSites::Id).eq(id))
        .lock(LockType::Update)
        .to_owned();
    let row: Option<SiteRow> = tx.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no site {id}")))?
        .try_into()
}

/// Changes a site; audited with each changed field's value before and after.
pub async fn update_site(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    upd: SiteUpdate,
) -> Result<Site, CoreError> {
    caller.require_role(SITE_EDITORS)?;
    let name = upd
        .name
        .as_deref()
        .map(|n| store::text(n, MAX_NAME, "invalid_name", "the site name"))
        .transpose()?;
    let capacity_kg = validate_site_capacity(upd.capacity_kg)?;
    let opening_hours = validate_opening_hours(upd.opening_hours.as_deref())?;
    let logger_device_id = validate_device(upd.logger_device_id)?;
    if name.is_none()
        && capacity_kg.is_none()
        && upd.cold_storage.is_none()
        && opening_hours.is_none()
        && logger_device_id.is_none()
    {
        return Err(CoreError::invalid("missing_field", "give at least one field to change"));
    }
    let mut tx = db.begin().await?;
    let old = lock_site(&mut tx, id).await?;
    caller.require(SITE_EDITORS, &region_of(&old)?)?;
    let new = Site {
        name: name.unwrap_or_else(|| old.name.clone()),
        capacity_kg: capacity_kg.or(old.capacity_kg),
        cold_storage: upd.cold_storage.unwrap_or(old.cold_storage),
        opening_hours: opening_hours.or_else(|| old.opening_hours.clone()),
        logger_device_id: logger_device_id.or(old.logger_device_id),
        updated_at: now(),
        ..old.clone()
    };
    let q = Query::update()
        .table(LogisticsSites::Table)
        .values([
            (LogisticsSites::Name, new.name.as_str().into()),
            (LogisticsSites::CapacityKg, new.capacity_kg.into()),
            (LogisticsSites::ColdStorage, new.cold_storage.into()),
            (LogisticsSites::OpeningHours, new.opening_hours.clone().into()),
            (LogisticsSites::LoggerDeviceId, new.logger_device_id.into()),
            (LogisticsSites::UpdatedAt, new.updated_at.into()),
        ])
        .and_where(Expr::col(LogisticsSites::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "logistics_site.update",
            target: format!("logistics_site:{id}"),
            region: Some(new.region_code.clone()),
            detail: changes(&[
                ("name", json!(old.name), json!(new.name)),
                ("capacity_kg", json!(old.capacity_kg), json!(new.capacity_kg)),
                ("cold_storage", json!(old.cold_storage), json!(new.cold_storage)),
                ("opening_hours", json!(old.opening_hours), json!(new.opening_hours)),
                (
                    "logger_device_id",
                    json!(old.logger_device_id),
                    json!(new.logger_device_id),
                ),
            ]),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(new)
}

/// `{"field": {"from": …, "to": …}}` for the fields that changed.
pub(crate) fn changes(fields: &[(&str, serde_json::Value, serde_json::Value)]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (name, from, to) in fields {
        if from != to {
            m.insert((*name).into(), json!({"from": from, "to": to}));
        }
    }
    serde_json::Value::Object(m)
}

// ---- vehicles ----

fn vehicle_columns() -> [LogisticsVehicles; 13] {
    [
        LogisticsVehicles::Id,
        LogisticsVehicles::Plate,
        LogisticsVehicles::CapacityKg,
        LogisticsVehicles::CapacityM3,
        LogisticsVehicles::Refrigeration,
        LogisticsVehicles::DepotSiteId,
        LogisticsVehicles::RegionCode,
        LogisticsVehicles::DriverUserId,
        LogisticsVehicles::ShiftStart,
        LogisticsVehicles::ShiftEnd,
        LogisticsVehicles::LoggerDeviceId,
        LogisticsVehicles::CreatedAt,
        LogisticsVehicles::UpdatedAt,
    ]
}

pub(crate) fn vehicle_region(v: &Vehicle) -> Result<RegionCode, CoreError> {
    RegionCode::parse(&v.region_code)
        .map_err(|_| CoreError::Internal(format!("vehicle {} has a bad region code", v.id)))
}

/// Registers a vehicle at a depot; the caller must manage the fleet of the
/// depot's region. Plates are unique (409 `plate_taken`).
pub async fn create_vehicle(db: &Db, caller: &Principal, actor: &Actor, new: NewVehicle) -> Result<Vehicle, CoreError> {
    caller.require_role(FLEET_MANAGERS)?;
    let plate = validate_plate(&new.plate)?;
    let capacity_kg = store::positive(new.capacity_kg, MAX_CAPACITY_KG, "invalid_capacity", "capacity (kg)")?;
    let capacity_m3 = store::positive(new.capacity_m3, MAX_CAPACITY_M3, "invalid_capacity", "capacity (m³)")?;
    let (shift_start, shift_end) = validate_shift(&new.shift_start, &new.shift_end)?;
    let logger_device_id = validate_device(new.logger_device_id)?;
    let depot = match get_site(db, new.depot_site_id).await {
        Ok(s) => s,
        Err(CoreError::NotFound(m)) => return Err(CoreError::invalid("unknown_depot", m)),
        Err(e) => return Err(e),
    };
    caller.require(FLEET_MANAGERS, &region_of(&depot)?)?;
    let driver_user_id = validate_driver(db, new.driver_user_id).await?;
    let at = now();
    let mut tx = db.begin().await?;
    let ins = Query::insert()
        .into_table(LogisticsVehicles::Table)
        .columns(vehicle_columns().into_iter().skip(1))
        .values_panic([
            plate.as_str().into(),
            capacity_kg.into(),
            capacity_m3.into(),
            new.refrigeration.as_str().into(),
            depot.id.into(),
            depot.region_code.as_str().into(),
            driver_user_id.into(),
            shift_start.as_str().into(),
            shift_end.as_str().into(),
            logger_device_id.into(),
            at.into(),
            at.into(),
        ])
        .returning_col(LogisticsVehicles::Id)
        .to_owned();
    let (id,): (i64,) = tx
        .fetch_one(&ins)
        .await
        .map_err(|e| on_unique(e, "plate_taken", format!("a vehicle with plate {plate} is registered")))?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "logistics_vehicle.create",
            target: format!("logistics_vehicle:{id}"),
            region: Some(depot.region_code.clone()),
            detail: json!({"plate": plate, "refrigeration": new.refrigeration, "depot_site_id": depot.id,
                "capacity_kg": capacity_kg, "capacity_m3": capacity_m3}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Vehicle {
        id,
        plate,
        capacity_kg,
        capacity_m3,
        refrigeration: new.refrigeration,
        depot_site_id: depot.id,
        region_code: depot.region_code,
        driver_user_id,
        shift_start,
        shift_end,
        logger_device_id,
        created_at: at,
        updated_at: at,
    })
}

/// A vehicle without access checks, for the slice's own rules.
pub(crate) async fn vehicle_by_id(db: &Db, id: i64) -> Result<Vehicle, CoreError> {
    let q = Query::select()
        .columns(vehicle_columns())
        .from(LogisticsVehicles::Table)
        .and_where(Expr::col(LogisticsVehicles::Id).eq(id))
        .to_owned();
    let row: Option<VehicleRow> = db.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no vehicle {id}")))?
        .try_into()
}

/// A vehicle, if the caller manages the fleet of its depot's region.
pub async fn get_vehicle(db: &Db, caller: &Principal, id: i64) -> Result<Vehicle, CoreError> {
    caller.require_role(FLEET_MANAGERS)?;
    let v = vehicle_by_id(db, id).await?;
    caller.require(FLEET_MANAGERS, &vehicle_region(&v)?)?;
    Ok(v)
}

/// The vehicles of the regions the caller manages.
pub async fn list_vehicles(db: &Db, caller: &Principal, filter: &VehicleQuery) -> Result<Vec<Vehicle>, CoreError> {
    caller.require_role(FLEET_MANAGERS)?;
    let scopes = caller.scopes(Some(FLEET_MANAGERS));
    let mut q = Query::select();
    q.columns(vehicle_columns())
        .from(LogisticsVehicles::Table)
        .cond_where(store::in_scopes(LogisticsVehicles::RegionCode, scopes.as_deref()))
        .order_by(LogisticsVehicles::Id, Order::Asc)
        .limit(filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT));
    if let Some(depot) = filter.depot_site_id {
        q.and_where(Expr::col(LogisticsVehicles::DepotSiteId).eq(depot));
    }
    if let Some(r) = filter.refrigeration {
        q.and_where(Expr::col(LogisticsVehicles::Refrigeration).eq(r.as_str()));
    }
    let rows: Vec<VehicleRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(Vehicle::try_from).collect()
}

/// Changes a vehicle; audited from → to.
pub async fn update_vehicle(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    upd: VehicleUpdate,
) -> Result<Vehicle, CoreError> {
    caller.require_role(FLEET_MANAGERS)?;
    let capacity_kg = upd
        .capacity_kg
        .map(|c| store::positive(c, MAX_CAPACITY_KG, "invalid_capacity", "capacity (kg)"))
        .transpose()?;
    let capacity_m3 = upd
        .capacity_m3
        .map(|c| store::positive(c, MAX_CAPACITY_M3, "invalid_capacity", "capacity (m³)"))
        .transpose()?;
    let logger_device_id = validate_device(upd.logger_device_id)?;
    if capacity_kg.is_none()
        && capacity_m3.is_none()
        && upd.refrigeration.is_none()
        && upd.driver_user_id.is_none()
        && upd.shift_start.is_none()
        && upd.shift_end.is_none()
        && logger_device_id.is_none()
    {
        return Err(CoreError::invalid("missing_field", "give at least one field to change"));
    }
    let old = vehicle_by_id(db, id).await?;
    caller.require(FLEET_MANAGERS, &vehicle_region(&old)?)?;
    let (shift_start, shift_end) = validate_shift(
        upd.shift_start.as_deref().unwrap_or(&old.shift_start),
        upd.shift_end.as_deref().unwrap_or(&old.shift_end),
    )?;
    let driver_user_id = match upd.driver_user_id {
        Some(d) => validate_driver(db, Some(d)).await?,
        None => old.driver_user_id,
    };
    let new = Vehicle {
        capacity_kg: capacity_kg.unwrap_or(old.capacity_kg),
        capacity_m3: capacity_m3.unwrap_or(old.capacity_m3),
        refrigeration: upd.refrigeration.unwrap_or(old.refrigeration),
        driver_user_id,
        shift_start,
        shift_end,
        logger_device_id: logger_device_id.or(old.logger_device_id),
        updated_at: now(),
        ..old.clone()
    };
    let mut tx = db.begin().await?;
    let q = Query::update()
        .table(LogisticsVehicles::Table)
        .values([
            (LogisticsVehicles::CapacityKg, new.capacity_kg.into()),
            (LogisticsVehicles::CapacityM3, new.capacity_m3.into()),
            (LogisticsVehicles::Refrigeration, new.refrigeration.as_str().into()),
            (LogisticsVehicles::DriverUserId, new.driver_user_id.into()),
            (LogisticsVehicles::ShiftStart, new.shift_start.as_str().into()),
            (LogisticsVehicles::ShiftEnd, new.shift_end.as_str().into()),
            (LogisticsVehicles::LoggerDeviceId, new.logger_device_id.into()),
            (LogisticsVehicles::UpdatedAt, new.updated_at.into()),
        ])
        .and_where(Expr::col(LogisticsVehicles::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "logistics_vehicle.update",
            target: format!("logistics_vehicle:{id}"),
            region: Some(new.region_code.clone()),
            detail: changes(&[
                ("capacity_kg", json!(old.capacity_kg), json!(new.capacity_kg)),
                ("capacity_m3", json!(old.capacity_m3), json!(new.capacity_m3)),
                ("refrigeration", json!(old.refrigeration), json!(new.refrigeration)),
                ("driver_user_id", json!(old.driver_user_id), json!(new.driver_user_id)),
                ("shift_start", json!(old.shift_start), json!(new.shift_start)),
                ("shift_end", json!(old.shift_end), json!(new.shift_end)),
                (
                    "logger_device_id",
                    json!(old.logger_device_id),
                    json!(new.logger_device_id),
                ),
            ]),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_follow_the_national_pattern() {
        assert_eq!(validate_plate(" 赣a12345 ").unwrap(), "赣A12345");
        assert_eq!(validate_plate("赣AD12345").unwrap(), "赣AD12345");
        for bad in ["A12345", "赣112345", "赣A1234", "赣A1234567", "X赣12345", "赣A12-45"] {
            assert_eq!(validate_plate(bad).unwrap_err().code(), "invalid_plate", "{bad}");
        }
    }

    #[test]
    fn opening_hours_and_shifts_are_same_day_windows() {
        assert_eq!(
            validate_opening_hours(Some("08:00-18:30")).unwrap().as_deref(),
            Some("08:00-18:30")
        );
        assert_eq!(validate_opening_hours(None).unwrap(), None);
        for bad in ["8:00-18:00", "18:00-08:00", "08:00", "24:00-25:00", "08:60-09:00"] {
            assert!(validate_opening_hours(Some(bad)).is_err(), "{bad}");
        }
        assert!(validate_shift("06:00", "18:00").is_ok());
        assert_eq!(validate_shift("18:00", "06:00").unwrap_err().code(), "invalid_shift");
    }
}
