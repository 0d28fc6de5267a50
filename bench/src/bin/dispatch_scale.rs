//! Dispatch (调度) at scale, issue 5: one county warehouse's day of 1,000
//! village pickups with 40 vehicles, planned through the product path
//! `plans::create` on a real database, in at most 60 s.
//!
//! The instance is 于都县 (360731, Ganzhou): the depot is a county
//! supply-and-marketing cloud warehouse (供销云仓) at the county seat in
//! 贡江镇; the pickups are at the county's 357 village committees (村委会)
//! from `data/regions/jiangxi`, two or more per village. The data has no
//! village coordinates, so the village points are synthetic but
//! deterministic (seeded): the county's real boundary polygon
//! (`data/boundaries/jiangxi/360731.geojson`) is tiled into one cell per
//! township (a centroidal Voronoi tiling, the seat town's cell pinned at the
//! depot), and each village is a random point of its township's cell.
//! Goods are mostly ambient (paddy, navel oranges, sweet potatoes, camellia
//! seed, peanuts, honey), some chilled (leafy vegetables, chillies, eggs,
//! tofu) and a few frozen (pork, fish), with weights and densities of farm
//! produce; chilled goods are ready at dawn harvest and due within hours.
//! The fleet is 40 vehicles of five kinds (light and 4.2 m box trucks, mini
//! vans, chilled and frozen reefers) with their own shifts.
//!
//! Per backend (`--backend sqlite|postgres|both`), on a fresh database:
//! the depot, vehicles and bookings are created with the product's own
//! functions (`network::create_site`, `network::create_vehicle`,
//! `shipments::book`), then `plans::create` is timed from call to stored
//! plan. Every SQL statement the call runs is captured from sqlx's
//! `sqlx::query` events, so the wall time splits into load (statements
//! before the solver), build + solve (the gap the solver leaves) and store
//! (statements after it), with statement counts per phase. The stored plan
//! is then read back from its tables and re-checked against the stored
//! shipments and vehicles by an independent checker: every booked pickup
//! planned once or listed unassigned, the vehicle's temperature class, kg
//! and m³ capacity, travel times (great-circle × road factor at the plan's
//! speed), waiting, service, pickup windows, the shift, route distances and
//! the shipments' new status; any violation fails the run. Each run
//! also breaks a valid plan six ways (a pickup twice, one dropped, an
//! arrival faster than the road, chilled goods on an ambient truck, a late
//! return, a wrong distance) and fails unless the checker catches each.
//!
//! Baselines on the same problem (`plans::build_problem`) and the same
//! matrix (`plans::road_matrix`), in the same run: the raw engine (vrp-core
//! called directly with its default configuration, silenced, the same
//! features and the same time limit; no database) and a time-oriented
//! nearest-neighbour construction written here, both checked by the same
//! checker. `--sweep` re-plans on fresh SQLite databases at shorter time
//! limits, and runs the raw engine at each, to show how the distance and
//! the pickups planned evolve with search time. Each plan also counts the
//! unassigned pickups an unused vehicle could have fetched on its own, and
//! the `skills` reasons given although the fleet has a vehicle of the
//! class: both mean the stated reason is not why the pickup was left.
//!
//!   target/release/dispatch_scale [--backend sqlite|postgres|both]
//!       [--time-limit 50] [--sweep 10,30] [--no-sweep] [--seed 5]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chrono::{NaiveDate, NaiveTime};
use clap::{Parser, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_query::{Expr, ExprTrait, Iden, Order, Query};
use shuxiang_bench::{DEFAULT_PG, load_average, machine, with_pg_scratch, workspace_root};
use shuxiang_core::auth::{Credential, Grant, Principal, Role, Scope};
use shuxiang_core::db::CORE_MIGRATIONS;
use shuxiang_core::import::{jiangxi_files, load_shipped_jiangxi, parse_region_files};
use shuxiang_core::time::Timestamp;
use shuxiang_core::{Db, RegionCode, RegionLevel};
use shuxiang_logistics::coldchain::TemperatureClass;
use shuxiang_logistics::dispatch::{Matrix, Problem};
use shuxiang_logistics::network::{self, NewSite, NewVehicle, Site, SiteKind, Tier, Vehicle};
use shuxiang_logistics::plans::{self, PlanRequest, build_problem, haversine_km, road_matrix};
use shuxiang_logistics::shipments::{self, NewShipment, Place, Shipment};
use shuxiang_logistics::store::LOGISTICS_MIGRATIONS;
use vrp_core::construction::features::{JobSkills, JobSkillsDimension, VehicleSkillsDimension, create_skills_feature};
use vrp_core::models::common::{MultiDimLoad, TimeWindow as CoreWindow};
use vrp_core::models::problem::{JobIdDimension, VehicleIdDimension};
use vrp_core::prelude::*;
use vrp_core::rosomaxa::evolution::TelemetryMode;
use vrp_core::rosomaxa::utils::Parallelism;

/// 于都县, Ganzhou.
const COUNTY: &str = "360731";
/// 贡江镇, the county seat.
const SEAT_TOWNSHIP: &str = "360731100";
/// The county seat in 贡江镇, approximately (GCJ-02, like the boundary), where
/// the depot stands.
const DEPOT: (f64, f64) = (115.4156, 25.9522);
/// The planned day.
const DAY: (i32, u32, u32) = (2026, 12, 15);
const ROAD_FACTOR: f64 = 1.3;
const SPEED_KMH: f64 = 40.0;
/// Loading time at a village, minutes.
const SERVICE_MIN: f64 = 10.0;
/// Points drawn inside the county to tile it into township cells.
const TILING_SAMPLES: usize = 8000;
const LLOYD_ROUNDS: usize = 25;
/// Slack for float rounding in the checker: minutes, km, kg and m³.
const EPS: f64 = 1e-6;
/// The nearest-neighbour heuristic's cost, in minutes, of putting goods on
/// a vehicle one refrigeration class above what they need (it keeps reefer
/// room for chilled and frozen goods).
const CLASS_PENALTY_MIN: f64 = 20.0;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Parser)]
#[command(
    about = "1,000 village pickups × 40 vehicles through plans::create, checked, against the raw engine and a construction heuristic"
)]
struct Args {
    #[arg(long, value_enum, default_value = "both")]
    backend: Which,
    /// PostgreSQL server to create the scratch database on.
    #[arg(long, default_value = DEFAULT_PG)]
    pg: String,
    /// The plan's `time_limit_s` (the raw engine gets the same).
    #[arg(long, default_value_t = 50)]
    time_limit: u64,
    /// Further time limits planned on fresh SQLite databases.
    #[arg(long, value_delimiter = ',', default_values_t = [10u64, 30])]
    sweep: Vec<u64>,
    /// Skip the time-limit sweep.
    #[arg(long)]
    no_sweep: bool,
    #[arg(long, default_value_t = 1000)]
    pickups: usize,
    /// Seed of the village points and the bookings.
    #[arg(long, default_value_t = 5)]
    seed: u64,
}

// ---- the instance ----

/// A kind of produce a village sends: its temperature class, the range of
/// one pickup's weight (kg), its bulk density (kg/m³) and its share of the
/// pickups.
struct Produce {
    goods: &'static str,
    commodity: &'static str,
    class: TemperatureClass,
    kg: (f64, f64),
    density: f64,
    share: f64,
}

const fn produce(
    goods: &'static str,
    commodity: &'static str,
    class: TemperatureClass,
    kg: (f64, f64),
    density: f64,
    share: f64,
) -> Produce {
    Produce {
        goods,
        commodity,
        class,
        kg,
        density,
        share,
    }
}

