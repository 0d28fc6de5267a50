//! 调度 the dispatch planner's pages: a region's plans and a form to plan a
//! depot's day, a plan's routes on a map with a table per vehicle and the
//! pickups left unassigned with the reason, moving a stop by locking it to a
//! vehicle and re-planning, and a driver's printable run sheet.
//!
//! A stop's lock form changes one lock and keeps the plan's others (those
//! that lapsed are dropped by the slice); the plain re-plan keeps them all.
//! A replaced plan is shown as history: a banner links the plan that
//! replaced it, and it offers no lock or re-plan forms.
//!
//! Plans are read and made through the logistics slice's own functions with
//! the viewer's principal, so a page allows exactly what the API allows:
//! operators (administrators, officials, carriers) of the depot's county.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::NaiveDate;
use serde::Deserialize;
use shuxiang_core::auth::{self, Principal, Scope};
use shuxiang_core::region::RegionCode;
use shuxiang_core::{CoreError, regions};
use shuxiang_logistics::network::{self, Site, SiteQuery, Vehicle, VehicleQuery};
use shuxiang_logistics::plans::{self, Lock, Plan, PlanRequest};
use shuxiang_logistics::shipments::{self, Shipment};

use super::common::{
    Chrome, PageError, PageForm, PageQuery, PageResult, Signed, local_time, render, temperature_class_label, texts_in,
};
use crate::error::AppError;
use crate::extract::ClientIp;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::svgmap::{self, MapRoute, ROUTE_COLOURS};

/// Plans listed on the region page.
const MAX_PLANS: u64 = 100;
/// Solver seconds a page asks for unless the form says otherwise: short
/// enough that the browser does not give up waiting for the redirect.
const DEFAULT_TIME_LIMIT_S: u64 = 5;

pub struct DispatchTexts {
    pub title: &'static str,
    pub plans: &'static str,
    pub no_plans: &'static str,
    pub plan: &'static str,
    pub depot: &'static str,
    pub day: &'static str,
    pub vehicles: &'static str,
    pub vehicle: &'static str,
    pub distance: &'static str,
    pub stops: &'static str,
    pub unassigned: &'static str,
    pub created: &'static str,
    pub new_plan: &'static str,
    pub time_limit: &'static str,
    pub submit: &'static str,
    pub no_depots: &'static str,
    pub map: &'static str,
    pub seq: &'static str,
    pub arrival: &'static str,
    pub departure: &'static str,
    pub shipment: &'static str,
    pub goods: &'static str,
    pub kg: &'static str,
    pub temperature: &'static str,
    pub reason: &'static str,
    pub lock_to: &'static str,
    pub lock: &'static str,
    pub replan: &'static str,
    pub replan_hint: &'static str,
    pub run_sheet: &'static str,
    pub all_assigned: &'static str,
    pub driver: &'static str,
    pub shift: &'static str,
    pub place: &'static str,
    pub village: &'static str,
    pub trace_codes: &'static str,
    pub signature: &'static str,
    pub leave_depot: &'static str,
    pub back_at_depot: &'static str,
    pub none: &'static str,
    pub locked: &'static str,
    pub unlock: &'static str,
    pub kept_locks: &'static str,
    /// `{id}` is the newer plan's number.
    pub replaced_banner: &'static str,
    /// `{id}` is the newer plan's number.
    pub replaced_mark: &'static str,
    /// `{id}` is the earlier plan's number.
    pub replan_of: &'static str,
    pub status: &'static str,
    pub current: &'static str,
    pub current_only: &'static str,
    pub all_plans: &'static str,
}

