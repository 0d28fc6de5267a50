//! 调度计划 dispatch plans: for a depot and a day, village collection runs
//! of the depot's vehicles through the booked pickups of its county, solved
//! by [`crate::dispatch`] (vrp-core), stored as plan → route → stops, with
//! the pickups no vehicle could take and why. Planned shipments move from
//! booked to planned on their vehicle.
//!
//! The model, kept simple so a planner can check it by hand:
//! - Each booked shipment of the county whose `[ready_at, deadline]` overlaps
//!   the day becomes a pickup at its origin, unloaded at the depot (the
//!   onward trip to a city warehouse or buyer is not routed here).
//! - Time is minutes after local midnight (China, UTC+8); a pickup's window
//!   is its ready time to its deadline, clipped to the day; vehicles work
//!   their shift.
//! - Capacity has two dimensions, kg and litres (m³ × 1000): demands round
//!   up, capacities round down, and what a vehicle already carries
//!   (planned, picked-up or in-transit shipments) is taken off its capacity.
//! - Temperature: chilled goods need the skill `reefer` (chilled and frozen
//!   vehicles), frozen goods need `frozen` (frozen vehicles only), ambient
//!   goods none — the same rule as [`TemperatureClass::can_carry`].
//! - Distances are great-circle (haversine) kilometres times a road factor;
//!   travel time is distance over an average speed.
//! - A planner may lock a pickup to a vehicle (move a stop); a re-plan is a
//!   new plan of the same depot and day that takes the earlier plan's
//!   still-planned pickups back into the pool, so locked and unlocked stops
//!   alike may land on other vehicles. A lock the vehicle cannot honour
//!   (temperature class, room, shift) leaves the pickup unassigned with the
//!   solver's reason, like any other pickup.
//! - A plan stores the locks it was made with, and a re-plan stores the plan
//!   it replaced (`replan_of`); the old plan then reads as replaced
//!   (`replaced_by`) and cannot be re-planned again (409 `plan_replaced`,
//!   naming the newer plan): history is a line, never a fork.
//! - A re-plan's locks: without locks given, the previous plan's; with locks
//!   given, exactly those (none given clears them). Either way a lock the
//!   previous plan held that no longer applies — its shipment left the pool
//!   (picked up, cancelled) or its vehicle left the depot — is dropped
//!   quietly, so a planner's earlier pins never block a re-plan; any other
//!   lock must name a pickup of the plan and a vehicle of the depot.

use std::time::Duration;

use chrono::NaiveDate;
use sea_query::{Expr, ExprTrait, Iden, Order, Query, SelectStatement};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{Actor, Principal};
use shuxiang_core::time::{Timestamp, now};
use shuxiang_core::{CoreError, Db, RegionCode};

use crate::coldchain::TemperatureClass;
use crate::dispatch::{self, Job, JobKind, Matrix, Problem, TimeWindow};
use crate::network::{self, Vehicle};
use crate::shipments::{self, OPERATORS, Shipment, Status};
use crate::store::{DEFAULT_LIMIT, MAX_LIMIT, in_scopes};

/// Mean Earth radius (IUGG), km.
const EARTH_RADIUS_KM: f64 = 6371.0088;
/// China Standard Time, the clock shifts and days are kept in.
const CHINA_OFFSET_S: i32 = 8 * 3600;
const MINUTES_PER_DAY: f64 = 1440.0;

// Also read by [`crate::stats`] for empty running.
#[derive(Iden, Clone, Copy)]
pub(crate) enum LogisticsPlans {
    Table,
    Id,
    DepotSiteId,
    RegionCode,
    Day,
    RoadFactor,
    SpeedKmh,
    DistanceKm,
    CreatedBy,
    CreatedAt,
    ReplanOf,
}

#[derive(Iden, Clone, Copy)]
pub(crate) enum LogisticsPlanRoutes {
    Table,
    PlanId,
    VehicleId,
    StartMin,
    EndMin,
    DistanceKm,
}

#[derive(Iden, Clone, Copy)]
pub(crate) enum LogisticsPlanStops {
    Table,
    PlanId,
    VehicleId,
    Seq,
    ShipmentId,
    ArrivalMin,
    DepartureMin,
}

#[derive(Iden, Clone, Copy)]
enum LogisticsPlanUnassigned {
    Table,
    PlanId,
    ShipmentId,
    Reason,
}

#[derive(Iden, Clone, Copy)]
enum LogisticsPlanLocks {
    Table,
    PlanId,
    ShipmentId,
    VehicleId,
}