#[rustfmt::skip]
const PRODUCE: &[Produce] = &[
    produce("稻谷",   "paddy_rice",       TemperatureClass::Ambient, (25.0, 125.0), 550.0, 0.25),
    produce("赣南脐橙", "navel_oranges",    TemperatureClass::Ambient, (20.0, 120.0), 450.0, 0.25),
    produce("红薯",   "sweet_potatoes",   TemperatureClass::Ambient, (30.0, 150.0), 600.0, 0.10),
    produce("油茶籽",  "camellia_seeds",   TemperatureClass::Ambient, (25.0, 100.0), 500.0, 0.08),
    produce("花生",   "peanuts",          TemperatureClass::Ambient, (20.0, 100.0), 350.0, 0.04),
    produce("土蜂蜜",  "honey",            TemperatureClass::Ambient, (10.0, 50.0),  900.0, 0.04),
    produce("富硒青菜", "leafy_vegetables", TemperatureClass::Chilled, (20.0, 120.0), 300.0, 0.10),
    produce("鲜辣椒",  "fresh_chillies",   TemperatureClass::Chilled, (20.0, 80.0),  350.0, 0.05),
    produce("土鸡蛋",  "eggs",             TemperatureClass::Chilled, (15.0, 60.0),  400.0, 0.03),
    produce("豆腐",   "tofu",             TemperatureClass::Chilled, (10.0, 40.0),  700.0, 0.02),
    produce("冷冻猪肉", "frozen_pork",      TemperatureClass::Frozen,  (20.0, 100.0), 600.0, 0.03),
    produce("冻鱼",   "frozen_fish",      TemperatureClass::Frozen,  (15.0, 60.0),  550.0, 0.01),
];

/// A kind of vehicle of the fleet: how many, payload, box volume, class,
/// shift, and the plate series (赣B is Ganzhou).
struct VehicleKind {
    name: &'static str,
    count: usize,
    kg: f64,
    m3: f64,
    class: TemperatureClass,
    shift: (&'static str, &'static str),
    series: char,
}

const fn vehicles(
    name: &'static str,
    count: usize,
    kg: f64,
    m3: f64,
    class: TemperatureClass,
    shift: (&'static str, &'static str),
    series: char,
) -> VehicleKind {
    VehicleKind {
        name,
        count,
        kg,
        m3,
        class,
        shift,
        series,
    }
}

#[rustfmt::skip]
const FLEET: &[VehicleKind] = &[
    vehicles("light box truck 轻型厢式货车",   12, 1800.0, 10.0, TemperatureClass::Ambient, ("06:00", "17:00"), 'H'),
    vehicles("4.2 m box truck 4.2米厢式货车", 10, 3500.0, 16.0, TemperatureClass::Ambient, ("07:00", "18:00"), 'M'),
    vehicles("mini van 微型面包车",           6,  800.0,  4.5,  TemperatureClass::Ambient, ("07:30", "17:30"), 'V'),
    vehicles("chilled reefer 冷藏车",       8,  1500.0, 8.0,  TemperatureClass::Chilled, ("05:30", "15:30"), 'L'),
    vehicles("frozen reefer 冷冻车",        4,  1200.0, 7.0,  TemperatureClass::Frozen,  ("07:00", "17:00"), 'F'),
];

struct Village {
    code: String,
    name: String,
    lon: f64,
    lat: f64,
}

/// One booking: a village, a kind of produce, its amount and its window
/// in minutes after local midnight.
struct Booking {
    village: usize,
    produce: &'static Produce,
    kg: f64,
    m3: f64,
    ready: f64,
    deadline: f64,
}

struct Instance {
    villages: Vec<Village>,
    bookings: Vec<Booking>,
}

/// The county's outline: polygons of rings of (lon, lat).
struct Outline(Vec<Vec<Vec<(f64, f64)>>>);

impl Outline {
    fn read(code: &str) -> Result<Self> {
        let path = workspace_root().join(format!("data/boundaries/jiangxi/{code}.geojson"));
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let ring = |r: &serde_json::Value| -> Option<Vec<(f64, f64)>> {
            r.as_array()?
                .iter()
                .map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect()
        };
        let polygon =
            |p: &serde_json::Value| -> Option<Vec<Vec<(f64, f64)>>> { p.as_array()?.iter().map(ring).collect() };
        let coordinates = &v["coordinates"];
        let polygons = match v["type"].as_str() {
            Some("MultiPolygon") => coordinates.as_array().and_then(|ps| ps.iter().map(polygon).collect()),
            Some("Polygon") => polygon(coordinates).map(|p| vec![p]),
            _ => None,
        };
        polygons
            .map(Self)
            .with_context(|| format!("{} is not a GeoJSON (Multi)Polygon", path.display()))
    }

    /// Even-odd rule over every ring, so holes are outside.
    fn contains(&self, (x, y): (f64, f64)) -> bool {
        let mut inside = false;
        for ring in self.0.iter().flatten() {
            for (i, &(x1, y1)) in ring.iter().enumerate() {
                let (x2, y2) = ring[(i + ring.len() - 1) % ring.len()];
                if (y1 > y) != (y2 > y) && x < (x2 - x1) * (y - y1) / (y2 - y1) + x1 {
                    inside = !inside;
                }
            }
        }
        inside
    }

    fn bounds(&self) -> (f64, f64, f64, f64) {
        let points = || self.0.iter().flatten().flatten();
        let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| points().map(pick).fold(init, f);
        (
            fold(f64::min, f64::INFINITY, |p| p.0),
            fold(f64::min, f64::INFINITY, |p| p.1),
            fold(f64::max, f64::NEG_INFINITY, |p| p.0),
            fold(f64::max, f64::NEG_INFINITY, |p| p.1),
        )
    }
}

/// Uniform random points inside `outline`.
fn sample_inside(outline: &Outline, n: usize, rng: &mut StdRng) -> Vec<(f64, f64)> {
    let (x0, y0, x1, y1) = outline.bounds();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = (rng.random_range(x0..x1), rng.random_range(y0..y1));
        if outline.contains(p) {
            out.push(p);
        }
    }
    out
}

/// Index of the centre nearest to `p` (in km).
fn nearest(centres: &[(f64, f64)], p: (f64, f64)) -> usize {
    (0..centres.len())
        .min_by(|&a, &b| haversine_km(centres[a], p).total_cmp(&haversine_km(centres[b], p)))
        .unwrap_or(0)
}

/// Tiles the county into `townships` cells by Lloyd's algorithm over
/// uniform samples (cell 0, the seat town, stays at the depot); returns the
/// samples of each cell.
fn township_cells(outline: &Outline, townships: usize, rng: &mut StdRng) -> Vec<Vec<(f64, f64)>> {
    let samples = sample_inside(outline, TILING_SAMPLES, rng);
    let mut centres = vec![DEPOT];
    centres.extend(samples.iter().take(townships - 1).copied());
    let mut cells = vec![Vec::new(); townships];
    for round in 0..=LLOYD_ROUNDS {
        cells.iter_mut().for_each(Vec::clear);
        for &p in &samples {
            cells[nearest(&centres, p)].push(p);
        }
        if round == LLOYD_ROUNDS {
            break;
        }
        for (c, cell) in centres.iter_mut().zip(&cells).skip(1) {
            if !cell.is_empty() {
                let n = cell.len() as f64;
                *c = (
                    cell.iter().map(|p| p.0).sum::<f64>() / n,
                    cell.iter().map(|p| p.1).sum::<f64>() / n,
                );
            }
        }
    }
    cells
}