static ZH: DispatchTexts = DispatchTexts {
    title: "物流调度",
    plans: "调度计划",
    no_plans: "该区域还没有调度计划。",
    plan: "计划",
    depot: "场站",
    day: "日期",
    vehicles: "车辆数",
    vehicle: "车辆",
    distance: "里程（公里）",
    stops: "站点数",
    unassigned: "未派车",
    created: "制定时间",
    new_plan: "制定一天的计划",
    time_limit: "计算时间（秒，1–60）",
    submit: "开始计划",
    no_depots: "该区域没有您可调度的车辆所属场站。",
    map: "路线图",
    seq: "序号",
    arrival: "到达",
    departure: "离开",
    shipment: "运单",
    goods: "货物",
    kg: "重量（公斤）",
    temperature: "温层",
    reason: "原因",
    lock_to: "锁定到车辆",
    lock: "锁定并重新计划",
    replan: "重新计划",
    replan_hint: "重新计划会把本计划中尚未提货的运单和当天新预约的运单一起重新排线，生成新的计划。",
    run_sheet: "司机出车单",
    all_assigned: "所有提货点都已派车。",
    driver: "司机",
    shift: "班次",
    place: "地点",
    village: "村",
    trace_codes: "追溯码",
    signature: "交接签字",
    leave_depot: "从场站出发",
    back_at_depot: "返回场站",
    none: "—",
    locked: "🔒 已锁定",
    unlock: "解除锁定",
    kept_locks: "重新计划会保留这些锁定（运单已提货或取消的锁定自动失效）：",
    replaced_banner: "此计划已被计划 #{id} 取代",
    replaced_mark: "已被 #{id} 取代",
    replan_of: "由计划 #{id} 重新计划而来",
    status: "状态",
    current: "当前",
    current_only: "只看当前计划",
    all_plans: "全部计划",
};

static EN: DispatchTexts = DispatchTexts {
    title: "Dispatch",
    plans: "Dispatch plans",
    no_plans: "No dispatch plans in this region yet.",
    plan: "Plan",
    depot: "Depot",
    day: "Day",
    vehicles: "Vehicles",
    vehicle: "Vehicle",
    distance: "Distance (km)",
    stops: "Stops",
    unassigned: "Unassigned",
    created: "Created",
    new_plan: "Plan a day",
    time_limit: "Solver time (s, 1–60)",
    submit: "Plan",
    no_depots: "No depot in this region has vehicles you may dispatch.",
    map: "Route map",
    seq: "No.",
    arrival: "Arrival",
    departure: "Departure",
    shipment: "Shipment",
    goods: "Goods",
    kg: "Weight (kg)",
    temperature: "Temperature",
    reason: "Reason",
    lock_to: "Lock to vehicle",
    lock: "Lock and re-plan",
    replan: "Re-plan",
    replan_hint: "Re-planning routes this plan's pickups not yet collected together with the day's new bookings, as a new plan.",
    run_sheet: "Driver's run sheet",
    all_assigned: "Every pickup is on a vehicle.",
    driver: "Driver",
    shift: "Shift",
    place: "Place",
    village: "Village",
    trace_codes: "Trace codes",
    signature: "Handover signature",
    leave_depot: "Leave the depot",
    back_at_depot: "Back at the depot",
    none: "—",
    locked: "🔒 Locked",
    unlock: "Unlock",
    kept_locks: "A re-plan keeps these locks (a lock lapses once its shipment is picked up or cancelled):",
    replaced_banner: "Replaced by plan #{id}",
    replaced_mark: "Replaced by #{id}",
    replan_of: "Re-plan of plan #{id}",
    status: "Status",
    current: "Current",
    current_only: "Current plans only",
    all_plans: "All plans",
};

fn texts(lang: Lang) -> &'static DispatchTexts {
    texts_in(lang, &ZH, &EN)
}

/// A text naming plan `id` in its `{id}` slot.
fn naming(text: &str, id: i64) -> String {
    text.replace("{id}", &id.to_string())
}

/// The solver's reason codes (see `plans::UnassignedShipment`) in words.
fn reason_label(code: &str, lang: Lang) -> &str {
    match (lang, code) {
        (Lang::Zh, "time_window") => "班次内无车能在提货时间窗内到达",
        (Lang::Zh, "capacity") => "车辆装载不下（重量或体积）",
        (Lang::Zh, "skills") => "没有温层相符的车辆（或锁定的车辆温层不符）",
        (Lang::Zh, "max_distance") => "超出车辆的里程上限",
        (Lang::Zh, "max_duration") => "超出车辆的工作时长",
        (Lang::En, "time_window") => "no vehicle reaches it within its pickup window and shift",
        (Lang::En, "capacity") => "no room on a vehicle (weight or volume)",
        (Lang::En, "skills") => "no vehicle of its temperature class (or the locked one is not)",
        (Lang::En, "max_distance") => "beyond the vehicle's distance limit",
        (Lang::En, "max_duration") => "beyond the vehicle's working time",
        (_, other) => other,
    }
}

/// Hours and minutes in China Standard Time.
fn clock(at: &chrono::DateTime<chrono::Utc>) -> String {
    local_time(at).get(11..16).unwrap_or_default().to_owned()
}

