//! 设备登记 the device registry: each sensor or logger with its type, the
//! village (村) it belongs to, where it stands, its owner, optional narrower
//! metric ranges, a disabled flag and a credential (token) shown once and
//! stored only as SHA-256.
//!
//! Who may do what:
//! - administrators, officials and village staff (村干部/信息员) register,
//!   change and re-key devices in villages their scope covers, and see them;
//! - a device's owner (a farmer, 农户/合作社, or staff) sees it, its series
//!   and its refused points;
//! - everyone else gets 403.
//!
//! A location must lie within the extent (bounding box, with a margin of
//! about 5 km for imprecise GPS fixes) of the nearest ancestor region that
//! has a stored boundary — in Jiangxi the county — or within China's extent
//! where no boundary is stored.
//!
//! Every write is audited in its own transaction. Refused telemetry points
//! are counted per device and error code ([`count_rejections`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_query::{Alias, Condition, Expr, ExprTrait, Iden, LockType, OnConflict, Order, Query};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{self, Actor, Principal, Role};
use shuxiang_core::db::{Db, Tx};
use shuxiang_core::regions;
use shuxiang_core::time::{Timestamp, now};
use shuxiang_core::{CoreError, RegionCode, RegionLevel};

use crate::model::{DeviceType, Metric, RangeOverride, effective_metrics, validate_overrides};

/// Who registers and manages devices (within their scope).
pub const MANAGERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff];
/// Who may own devices and so see their own.
pub const OWNERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff, Role::Farmer];

/// Device tokens start with this, so a device token sent where a user token
/// is expected (or the reverse) is recognised at once.
pub const TOKEN_PREFIX: &str = "sxd_";

const MAX_NAME: usize = 100;
/// Rows per CSV import: one village's or township's devices, not a province.
pub const MAX_IMPORT_ROWS: usize = 5_000;
/// Errors named in one refused import, so the message stays readable.
const MAX_IMPORT_ERRORS: usize = 20;
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;
/// Margin around a region's extent, in degrees (about 5 km).
const EXTENT_MARGIN: f64 = 0.05;
/// China's extent (lon 73.5–135.1° E, lat 3.8–53.6° N), for villages
/// without a stored boundary.
const CHINA: Extent = Extent {
    min_lon: 73.4,
    min_lat: 3.8,
    max_lon: 135.1,
    max_lat: 53.6,
};
/// The longest refusal reason kept per device and error code.
const MAX_REJECTION_MESSAGE: usize = 300;

#[derive(Iden)]
enum Devices {
    Table,
    Id,
    Name,
    DeviceType,
    Village,
    Lon,
    Lat,
    OwnerId,
    Ranges,
    TokenHash,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden)]
enum DeviceRejections {
    Table,
    DeviceId,
    Error,
    Count,
    LastAt,
    LastMessage,
}

/// WGS84 longitude and latitude in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lon: f64,
    pub lat: f64,
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub device_type: DeviceType,
    /// The village-level region (12 digits) it belongs to.
    pub village: RegionCode,
    pub location: Location,
    pub owner_id: i64,
    /// Narrower valid ranges per metric.
    pub ranges: BTreeMap<String, RangeOverride>,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Device {
    /// The metrics this device accepts, with its own ranges applied.
    pub fn metrics(&self) -> Vec<Metric> {
        effective_metrics(self.device_type, &self.ranges)
    }
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: i64,
    name: String,
    device_type: String,
    village: String,
    lon: f64,
    lat: f64,
    owner_id: i64,
    ranges: String,
    token_hash: String,
    disabled: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl DeviceRow {
    fn into_device(self) -> Result<(Device, String), CoreError> {
        let internal = |what: &str| CoreError::Internal(format!("stored {what} of device {} is invalid", self.id));
        let device = Device {
            id: self.id,
            device_type: DeviceType::parse(&self.device_type).map_err(|_| internal("type"))?,
            village: RegionCode::parse(&self.village).map_err(|_| internal("village"))?,
            location: Location {
                lon: self.lon,
                lat: self.lat,
            },
            owner_id: self.owner_id,
            ranges: serde_json::from_str(&self.ranges).map_err(|_| internal("ranges"))?,
            disabled: self.disabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
            name: self.name,
        };
        Ok((device, self.token_hash))
    }
}

/// A device to register (`POST /api/v1/devices`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub name: String,
    #[serde(rename = "type")]
    pub device_type: String,
    pub village: String,
    pub location: Location,
    /// Username of the owner; the registering user when absent.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub ranges: BTreeMap<String, RangeOverride>,
}