fn instance(pickups: usize, seed: u64) -> Result<Instance> {
    let records =
        parse_region_files(&jiangxi_files()).map_err(|e| anyhow::anyhow!("shipped Jiangxi files: {}", e[0]))?;
    let in_county = |level: RegionLevel| {
        records
            .iter()
            .filter(move |r| r.code.level() == level && r.code.as_str().starts_with(COUNTY))
    };
    let mut townships: Vec<&str> = in_county(RegionLevel::Township).map(|r| r.code.as_str()).collect();
    // The seat town first: its cell is the one pinned at the depot.
    townships.sort_by_key(|c| (*c != SEAT_TOWNSHIP, *c));
    let villages: Vec<_> = in_county(RegionLevel::Village)
        .filter(|r| r.name.ends_with("村委会"))
        .collect();
    ensure!(!villages.is_empty(), "no village committees in {COUNTY}");
    let mut rng = StdRng::seed_from_u64(seed);
    let outline = Outline::read(COUNTY)?;
    ensure!(outline.contains(DEPOT), "the depot lies outside {COUNTY}'s boundary");
    let mut cells = township_cells(&outline, townships.len(), &mut rng);
    let villages: Vec<Village> = villages
        .into_iter()
        .map(|r| {
            let t = townships
                .iter()
                .position(|t| r.code.as_str().starts_with(t))
                .with_context(|| format!("village {} has no township in {COUNTY}", r.code))?;
            let cell = &mut cells[t];
            ensure!(
                !cell.is_empty(),
                "township {} has more villages than sample points",
                townships[t]
            );
            let (lon, lat) = cell.swap_remove(rng.random_range(0..cell.len()));
            Ok(Village {
                code: r.code.to_string(),
                name: r.name.clone(),
                lon,
                lat,
            })
        })
        .collect::<Result<_>>()?;
    let total_share: f64 = PRODUCE.iter().map(|p| p.share).sum();
    let quarter = |m: f64| (m / 15.0).round() * 15.0;
    let bookings = (0..pickups)
        .map(|i| {
            // Every village books twice; the rest go to villages at random.
            let village = if i < 2 * villages.len() {
                i % villages.len()
            } else {
                rng.random_range(0..villages.len())
            };
            let mut pick = rng.random_range(0.0..total_share);
            let produce = PRODUCE
                .iter()
                .find(|p| {
                    pick -= p.share;
                    pick < 0.0
                })
                .unwrap_or(&PRODUCE[0]);
            let kg = (rng.random_range(produce.kg.0..=produce.kg.1) / 5.0).round() * 5.0;
            let (ready, open) = match produce.class {
                TemperatureClass::Ambient => (rng.random_range(360.0..=840.0), rng.random_range(180.0..=360.0)),
                TemperatureClass::Chilled => (rng.random_range(330.0..=600.0), rng.random_range(120.0..=240.0)),
                TemperatureClass::Frozen => (rng.random_range(480.0..=780.0), rng.random_range(120.0..=300.0)),
            };
            let ready = quarter(ready);
            Booking {
                village,
                produce,
                kg,
                m3: (kg / produce.density * 1000.0).round() / 1000.0,
                ready,
                deadline: quarter(ready + open).min(19.0 * 60.0),
            }
        })
        .collect();
    Ok(Instance { villages, bookings })
}

// ---- filling a database through the product ----

fn principal(user_id: i64, role: Role, scope: Scope) -> Principal {
    Principal {
        user_id,
        username: format!("{}{user_id}", role.as_str()),
        display_name: "dispatch bench".into(),
        grants: vec![Grant { role, scope }],
        credential: Credential::Session,
        expires_at: None,
    }
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).expect("a valid date")
}

/// Local (UTC+8) midnight of the planned day, as UTC.
fn day_start() -> Timestamp {
    day().and_time(NaiveTime::MIN).and_utc() - chrono::Duration::hours(8)
}

fn at_minute(m: f64) -> Timestamp {
    day_start() + chrono::Duration::seconds((m * 60.0).round() as i64)
}

/// The depot, the fleet and the booked shipments, as the product returned them.
struct Filled {
    depot: Site,
    vehicles: Vec<Vehicle>,
    shipments: Vec<Shipment>,
}

async fn fill(db: &Db, inst: &Instance) -> Result<Filled> {
    let started = Instant::now();
    db.migrate(&[&CORE_MIGRATIONS, &LOGISTICS_MIGRATIONS]).await?;
    load_shipped_jiangxi(db).await?;
    let regions_s = started.elapsed().as_secs_f64();
    let admin = principal(1, Role::Admin, Scope::All);
    let actor = admin.actor(Some("127.0.0.1".into()));
    let started = Instant::now();
    let depot = network::create_site(
        db,
        &admin,
        &actor,
        NewSite {
            name: "于都县供销云仓".into(),
            kind: SiteKind::CloudWarehouse,
            tier: Tier::County,
            region_code: RegionCode::parse(COUNTY)?,
            lon: DEPOT.0,
            lat: DEPOT.1,
            capacity_kg: Some(500_000.0),
            cold_storage: true,
            opening_hours: Some("05:00-20:00".into()),
            logger_device_id: None,
        },
    )
    .await?;
    let mut vehicles = Vec::new();
    for kind in FLEET {
        for k in 0..kind.count {
            let new = NewVehicle {
                plate: format!("赣B{}{:04}", kind.series, 3100 + k),
                capacity_kg: kind.kg,
                capacity_m3: kind.m3,
                refrigeration: kind.class,
                depot_site_id: depot.id,
                driver_user_id: None,
                shift_start: kind.shift.0.into(),
                shift_end: kind.shift.1.into(),
                logger_device_id: None,
            };
            vehicles.push(network::create_vehicle(db, &admin, &actor, new).await?);
        }
    }
    let mut shipments = Vec::with_capacity(inst.bookings.len());
    for b in &inst.bookings {
        let village = &inst.villages[b.village];
        // A farmer of the village books their own pickup.
        let farmer = principal(
            100_000 + b.village as i64,
            Role::Farmer,
            Scope::Region(RegionCode::parse(&village.code)?),
        );
        let new = NewShipment {
            goods: format!("{} {} kg", b.produce.goods, b.kg),
            commodity: b.produce.commodity.into(),
            weight_kg: b.kg,
            volume_m3: b.m3,
            temperature_class: b.produce.class,
            band: None,
            ready_at: at_minute(b.ready),
            deadline: at_minute(b.deadline),
            origin: Place {
                site_id: None,
                name: Some(format!("{}收集点", village.name.trim_end_matches("村委会"))),
                lon: Some(village.lon),
                lat: Some(village.lat),
                region_code: Some(village.code.clone()),
            },
            destination: Place {
                site_id: Some(depot.id),
                name: None,
                lon: None,
                lat: None,
                region_code: None,
            },
            trace_codes: Vec::new(),
        };
        shipments.push(shipments::book(db, &farmer, &farmer.actor(None), new).await?);
    }
    let s = started.elapsed().as_secs_f64();
    println!(
        "fill: migrations + shipped Jiangxi regions {regions_s:.1} s; depot, {} vehicles and {} bookings through network::create_site/create_vehicle and shipments::book in {s:.1} s ({:.0} bookings/s)",
        vehicles.len(),
        shipments.len(),
        shipments.len() as f64 / s
    );
    Ok(Filled {
        depot,
        vehicles,
        shipments,
    })
}

// ---- capturing the statements of the call ----

/// One SQL statement sqlx reported: when it finished and how long it ran.
struct Statement {
    end: Instant,
    seconds: f64,
    summary: String,
}

static CAPTURING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: Mutex<Vec<Statement>> = Mutex::new(Vec::new());

/// A tracing subscriber that keeps sqlx's per-statement events while
/// [`CAPTURING`] is set and ignores everything else.
struct SqlCapture;

#[derive(Default)]
struct StatementFields {
    summary: String,
    seconds: f64,
}

impl tracing::field::Visit for StatementFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.summary = format!("{value:?}").trim_matches('"').to_string();
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.summary = value.to_string();
        }
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.seconds = value;
        }
    }
}