fn parse_id(raw: &str, what: &str) -> Result<i64, PageError> {
    raw.parse()
        .map_err(|_| PageError::not_found(format!("no {what} {raw}")))
}

/// The viewer's region when none is asked for: their narrowest scope.
fn default_region(p: &Principal) -> String {
    p.grants
        .iter()
        .filter_map(|g| match &g.scope {
            Scope::Region(c) => Some(c.to_string()),
            Scope::All => None,
        })
        .max_by_key(String::len)
        .unwrap_or_else(|| "36".to_owned())
}

/// Vehicle plates by id, for the depot's fleet the viewer may see.
async fn fleet(state: &AppState, p: &Principal, depot: i64) -> Result<Vec<Vehicle>, CoreError> {
    network::list_vehicles(
        &state.db,
        p,
        &VehicleQuery {
            depot_site_id: Some(depot),
            refrigeration: None,
            limit: Some(1000),
        },
    )
    .await
}

/// The plan's pickups by id. Read as the operator: the viewer has passed
/// `plans::get`, which requires planning rights over the depot's county,
/// and every pickup of the plan lies in that county, but a carrier may not
/// read booked shipments one by one through the shipment rules.
async fn pickups_of(state: &AppState, plan: &Plan) -> Result<BTreeMap<i64, Shipment>, CoreError> {
    let all = auth::operator();
    let ids = plan
        .routes
        .iter()
        .flat_map(|r| r.stops.iter().map(|s| s.shipment_id))
        .chain(plan.unassigned.iter().map(|u| u.shipment_id))
        .collect::<Vec<_>>();
    let mut out = BTreeMap::new();
    for id in ids {
        out.insert(id, shipments::get(&state.db, &all, id).await?);
    }
    Ok(out)
}

/// Village names of the pickups' regions, by code.
async fn village_names(
    state: &AppState,
    list: &BTreeMap<i64, Shipment>,
) -> Result<BTreeMap<String, String>, CoreError> {
    let mut codes: Vec<RegionCode> = list
        .values()
        .filter_map(|s| RegionCode::parse(&s.region_code).ok())
        .collect();
    codes.sort();
    codes.dedup();
    Ok(regions::names(&state.db, &codes).await?.into_iter().collect())
}

fn point_of(s: &Shipment, depot: &Site) -> (f64, f64) {
    (s.origin.lon.unwrap_or(depot.lon), s.origin.lat.unwrap_or(depot.lat))
}

// ---- the region's plans ----

pub struct PlanRow {
    pub id: i64,
    /// The newer plan and the mark saying so, for a replaced plan.
    pub replaced: Option<(i64, String)>,
    pub depot: String,
    pub day: String,
    pub vehicles: i64,
    pub stops: i64,
    pub unassigned: i64,
    pub distance: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "dispatch_plans.html")]
struct PlansPage {
    c: Chrome,
    dt: &'static DispatchTexts,
    region_code: String,
    region_name: String,
    current_only: bool,
    plans: Vec<PlanRow>,
    depots: Vec<(i64, String)>,
    form: CreateForm,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct RegionQuery {
    region: Option<String>,
    /// `true` leaves replaced plans out of the list.
    current: Option<bool>,
}

/// The plan form's fields, kept to show again with an error.
#[derive(Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    depot_site_id: String,
    #[serde(default)]
    day: String,
    #[serde(default)]
    time_limit_s: String,
}

pub async fn plans_page(State(state): State<AppState>, s: Signed, PageQuery(q): PageQuery<RegionQuery>) -> PageResult {
    let region = q.region.unwrap_or_else(|| default_region(&s.auth.principal));
    let current_only = q.current.unwrap_or(false);
    let form = CreateForm {
        day: (chrono::Utc::now() + chrono::Duration::hours(8))
            .date_naive()
            .to_string(),
        time_limit_s: DEFAULT_TIME_LIMIT_S.to_string(),
        ..CreateForm::default()
    };
    render_plans(&state, &s, &region, current_only, form, None).await
}