/// The fields to change; absent ones stay. The type never changes (stored
/// series would change meaning).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceUpdate {
    pub name: Option<String>,
    pub village: Option<String>,
    pub location: Option<Location>,
    pub owner: Option<String>,
    pub ranges: Option<BTreeMap<String, RangeOverride>>,
    pub disabled: Option<bool>,
}

/// Filter for listing devices.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeviceQuery {
    /// Only devices in this region or below it.
    pub region: Option<String>,
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    /// Devices with ids above this (paging).
    pub after: Option<i64>,
    pub limit: Option<u64>,
}

/// A newly registered device and its token, shown this once.
#[derive(Debug, Clone)]
pub struct Registered {
    pub device: Device,
    pub token: String,
}

/// How many points of one kind a device had refused, and the latest reason.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RejectionCount {
    pub error: String,
    pub count: i64,
    pub last_at: Timestamp,
    pub last_message: String,
}

// ---- access ----

/// Whether `caller` manages devices in `device`'s village.
pub fn may_manage(caller: &Principal, device: &Device) -> bool {
    caller.can(MANAGERS, &device.village)
}

/// Whether `caller` may see `device`: a manager of its village, or its owner
/// while holding an owner role.
pub fn may_view(caller: &Principal, device: &Device) -> bool {
    may_manage(caller, device)
        || (device.owner_id == caller.user_id && caller.grants.iter().any(|g| OWNERS.contains(&g.role)))
}

fn forbidden(id: i64) -> CoreError {
    CoreError::Forbidden(format!("device {id} is outside your scope"))
}

// ---- validation ----

fn validate_name(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > MAX_NAME || s.chars().any(char::is_control) {
        return Err(format!(
            "a device name is 1 to {MAX_NAME} characters without control characters"
        ));
    }
    Ok(s.to_string())
}

/// A village-level code in the caller's management scope that exists.
async fn checked_village(db: &Db, caller: &Principal, raw: &str) -> Result<RegionCode, CoreError> {
    let code = RegionCode::parse(raw)
        .ok()
        .filter(|c| c.level() == RegionLevel::Village)
        .ok_or_else(|| {
            CoreError::invalid(
                "invalid_village",
                format!("village {raw:?} must be a 12-digit village-level region code"),
            )
        })?;
    caller.require(MANAGERS, &code)?;
    if regions::get(db, &code).await?.is_none() {
        return Err(CoreError::invalid(
            "invalid_village",
            format!("no village with code {code}"),
        ));
    }
    Ok(code)
}

#[derive(Debug, Clone, Copy)]
struct Extent {
    min_lon: f64,
    min_lat: f64,
    max_lon: f64,
    max_lat: f64,
}

impl Extent {
    fn contains(&self, loc: Location, margin: f64) -> bool {
        loc.lon >= self.min_lon - margin
            && loc.lon <= self.max_lon + margin
            && loc.lat >= self.min_lat - margin
            && loc.lat <= self.max_lat + margin
    }
}

/// Region extents looked up once per import.
#[derive(Default)]
struct Extents(HashMap<String, Option<(String, Extent)>>);

impl Extents {
    /// The nearest ancestor of `village` with a stored boundary: its code and
    /// extent.
    async fn of(&mut self, db: &Db, village: &RegionCode) -> Result<Option<(String, Extent)>, CoreError> {
        for ancestor in village.ancestors().iter().rev() {
            let key = ancestor.to_string();
            if !self.0.contains_key(&key) {
                let found = regions::boundary(db, ancestor).await?.map(|b| {
                    (
                        b.code,
                        Extent {
                            min_lon: b.min_lon,
                            min_lat: b.min_lat,
                            max_lon: b.max_lon,
                            max_lat: b.max_lat,
                        },
                    )
                });
                self.0.insert(key.clone(), found);
            }
            if let Some(Some(found)) = self.0.get(&key) {
                return Ok(Some(found.clone()));
            }
        }
        Ok(None)
    }