impl tracing::Subscriber for SqlCapture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query"
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        if !CAPTURING.load(Ordering::Relaxed) {
            return;
        }
        let end = Instant::now();
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        if let Ok(mut all) = STATEMENTS.lock() {
            all.push(Statement {
                end,
                seconds: fields.seconds,
                summary: fields.summary,
            });
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Where the call's time went: statements before the solver, the solver's
/// gap (the longest stretch without a statement), statements after it.
struct Phases {
    load: Duration,
    load_statements: usize,
    solve: Duration,
    store: Duration,
    store_statements: Vec<(String, usize)>,
}

fn phases(started: Instant, ended: Instant, statements: &[Statement]) -> Phases {
    let begin = |s: &Statement| s.end - Duration::from_secs_f64(s.seconds.min((s.end - started).as_secs_f64()));
    // The stretch with no statement running before statement i (i = len: after the last one).
    let gap_before = |i: usize| {
        let from = if i == 0 { started } else { statements[i - 1].end };
        let to = statements.get(i).map_or(ended, begin);
        to.saturating_duration_since(from)
    };
    let split = (0..=statements.len()).max_by_key(|&i| gap_before(i)).unwrap_or(0);
    let solver_from = if split == 0 { started } else { statements[split - 1].end };
    let solver_to = statements.get(split).map_or(ended, begin);
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for s in &statements[split..] {
        *by_kind.entry(s.summary.clone()).or_default() += 1;
    }
    let mut store_statements: Vec<(String, usize)> = by_kind.into_iter().collect();
    store_statements.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Phases {
        load: solver_from - started,
        load_statements: split,
        solve: solver_to.saturating_duration_since(solver_from),
        store: ended.saturating_duration_since(solver_to),
        store_statements,
    }
}

// ---- reading the stored plan back ----

#[derive(Iden, Clone, Copy)]
enum LogisticsPlans {
    Table,
    Id,
    RoadFactor,
    SpeedKmh,
    DistanceKm,
}

#[derive(Iden, Clone, Copy)]
enum LogisticsPlanRoutes {
    Table,
    PlanId,
    VehicleId,
    StartMin,
    EndMin,
    DistanceKm,
}

#[derive(Iden, Clone, Copy)]
enum LogisticsPlanStops {
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
enum LogisticsShipments {
    Table,
    Id,
    Status,
    VehicleId,
    WeightKg,
    VolumeM3,
    TemperatureClass,
    ReadyAt,
    Deadline,
    OriginLon,
    OriginLat,
}

#[derive(Iden, Clone, Copy)]
enum LogisticsVehicles {
    Table,
    Id,
    CapacityKg,
    CapacityM3,
    Refrigeration,
    ShiftStart,
    ShiftEnd,
}

/// A pickup as stored, in the checker's terms (minutes after midnight).
struct StoredPickup {
    id: i64,
    status: String,
    vehicle_id: Option<i64>,
    kg: f64,
    m3: f64,
    class: String,
    ready: f64,
    deadline: f64,
    at: (f64, f64),
}

/// The stored shipments and vehicles, by id.
struct World {
    pickups: Vec<StoredPickup>,
    vehicles: Vec<StoredVehicle>,
}

struct StoredVehicle {
    id: i64,
    kg: f64,
    m3: f64,
    class: String,
    shift: (f64, f64),
}

fn clock_minutes(hhmm: &str) -> Result<f64> {
    let (h, m) = hhmm.split_once(':').with_context(|| format!("{hhmm:?} is not HH:MM"))?;
    Ok(h.parse::<f64>()? * 60.0 + m.parse::<f64>()?)
}

/// Every shipment and vehicle as stored, by id.
async fn read_world(db: &Db) -> Result<World> {
    use LogisticsShipments as S;
    let q = Query::select()
        .columns([
            S::Id,
            S::Status,
            S::VehicleId,
            S::WeightKg,
            S::VolumeM3,
            S::TemperatureClass,
            S::ReadyAt,
            S::Deadline,
            S::OriginLon,
            S::OriginLat,
        ])
        .from(S::Table)
        .order_by(S::Id, Order::Asc)
        .to_owned();
    type Row = (
        i64,
        String,
        Option<i64>,
        f64,
        f64,
        String,
        Timestamp,
        Timestamp,
        f64,
        f64,
    );
    let rows: Vec<Row> = db.fetch_all(&q).await?;
    let minute = |t: Timestamp| (t - day_start()).num_milliseconds() as f64 / 60_000.0;
    let pickups = rows
        .into_iter()
        .map(
            |(id, status, vehicle_id, kg, m3, class, ready, deadline, lon, lat)| StoredPickup {
                id,
                status,
                vehicle_id,
                kg,
                m3,
                class,
                ready: minute(ready),
                deadline: minute(deadline),
                at: (lon, lat),
            },
        )
        .collect();
    use LogisticsVehicles as V;
    let q = Query::select()
        .columns([
            V::Id,
            V::CapacityKg,
            V::CapacityM3,
            V::Refrigeration,
            V::ShiftStart,
            V::ShiftEnd,
        ])
        .from(V::Table)
        .order_by(V::Id, Order::Asc)
        .to_owned();
    let rows: Vec<(i64, f64, f64, String, String, String)> = db.fetch_all(&q).await?;
    let vehicles = rows
        .into_iter()
        .map(|(id, kg, m3, class, start, end)| {
            Ok(StoredVehicle {
                id,
                kg,
                m3,
                class,
                shift: (clock_minutes(&start)?, clock_minutes(&end)?),
            })
        })
        .collect::<Result<_>>()?;
    Ok(World { pickups, vehicles })
}

/// A plan in the checker's terms: routes of ids with times in minutes.
struct Candidate {
    routes: Vec<CandidateRoute>,
    unassigned: Vec<(i64, String)>,
    /// The total distance the planner claims (the checker recomputes it).
    claimed_km: f64,
    road_factor: f64,
    speed_kmh: f64,
}

struct CandidateRoute {
    vehicle_id: i64,
    start: f64,
    end: f64,
    claimed_km: f64,
    /// (shipment id, arrival, departure).
    stops: Vec<(i64, f64, f64)>,
}

async fn read_plan(db: &Db, plan_id: i64) -> Result<Candidate> {
    let q = Query::select()
        .columns([
            LogisticsPlans::RoadFactor,
            LogisticsPlans::SpeedKmh,
            LogisticsPlans::DistanceKm,
        ])
        .from(LogisticsPlans::Table)
        .and_where(Expr::col(LogisticsPlans::Id).eq(plan_id))
        .to_owned();
    let (road_factor, speed_kmh, claimed_km): (f64, f64, f64) = db.fetch_one(&q).await?;
    use LogisticsPlanRoutes as R;
    let q = Query::select()
        .columns([R::VehicleId, R::StartMin, R::EndMin, R::DistanceKm])
        .from(R::Table)
        .and_where(Expr::col(R::PlanId).eq(plan_id))
        .order_by(R::VehicleId, Order::Asc)
        .to_owned();
    let routes: Vec<(i64, f64, f64, f64)> = db.fetch_all(&q).await?;
    use LogisticsPlanStops as T;
    let q = Query::select()
        .columns([T::VehicleId, T::Seq, T::ShipmentId, T::ArrivalMin, T::DepartureMin])
        .from(T::Table)
        .and_where(Expr::col(T::PlanId).eq(plan_id))
        .order_by(T::VehicleId, Order::Asc)
        .order_by(T::Seq, Order::Asc)
        .to_owned();
    let stops: Vec<(i64, i64, i64, f64, f64)> = db.fetch_all(&q).await?;
    use LogisticsPlanUnassigned as U;
    let q = Query::select()
        .columns([U::ShipmentId, U::Reason])
        .from(U::Table)
        .and_where(Expr::col(U::PlanId).eq(plan_id))
        .to_owned();
    let unassigned: Vec<(i64, String)> = db.fetch_all(&q).await?;
    let mut by_vehicle: HashMap<i64, Vec<(i64, i64, f64, f64)>> = HashMap::new();
    for (vehicle, seq, shipment, arrival, departure) in stops {
        by_vehicle
            .entry(vehicle)
            .or_default()
            .push((seq, shipment, arrival, departure));
    }
    let mut out = Vec::with_capacity(routes.len());
    for (vehicle_id, start, end, claimed_km) in routes {
        let stops = by_vehicle.remove(&vehicle_id).unwrap_or_default();
        ensure!(
            stops.iter().enumerate().all(|(i, s)| s.0 == i as i64 + 1),
            "plan {plan_id}: the stops of vehicle {vehicle_id} are not numbered 1, 2, 3, …"
        );
        out.push(CandidateRoute {
            vehicle_id,
            start,
            end,
            claimed_km,
            stops: stops.into_iter().map(|(_, s, a, d)| (s, a, d)).collect(),
        });
    }
    ensure!(
        by_vehicle.is_empty(),
        "plan {plan_id}: stops of vehicles without a route: {:?}",
        by_vehicle.keys().collect::<Vec<_>>()
    );
    Ok(Candidate {
        routes: out,
        unassigned,
        claimed_km,
        road_factor,
        speed_kmh,
    })
}

// ---- the independent checker ----

/// Whether a vehicle of refrigeration class `vehicle` may carry goods of
/// class `goods`: chilled goods need a reefer, frozen goods a frozen one.
fn may_carry(vehicle: &str, goods: &str) -> bool {
    matches!(
        (vehicle, goods),
        (_, "ambient") | ("chilled" | "frozen", "chilled") | ("frozen", "frozen")
    )
}

/// What a plan that passed the checker achieved.
#[derive(Clone)]
struct Checked {
    vehicles_used: usize,
    km: f64,
    assigned: usize,
    unassigned: usize,
    reasons: BTreeMap<String, usize>,
    /// Share of the used vehicles' kg capacity filled.
    kg_fill: f64,
    /// Unassigned pickups an unused vehicle could have fetched on its own
    /// (depot → village → depot within class, room, window and shift): the
    /// plan left work undone that did not need any other stop to move.
    solo_feasible: usize,
    idle_vehicles: usize,
    /// Unassigned pickups whose stated reason is `skills` (no vehicle of the
    /// right temperature class) although the fleet has one.
    skills_refuted: usize,
}

/// Re-checks a plan against the stored pickups and vehicles; returns every
/// rule it breaks.
fn check(c: &Candidate, depot: (f64, f64), world: &World) -> Result<Checked, Vec<String>> {
    let mut bad = Vec::new();
    let pickup: HashMap<i64, &StoredPickup> = world.pickups.iter().map(|p| (p.id, p)).collect();
    let vehicle: HashMap<i64, &StoredVehicle> = world.vehicles.iter().map(|v| (v.id, v)).collect();
    let km = |a: (f64, f64), b: (f64, f64)| haversine_km(a, b) * c.road_factor;
    let minutes = |d: f64| d / c.speed_kmh * 60.0;
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut total_km = 0.0;
    let (mut used_kg, mut capacity_kg) = (0.0, 0.0);
    let mut vehicles_seen = HashSet::new();
    for r in &c.routes {
        let Some(v) = vehicle.get(&r.vehicle_id) else {
            bad.push(format!("route of unknown vehicle {}", r.vehicle_id));
            continue;
        };
        if !vehicles_seen.insert(v.id) {
            bad.push(format!("vehicle {} has two routes", v.id));
        }
        if r.start < v.shift.0 - EPS {
            bad.push(format!(
                "vehicle {} leaves at {:.1} before its shift {:.0}",
                v.id, r.start, v.shift.0
            ));
        }
        let (mut kg, mut m3, mut route_km) = (0.0, 0.0, 0.0);
        let (mut here, mut clock) = (depot, r.start);
        for &(id, arrival, departure) in &r.stops {
            *seen.entry(id).or_default() += 1;
            let Some(p) = pickup.get(&id) else {
                bad.push(format!("vehicle {} stops for unknown shipment {id}", v.id));
                continue;
            };
            if !may_carry(&v.class, &p.class) {
                bad.push(format!(
                    "{} goods of shipment {id} on {} vehicle {}",
                    p.class, v.class, v.id
                ));
            }
            let leg = km(here, p.at);
            route_km += leg;
            let earliest = clock + minutes(leg);
            if arrival < earliest - EPS {
                bad.push(format!(
                    "vehicle {} reaches shipment {id} at {arrival:.2}, the road allows {earliest:.2}",
                    v.id
                ));
            }
            let begin = arrival.max(p.ready);
            if begin > p.deadline + EPS {
                bad.push(format!(
                    "shipment {id} loaded from {begin:.1}, after its deadline {:.1}",
                    p.deadline
                ));
            }
            if departure < begin + SERVICE_MIN - EPS {
                bad.push(format!(
                    "vehicle {} leaves shipment {id} at {departure:.2} before loading ends",
                    v.id
                ));
            }
            kg += p.kg;
            m3 += p.m3;
            here = p.at;
            clock = departure;
        }
        let back = km(here, depot);
        route_km += back;
        if r.end < clock + minutes(back) - EPS {
            bad.push(format!(
                "vehicle {} is back at {:.2}, the road allows {:.2}",
                v.id,
                r.end,
                clock + minutes(back)
            ));
        }
        if r.end > v.shift.1 + EPS {
            bad.push(format!(
                "vehicle {} is back at {:.1}, after its shift ends at {:.0}",
                v.id, r.end, v.shift.1
            ));
        }
        if kg > v.kg + EPS || m3 > v.m3 + EPS {
            bad.push(format!(
                "vehicle {} carries {kg:.1} kg / {m3:.3} m³ over its {} kg / {} m³",
                v.id, v.kg, v.m3
            ));
        }
        if (route_km - r.claimed_km).abs() > EPS * route_km.max(1.0) {
            bad.push(format!(
                "vehicle {} drives {route_km:.3} km, the plan says {:.3}",
                v.id, r.claimed_km
            ));
        }
        total_km += route_km;
        used_kg += kg;
        capacity_kg += v.kg;
    }
    if (total_km - c.claimed_km).abs() > EPS * total_km.max(1.0) {
        bad.push(format!(
            "routes add up to {total_km:.3} km, the plan says {:.3}",
            c.claimed_km
        ));
    }
    let mut reasons = BTreeMap::new();
    let idle: Vec<&StoredVehicle> = world
        .vehicles
        .iter()
        .filter(|v| !vehicles_seen.contains(&v.id))
        .collect();
    let (mut solo_feasible, mut skills_refuted) = (0, 0);
    for (id, reason) in &c.unassigned {
        *seen.entry(*id).or_default() += 1;
        *reasons.entry(reason.clone()).or_default() += 1;
        let Some(p) = pickup.get(id) else { continue };
        let trip = minutes(km(depot, p.at));
        let fits = |v: &&StoredVehicle| {
            let begin = (v.shift.0 + trip).max(p.ready);
            may_carry(&v.class, &p.class)
                && p.kg <= v.kg
                && p.m3 <= v.m3
                && begin <= p.deadline
                && begin + SERVICE_MIN + trip <= v.shift.1
        };
        if idle.iter().any(fits) {
            solo_feasible += 1;
        }
        if reason == "skills" && world.vehicles.iter().any(|v| may_carry(&v.class, &p.class)) {
            skills_refuted += 1;
        }
    }
    for p in &world.pickups {
        match seen.get(&p.id) {
            Some(1) => {}
            Some(n) => bad.push(format!("shipment {} appears {n} times in the plan", p.id)),
            None => bad.push(format!("booked shipment {} is neither planned nor unassigned", p.id)),
        }
    }
    if bad.is_empty() {
        Ok(Checked {
            vehicles_used: c.routes.iter().filter(|r| !r.stops.is_empty()).count(),
            km: total_km,
            assigned: c.routes.iter().map(|r| r.stops.len()).sum(),
            unassigned: c.unassigned.len(),
            reasons,
            kg_fill: used_kg / capacity_kg.max(EPS),
            solo_feasible,
            idle_vehicles: idle.len(),
            skills_refuted,
        })
    } else {
        Err(bad)
    }
}

/// The product's own promise on top of the plan: planned shipments are on
/// their route's vehicle, unassigned ones still booked.
fn check_statuses(c: &Candidate, pickups: &[StoredPickup]) -> Vec<String> {
    let on: HashMap<i64, i64> = c
        .routes
        .iter()
        .flat_map(|r| r.stops.iter().map(move |s| (s.0, r.vehicle_id)))
        .collect();
    pickups
        .iter()
        .filter_map(|p| match on.get(&p.id) {
            Some(&v) if p.status != "planned" || p.vehicle_id != Some(v) => Some(format!(
                "shipment {} is {} on {:?}, planned on vehicle {v}",
                p.id, p.status, p.vehicle_id
            )),
            None if p.status != "booked" || p.vehicle_id.is_some() => Some(format!(
                "unassigned shipment {} is {} on {:?}",
                p.id, p.status, p.vehicle_id
            )),
            _ => None,
        })
        .collect()
}

fn checked(label: &str, c: &Candidate, depot: (f64, f64), world: &World) -> Result<Checked> {
    check(c, depot, world).or_else(|bad| {
        let shown: Vec<&String> = bad.iter().take(20).collect();
        bail!(
            "{label}: {} violation(s), first {}:\n{shown:#?}",
            bad.len(),
            shown.len()
        )
    })
}

// ---- the product path ----

struct PlanRun {
    limit: u64,
    wall: Duration,
    phases: Phases,
    checked: Checked,
}

async fn plan_and_verify(db: &Db, filled: &Filled, limit: u64) -> Result<PlanRun> {
    let carrier = principal(2, Role::Carrier, Scope::Region(RegionCode::parse(COUNTY)?));
    let req = PlanRequest {
        depot_site_id: filled.depot.id,
        day: day(),
        road_factor: Some(ROAD_FACTOR),
        speed_kmh: Some(SPEED_KMH),
        service_min: Some(SERVICE_MIN),
        time_limit_s: Some(limit),
        locks: Vec::new(),
    };
    STATEMENTS
        .lock()
        .map_err(|_| anyhow::anyhow!("statement log poisoned"))?
        .clear();
    CAPTURING.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let plan = plans::create(db, &carrier, &carrier.actor(None), req).await;
    let ended = Instant::now();
    CAPTURING.store(false, Ordering::SeqCst);
    let plan = plan?;
    let statements = std::mem::take(
        &mut *STATEMENTS
            .lock()
            .map_err(|_| anyhow::anyhow!("statement log poisoned"))?,
    );
    let phases = phases(started, ended, &statements);
    let world = read_world(db).await?;
    let candidate = read_plan(db, plan.id).await?;
    let statuses = check_statuses(&candidate, &world.pickups);
    ensure!(statuses.is_empty(), "stored shipment states: {statuses:#?}");
    let checked = checked("stored plan", &candidate, (filled.depot.lon, filled.depot.lat), &world)?;
    Ok(PlanRun {
        limit,
        wall: ended - started,
        phases,
        checked,
    })
}

fn print_run(run: &PlanRun) {
    let p = &run.phases;
    let c = &run.checked;
    println!(
        "plans::create(time_limit_s = {}): wall {:.2} s, target ≤ 60 s {}",
        run.limit,
        run.wall.as_secs_f64(),
        if run.wall <= Duration::from_secs(60) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "  load {:.3} s ({} statements) | build matrix + solve {:.2} s | store {:.3} s ({} statements in one transaction)",
        p.load.as_secs_f64(),
        p.load_statements,
        p.solve.as_secs_f64(),
        p.store.as_secs_f64(),
        p.store_statements.iter().map(|s| s.1).sum::<usize>()
    );
    let kinds: Vec<String> = p.store_statements.iter().map(|(s, n)| format!("{n} × `{s}`")).collect();
    println!("  store statements: {}", kinds.join(", "));
    println!(
        "  {} vehicles used, {:.1} km, {} pickups planned, {} unassigned {:?}, {:.0} % of the used vehicles' kg filled",
        c.vehicles_used,
        c.km,
        c.assigned,
        c.unassigned,
        c.reasons,
        100.0 * c.kg_fill
    );
    println!(
        "  of the unassigned, {} could have been fetched alone by one of the {} unused vehicles",
        c.solo_feasible, c.idle_vehicles
    );
    if c.skills_refuted > 0 {
        println!(
            "  {} unassigned are given the reason `skills` (no vehicle of the right class), yet the fleet has vehicles of their class",
            c.skills_refuted
        );
    }
    println!(
        "  verified from the stored rows: every pickup once, temperature classes, kg and m³, travel times, windows, shifts, distances, shipment states: 0 violations"
    );
}

/// Fills a fresh database, plans and verifies; returns the run and the fill
/// (for the baselines).
async fn on_backend(db: &Db, inst: &Instance, limit: u64) -> Result<(PlanRun, Filled, World)> {
    let filled = fill(db, inst).await?;
    // The stored state before planning: what the baselines are checked against.
    let world = read_world(db).await?;
    let run = plan_and_verify(db, &filled, limit).await?;
    print_run(&run);
    Ok((run, filled, world))
}

async fn sqlite_run(inst: &Instance, limit: u64) -> Result<(PlanRun, Filled, World)> {
    let dir = tempfile::tempdir()?;
    let db = Db::open_sqlite_dir(dir.path()).await?;
    let out = on_backend(&db, inst, limit).await;
    db.close().await;
    out
}

// ---- baselines ----

/// A solver's routes and unassigned jobs as indices into the problem.
struct Solved {
    routes: Vec<SolvedRoute>,
    unassigned: Vec<(usize, String)>,
}

struct SolvedRoute {
    vehicle: usize,
    start: f64,
    end: f64,
    /// (job, arrival, departure).
    stops: Vec<(usize, f64, f64)>,
}

impl Solved {
    /// In the checker's terms, with the problem's distances claimed.
    fn candidate(&self, problem: &Problem, matrix: &Matrix, filled: &Filled) -> Candidate {
        let routes: Vec<CandidateRoute> = self
            .routes
            .iter()
            .map(|r| {
                let jobs: Vec<usize> = r.stops.iter().map(|s| s.0).collect();
                CandidateRoute {
                    vehicle_id: filled.vehicles[r.vehicle].id,
                    start: r.start,
                    end: r.end,
                    claimed_km: problem.route_distance(matrix, r.vehicle, &jobs),
                    stops: r
                        .stops
                        .iter()
                        .map(|&(j, a, d)| (filled.shipments[j].id, a, d))
                        .collect(),
                }
            })
            .collect();
        Candidate {
            claimed_km: routes.iter().map(|r| r.claimed_km).sum(),
            routes,
            unassigned: self
                .unassigned
                .iter()
                .map(|(j, reason)| (filled.shipments[*j].id, reason.clone()))
                .collect(),
            road_factor: ROAD_FACTOR,
            speed_kmh: SPEED_KMH,
        }
    }
}

/// 0 ambient, 1 chilled, 2 frozen: what a set of dispatch skills stands for.
fn rank(skills: &[String]) -> usize {
    if skills.iter().any(|s| s == "frozen") {
        2
    } else {
        usize::from(skills.iter().any(|s| s == "reefer"))
    }
}

/// Time-oriented nearest neighbour (after Solomon 1987): vehicles one after
/// another, frozen reefers first, then chilled, then by payload; each
/// repeatedly takes the pickup it can start soonest (travel plus waiting,
/// plus [`CLASS_PENALTY_MIN`] per refrigeration class the goods do not
/// need) among those it may carry, has room for, reaches within the window
/// and can still bring home within its shift.
fn nearest_neighbour(problem: &Problem, matrix: &Matrix) -> Solved {
    let mut order: Vec<usize> = (0..problem.vehicles.len()).collect();
    order.sort_by_key(|&v| {
        let vehicle = &problem.vehicles[v];
        (
            std::cmp::Reverse(rank(&vehicle.skills)),
            std::cmp::Reverse(vehicle.capacity[0]),
            v,
        )
    });
    let mut open: Vec<usize> = (0..problem.jobs.len()).collect();
    let mut routes = Vec::new();
    for v in order {
        let vehicle = &problem.vehicles[v];
        let mut load = vec![0u32; vehicle.capacity.len()];
        let (mut here, mut clock) = (vehicle.start, vehicle.shift.start);
        let mut stops = Vec::new();
        loop {
            let mut best: Option<(f64, usize, f64, f64)> = None;
            for (k, &j) in open.iter().enumerate() {
                let job = &problem.jobs[j];
                let fits = load
                    .iter()
                    .zip(&job.demand)
                    .zip(&vehicle.capacity)
                    .all(|((l, d), c)| l + d <= *c);
                if !fits || !job.skills.iter().all(|s| vehicle.skills.contains(s)) {
                    continue;
                }
                let arrival = clock + matrix.duration(here, job.location);
                let begin = arrival.max(job.window.start);
                let departure = begin + job.service;
                if arrival > job.window.end
                    || departure + matrix.duration(job.location, vehicle.end) > vehicle.shift.end
                {
                    continue;
                }
                let spare = rank(&vehicle.skills).saturating_sub(rank(&job.skills));
                let cost = begin - clock + CLASS_PENALTY_MIN * spare as f64;
                if best.is_none_or(|b| cost < b.0) {
                    best = Some((cost, k, arrival, departure));
                }
            }
            let Some((_, k, arrival, departure)) = best else { break };
            let j = open.swap_remove(k);
            for (l, d) in load.iter_mut().zip(&problem.jobs[j].demand) {
                *l += d;
            }
            stops.push((j, arrival, departure));
            here = problem.jobs[j].location;
            clock = departure;
        }
        if !stops.is_empty() {
            routes.push(SolvedRoute {
                vehicle: v,
                start: vehicle.shift.start,
                end: clock + matrix.duration(here, vehicle.end),
                stops,
            });
        }
    }
    open.sort_unstable();
    Solved {
        routes,
        unassigned: open
            .into_iter()
            .map(|j| (j, "no_feasible_insertion".to_string()))
            .collect(),
    }
}

/// vrp-core on its own: the problem written directly in its API with the
/// product's features (unassigned, distance with time windows, two-dimension
/// capacity, skills), its default environment and heuristic (the logger
/// silenced) and `limit` seconds.
fn raw_engine(problem: &Problem, matrix: &Matrix, limit: u64) -> Result<Solved> {
    let e = |e: GenericError| anyhow::anyhow!("vrp-core: {e}");
    let n = matrix.size();
    let cells = |f: &dyn Fn(usize, usize) -> f64| (0..n * n).map(|k| f(k / n, k % n)).collect::<Vec<_>>();
    let transport: Arc<dyn TransportCost> = Arc::new(
        SimpleTransportCost::new(
            cells(&|a, b| matrix.duration(a, b)),
            cells(&|a, b| matrix.distance(a, b)),
        )
        .map_err(e)?,
    );
    let features = vec![
        MinimizeUnassignedBuilder::new("min-unassigned").build().map_err(e)?,
        TransportFeatureBuilder::new("min-distance")
            .set_transport_cost(transport.clone())
            .set_time_constrained(true)
            .set_violation_code(ViolationCode(1))
            .build_minimize_distance()
            .map_err(e)?,
        CapacityFeatureBuilder::<MultiDimLoad>::new("capacity")
            .set_violation_code(ViolationCode(2))
            .build()
            .map_err(e)?,
        create_skills_feature("skills", ViolationCode(3)).map_err(e)?,
    ];
    let goal = GoalContextBuilder::with_features(&features)
        .map_err(e)?
        .build()
        .map_err(e)?;
    let load = |values: &[u32]| MultiDimLoad::new(values.iter().map(|&v| v as i32).collect());
    let jobs = problem
        .jobs
        .iter()
        .enumerate()
        .map(|(j, job)| {
            SingleBuilder::default()
                .id(&j.to_string())
                .demand(Demand {
                    pickup: (load(&job.demand), MultiDimLoad::default()),
                    delivery: (MultiDimLoad::default(), MultiDimLoad::default()),
                })
                .dimension(|d| {
                    if !job.skills.is_empty() {
                        d.set_job_skills(JobSkills::new(Some(job.skills.clone()), None, None));
                    }
                })
                .location(job.location)?
                .duration(job.service)?
                .times(vec![CoreWindow::new(job.window.start, job.window.end)])?
                .build_as_job()
        })
        .collect::<GenericResult<Vec<_>>>()
        .map_err(e)?;
    let vehicles = problem
        .vehicles
        .iter()
        .enumerate()
        .map(|(i, v)| {
            VehicleBuilder::default()
                .id(&i.to_string())
                .add_detail(
                    VehicleDetailBuilder::default()
                        .set_start_location(v.start)
                        .set_start_time(v.shift.start)
                        .set_end_location(v.end)
                        .set_end_time(v.shift.end)
                        .build()?,
                )
                .capacity(load(&v.capacity))
                .dimension(|d| {
                    if !v.skills.is_empty() {
                        d.set_vehicle_skills(v.skills.iter().cloned().collect::<HashSet<String>>());
                    }
                })
                .build()
        })
        .collect::<GenericResult<Vec<_>>>()
        .map_err(e)?;
    let core = Arc::new(
        ProblemBuilder::default()
            .add_jobs(jobs.into_iter())
            .add_vehicles(vehicles.into_iter())
            .with_goal(goal)
            .with_transport_cost(transport)
            .with_logger(Arc::new(|_: &str| {}))
            .build()
            .map_err(e)?,
    );
    let environment = Arc::new(Environment::new(
        Arc::new(DefaultRandom::default()),
        None,
        Parallelism::default(),
        Arc::new(|_: &str| {}),
        false,
    ));
    let config = VrpConfigBuilder::new(core.clone())
        .set_environment(environment)
        .set_telemetry_mode(TelemetryMode::None)
        .prebuild()
        .map_err(e)?
        .with_max_time(Some(limit as usize))
        .build()
        .map_err(e)?;
    let found = Solver::new(core, config).solve().map_err(e)?;
    let index = |id: Option<&String>| -> Result<usize> {
        id.and_then(|s| s.parse().ok())
            .context("vrp-core returned an unknown id")
    };
    let mut routes = Vec::new();
    for route in &found.routes {
        let stops = route
            .tour
            .all_activities()
            .filter_map(|a| a.job.as_ref().map(|job| (job, a)))
            .map(|(job, a)| {
                Ok((
                    index(job.dimens.get_job_id())?,
                    a.schedule.arrival,
                    a.schedule.departure,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        if !stops.is_empty() {
            routes.push(SolvedRoute {
                vehicle: index(route.actor.vehicle.dimens.get_vehicle_id())?,
                start: route.tour.start().map_or(0.0, |a| a.schedule.departure),
                end: route.tour.end().map_or(0.0, |a| a.schedule.arrival),
                stops,
            });
        }
    }
    let mut unassigned = found
        .unassigned
        .iter()
        .map(|(job, _)| {
            let single = job.as_single().context("vrp-core returned a multi-job")?;
            Ok((index(single.dimens.get_job_id())?, "unassigned".to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    unassigned.sort_unstable();
    Ok(Solved { routes, unassigned })
}

/// The checker must reject a valid plan broken in each way it guards
/// against; otherwise its "0 violations" would mean nothing.
fn checker_catches_broken_plans(valid: &Candidate, depot: (f64, f64), world: &World) -> Result<()> {
    let World { pickups, vehicles } = world;
    ensure!(check(valid, depot, world).is_ok(), "the plan to break is not valid");
    let copy = || Candidate {
        routes: valid
            .routes
            .iter()
            .map(|r| CandidateRoute {
                stops: r.stops.clone(),
                ..*r
            })
            .collect(),
        unassigned: valid.unassigned.clone(),
        ..*valid
    };
    let class_of = |id: i64| pickups.iter().find(|p| p.id == id).map(|p| p.class.as_str());
    let ambient = vehicles
        .iter()
        .find(|v| v.class == "ambient")
        .context("no ambient vehicle")?;
    let reefer = valid
        .routes
        .iter()
        .find(|r| r.stops.iter().any(|s| class_of(s.0) == Some("chilled")))
        .context("no route carries chilled goods")?
        .vehicle_id;
    // What each break does, and the words of the violation it must cause.
    type Break<'a> = Box<dyn Fn(&mut Candidate) + 'a>;
    let breaks: [(&str, Break, &str); 6] = [
        (
            "a pickup planned twice",
            Box::new(|c| {
                let twice = c.routes[1].stops[0];
                c.routes[0].stops.push(twice);
            }),
            "times in the plan",
        ),
        (
            "a pickup dropped",
            Box::new(|c| {
                c.routes[0].stops.pop();
            }),
            "neither planned nor unassigned",
        ),
        (
            "an arrival faster than the road",
            Box::new(|c| c.routes[0].stops[1].1 -= 1.0),
            "the road allows",
        ),
        (
            "chilled goods on an ambient truck",
            Box::new(|c| {
                c.routes.retain(|r| r.vehicle_id != ambient.id);
                for r in c.routes.iter_mut().filter(|r| r.vehicle_id == reefer) {
                    r.vehicle_id = ambient.id;
                }
            }),
            "chilled goods of shipment",
        ),
        (
            "a return after the shift",
            Box::new(|c| c.routes[0].end += 24.0 * 60.0),
            "after its shift ends",
        ),
        (
            "a distance that does not add up",
            Box::new(|c| c.claimed_km += 1.0),
            "the plan says",
        ),
    ];
    for (what, break_it, expected) in breaks {
        let mut broken = copy();
        break_it(&mut broken);
        match check(&broken, depot, world) {
            Err(found) if found.iter().any(|v| v.contains(expected)) => {}
            other => bail!("the checker missed {what}: {:?}", other.err().unwrap_or_default()),
        }
    }
    Ok(())
}

struct Baseline {
    name: &'static str,
    seconds: f64,
    checked: Checked,
}

/// The problem and matrix the product builds from the filled database
/// (`plans::build_problem`, `plans::road_matrix`), every vehicle empty.
fn problem_of(filled: &Filled) -> Result<(Problem, Matrix)> {
    let vehicles: Vec<(Vehicle, f64, f64)> = filled
        .vehicles
        .iter()
        .map(|v| (v.clone(), v.capacity_kg, v.capacity_m3))
        .collect();
    let problem = build_problem(&vehicles, &filled.shipments, day_start(), SERVICE_MIN);
    let points: Vec<(f64, f64)> = std::iter::once((filled.depot.lon, filled.depot.lat))
        .chain(
            filled
                .shipments
                .iter()
                .map(|s| (s.origin.lon.unwrap_or(0.0), s.origin.lat.unwrap_or(0.0))),
        )
        .collect();
    Ok((problem, road_matrix(&points, ROAD_FACTOR, SPEED_KMH)?))
}

fn raw_baseline(filled: &Filled, world: &World, problem: &Problem, matrix: &Matrix, limit: u64) -> Result<Baseline> {
    let started = Instant::now();
    let raw = raw_engine(problem, matrix, limit)?;
    let seconds = started.elapsed().as_secs_f64();
    let depot = (filled.depot.lon, filled.depot.lat);
    Ok(Baseline {
        name: "raw engine: vrp-core defaults, no database",
        seconds,
        checked: checked("raw engine", &raw.candidate(problem, matrix, filled), depot, world)?,
    })
}

/// The raw engine and the heuristic on the same problem and matrix the
/// product builds; each result goes through the checker.
fn baselines(filled: &Filled, world: &World, limit: u64) -> Result<Vec<Baseline>> {
    let started = Instant::now();
    let (problem, matrix) = problem_of(filled)?;
    println!(
        "problem and {}×{} matrix built by plans::build_problem/road_matrix in {:.3} s",
        matrix.size(),
        matrix.size(),
        started.elapsed().as_secs_f64()
    );
    let depot = (filled.depot.lon, filled.depot.lat);
    let raw = raw_baseline(filled, world, &problem, &matrix, limit)?;
    let started = Instant::now();
    let nn = nearest_neighbour(&problem, &matrix);
    let seconds = started.elapsed().as_secs_f64();
    let nn = nn.candidate(&problem, &matrix, filled);
    checker_catches_broken_plans(&nn, depot, world)?;
    let nn = Baseline {
        name: "time-oriented nearest neighbour (this bench)",
        seconds,
        checked: checked("nearest neighbour", &nn, depot, world)?,
    };
    Ok(vec![raw, nn])
}

fn describe(inst: &Instance) {
    let mut by_class: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for b in &inst.bookings {
        let e = by_class.entry(b.produce.class.as_str()).or_default();
        e.0 += 1;
        e.1 += b.kg;
        e.2 += b.m3;
    }
    let mut fleet_by_class: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for k in FLEET {
        let e = fleet_by_class.entry(k.class.as_str()).or_default();
        e.0 += k.count;
        e.1 += k.kg * k.count as f64;
        e.2 += k.m3 * k.count as f64;
    }
    let villages: HashSet<usize> = inst.bookings.iter().map(|b| b.village).collect();
    println!(
        "instance: 于都县 {COUNTY}, depot 于都县供销云仓 at the county seat {DEPOT:?}, day {}, {} pickups at {} of {} village committees (points synthetic inside the real county boundary, see the doc comment)",
        day(),
        inst.bookings.len(),
        villages.len(),
        inst.villages.len()
    );
    for (class, (n, kg, m3)) in &by_class {
        let (vn, vkg, vm3) = fleet_by_class.get(class).copied().unwrap_or_default();
        println!(
            "  {class}: {n} pickups, {kg:.0} kg, {m3:.1} m³ | {vn} vehicles of this class, {vkg:.0} kg, {vm3:.0} m³"
        );
    }
    let (kg, m3) = inst.bookings.iter().fold((0.0, 0.0), |(a, b), x| (a + x.kg, b + x.m3));
    let (fkg, fm3) = FLEET.iter().fold((0.0, 0.0), |(a, b), k| {
        (a + k.kg * k.count as f64, b + k.m3 * k.count as f64)
    });
    println!(
        "  all: {kg:.0} kg ({:.0} % of the fleet's {fkg:.0} kg), {m3:.1} m³ ({:.0} % of {fm3:.0} m³); road factor {ROAD_FACTOR}, {SPEED_KMH} km/h, {SERVICE_MIN} min loading",
        100.0 * kg / fkg,
        100.0 * m3 / fm3
    );
    for k in FLEET {
        println!(
            "  fleet: {} × {} ({} kg, {} m³, {}, {}–{})",
            k.count,
            k.name,
            k.kg,
            k.m3,
            k.class.as_str(),
            k.shift.0,
            k.shift.1
        );
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!((1..=60).contains(&args.time_limit), "--time-limit must be 1 to 60 s");
    tracing::subscriber::set_global_default(SqlCapture).context("installing the statement capture")?;
    let inst = instance(args.pickups, args.seed)?;
    println!("{}", machine());
    describe(&inst);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let mut runs: Vec<(&str, PlanRun)> = Vec::new();
        let mut first: Option<(Filled, World)> = None;
        if matches!(args.backend, Which::Sqlite | Which::Both) {
            println!("\n### SQLite");
            let (run, filled, world) = sqlite_run(&inst, args.time_limit).await?;
            runs.push(("SQLite", run));
            first.get_or_insert((filled, world));
        }
        if matches!(args.backend, Which::Postgres | Which::Both) {
            println!("\n### PostgreSQL");
            let (run, filled, world) = with_pg_scratch(&args.pg, async |scratch| {
                let db = Db::open_postgres(&scratch.url, None).await?;
                let out = on_backend(&db, &inst, args.time_limit).await;
                db.close().await;
                out
            })
            .await?;
            runs.push(("PostgreSQL", run));
            first.get_or_insert((filled, world));
        }
        let (filled, world) = first.context("no backend ran")?;

        println!(
            "\n### Baselines on the same problem and matrix ({} s limit)",
            args.time_limit
        );
        let base = baselines(&filled, &world, args.time_limit)?;
        println!(
            "\n| solver | time | vehicles | planned | unassigned (of which an unused vehicle could fetch alone) | km | km / planned pickup | km / product ({}) |",
            runs[0].0
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        let product_km = runs[0].1.checked.km;
        for (label, run) in &runs {
            let c = &run.checked;
            println!(
                "| product `plans::create`, {label} | {:.1} s wall | {} | {} | {} ({}) | {:.1} | {:.2} | {:.3} |",
                run.wall.as_secs_f64(),
                c.vehicles_used,
                c.assigned,
                c.unassigned,
                c.solo_feasible,
                c.km,
                c.km / c.assigned.max(1) as f64,
                c.km / product_km
            );
        }
        for b in &base {
            let c = &b.checked;
            println!(
                "| {} | {:.1} s | {} | {} | {} ({}) | {:.1} | {:.2} | {:.3} |",
                b.name,
                b.seconds,
                c.vehicles_used,
                c.assigned,
                c.unassigned,
                c.solo_feasible,
                c.km,
                c.km / c.assigned.max(1) as f64,
                c.km / product_km
            );
        }
        println!(
            "(every row passed the same checker; compare km only between rows that plan the same number of pickups)"
        );

        if !args.no_sweep && !args.sweep.is_empty() {
            println!(
                "\n### Distance against the time limit: the product (a fresh SQLite database each) and the raw engine on the same problem"
            );
            // (solver, time limit, seconds, result)
            let mut sweep: Vec<(&str, u64, f64, Checked)> = Vec::new();
            for &limit in &args.sweep {
                ensure!((1..=60).contains(&limit), "--sweep limits must be 1 to 60 s");
                println!("\n#### time_limit_s = {limit}");
                let (run, filled, world) = sqlite_run(&inst, limit).await?;
                sweep.push(("product", run.limit, run.wall.as_secs_f64(), run.checked));
                let (problem, matrix) = problem_of(&filled)?;
                let raw = raw_baseline(&filled, &world, &problem, &matrix, limit)?;
                sweep.push(("raw engine", limit, raw.seconds, raw.checked));
            }
            if let Some((_, main)) = runs.iter().find(|r| r.0 == "SQLite") {
                sweep.push(("product", main.limit, main.wall.as_secs_f64(), main.checked.clone()));
            }
            if let Some(raw) = base.first() {
                sweep.push(("raw engine", args.time_limit, raw.seconds, raw.checked.clone()));
            }
            sweep.sort_by_key(|r| (r.1, r.0));
            println!(
                "\n| solver | time_limit_s | wall s | vehicles | planned | unassigned (reasons) | of which an unused vehicle could fetch alone | km | km / planned pickup |"
            );
            println!("|---|---:|---:|---:|---:|---|---:|---:|---:|");
            for (solver, limit, wall, c) in &sweep {
                println!(
                    "| {solver} | {limit} | {wall:.1} | {} | {} | {} {:?} | {} | {:.1} | {:.2} |",
                    c.vehicles_used,
                    c.assigned,
                    c.unassigned,
                    c.reasons,
                    c.solo_feasible,
                    c.km,
                    c.km / c.assigned.max(1) as f64
                );
            }
        }
        println!("\nat the end: {}", load_average());
        anyhow::Ok(())
    })
}