/// Plans a depot's day from the form and goes to the new plan (303), or
/// shows the form again with the error.
pub async fn create_plan(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    PageQuery(q): PageQuery<RegionQuery>,
    PageForm(form): PageForm<CreateForm>,
) -> PageResult {
    let region = q.region.unwrap_or_else(|| default_region(&s.auth.principal));
    match plan_from_form(&state, &s, &ip, &form).await {
        Ok(plan) => Ok(Redirect::to(&format!("/dispatch/plans/{}", plan.id)).into_response()),
        Err(e) => {
            let (status, message) = super::admin::inline(AppError::from(e))?;
            let current_only = q.current.unwrap_or(false);
            render_plans(&state, &s, &region, current_only, form, Some((status, message))).await
        }
    }
}

fn time_limit(raw: &str) -> Result<Option<u64>, CoreError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| {
        CoreError::invalid(
            "invalid_plan_settings",
            format!("the solver time {raw:?} is not a whole number of seconds"),
        )
    })
}

async fn plan_from_form(state: &AppState, s: &Signed, ip: &ClientIp, form: &CreateForm) -> Result<Plan, CoreError> {
    let depot_site_id = form
        .depot_site_id
        .trim()
        .parse()
        .map_err(|_| CoreError::invalid("unknown_depot", "choose a depot"))?;
    let day = NaiveDate::parse_from_str(form.day.trim(), "%Y-%m-%d")
        .map_err(|_| CoreError::invalid("invalid_day", format!("the day {:?} is not YYYY-MM-DD", form.day)))?;
    let req = PlanRequest {
        depot_site_id,
        day,
        road_factor: None,
        speed_kmh: None,
        service_min: None,
        time_limit_s: time_limit(&form.time_limit_s)?,
        locks: Vec::new(),
    };
    plans::create(&state.db, &s.auth.principal, &s.auth.actor(ip), req).await
}

async fn render_plans(
    state: &AppState,
    s: &Signed,
    region: &str,
    current_only: bool,
    form: CreateForm,
    error: Option<(StatusCode, String)>,
) -> PageResult {
    let dt = texts(s.lang);
    let p = &s.auth.principal;
    let code = RegionCode::parse(region).map_err(AppError::from)?;
    let list = plans::list(&state.db, p, &code, current_only, Some(MAX_PLANS))
        .await
        .map_err(AppError::from)?;
    let region = regions::require(&state.db, &code).await.map_err(AppError::from)?;
    let sites = network::list_sites(
        &state.db,
        &SiteQuery {
            region: Some(code.clone()),
            limit: Some(1000),
            ..SiteQuery::default()
        },
    )
    .await
    .map_err(AppError::from)?;
    let vehicles = network::list_vehicles(
        &state.db,
        p,
        &VehicleQuery {
            limit: Some(1000),
            ..VehicleQuery::default()
        },
    )
    .await
    .map_err(AppError::from)?;
    let site_names: BTreeMap<i64, String> = sites.iter().map(|x| (x.id, x.name.clone())).collect();
    let depots = sites
        .iter()
        .filter(|site| vehicles.iter().any(|v| v.depot_site_id == site.id))
        .map(|site| (site.id, site.name.clone()))
        .collect();
    let plans = list
        .into_iter()
        .map(|x| PlanRow {
            id: x.id,
            replaced: x.replaced_by.map(|n| (n, naming(dt.replaced_mark, n))),
            depot: site_names
                .get(&x.depot_site_id)
                .cloned()
                .unwrap_or_else(|| format!("#{}", x.depot_site_id)),
            day: x.day,
            vehicles: x.vehicles,
            stops: x.stops,
            unassigned: x.unassigned,
            distance: format!("{:.1}", x.distance_km),
            created: local_time(&x.created_at),
        })
        .collect();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    render(
        status,
        &PlansPage {
            c: s.chrome(),
            dt,
            region_code: region.code.clone(),
            region_name: region.name.clone(),
            current_only,
            plans,
            depots,
            form,
            error,
        },
    )
}

// ---- one plan ----

pub struct StopRow {
    pub seq: usize,
    pub shipment_id: i64,
    /// The vehicle the planner locked the stop to.
    pub locked: Option<i64>,
    /// The vehicle the lock form offers first: the locked one, else the route's.
    pub selected: i64,
    pub arrival: String,
    pub departure: String,
    pub goods: String,
    pub village: String,
    pub kg: String,
    pub class: &'static str,
}

pub struct RouteTable {
    pub vehicle_id: i64,
    pub plate: String,
    pub colour: &'static str,
    pub class: &'static str,
    pub start: String,
    pub end: String,
    pub distance: String,
    pub stops: Vec<StopRow>,
}