    /// `Err(message)` when `loc` cannot be in `village`.
    async fn check(&mut self, db: &Db, village: &RegionCode, loc: Location) -> Result<Result<(), String>, CoreError> {
        if !(loc.lon.is_finite() && loc.lat.is_finite() && loc.lon.abs() <= 180.0 && loc.lat.abs() <= 90.0) {
            return Ok(Err(format!(
                "location ({}, {}) is not a WGS84 longitude and latitude",
                loc.lon, loc.lat
            )));
        }
        Ok(match self.of(db, village).await? {
            Some((code, e)) if !e.contains(loc, EXTENT_MARGIN) => Err(format!(
                "location (lon {}, lat {}) lies outside region {code} (lon {:.3}–{:.3}, lat {:.3}–{:.3}) that village {village} belongs to",
                loc.lon, loc.lat, e.min_lon, e.max_lon, e.min_lat, e.max_lat
            )),
            Some(_) => Ok(()),
            None if !CHINA.contains(loc, 0.0) => Err(format!(
                "location (lon {}, lat {}) lies outside China",
                loc.lon, loc.lat
            )),
            None => Ok(()),
        })
    }
}

async fn checked_location(db: &Db, village: &RegionCode, loc: Location) -> Result<(), CoreError> {
    Extents::default()
        .check(db, village, loc)
        .await?
        .map_err(|m| CoreError::invalid("invalid_location", m))
}

/// The owner's user id: the named user, who must hold an owner role over a
/// scope covering the village; the caller when no one is named.
async fn checked_owner(
    db: &Db,
    caller: &Principal,
    owner: Option<&str>,
    village: &RegionCode,
) -> Result<i64, CoreError> {
    let Some(username) = owner.map(str::trim) else {
        return Ok(caller.user_id);
    };
    let user = match auth::principal_for_username(db, username).await {
        Ok(p) => p,
        Err(CoreError::NotFound(_)) => {
            return Err(CoreError::invalid(
                "invalid_owner",
                format!("no active user {username:?}"),
            ));
        }
        Err(e) => return Err(e),
    };
    if !user.can(OWNERS, village) {
        return Err(CoreError::invalid(
            "invalid_owner",
            format!("user {username:?} holds no farmer, staff, official or admin role covering village {village}"),
        ));
    }
    Ok(user.user_id)
}

fn checked_device_type(raw: &str) -> Result<DeviceType, CoreError> {
    DeviceType::parse(raw)
}

// ---- tokens ----

/// A new random device token: the prefix and 32 random bytes in hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("{TOKEN_PREFIX}{}", hex::encode(b))
}

/// Compares two hex digests without an early exit, so the time taken does
/// not tell how much of a guess was right.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---- store ----

fn columns() -> [Devices; 12] {
    [
        Devices::Id,
        Devices::Name,
        Devices::DeviceType,
        Devices::Village,
        Devices::Lon,
        Devices::Lat,
        Devices::OwnerId,
        Devices::Ranges,
        Devices::TokenHash,
        Devices::Disabled,
        Devices::CreatedAt,
        Devices::UpdatedAt,
    ]
}

fn ranges_json(r: &BTreeMap<String, RangeOverride>) -> String {
    json!(r).to_string()
}

fn device_detail(d: &Device) -> Value {
    json!({
        "name": d.name, "type": d.device_type, "village": d.village, "location": d.location,
        "owner_id": d.owner_id, "ranges": d.ranges, "disabled": d.disabled,
    })
}

async fn insert(tx: &mut Tx, actor: &Actor, device: &mut Device, token_hash: &str, via: &str) -> Result<(), CoreError> {
    let q = Query::insert()
        .into_table(Devices::Table)
        .columns(columns().into_iter().skip(1))
        .values_panic([
            device.name.as_str().into(),
            device.device_type.as_str().into(),
            device.village.as_str().into(),
            device.location.lon.into(),
            device.location.lat.into(),
            device.owner_id.into(),
            ranges_json(&device.ranges).into(),
            token_hash.into(),
            device.disabled.into(),
            device.created_at.into(),
            device.updated_at.into(),
        ])
        .returning_col(Devices::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&q).await?;
    device.id = id;
    let mut detail = device_detail(device);
    detail["via"] = json!(via);
    audit::record(
        tx,
        actor,
        AuditEvent {
            action: "device.create",
            target: format!("device:{id}"),
            region: Some(device.village.to_string()),
            detail,
        },
    )
    .await
}