/// What to plan, and how distances and times are estimated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    pub depot_site_id: i64,
    /// The local (UTC+8) day to plan.
    pub day: NaiveDate,
    /// Road distance over great-circle distance (default 1.3).
    #[serde(default)]
    pub road_factor: Option<f64>,
    /// Average speed, km/h (default 40).
    #[serde(default)]
    pub speed_kmh: Option<f64>,
    /// Minutes spent loading at each pickup (default 10).
    #[serde(default)]
    pub service_min: Option<f64>,
    /// Seconds the solver may search (default 5, at most 60).
    #[serde(default)]
    pub time_limit_s: Option<u64>,
    /// Pickups the planner pins to a vehicle of the depot.
    #[serde(default)]
    pub locks: Vec<Lock>,
}

/// A planner's pin: this pickup goes on this vehicle or stays unassigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub shipment_id: i64,
    pub vehicle_id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedStop {
    pub shipment_id: i64,
    pub arrival: Timestamp,
    pub departure: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRoute {
    pub vehicle_id: i64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub distance_km: f64,
    pub stops: Vec<PlannedStop>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnassignedShipment {
    pub shipment_id: i64,
    /// `time_window`, `capacity`, `skills` (no vehicle of the right
    /// temperature class), `max_distance`, `max_duration` or `unknown`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub id: i64,
    pub depot_site_id: i64,
    pub region_code: String,
    pub day: String,
    pub road_factor: f64,
    pub speed_kmh: f64,
    pub distance_km: f64,
    pub routes: Vec<PlannedRoute>,
    pub unassigned: Vec<UnassignedShipment>,
    /// The planner's locks the plan was made with, by shipment; a locked
    /// pickup its vehicle could not take is among `unassigned`.
    pub locks: Vec<Lock>,
    /// The plan this one re-planned.
    pub replan_of: Option<i64>,
    /// The re-plan that replaced this plan; a replaced plan is history.
    pub replaced_by: Option<i64>,
    pub created_by: i64,
    pub created_at: Timestamp,
}

/// A plan as a region's list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSummary {
    pub id: i64,
    pub depot_site_id: i64,
    pub region_code: String,
    pub day: String,
    pub distance_km: f64,
    /// Vehicles with a route.
    pub vehicles: i64,
    pub stops: i64,
    pub unassigned: i64,
    pub replan_of: Option<i64>,
    pub replaced_by: Option<i64>,
    pub created_at: Timestamp,
}

/// Midnight starting `day` in China (UTC+8, no daylight saving), as UTC.
fn local_midnight(day: NaiveDate) -> Timestamp {
    let offset = chrono::Duration::seconds(i64::from(CHINA_OFFSET_S));
    day.and_time(chrono::NaiveTime::MIN).and_utc() - offset
}

/// Great-circle distance between two (lon, lat) points in km.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lon1, lat1) = (a.0.to_radians(), a.1.to_radians());
    let (lon2, lat2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().asin()
}

/// Distance (km) and travel-time (minutes) matrices between `points`.
pub fn road_matrix(points: &[(f64, f64)], road_factor: f64, speed_kmh: f64) -> Result<Matrix, CoreError> {
    let n = points.len();
    let mut distances = Vec::with_capacity(n * n);
    for a in points {
        for b in points {
            distances.push(haversine_km(*a, *b) * road_factor);
        }
    }
    let durations = distances.iter().map(|d| d / speed_kmh * 60.0).collect();
    Matrix::new(n, distances, durations).map_err(|e| CoreError::Internal(e.to_string()))
}

fn minutes(clock: &str) -> f64 {
    let (h, m) = clock.split_once(':').unwrap_or(("0", "0"));
    h.parse::<f64>().unwrap_or(0.0) * 60.0 + m.parse::<f64>().unwrap_or(0.0)
}

fn skills(class: TemperatureClass) -> Vec<String> {
    match class {
        TemperatureClass::Ambient => vec![],
        TemperatureClass::Chilled => vec!["reefer".into()],
        TemperatureClass::Frozen => vec!["frozen".into()],
    }
}

fn vehicle_skills(class: TemperatureClass) -> Vec<String> {
    match class {
        TemperatureClass::Ambient => vec![],
        TemperatureClass::Chilled => vec!["reefer".into()],
        TemperatureClass::Frozen => vec!["reefer".into(), "frozen".into()],
    }
}

fn bounded(
    value: Option<f64>,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
    what: &str,
) -> Result<f64, CoreError> {
    let v = value.unwrap_or(default);
    if v.is_finite() && range.contains(&v) {
        Ok(v)
    } else {
        Err(CoreError::invalid(
            "invalid_plan_settings",
            format!("{what} must be between {} and {}, not {v}", range.start(), range.end()),
        ))
    }
}

/// The dispatch problem of a depot's vehicles (with their remaining
/// capacity in kg and m³) and the day's pickups; location 0 is the depot,
/// location `j + 1` the origin of pickup `j`. Times in minutes after
/// `day_start`.
pub fn build_problem(
    vehicles: &[(Vehicle, f64, f64)],
    pickups: &[Shipment],
    day_start: Timestamp,
    service_min: f64,
) -> Problem {
    let minute_of = |t: Timestamp| (t - day_start).num_seconds() as f64 / 60.0;
    let vehicles = vehicles
        .iter()
        .map(|(v, kg, m3)| {
            let mut dv = dispatch::Vehicle::new(
                0,
                vec![
                    f64::max(*kg, 0.0).floor() as u32,
                    (f64::max(*m3, 0.0) * 1000.0).floor() as u32,
                ],
                TimeWindow {
                    start: minutes(&v.shift_start),
                    end: minutes(&v.shift_end),
                },
            );
            dv.skills = vehicle_skills(v.refrigeration);
            dv
        })
        .collect();
    let jobs = pickups
        .iter()
        .enumerate()
        .map(|(j, s)| {
            let start = minute_of(s.ready_at).clamp(0.0, MINUTES_PER_DAY);
            let end = minute_of(s.deadline).clamp(0.0, MINUTES_PER_DAY);
            let mut job = Job::new(
                j + 1,
                vec![s.weight_kg.ceil() as u32, (s.volume_m3 * 1000.0).ceil() as u32],
                TimeWindow { start, end },
                service_min,
            );
            job.kind = JobKind::Pickup;
            job.skills = skills(s.temperature_class);
            job
        })
        .collect();
    Problem { vehicles, jobs }
}

fn invalid_lock(message: String) -> CoreError {
    CoreError::invalid("invalid_lock", message)
}

/// The vehicle (index into `vehicles`) each pickup is locked to, and the
/// locks that apply, by shipment. A lock must name a pickup of this plan,
/// once, and a vehicle of the depot; one of the `previous` plan's locks
/// that no longer does is dropped rather than refused (see the module).
fn locked_vehicles(
    locks: &[Lock],
    previous: &[Lock],
    vehicles: &[(Vehicle, f64, f64)],
    pickups: &[Shipment],
    depot: i64,
) -> Result<(Vec<Option<usize>>, Vec<Lock>), CoreError> {
    let mut out = vec![None; pickups.len()];
    let mut applied = Vec::with_capacity(locks.len());
    for lock in locks {
        let v = vehicles.iter().position(|(v, _, _)| v.id == lock.vehicle_id);
        let j = pickups.iter().position(|s| s.id == lock.shipment_id);
        let (Some(v), Some(j)) = (v, j) else {
            if previous.contains(lock) {
                continue;
            }
            return Err(invalid_lock(match v {
                None => format!("vehicle {} is not at depot {depot}", lock.vehicle_id),
                Some(_) => format!("shipment {} is not a pickup of this plan", lock.shipment_id),
            }));
        };
        if out[j].replace(v).is_some() {
            return Err(invalid_lock(format!("shipment {} is locked twice", lock.shipment_id)));
        }
        applied.push(*lock);
    }
    applied.sort_by_key(|l| l.shipment_id);
    Ok((out, applied))
}

/// The refusal to re-plan plan `id`, which plan `newer` replaced.
fn replaced(id: i64, newer: i64) -> CoreError {
    CoreError::conflict(
        "plan_replaced",
        format!("plan {id} was replaced by plan {newer}; re-plan plan {newer} instead"),
    )
}

/// The plan that re-planned plan `id`, if any.
async fn successor(db: &Db, id: i64) -> Result<Option<i64>, CoreError> {
    let q = Query::select()
        .column(LogisticsPlans::Id)
        .from(LogisticsPlans::Table)
        .and_where(Expr::col(LogisticsPlans::ReplanOf).eq(id))
        .to_owned();
    Ok(db.fetch_optional::<(i64,)>(&q).await?.map(|(n,)| n))
}

/// The stops of `previous` still planned on the vehicle it chose, which a
/// re-plan may move; stops already picked up or cancelled stay as they are.
async fn still_planned(db: &Db, previous: &Plan) -> Result<Vec<Shipment>, CoreError> {
    let all = shuxiang_core::auth::operator();
    let mut out = Vec::new();
    for route in &previous.routes {
        for stop in &route.stops {
            let s = shipments::get(db, &all, stop.shipment_id).await?;
            if s.status == Status::Planned && s.vehicle_id == Some(route.vehicle_id) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Plans the day of a depot (see the module's model) and stores the plan;
/// the caller must operate in the depot's county.
pub async fn create(db: &Db, caller: &Principal, actor: &Actor, req: PlanRequest) -> Result<Plan, CoreError> {
    plan_day(db, caller, actor, req, None).await
}

/// Plans the depot and day of plan `id` again, replacing it: its pickups
/// still planned are planned anew together with the day's booked ones,
/// with `locks`, or without them the plan's own locks (see the module's
/// model). `time_limit_s` as in [`PlanRequest`].
pub async fn replan(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    locks: Option<Vec<Lock>>,
    time_limit_s: Option<u64>,
) -> Result<Plan, CoreError> {
    let previous = get(db, caller, id).await?;
    if let Some(newer) = previous.replaced_by {
        return Err(replaced(id, newer));
    }
    let day = NaiveDate::parse_from_str(&previous.day, "%Y-%m-%d")
        .map_err(|e| CoreError::Internal(format!("plan {id} day: {e}")))?;
    let req = PlanRequest {
        depot_site_id: previous.depot_site_id,
        day,
        road_factor: Some(previous.road_factor),
        speed_kmh: Some(previous.speed_kmh),
        service_min: None,
        time_limit_s,
        locks: locks.unwrap_or_else(|| previous.locks.clone()),
    };
    plan_day(db, caller, actor, req, Some(&previous)).await
}

async fn plan_day(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    req: PlanRequest,
    previous: Option<&Plan>,
) -> Result<Plan, CoreError> {
    caller.require_role(OPERATORS)?;
    let road_factor = bounded(req.road_factor, 1.3, 1.0..=3.0, "road_factor")?;
    let speed_kmh = bounded(req.speed_kmh, 40.0, 5.0..=120.0, "speed_kmh")?;
    let service_min = bounded(req.service_min, 10.0, 0.0..=240.0, "service_min")?;
    let time_limit_s = req.time_limit_s.unwrap_or(5);
    if !(1..=60).contains(&time_limit_s) {
        return Err(CoreError::invalid(
            "invalid_plan_settings",
            format!("time_limit_s must be 1 to 60, not {time_limit_s}"),
        ));
    }
    let depot = match network::get_site(db, req.depot_site_id).await {
        Ok(s) => s,
        Err(CoreError::NotFound(m)) => return Err(CoreError::invalid("unknown_depot", m)),
        Err(e) => return Err(e),
    };
    // The county the depot serves: its own region cut to the county level.
    let county = RegionCode::parse(&depot.region_code[..depot.region_code.len().min(6)])
        .map_err(|_| CoreError::Internal(format!("site {} has a bad region code", depot.id)))?;
    caller.require(OPERATORS, &county)?;

    let day_start = local_midnight(req.day);
    let day_end = day_start + chrono::Duration::days(1);

    let fleet = network::list_vehicles(
        db,
        &shuxiang_core::auth::operator(),
        &network::VehicleQuery {
            depot_site_id: Some(depot.id),
            refrigeration: None,
            limit: Some(1000),
        },
    )
    .await?;
    if fleet.is_empty() {
        return Err(CoreError::invalid(
            "no_vehicles",
            format!("depot {} has no vehicles to plan", depot.id),
        ));
    }
    let carried = match previous {
        Some(p) => still_planned(db, p).await?,
        None => Vec::new(),
    };
    // What a re-plan takes back off a vehicle: (kg, m³).
    let carried_on = |vehicle: i64| {
        carried
            .iter()
            .filter(|s| s.vehicle_id == Some(vehicle))
            .fold((0.0, 0.0), |(kg, m3), s| (kg + s.weight_kg, m3 + s.volume_m3))
    };
    let mut vehicles = Vec::with_capacity(fleet.len());
    for v in fleet {
        let (kg, m3) = shipments::committed_load(db, v.id).await?;
        let (back_kg, back_m3) = carried_on(v.id);
        let (free_kg, free_m3) = (v.capacity_kg - kg + back_kg, v.capacity_m3 - m3 + back_m3);
        vehicles.push((v, free_kg, free_m3));
    }
    let mut pickups = shipments::booked_between(db, &county, day_start, day_end).await?;
    pickups.extend(carried.iter().cloned());
    pickups.sort_by_key(|s| s.id);
    pickups.dedup_by_key(|s| s.id);
    let previous_locks = previous.map_or(&[][..], |p| &p.locks);
    let (locked, locks) = locked_vehicles(&req.locks, previous_locks, &vehicles, &pickups, depot.id)?;
    let mut problem = build_problem(&vehicles, &pickups, day_start, service_min);
    for (job, vehicle) in problem.jobs.iter_mut().zip(locked) {
        job.vehicle = vehicle;
    }
    let points: Vec<(f64, f64)> = std::iter::once((depot.lon, depot.lat))
        .chain(
            pickups
                .iter()
                .map(|s| (s.origin.lon.unwrap_or(depot.lon), s.origin.lat.unwrap_or(depot.lat))),
        )
        .collect();
    let matrix = road_matrix(&points, road_factor, speed_kmh)?;
    let solution =
        tokio::task::spawn_blocking(move || dispatch::solve(&problem, &matrix, Duration::from_secs(time_limit_s)))
            .await
            .map_err(|e| CoreError::Internal(format!("the solver stopped: {e}")))?
            .map_err(|e| CoreError::Internal(format!("dispatch: {e}")))?;

    let at = now();
    let at_minute = |m: f64| day_start + chrono::Duration::milliseconds((m * 60_000.0).round() as i64);
    let routes: Vec<PlannedRoute> = solution
        .routes
        .iter()
        .map(|r| PlannedRoute {
            vehicle_id: vehicles[r.vehicle].0.id,
            start: at_minute(r.start),
            end: at_minute(r.end),
            distance_km: r.distance,
            stops: r
                .stops
                .iter()
                .map(|s| PlannedStop {
                    shipment_id: pickups[s.job].id,
                    arrival: at_minute(s.arrival),
                    departure: at_minute(s.departure),
                })
                .collect(),
        })
        .collect();
    let unassigned: Vec<UnassignedShipment> = solution
        .unassigned
        .iter()
        .map(|u| UnassignedShipment {
            shipment_id: pickups[u.job].id,
            reason: u.reason.as_str().to_string(),
        })
        .collect();

    let mut tx = db.begin().await?;
    let ins = Query::insert()
        .into_table(LogisticsPlans::Table)
        .columns([
            LogisticsPlans::DepotSiteId,
            LogisticsPlans::RegionCode,
            LogisticsPlans::Day,
            LogisticsPlans::RoadFactor,
            LogisticsPlans::SpeedKmh,
            LogisticsPlans::DistanceKm,
            LogisticsPlans::CreatedBy,
            LogisticsPlans::CreatedAt,
            LogisticsPlans::ReplanOf,
        ])
        .values_panic([
            depot.id.into(),
            depot.region_code.as_str().into(),
            req.day.to_string().into(),
            road_factor.into(),
            speed_kmh.into(),
            solution.distance.into(),
            caller.user_id.into(),
            at.into(),
            previous.map(|p| p.id).into(),
        ])
        .returning_col(LogisticsPlans::Id)
        .to_owned();
    // A plan re-planned since `replan` looked (another planner was faster)
    // trips the unique index on `replan_of`: refused like a replaced plan.
    let (id,): (i64,) = match (tx.fetch_one(&ins).await, previous) {
        (Err(e), Some(p)) if e.is_unique_violation() => {
            drop(tx);
            return Err(match successor(db, p.id).await? {
                Some(newer) => replaced(p.id, newer),
                None => e,
            });
        }
        (row, _) => row?,
    };
    for lock in &locks {
        let q = Query::insert()
            .into_table(LogisticsPlanLocks::Table)
            .columns([
                LogisticsPlanLocks::PlanId,
                LogisticsPlanLocks::ShipmentId,
                LogisticsPlanLocks::VehicleId,
            ])
            .values_panic([id.into(), lock.shipment_id.into(), lock.vehicle_id.into()])
            .to_owned();
        tx.execute(&q).await?;
    }
    // The solver saw each vehicle's room when planning began; if a shipment
    // was planned onto one of the used vehicles since, the plan may no
    // longer fit, so it is refused rather than overfilling the vehicle.
    // Locked in id order, so two plans sharing vehicles cannot deadlock;
    // the vehicles a re-plan takes stops off are locked too, before their
    // shipments are released.
    let mut used: Vec<usize> = solution.routes.iter().map(|r| r.vehicle).collect();
    used.extend((0..vehicles.len()).filter(|&v| carried.iter().any(|s| s.vehicle_id == Some(vehicles[v].0.id))));
    used.sort_by_key(|&v| vehicles[v].0.id);
    used.dedup();
    for v in used {
        let (vehicle, free_kg, free_m3) = &vehicles[v];
        let (kg, m3) = shipments::locked_load(&mut tx, vehicle.id).await?;
        let (back_kg, back_m3) = carried_on(vehicle.id);
        let (kg, m3) = (kg - back_kg, m3 - back_m3);
        if (vehicle.capacity_kg - kg - free_kg).abs() > 1e-6 || (vehicle.capacity_m3 - m3 - free_m3).abs() > 1e-6 {
            return Err(CoreError::conflict(
                "shipments_changed",
                format!("vehicle {} was loaded while planning; plan again", vehicle.plate),
            ));
        }
    }
    let released: Vec<(i64, i64)> = carried.iter().filter_map(|s| s.vehicle_id.map(|v| (s.id, v))).collect();
    shipments::release_planned(&mut tx, &released).await?;
    let mut assignments: Vec<(i64, &Vehicle)> = Vec::new();
    for r in &solution.routes {
        let vehicle = &vehicles[r.vehicle].0;
        let q = Query::insert()
            .into_table(LogisticsPlanRoutes::Table)
            .columns([
                LogisticsPlanRoutes::PlanId,
                LogisticsPlanRoutes::VehicleId,
                LogisticsPlanRoutes::StartMin,
                LogisticsPlanRoutes::EndMin,
                LogisticsPlanRoutes::DistanceKm,
            ])
            .values_panic([
                id.into(),
                vehicle.id.into(),
                r.start.into(),
                r.end.into(),
                r.distance.into(),
            ])
            .to_owned();
        tx.execute(&q).await?;
        for (seq, s) in r.stops.iter().enumerate() {
            let q = Query::insert()
                .into_table(LogisticsPlanStops::Table)
                .columns([
                    LogisticsPlanStops::PlanId,
                    LogisticsPlanStops::VehicleId,
                    LogisticsPlanStops::Seq,
                    LogisticsPlanStops::ShipmentId,
                    LogisticsPlanStops::ArrivalMin,
                    LogisticsPlanStops::DepartureMin,
                ])
                .values_panic([
                    id.into(),
                    vehicle.id.into(),
                    (seq as i64 + 1).into(),
                    pickups[s.job].id.into(),
                    s.arrival.into(),
                    s.departure.into(),
                ])
                .to_owned();
            tx.execute(&q).await?;
            assignments.push((pickups[s.job].id, vehicle));
        }
    }
    for u in &unassigned {
        let q = Query::insert()
            .into_table(LogisticsPlanUnassigned::Table)
            .columns([
                LogisticsPlanUnassigned::PlanId,
                LogisticsPlanUnassigned::ShipmentId,
                LogisticsPlanUnassigned::Reason,
            ])
            .values_panic([id.into(), u.shipment_id.into(), u.reason.as_str().into()])
            .to_owned();
        tx.execute(&q).await?;
    }
    shipments::mark_planned(&mut tx, &assignments).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "dispatch_plan.create",
            target: format!("dispatch_plan:{id}"),
            region: Some(depot.region_code.clone()),
            detail: json!({"depot_site_id": depot.id, "day": req.day.to_string(), "routes": routes.len(),
                "planned": assignments.len(), "unassigned": unassigned.len(), "distance_km": solution.distance,
                "replan_of": previous.map(|p| p.id), "locks": locks}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Plan {
        id,
        depot_site_id: depot.id,
        region_code: depot.region_code,
        day: req.day.to_string(),
        road_factor,
        speed_kmh,
        distance_km: solution.distance,
        routes,
        unassigned,
        locks,
        replan_of: previous.map(|p| p.id),
        replaced_by: None,
        created_by: caller.user_id,
        created_at: at,
    })
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: i64,
    depot_site_id: i64,
    region_code: String,
    day: String,
    road_factor: f64,
    speed_kmh: f64,
    distance_km: f64,
    created_by: i64,
    created_at: Timestamp,
    replan_of: Option<i64>,
}

/// The columns of a [`PlanRow`], for [`get`] and [`list`] to filter.
fn select_plan_rows() -> SelectStatement {
    Query::select()
        .columns([
            LogisticsPlans::Id,
            LogisticsPlans::DepotSiteId,
            LogisticsPlans::RegionCode,
            LogisticsPlans::Day,
            LogisticsPlans::RoadFactor,
            LogisticsPlans::SpeedKmh,
            LogisticsPlans::DistanceKm,
            LogisticsPlans::CreatedBy,
            LogisticsPlans::CreatedAt,
            LogisticsPlans::ReplanOf,
        ])
        .from(LogisticsPlans::Table)
        .to_owned()
}

/// A stored plan, for operators of its depot's region.
pub async fn get(db: &Db, caller: &Principal, id: i64) -> Result<Plan, CoreError> {
    caller.require_role(OPERATORS)?;
    let q = select_plan_rows()
        .and_where(Expr::col(LogisticsPlans::Id).eq(id))
        .to_owned();
    let row: PlanRow = db
        .fetch_optional(&q)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no dispatch plan {id}")))?;
    let region = RegionCode::parse(&row.region_code)
        .map_err(|_| CoreError::Internal(format!("plan {id} has a bad region code")))?;
    caller.require(OPERATORS, &region)?;
    let day = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d")
        .map_err(|e| CoreError::Internal(format!("plan {id} day: {e}")))?;
    let day_start = local_midnight(day);
    let at_minute = |m: f64| day_start + chrono::Duration::milliseconds((m * 60_000.0).round() as i64);

    let q = Query::select()
        .columns([
            LogisticsPlanRoutes::VehicleId,
            LogisticsPlanRoutes::StartMin,
            LogisticsPlanRoutes::EndMin,
            LogisticsPlanRoutes::DistanceKm,
        ])
        .from(LogisticsPlanRoutes::Table)
        .and_where(Expr::col(LogisticsPlanRoutes::PlanId).eq(id))
        .order_by(LogisticsPlanRoutes::VehicleId, Order::Asc)
        .to_owned();
    let route_rows: Vec<(i64, f64, f64, f64)> = db.fetch_all(&q).await?;
    let q = Query::select()
        .columns([
            LogisticsPlanStops::VehicleId,
            LogisticsPlanStops::ShipmentId,
            LogisticsPlanStops::ArrivalMin,
            LogisticsPlanStops::DepartureMin,
        ])
        .from(LogisticsPlanStops::Table)
        .and_where(Expr::col(LogisticsPlanStops::PlanId).eq(id))
        .order_by(LogisticsPlanStops::VehicleId, Order::Asc)
        .order_by(LogisticsPlanStops::Seq, Order::Asc)
        .to_owned();
    let stop_rows: Vec<(i64, i64, f64, f64)> = db.fetch_all(&q).await?;
    let q = Query::select()
        .columns([LogisticsPlanUnassigned::ShipmentId, LogisticsPlanUnassigned::Reason])
        .from(LogisticsPlanUnassigned::Table)
        .and_where(Expr::col(LogisticsPlanUnassigned::PlanId).eq(id))
        .order_by(LogisticsPlanUnassigned::ShipmentId, Order::Asc)
        .to_owned();
    let unassigned: Vec<(i64, String)> = db.fetch_all(&q).await?;
    let q = Query::select()
        .columns([LogisticsPlanLocks::ShipmentId, LogisticsPlanLocks::VehicleId])
        .from(LogisticsPlanLocks::Table)
        .and_where(Expr::col(LogisticsPlanLocks::PlanId).eq(id))
        .order_by(LogisticsPlanLocks::ShipmentId, Order::Asc)
        .to_owned();
    let locks: Vec<(i64, i64)> = db.fetch_all(&q).await?;
    let replaced_by = successor(db, id).await?;
    Ok(Plan {
        id: row.id,
        depot_site_id: row.depot_site_id,
        region_code: row.region_code,
        day: row.day,
        road_factor: row.road_factor,
        speed_kmh: row.speed_kmh,
        distance_km: row.distance_km,
        routes: route_rows
            .into_iter()
            .map(|(vehicle_id, start, end, distance_km)| PlannedRoute {
                vehicle_id,
                start: at_minute(start),
                end: at_minute(end),
                distance_km,
                stops: stop_rows
                    .iter()
                    .filter(|s| s.0 == vehicle_id)
                    .map(|&(_, shipment_id, arrival, departure)| PlannedStop {
                        shipment_id,
                        arrival: at_minute(arrival),
                        departure: at_minute(departure),
                    })
                    .collect(),
            })
            .collect(),
        unassigned: unassigned
            .into_iter()
            .map(|(shipment_id, reason)| UnassignedShipment { shipment_id, reason })
            .collect(),
        locks: locks
            .into_iter()
            .map(|(shipment_id, vehicle_id)| Lock {
                shipment_id,
                vehicle_id,
            })
            .collect(),
        replan_of: row.replan_of,
        replaced_by,
        created_by: row.created_by,
        created_at: row.created_at,
    })
}

/// Plans no re-plan has replaced.
pub(crate) fn is_current() -> sea_query::Expr {
    // NULLs filtered out: `NOT IN` a list holding NULL matches nothing.
    let replaced = Query::select()
        .column(LogisticsPlans::ReplanOf)
        .from(LogisticsPlans::Table)
        .and_where(Expr::col(LogisticsPlans::ReplanOf).is_not_null())
        .to_owned();
    Expr::col((LogisticsPlans::Table, LogisticsPlans::Id)).not_in_subquery(replaced)
}

/// The plans of depots in `region` and below, newest first, for operators
/// of that region; replaced plans say by which plan, or with
/// `current_only` are left out.
pub async fn list(
    db: &Db,
    caller: &Principal,
    region: &RegionCode,
    current_only: bool,
    limit: Option<u64>,
) -> Result<Vec<PlanSummary>, CoreError> {
    caller.require(OPERATORS, region)?;
    let mut q = select_plan_rows()
        .cond_where(in_scopes(
            LogisticsPlans::RegionCode,
            Some(std::slice::from_ref(region)),
        ))
        .order_by(LogisticsPlans::Id, Order::Desc)
        .limit(limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT))
        .to_owned();
    if current_only {
        q.and_where(is_current());
    }
    let rows: Vec<PlanRow> = db.fetch_all(&q).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let successors: Vec<(i64, i64)> = if ids.is_empty() {
        Vec::new()
    } else {
        let q = Query::select()
            .columns([LogisticsPlans::ReplanOf, LogisticsPlans::Id])
            .from(LogisticsPlans::Table)
            .and_where(Expr::col(LogisticsPlans::ReplanOf).is_in(ids.iter().copied()))
            .to_owned();
        db.fetch_all(&q).await?
    };
    // One grouped count per child table rather than one query per plan.
    let routes = count_by_plan(db, LogisticsPlanRoutes::Table, LogisticsPlanRoutes::PlanId, &ids).await?;
    let stops = count_by_plan(db, LogisticsPlanStops::Table, LogisticsPlanStops::PlanId, &ids).await?;
    let unassigned = count_by_plan(
        db,
        LogisticsPlanUnassigned::Table,
        LogisticsPlanUnassigned::PlanId,
        &ids,
    )
    .await?;
    let count = |counts: &[(i64, i64)], id: i64| counts.iter().find(|c| c.0 == id).map_or(0, |c| c.1);
    Ok(rows
        .into_iter()
        .map(|r| PlanSummary {
            id: r.id,
            depot_site_id: r.depot_site_id,
            region_code: r.region_code,
            day: r.day,
            distance_km: r.distance_km,
            vehicles: count(&routes, r.id),
            stops: count(&stops, r.id),
            unassigned: count(&unassigned, r.id),
            replan_of: r.replan_of,
            replaced_by: successors.iter().find(|s| s.0 == r.id).map(|s| s.1),
            created_at: r.created_at,
        })
        .collect())
}

async fn count_by_plan(
    db: &Db,
    table: impl Iden + 'static,
    plan_id: impl Iden + Copy + 'static,
    ids: &[i64],
) -> Result<Vec<(i64, i64)>, CoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let q = Query::select()
        .column(plan_id)
        .expr(Expr::col(plan_id).count())
        .from(table)
        .and_where(Expr::col(plan_id).is_in(ids.iter().copied()))
        .group_by_col(plan_id)
        .to_owned();
    db.fetch_all(&q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_known_distances() {
        // One degree of latitude along a meridian: 2πR/360 = 111.195 km.
        assert!((haversine_km((115.0, 28.0), (115.0, 29.0)) - 111.195).abs() < 0.01);
        // One degree of longitude at 60° N is half of that at the equator.
        let equator = haversine_km((0.0, 0.0), (1.0, 0.0));
        let north = haversine_km((0.0, 60.0), (1.0, 60.0));
        assert!((north / equator - 0.5).abs() < 1e-3);
        assert_eq!(haversine_km((115.9, 28.7), (115.9, 28.7)), 0.0);
    }

    #[test]
    fn days_start_at_midnight_china_time() {
        let start = local_midnight(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
        assert_eq!(start.to_rfc3339(), "2026-02-28T16:00:00+00:00");
    }

    #[test]
    fn the_road_matrix_applies_the_factor_and_the_speed() {
        let m = road_matrix(&[(115.0, 28.0), (115.0, 29.0)], 1.5, 60.0).unwrap();
        let km = haversine_km((115.0, 28.0), (115.0, 29.0)) * 1.5;
        assert!((m.distance(0, 1) - km).abs() < 1e-9);
        // At 60 km/h a kilometre takes a minute.
        assert!((m.duration(1, 0) - km).abs() < 1e-9);
        assert_eq!(m.distance(1, 1), 0.0);
    }
}