pub struct UnassignedRow {
    pub shipment_id: i64,
    pub locked: Option<i64>,
    pub goods: String,
    pub village: String,
    pub kg: String,
    pub class: &'static str,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "dispatch_plan.html")]
struct PlanPage {
    c: Chrome,
    dt: &'static DispatchTexts,
    id: i64,
    region_code: String,
    depot: String,
    day: String,
    distance: String,
    map: Option<String>,
    routes: Vec<RouteTable>,
    unassigned: Vec<UnassignedRow>,
    /// (id, plate and class) of the depot's vehicles, for the lock forms.
    vehicles: Vec<(i64, String)>,
    /// (shipment, plate) of each stored lock, kept by a plain re-plan.
    locks: Vec<(i64, String)>,
    /// The newer plan and the banner naming it, for a replaced plan.
    replaced: Option<(i64, String)>,
    /// The earlier plan and the line naming it, for a re-plan.
    replan_of: Option<(i64, String)>,
    error: Option<String>,
}

pub async fn plan_page(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> PageResult {
    let id = parse_id(&id, "plan")?;
    render_plan(&state, &s, id, None).await
}

async fn render_plan(state: &AppState, s: &Signed, id: i64, error: Option<(StatusCode, String)>) -> PageResult {
    let dt = texts(s.lang);
    let p = &s.auth.principal;
    let plan = plans::get(&state.db, p, id).await.map_err(AppError::from)?;
    let depot = network::get_site(&state.db, plan.depot_site_id)
        .await
        .map_err(AppError::from)?;
    let vehicles = fleet(state, p, depot.id).await.map_err(AppError::from)?;
    let pickups = pickups_of(state, &plan).await.map_err(AppError::from)?;
    let villages = village_names(state, &pickups).await.map_err(AppError::from)?;
    let village_of = |s: &Shipment| {
        villages
            .get(&s.region_code)
            .cloned()
            .unwrap_or_else(|| s.region_code.clone())
    };
    let plate = |vid: i64| {
        vehicles
            .iter()
            .find(|v| v.id == vid)
            .map_or_else(|| format!("#{vid}"), |v| v.plate.clone())
    };
    let class_of = |vid: i64| {
        vehicles
            .iter()
            .find(|v| v.id == vid)
            .map_or(dt.none, |v| temperature_class_label(v.refrigeration, s.lang))
    };
    let locked_to = |shipment: i64| {
        plan.locks
            .iter()
            .find(|l| l.shipment_id == shipment)
            .map(|l| l.vehicle_id)
    };

    let mut map_routes = Vec::with_capacity(plan.routes.len());
    let mut routes = Vec::with_capacity(plan.routes.len());
    for (i, r) in plan.routes.iter().enumerate() {
        let mut stops = Vec::with_capacity(r.stops.len());
        let mut points = Vec::with_capacity(r.stops.len());
        for (n, st) in r.stops.iter().enumerate() {
            let sh = &pickups[&st.shipment_id];
            points.push(point_of(sh, &depot));
            let locked = locked_to(sh.id);
            stops.push(StopRow {
                seq: n + 1,
                shipment_id: sh.id,
                locked,
                selected: locked.unwrap_or(r.vehicle_id),
                arrival: clock(&st.arrival),
                departure: clock(&st.departure),
                goods: sh.goods.clone(),
                village: village_of(sh),
                kg: format!("{:.0}", sh.weight_kg),
                class: temperature_class_label(sh.temperature_class, s.lang),
            });
        }
        map_routes.push(MapRoute {
            name: plate(r.vehicle_id),
            stops: points,
        });
        routes.push(RouteTable {
            vehicle_id: r.vehicle_id,
            plate: plate(r.vehicle_id),
            colour: ROUTE_COLOURS[i % ROUTE_COLOURS.len()],
            class: class_of(r.vehicle_id),
            start: clock(&r.start),
            end: clock(&r.end),
            distance: format!("{:.1}", r.distance_km),
            stops,
        });
    }
    let unassigned_points: Vec<(f64, f64)> = plan
        .unassigned
        .iter()
        .map(|u| point_of(&pickups[&u.shipment_id], &depot))
        .collect();
    let unassigned = plan
        .unassigned
        .iter()
        .map(|u| {
            let sh = &pickups[&u.shipment_id];
            UnassignedRow {
                shipment_id: sh.id,
                locked: locked_to(sh.id),
                goods: sh.goods.clone(),
                village: village_of(sh),
                kg: format!("{:.0}", sh.weight_kg),
                class: temperature_class_label(sh.temperature_class, s.lang),
                reason: reason_label(&u.reason, s.lang).to_owned(),
            }
        })
        .collect();
    // The county's outline behind the routes, when its boundary is stored.
    let county = RegionCode::parse(&depot.region_code[..depot.region_code.len().min(6)]).map_err(AppError::from)?;
    let outline = regions::boundary(&state.db, &county)
        .await
        .map_err(AppError::from)?
        .and_then(|b| svgmap::parse_boundary(&b.simplified));
    let map = svgmap::route_map(
        "route-map",
        dt.map,
        outline.as_ref(),
        (depot.lon, depot.lat),
        &map_routes,
        &unassigned_points,
    );
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    render(
        status,
        &PlanPage {
            c: s.chrome(),
            dt,
            id: plan.id,
            region_code: county.to_string(),
            depot: depot.name.clone(),
            day: plan.day.clone(),
            distance: format!("{:.1}", plan.distance_km),
            map,
            routes,
            unassigned,
            vehicles: vehicles
                .iter()
                .map(|v| {
                    (
                        v.id,
                        format!("{} · {}", v.plate, temperature_class_label(v.refrigeration, s.lang)),
                    )
                })
                .collect(),
            locks: plan
                .locks
                .iter()
                .map(|l| (l.shipment_id, plate(l.vehicle_id)))
                .collect(),
            replaced: plan.replaced_by.map(|n| (n, naming(dt.replaced_banner, n))),
            replan_of: plan.replan_of.map(|n| (n, naming(dt.replan_of, n))),
            error,
        },
    )
}

/// A stop's lock form (a shipment, with a vehicle or none to unlock it), or
/// neither field for a plain re-plan.
#[derive(Default, Deserialize)]
pub struct ReplanForm {
    #[serde(default)]
    shipment_id: String,
    #[serde(default)]
    vehicle_id: String,
    #[serde(default)]
    time_limit_s: String,
}

/// The one lock a stop's form changes: its shipment, and the vehicle to
/// pin it to or none to release it; `None` for a plain re-plan.
fn lock_change(form: &ReplanForm) -> Result<Option<(i64, Option<i64>)>, CoreError> {
    let (shipment, vehicle) = (form.shipment_id.trim(), form.vehicle_id.trim());
    let id = |raw: &str, what: &str| {
        raw.parse::<i64>()
            .map_err(|_| CoreError::invalid("invalid_lock", format!("{what} {raw:?} is not an id")))
    };
    match (shipment.is_empty(), vehicle.is_empty()) {
        (true, true) => Ok(None),
        (true, false) => Err(CoreError::invalid("invalid_lock", "choose the stop to lock")),
        (false, true) => Ok(Some((id(shipment, "shipment")?, None))),
        (false, false) => Ok(Some((id(shipment, "shipment")?, Some(id(vehicle, "vehicle")?)))),
    }
}

/// Re-plans plan `id` as the form asks: the plan's locks with the stop's
/// lock changed, or the plan's locks as they are.
async fn replan_from_form(
    state: &AppState,
    s: &Signed,
    ip: &ClientIp,
    id: i64,
    form: &ReplanForm,
) -> Result<Plan, CoreError> {
    let limit = time_limit(&form.time_limit_s)?;
    let locks = match lock_change(form)? {
        None => None,
        Some((shipment, vehicle)) => {
            let plan = plans::get(&state.db, &s.auth.principal, id).await?;
            let mut locks: Vec<Lock> = plan.locks.into_iter().filter(|l| l.shipment_id != shipment).collect();
            locks.extend(vehicle.map(|vehicle_id| Lock {
                shipment_id: shipment,
                vehicle_id,
            }));
            Some(locks)
        }
    };
    plans::replan(
        &state.db,
        &s.auth.principal,
        &s.auth.actor(ip),
        id,
        locks,
        limit.or(Some(DEFAULT_TIME_LIMIT_S)),
    )
    .await
}

/// Re-plans from a stop's lock form or the re-plan button and goes to the
/// new plan (303); a refused lock or a replaced plan shows this plan with
/// the error.
pub async fn replan(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path(id): Path<String>,
    PageForm(form): PageForm<ReplanForm>,
) -> PageResult {
    let id = parse_id(&id, "plan")?;
    match replan_from_form(&state, &s, &ip, id, &form).await {
        Ok(plan) => Ok(Redirect::to(&format!("/dispatch/plans/{}", plan.id)).into_response()),
        Err(e) => {
            let (status, message) = super::admin::inline(AppError::from(e))?;
            render_plan(&state, &s, id, Some((status, message))).await
        }
    }
}

// ---- the driver's run sheet ----

pub struct SheetRow {
    pub seq: usize,
    pub arrival: String,
    pub departure: String,
    pub shipment_id: i64,
    pub place: String,
    pub village: String,
    pub coordinates: String,
    pub goods: String,
    pub kg: String,
    pub class: &'static str,
    pub trace_codes: String,
}

#[derive(Template)]
#[template(path = "dispatch_run_sheet.html")]
struct RunSheetPage {
    c: Chrome,
    dt: &'static DispatchTexts,
    plan_id: i64,
    day: String,
    depot: String,
    plate: String,
    class: &'static str,
    driver: String,
    shift: String,
    start: String,
    end: String,
    distance: String,
    total_kg: String,
    rows: Vec<SheetRow>,
}

pub async fn run_sheet(
    State(state): State<AppState>,
    s: Signed,
    Path((id, vehicle_id)): Path<(String, String)>,
) -> PageResult {
    let dt = texts(s.lang);
    let p = &s.auth.principal;
    let id = parse_id(&id, "plan")?;
    let vehicle_id = parse_id(&vehicle_id, "vehicle")?;
    let plan = plans::get(&state.db, p, id).await.map_err(AppError::from)?;
    let route = plan
        .routes
        .iter()
        .find(|r| r.vehicle_id == vehicle_id)
        .ok_or_else(|| PageError::not_found(format!("vehicle {vehicle_id} has no route in plan {id}")))?;
    let vehicle = network::get_vehicle(&state.db, p, vehicle_id)
        .await
        .map_err(AppError::from)?;
    let depot = network::get_site(&state.db, plan.depot_site_id)
        .await
        .map_err(AppError::from)?;
    // The driver's name and a masked phone: enough to know who drives, as
    // the planner, without handing out the number.
    let driver = match vehicle.driver_user_id {
        Some(uid) => match auth::get_user(&state.db, &auth::operator(), uid).await {
            Ok(u) => match u.phone.as_deref() {
                Some(phone) => format!("{} ({})", u.display_name, auth::mask_phone(phone)),
                None => u.display_name,
            },
            Err(CoreError::NotFound(_)) => dt.none.to_owned(),
            Err(e) => return Err(AppError::from(e).into()),
        },
        None => dt.none.to_owned(),
    };
    let pickups = pickups_of(&state, &plan).await.map_err(AppError::from)?;
    let villages = village_names(&state, &pickups).await.map_err(AppError::from)?;
    let mut total_kg = 0.0;
    let rows = route
        .stops
        .iter()
        .enumerate()
        .map(|(n, st)| {
            let sh = &pickups[&st.shipment_id];
            total_kg += sh.weight_kg;
            let (lon, lat) = point_of(sh, &depot);
            SheetRow {
                seq: n + 1,
                arrival: clock(&st.arrival),
                departure: clock(&st.departure),
                shipment_id: sh.id,
                place: sh.origin.name.clone().unwrap_or_default(),
                village: villages
                    .get(&sh.region_code)
                    .cloned()
                    .unwrap_or_else(|| sh.region_code.clone()),
                coordinates: format!("{lon:.5}, {lat:.5}"),
                goods: sh.goods.clone(),
                kg: format!("{:.0}", sh.weight_kg),
                class: temperature_class_label(sh.temperature_class, s.lang),
                trace_codes: sh.trace_codes.join(" "),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &RunSheetPage {
            c: s.chrome(),
            dt,
            plan_id: plan.id,
            day: plan.day.clone(),
            depot: depot.name.clone(),
            plate: vehicle.plate.clone(),
            class: temperature_class_label(vehicle.refrigeration, s.lang),
            driver,
            shift: format!("{}–{}", vehicle.shift_start, vehicle.shift_end),
            start: clock(&route.start),
            end: clock(&route.end),
            distance: format!("{:.1}", route.distance_km),
            total_kg: format!("{total_kg:.0}"),
            rows,
        },
    )
}