/// Registers a device; returns it with its token, which is not stored and
/// cannot be shown again.
pub async fn create(db: &Db, caller: &Principal, actor: &Actor, new: NewDevice) -> Result<Registered, CoreError> {
    caller.require_role(MANAGERS)?;
    let village = checked_village(db, caller, &new.village).await?;
    let name = validate_name(&new.name).map_err(|m| CoreError::invalid("invalid_name", m))?;
    let device_type = checked_device_type(&new.device_type)?;
    validate_overrides(device_type, &new.ranges)?;
    checked_location(db, &village, new.location).await?;
    let owner_id = checked_owner(db, caller, new.owner.as_deref(), &village).await?;
    let token = new_token();
    let at = now();
    let mut device = Device {
        id: 0,
        name,
        device_type,
        village,
        location: new.location,
        owner_id,
        ranges: new.ranges,
        disabled: false,
        created_at: at,
        updated_at: at,
    };
    let mut tx = db.begin().await?;
    insert(&mut tx, actor, &mut device, &auth::hash_secret(&token), "api").await?;
    tx.commit().await?;
    Ok(Registered { device, token })
}

/// The device with `id`, whoever asks (for ingest and internal callers).
pub async fn get(db: &Db, id: i64) -> Result<Device, CoreError> {
    Ok(load(db, id).await?.0)
}

async fn load(db: &Db, id: i64) -> Result<(Device, String), CoreError> {
    let q = Query::select()
        .columns(columns())
        .from(Devices::Table)
        .and_where(Expr::col(Devices::Id).eq(id))
        .to_owned();
    let row: Option<DeviceRow> = db.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no device {id}")))?
        .into_device()
}

/// The device with `id` if `caller` may see it (404 if none, 403 if not).
pub async fn get_visible(db: &Db, caller: &Principal, id: i64) -> Result<Device, CoreError> {
    // Roles that can never see a device learn nothing, not even whether it exists.
    caller.require_role(OWNERS)?;
    let device = get(db, id).await?;
    if !may_view(caller, &device) {
        return Err(forbidden(id));
    }
    Ok(device)
}

/// The device whose token is `token` (stored hash looked up, then compared
/// in constant time).
pub async fn by_token(db: &Db, token: &str) -> Result<Option<Device>, CoreError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = auth::hash_secret(token);
    let q = Query::select()
        .columns(columns())
        .from(Devices::Table)
        .and_where(Expr::col(Devices::TokenHash).eq(hash.as_str()))
        .to_owned();
    let row: Option<DeviceRow> = db.fetch_optional(&q).await?;
    match row {
        Some(r) => {
            let (device, stored) = r.into_device()?;
            Ok(digests_equal(&stored, &hash).then_some(device))
        }
        None => Ok(None),
    }
}

/// The device `id` if `token` is its token (constant-time comparison of the
/// digests).
pub async fn by_id_and_token(db: &Db, id: i64, token: &str) -> Result<Option<Device>, CoreError> {
    let (device, stored) = match load(db, id).await {
        Ok(found) => found,
        Err(CoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(digests_equal(&stored, &auth::hash_secret(token)).then_some(device))
}

/// Devices `caller` may see, by id: in their management scope or their own,
/// filtered by region and type. Roles that can neither manage nor own
/// devices get 403.
pub async fn list(db: &Db, caller: &Principal, filter: &DeviceQuery) -> Result<Vec<Device>, CoreError> {
    caller.require_role(OWNERS)?;
    let mut q = Query::select();
    q.columns(columns())
        .from(Devices::Table)
        .order_by(Devices::Id, Order::Asc)
        .limit(filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT));
    let mut visible = Condition::any().add(Expr::col(Devices::OwnerId).eq(caller.user_id));
    match caller.scopes(Some(MANAGERS)) {
        None => visible = visible.add(Expr::val(1).eq(1)),
        Some(scopes) => {
            for s in scopes {
                let (lo, hi) = s.subtree_range();
                visible = visible.add(
                    Expr::col(Devices::Village)
                        .gte(lo)
                        .and(Expr::col(Devices::Village).lt(hi)),
                );
            }
        }
    }
    q.cond_where(visible);
    if let Some(raw) = filter.region.as_deref().filter(|r| !r.trim().is_empty()) {
        let region = RegionCode::parse(raw)?;
        let (lo, hi) = region.subtree_range();
        q.and_where(Expr::col(Devices::Village).gte(lo))
            .and_where(Expr::col(Devices::Village).lt(hi));
    }
    if let Some(t) = filter.device_type.as_deref().filter(|t| !t.trim().is_empty()) {
        q.and_where(Expr::col(Devices::DeviceType).eq(checked_device_type(t)?.as_str()));
    }
    if let Some(after) = filter.after {
        q.and_where(Expr::col(Devices::Id).gt(after));
    }
    let rows: Vec<DeviceRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(|r| r.into_device().map(|(d, _)| d)).collect()
}

async fn lock(tx: &mut Tx, id: i64) -> Result<Device, CoreError> {
    let q = Query::select()
        .columns(columns())
        .from(Devices::Table)
        .and_where(Expr::col(Devices::Id).eq(id))
        .lock(LockType::Update)
        .to_owned();
    let row: Option<DeviceRow> = tx.fetch_optional(&q).await?;
    Ok(row
        .ok_or_else(|| CoreError::NotFound(format!("no device {id}")))?
        .into_device()?
        .0)
}

/// Changes a device; the caller must manage its village (before and after a
/// move). The audit entry names every changed field, before and after.
pub async fn update(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    upd: DeviceUpdate,
) -> Result<Device, CoreError> {
    caller.require_role(MANAGERS)?;
    let current = get(db, id).await?;
    if !may_manage(caller, &current) {
        return Err(forbidden(id));
    }
    if upd.name.is_none()
        && upd.village.is_none()
        && upd.location.is_none()
        && upd.owner.is_none()
        && upd.ranges.is_none()
        && upd.disabled.is_none()
    {
        return Err(CoreError::invalid("missing_field", "give at least one field to change"));
    }
    let name = upd
        .name
        .as_deref()
        .map(validate_name)
        .transpose()
        .map_err(|m| CoreError::invalid("invalid_name", m))?;
    let village = match upd.village.as_deref() {
        Some(v) => Some(checked_village(db, caller, v).await?),
        None => None,
    };
    if let Some(r) = &upd.ranges {
        validate_overrides(current.device_type, r)?;
    }
    let target_village = village.clone().unwrap_or_else(|| current.village.clone());
    if village.is_some() || upd.location.is_some() {
        checked_location(db, &target_village, upd.location.unwrap_or(current.location)).await?;
    }
    let owner_id = match upd.owner.as_deref() {
        Some(o) => Some(checked_owner(db, caller, Some(o), &target_village).await?),
        None => None,
    };
    let mut tx = db.begin().await?;
    let old = lock(&mut tx, id).await?;
    let new = Device {
        name: name.unwrap_or_else(|| old.name.clone()),
        village: target_village,
        location: upd.location.unwrap_or(old.location),
        owner_id: owner_id.unwrap_or(old.owner_id),
        ranges: upd.ranges.unwrap_or_else(|| old.ranges.clone()),
        disabled: upd.disabled.unwrap_or(old.disabled),
        updated_at: now(),
        ..old.clone()
    };
    let before = device_detail(&old);
    let after = device_detail(&new);
    let mut changes = serde_json::Map::new();
    if let (Value::Object(b), Value::Object(a)) = (&before, &after) {
        for (k, v) in a {
            if b.get(k) != Some(v) {
                changes.insert(k.clone(), json!({"from": b.get(k), "to": v}));
            }
        }
    }
    let q = Query::update()
        .table(Devices::Table)
        .values([
            (Devices::Name, new.name.as_str().into()),
            (Devices::Village, new.village.as_str().into()),
            (Devices::Lon, new.location.lon.into()),
            (Devices::Lat, new.location.lat.into()),
            (Devices::OwnerId, new.owner_id.into()),
            (Devices::Ranges, ranges_json(&new.ranges).into()),
            (Devices::Disabled, new.disabled.into()),
            (Devices::UpdatedAt, new.updated_at.into()),
        ])
        .and_where(Expr::col(Devices::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "device.update",
            target: format!("device:{id}"),
            region: Some(new.village.to_string()),
            detail: Value::Object(changes),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(new)
}

/// Gives a device a new token (the old one stops working at once) and
/// returns it, shown this once.
pub async fn rotate_token(db: &Db, caller: &Principal, actor: &Actor, id: i64) -> Result<String, CoreError> {
    caller.require_role(MANAGERS)?;
    let mut tx = db.begin().await?;
    let device = lock(&mut tx, id).await?;
    if !may_manage(caller, &device) {
        return Err(forbidden(id));
    }
    let token = new_token();
    let q = Query::update()
        .table(Devices::Table)
        .values([
            (Devices::TokenHash, auth::hash_secret(&token).into()),
            (Devices::UpdatedAt, now().into()),
        ])
        .and_where(Expr::col(Devices::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "device.rotate_token",
            target: format!("device:{id}"),
            region: Some(device.village.to_string()),
            detail: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

// ---- CSV import ----

/// The columns of an import file, in order, as its header names them.
pub const IMPORT_HEADER: [&str; 5] = ["name", "type", "village", "lon", "lat"];

/// One device created by an import: its line in the file and its token.
#[derive(Debug, Clone)]
pub struct Imported {
    pub line: u64,
    pub device: Device,
    pub token: String,
}

/// Registers every device of a CSV file (`name,type,village,lon,lat` with
/// that header) owned by the caller, or none: any bad line refuses the whole
/// file with every error (up to 20) named by line and field — 403 when a
/// village is outside the caller's scope, otherwise 422 `invalid_csv`.
pub async fn import_csv(db: &Db, caller: &Principal, actor: &Actor, text: &str) -> Result<Vec<Imported>, CoreError> {
    caller.require_role(MANAGERS)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| CoreError::invalid("invalid_csv", format!("line 1: {e}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    if header != IMPORT_HEADER {
        return Err(CoreError::invalid(
            "invalid_csv",
            format!(
                "line 1: the header must be {}, not {}",
                IMPORT_HEADER.join(","),
                header.join(",")
            ),
        ));
    }
    let mut errors: Vec<String> = Vec::new();
    let mut out_of_scope = false;
    let mut extents = Extents::default();
    let mut villages: HashMap<String, bool> = HashMap::new();
    let mut rows: Vec<(u64, Device)> = Vec::new();
    let at = now();
    for record in reader.records() {
        if errors.len() >= MAX_IMPORT_ERRORS {
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if rows.len() >= MAX_IMPORT_ROWS {
            return Err(CoreError::invalid(
                "invalid_csv",
                format!("line {line}: at most {MAX_IMPORT_ROWS} devices per import"),
            ));
        }
        if record.len() != IMPORT_HEADER.len() {
            errors.push(format!(
                "line {line}: {} fields, expected {} ({})",
                record.len(),
                IMPORT_HEADER.len(),
                IMPORT_HEADER.join(",")
            ));
            continue;
        }
        let mut bad = |field: &str, message: String| errors.push(format!("line {line}, field {field}: {message}"));
        let name = validate_name(&record[0]).map_err(|m| bad("name", m)).ok();
        let device_type = checked_device_type(&record[1])
            .map_err(|e| bad("type", e.to_string()))
            .ok();
        let number = |field: &str, raw: &str| -> Result<f64, String> {
            raw.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{field} {raw:?} is not a number"))
        };
        let lon = number("lon", &record[3]).map_err(|m| bad("lon", m)).ok();
        let lat = number("lat", &record[4]).map_err(|m| bad("lat", m)).ok();
        let village = match RegionCode::parse(&record[2])
            .ok()
            .filter(|c| c.level() == RegionLevel::Village)
        {
            None => {
                bad(
                    "village",
                    format!("{:?} is not a 12-digit village-level region code", &record[2]),
                );
                None
            }
            Some(code) if !caller.can(MANAGERS, &code) => {
                out_of_scope = true;
                bad("village", format!("village {code} is outside your role's scope"));
                None
            }
            Some(code) => {
                let exists = match villages.get(code.as_str()) {
                    Some(e) => *e,
                    None => {
                        let e = regions::get(db, &code).await?.is_some();
                        villages.insert(code.to_string(), e);
                        e
                    }
                };
                if exists {
                    Some(code)
                } else {
                    bad("village", format!("no village with code {code}"));
                    None
                }
            }
        };
        let (Some(name), Some(device_type), Some(village), Some(lon), Some(lat)) =
            (name, device_type, village, lon, lat)
        else {
            continue;
        };
        let location = Location { lon, lat };
        if let Err(m) = extents.check(db, &village, location).await? {
            errors.push(format!("line {line}, field lon/lat: {m}"));
            continue;
        }
        rows.push((
            line,
            Device {
                id: 0,
                name,
                device_type,
                village,
                location,
                owner_id: caller.user_id,
                ranges: BTreeMap::new(),
                disabled: false,
                created_at: at,
                updated_at: at,
            },
        ));
    }
    if !errors.is_empty() {
        let message = format!("nothing was imported: {}", errors.join("; "));
        return Err(if out_of_scope {
            CoreError::Forbidden(message)
        } else {
            CoreError::invalid("invalid_csv", message)
        });
    }
    if rows.is_empty() {
        return Err(CoreError::invalid(
            "invalid_csv",
            "the file holds no devices after its header",
        ));
    }
    let mut tx = db.begin().await?;
    let mut imported = Vec::with_capacity(rows.len());
    for (line, mut device) in rows {
        let token = new_token();
        insert(&mut tx, actor, &mut device, &auth::hash_secret(&token), "csv_import").await?;
        imported.push(Imported { line, device, token });
    }
    tx.commit().await?;
    Ok(imported)
}

// ---- refused points ----

/// Adds refusals to a device's counters: (error code, how many, the latest
/// reason). Codes are those of [`crate::payload::PointError`] for single points, and
/// `malformed_json` / `too_many_points` for messages refused whole (counted
/// once per message).
pub async fn count_rejections(
    db: &Db,
    device_id: i64,
    counts: &[(&str, i64, String)],
    at: DateTime<Utc>,
) -> Result<(), CoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for (error, n, message) in counts {
        let message: String = message.chars().take(MAX_REJECTION_MESSAGE).collect();
        let q = Query::insert()
            .into_table(DeviceRejections::Table)
            .columns([
                DeviceRejections::DeviceId,
                DeviceRejections::Error,
                DeviceRejections::Count,
                DeviceRejections::LastAt,
                DeviceRejections::LastMessage,
            ])
            .values_panic([
                device_id.into(),
                (*error).into(),
                (*n).into(),
                at.into(),
                message.into(),
            ])
            .on_conflict(
                OnConflict::columns([DeviceRejections::DeviceId, DeviceRejections::Error])
                    .value(
                        DeviceRejections::Count,
                        Expr::col((DeviceRejections::Table, DeviceRejections::Count))
                            .add(Expr::col((Alias::new("excluded"), DeviceRejections::Count))),
                    )
                    .update_columns([DeviceRejections::LastAt, DeviceRejections::LastMessage])
                    .to_owned(),
            )
            .to_owned();
        tx.execute(&q).await?;
    }
    tx.commit().await
}

/// A device's refused-point counters by error code.
pub async fn rejections(db: &Db, device_id: i64) -> Result<Vec<RejectionCount>, CoreError> {
    let q = Query::select()
        .columns([
            DeviceRejections::Error,
            DeviceRejections::Count,
            DeviceRejections::LastAt,
            DeviceRejections::LastMessage,
        ])
        .from(DeviceRejections::Table)
        .and_where(Expr::col(DeviceRejections::DeviceId).eq(device_id))
        .order_by(DeviceRejections::Error, Order::Asc)
        .to_owned();
    db.fetch_all(&q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_compared_by_digest() {
        let a = new_token();
        let b = new_token();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        let (ha, hb) = (auth::hash_secret(&a), auth::hash_secret(&b));
        assert!(digests_equal(&ha, &ha.clone()));
        assert!(!digests_equal(&ha, &hb));
        assert!(!digests_equal(&ha, &ha[1..]));
    }

    #[test]
    fn extents_include_their_margin_only() {
        let e = Extent {
            min_lon: 115.0,
            min_lat: 28.0,
            max_lon: 116.0,
            max_lat: 29.0,
        };
        assert!(e.contains(Location { lon: 115.5, lat: 28.5 }, 0.0));
        assert!(e.contains(Location { lon: 116.04, lat: 28.5 }, EXTENT_MARGIN));
        assert!(!e.contains(Location { lon: 116.06, lat: 28.5 }, EXTENT_MARGIN));
        assert!(!e.contains(Location { lon: 115.5, lat: 27.9 }, EXTENT_MARGIN));
    }
}
