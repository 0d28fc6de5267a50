//! The logistics JSON API: the network (sites, vehicles), shipments with
//! their status, handovers and proof of delivery, and the cold-chain report.
//! Each handler only translates HTTP to the slice's functions, which hold
//! the access rules (see [`crate::network`] and [`crate::shipments`]).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};
use shuxiang_core::CoreError;
use shuxiang_http::extract::{ApiJson, ApiQuery, Auth, ClientIp};
use shuxiang_http::{Access, ApiResult, ApiRoute, AppState};

use crate::coldchain::ListSource;
use crate::journey;
use crate::network::{
    self, FLEET_MANAGERS, NewSite, NewVehicle, SITE_EDITORS, Site, SiteQuery, SiteUpdate, Vehicle, VehicleQuery,
    VehicleUpdate,
};
use crate::plans::{self, Plan, PlanRequest};
use crate::report::{self, ColdChainSource, Report};
use crate::shipments::{
    self, ANY_READER, BOOKERS, NewHandover, NewShipment, OPERATORS, REGION_READERS, Shipment, ShipmentQuery,
    StatusChange,
};
use crate::stats::{self, Stats};
use crate::store::parse_id;

const TAG: &str = "logistics";

fn site_schema(required: &[&str]) -> Value {
    json!({"type": "object", "required": required, "additionalProperties": false, "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["operation_centre", "cloud_warehouse", "cold_store", "post_office", "service_station", "collection_point"]},
        "tier": {"type": "string", "enum": ["province", "city", "county", "village"], "description": "must match the region's level (village: township or village code)"},
        "region_code": {"type": "string"},
        "lon": {"type": "number"}, "lat": {"type": "number"},
        "capacity_kg": {"type": "number"},
        "cold_storage": {"type": "boolean"},
        "opening_hours": {"type": "string", "description": "HH:MM-HH:MM"},
        "logger_device_id": {"type": "integer", "description": "the cold store's IoT logger"}
    }})
}

fn vehicle_schema(required: &[&str]) -> Value {
    json!({"type": "object", "required": required, "additionalProperties": false, "properties": {
        "plate": {"type": "string", "description": "e.g. 赣A12345"},
        "capacity_kg": {"type": "number"}, "capacity_m3": {"type": "number"},
        "refrigeration": {"type": "string", "enum": ["ambient", "chilled", "frozen"]},
        "depot_site_id": {"type": "integer"},
        "driver_user_id": {"type": "integer"},
        "shift_start": {"type": "string", "description": "HH:MM"}, "shift_end": {"type": "string", "description": "HH:MM, after the start"},
        "logger_device_id": {"type": "integer"}
    }})
}

fn place_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "description": "a site_id, or lon/lat (with the village region_code for a pickup, a name for a buyer)", "properties": {
        "site_id": {"type": "integer"}, "name": {"type": "string"},
        "lon": {"type": "number"}, "lat": {"type": "number"}, "region_code": {"type": "string"}
    }})
}

fn handover_schema() -> Value {
    json!({"type": "object", "required": ["from_party", "to_party", "signature_name"], "additionalProperties": false, "properties": {
        "from_party": {"type": "string"}, "to_party": {"type": "string"},
        "at": {"type": "string", "format": "date-time", "description": "defaults to now; never before the previous handover"},
        "temperature_c": {"type": "number"}, "signature_name": {"type": "string"}, "note": {"type": "string"}
    }})
}

fn shipment_schema() -> Value {
    json!({"type": "object", "additionalProperties": false,
    "required": ["goods", "commodity", "weight_kg", "volume_m3", "temperature_class", "ready_at", "deadline", "origin", "destination"],
    "properties": {
        "goods": {"type": "string"},
        "commodity": {"type": "string", "description": "leafy_vegetables and bananas bring their own band; others take the class's"},
        "weight_kg": {"type": "number"}, "volume_m3": {"type": "number"},
        "temperature_class": {"type": "string", "enum": ["ambient", "chilled", "frozen"]},
        "band": {"type": "object", "properties": {"min_c": {"type": ["number", "null"]}, "max_c": {"type": ["number", "null"]}}},
        "ready_at": {"type": "string", "format": "date-time"},
        "deadline": {"type": "string", "format": "date-time"},
        "origin": place_schema(), "destination": place_schema(),
        "trace_codes": {"type": "array", "items": {"type": "string"}}
    }})
}

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/logistics/sites",
            summary: "Register a network site (operation centre, cloud warehouse, cold store, post office, station, collection point) in your region",
            tag: TAG,
            access: Access::Roles(SITE_EDITORS),
            body: Some(site_schema(&["name", "kind", "tier", "region_code", "lon", "lat"])),
            query: &[],
            ok_status: 201,
            handler: post(create_site),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/logistics/sites",
            summary: "Sites of the logistics network (public infrastructure: every signed-in user sees all)",
            tag: TAG,
            access: Access::Authenticated,
            body: None,
            query: &[
                ("region", "sites in this region and below"),
                ("kind", "site kind"),
                ("tier", "province, city, county or village"),
                ("cold_storage", "true or false"),
                ("limit", "at most this many (default 100, at most 1000)"),
            ],
            ok_status: 200,
            handler: get(list_sites),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/logistics/sites/{id}",
            summary: "One site",
            tag: TAG,
            access: Access::Authenticated,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_site),
        },
        ApiRoute {
            method: Method::PATCH,
            path: "/api/v1/logistics/sites/{id}",
            summary: "Change a site's name, capacity, cold storage, opening hours or logger (audited from → to)",
            tag: TAG,
            access: Access::Roles(SITE_EDITORS),
            body: Some(site_schema(&[])),
            query: &[],
            ok_status: 200,
            handler: patch(update_site),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/logistics/vehicles",
            summary: "Register a vehicle at a depot in your region",
            tag: TAG,
            access: Access::Roles(FLEET_MANAGERS),
            body: Some(vehicle_schema(&[
                "plate",
                "capacity_kg",
                "capacity_m3",
                "refrigeration",
                "depot_site_id",
                "shift_start",
                "shift_end",
            ])),
            query: &[],
            ok_status: 201,
            handler: post(create_vehicle),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/logistics/vehicles",
            summary: "Vehicles whose depot lies in your scope",
            tag: TAG,
            access: Access::Roles(FLEET_MANAGERS),
            body: None,
            query: &[
                ("depot_site_id", "vehicles of this depot"),
                ("refrigeration", "ambient, chilled or frozen"),
                ("limit", "at most this many (default 100, at most 1000)"),
            ],
            ok_status: 200,
            handler: get(list_vehicles),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/logistics/vehicles/{id}",
            summary: "One vehicle",
            tag: TAG,
            access: Access::Roles(FLEET_MANAGERS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_vehicle),
        },
        ApiRoute {
            method: Method::PATCH,
            path: "/api/v1/logistics/vehicles/{id}",
            summary: "Change a vehicle's capacity, refrigeration, driver, shift or logger (audited from → to)",
            tag: TAG,
            access: Access::Roles(FLEET_MANAGERS),
            body: Some(vehicle_schema(&[])),
            query: &[],
            ok_status: 200,
            handler: patch(update_vehicle),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/shipments",
            summary: "Book a pickup from a village point or site to a warehouse or buyer",
            tag: TAG,
            access: Access::Roles(BOOKERS),
            body: Some(shipment_schema()),
            query: &[],
            ok_status: 201,
            handler: post(book),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/shipments",
            summary: "Shipments you may see: your bookings, your region's, or those planned on your vehicles",
            tag: TAG,
            access: Access::Roles(ANY_READER),
            body: None,
            query: &[
                (
                    "status",
                    "booked, planned, picked_up, in_transit, delivered or cancelled",
                ),
                ("region", "pickups in this region and below"),
                ("vehicle_id", "shipments planned on this vehicle"),
                ("limit", "at most this many (default 100, at most 1000)"),
            ],
            ok_status: 200,
            handler: get(list_shipments),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/shipments/{id}",
            summary: "One shipment with its handovers and proof of delivery",
            tag: TAG,
            access: Access::Roles(ANY_READER),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_shipment),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/shipments/{id}/assign",
            summary: "Plan a booked shipment onto a vehicle (refrigeration must suit, capacity must fit)",
            tag: TAG,
            access: Access::Roles(OPERATORS),
            body: Some(
                json!({"type": "object", "required": ["vehicle_id"], "additionalProperties": false,
                "properties": {"vehicle_id": {"type": "integer"}}}),
            ),
            query: &[],
            ok_status: 200,
            handler: post(assign),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/shipments/{id}/status",
            summary: "Move a shipment on: picked_up (with handover), in_transit, delivered (with proof of delivery) by carriers and officials; cancelled by the booker or the region; 409 for illegal transitions",
            tag: TAG,
            access: Access::Roles(ANY_READER),
            body: Some(
                json!({"type": "object", "required": ["status"], "additionalProperties": false, "properties": {
                    "status": {"type": "string", "enum": ["picked_up", "in_transit", "delivered", "cancelled"]},
                    "handover": handover_schema(),
                    "proof_of_delivery": {"type": "object", "required": ["receiver_name"], "additionalProperties": false, "properties": {
                        "receiver_name": {"type": "string"}, "at": {"type": "string", "format": "date-time"}, "note": {"type": "string"}
                    }},
                    "reason": {"type": "string"}
                }}),
            ),
            query: &[],
            ok_status: 200,
            handler: post(change_status),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/shipments/{id}/handovers",
            summary: "Record a handover on the way (hub, second driver) of a picked-up or in-transit shipment",
            tag: TAG,
            access: Access::Roles(OPERATORS),
            body: Some(handover_schema()),
            query: &[],
            ok_status: 201,
            handler: post(add_handover),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/shipments/{id}/cold-chain",
            summary: "The shipment's cold-chain report: band, min/max/mean, MKT, excursions by handover leg, data gaps, verdict",
            tag: TAG,
            access: Access::Roles(ANY_READER),
            body: None,
            query: &[(
                "max_gap_s",
                "longest interval between readings that is not a gap (default 900)",
            )],
            ok_status: 200,
            handler: get(cold_chain),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/trace-codes/{code}/journey",
            summary: "Public: the shipments that carried a trace code (at most 20, oldest first) — places, times, handover temperatures and the cold-chain verdict, without personal data; from the logistics records, not the signed trace log",
            tag: TAG,
            access: Access::Public,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(trace_code_journey),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/dispatch/plans",
            summary: "Plan a depot's day: collection runs of its vehicles through the county's booked pickups (vrp-core); lists unassigned pickups with the reason",
            tag: TAG,
            access: Access::Roles(OPERATORS),
            body: Some(
                json!({"type": "object", "required": ["depot_site_id", "day"], "additionalProperties": false, "properties": {
                    "depot_site_id": {"type": "integer"},
                    "day": {"type": "string", "format": "date", "description": "local day (UTC+8)"},
                    "road_factor": {"type": "number", "description": "road over great-circle distance, 1 to 3 (default 1.3)"},
                    "speed_kmh": {"type": "number", "description": "average speed, 5 to 120 (default 40)"},
                    "service_min": {"type": "number", "description": "minutes per pickup (default 10)"},
                    "time_limit_s": {"type": "integer", "description": "solver time, 1 to 60 s (default 5)"},
                    "locks": {"type": "array", "description": "pickups pinned to a vehicle of the depot; one it cannot take stays unassigned with the reason",
                        "items": {"type": "object", "required": ["shipment_id", "vehicle_id"], "additionalProperties": false,
                            "properties": {"shipment_id": {"type": "integer"}, "vehicle_id": {"type": "integer"}}}}
                }}),
            ),
            query: &[],
            ok_status: 201,
            handler: post(create_plan),
        },
        ApiRoute {
            method: Method::POST,
            path: "/api/v1/dispatch/plans/{id}/replan",
            summary: "Plan the same depot and day again as a new plan that replaces this one: the old plan's stops not yet picked up go back into the pool, with the planner's locks (a stop moved = locked to another vehicle); 409 plan_replaced when the plan was already replaced (the message names the newer plan)",
            tag: TAG,
            access: Access::Roles(OPERATORS),
            body: Some(json!({"type": "object", "additionalProperties": false, "properties": {
                "time_limit_s": {"type": "integer", "description": "solver time, 1 to 60 s (default 5)"},
                "locks": {"type": "array", "description": "pickups pinned to a vehicle of the depot. Absent: the old plan's locks; given: exactly these ([] clears them). Either way an old plan's lock that no longer applies (shipment picked up or cancelled, vehicle moved away) is dropped; any other must name a pickup of the plan and a vehicle of the depot (422 invalid_lock)",
                    "items": {"type": "object", "required": ["shipment_id", "vehicle_id"], "additionalProperties": false,
                        "properties": {"shipment_id": {"type": "integer"}, "vehicle_id": {"type": "integer"}}}}
            }})),
            query: &[],
            ok_status: 201,
            handler: post(replan_plan),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/dispatch/plans/{id}",
            summary: "A stored dispatch plan: routes with stops and times, unassigned pickups, the locks it was made with, the plan it re-planned (replan_of) and the plan that replaced it (replaced_by, null while current)",
            tag: TAG,
            access: Access::Roles(OPERATORS),
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(get_plan),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/logistics/stats",
            summary: "A region's numbers: shipments per pickup region and status, on-time rate, handover temperature excursions",
            tag: TAG,
            access: Access::Roles(REGION_READERS),
            body: None,
            query: &[
                ("region", "the region code (required)"),
                ("from", "first local day of the period, YYYY-MM-DD"),
                ("to", "last local day of the period, included"),
            ],
            ok_status: 200,
            handler: get(region_stats),
        },
    ]
}

async fn create_site(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewSite>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    let site = network::create_site(&state.db, &a.principal, &a.actor(&ip), body).await?;
    Ok((StatusCode::CREATED, Json(site)))
}

async fn list_sites(
    State(state): State<AppState>,
    _caller: Auth,
    ApiQuery(filter): ApiQuery<SiteQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"sites": network::list_sites(&state.db, &filter).await?})))
}

async fn get_site(State(state): State<AppState>, _caller: Auth, Path(id): Path<String>) -> ApiResult<Json<Site>> {
    Ok(Json(network::get_site(&state.db, parse_id(&id, "site")?).await?))
}

async fn update_site(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SiteUpdate>,
) -> ApiResult<Json<Site>> {
    let id = parse_id(&id, "site")?;
    Ok(Json(
        network::update_site(&state.db, &a.principal, &a.actor(&ip), id, body).await?,
    ))
}

async fn create_vehicle(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewVehicle>,
) -> ApiResult<(StatusCode, Json<Vehicle>)> {
    let v = network::create_vehicle(&state.db, &a.principal, &a.actor(&ip), body).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list_vehicles(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(filter): ApiQuery<VehicleQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"vehicles": network::list_vehicles(&state.db, &a.principal, &filter).await?}),
    ))
}

async fn get_vehicle(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Vehicle>> {
    let id = parse_id(&id, "vehicle")?;
    Ok(Json(network::get_vehicle(&state.db, &a.principal, id).await?))
}

async fn update_vehicle(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<VehicleUpdate>,
) -> ApiResult<Json<Vehicle>> {
    let id = parse_id(&id, "vehicle")?;
    Ok(Json(
        network::update_vehicle(&state.db, &a.principal, &a.actor(&ip), id, body).await?,
    ))
}

async fn book(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<NewShipment>,
) -> ApiResult<(StatusCode, Json<Shipment>)> {
    let s = shipments::book(&state.db, &a.principal, &a.actor(&ip), body).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

async fn list_shipments(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(filter): ApiQuery<ShipmentQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"shipments": shipments::list(&state.db, &a.principal, &filter).await?}),
    ))
}

async fn get_shipment(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Shipment>> {
    let id = parse_id(&id, "shipment")?;
    Ok(Json(shipments::get(&state.db, &a.principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    vehicle_id: i64,
}

async fn assign(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AssignBody>,
) -> ApiResult<Json<Shipment>> {
    let id = parse_id(&id, "shipment")?;
    Ok(Json(
        shipments::assign(&state.db, &a.principal, &a.actor(&ip), id, body.vehicle_id).await?,
    ))
}

async fn change_status(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusChange>,
) -> ApiResult<Json<Shipment>> {
    let id = parse_id(&id, "shipment")?;
    Ok(Json(
        shipments::change_status(&state.db, &a.principal, &a.actor(&ip), id, body).await?,
    ))
}

async fn add_handover(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewHandover>,
) -> ApiResult<(StatusCode, Json<Shipment>)> {
    let id = parse_id(&id, "shipment")?;
    let s = shipments::add_handover(&state.db, &a.principal, &a.actor(&ip), id, body).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

#[derive(Deserialize)]
struct ColdChainQuery {
    max_gap_s: Option<i64>,
}

/// Without a registered [`ColdChainSource`] (the IoT slice not wired in),
/// reports find no readings and say `no_data` rather than failing.
async fn cold_chain(
    State(state): State<AppState>,
    a: Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ColdChainQuery>,
) -> ApiResult<Json<Report>> {
    let id = parse_id(&id, "shipment")?;
    let empty = ListSource::default();
    let source: &dyn crate::coldchain::TemperatureSource = match state.slice::<ColdChainSource>() {
        Some(s) => s.0.as_ref(),
        None => &empty,
    };
    Ok(Json(
        report::report(&state.db, source, &a.principal, id, q.max_gap_s).await?,
    ))
}

/// An unknown code is an empty list, not 404: the code may be real in the
/// trace slice and simply not shipped yet. Overlong input is 404 like a
/// code that was never issued.
async fn trace_code_journey(State(state): State<AppState>, Path(code): Path<String>) -> ApiResult<Json<Value>> {
    if code.len() > journey::MAX_CODE_INPUT {
        return Err(CoreError::missing("unknown_trace_code", "no trace code is that long").into());
    }
    let empty = ListSource::default();
    let source: &dyn crate::coldchain::TemperatureSource = match state.slice::<ColdChainSource>() {
        Some(s) => s.0.as_ref(),
        None => &empty,
    };
    let journeys = journey::journeys_for_trace_code(&state.db, source, &code).await?;
    Ok(Json(json!({ "journeys": journeys })))
}

async fn create_plan(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    ApiJson(body): ApiJson<PlanRequest>,
) -> ApiResult<(StatusCode, Json<Plan>)> {
    let plan = plans::create(&state.db, &a.principal, &a.actor(&ip), body).await?;
    Ok((StatusCode::CREATED, Json(plan)))
}

/// `locks` absent keeps the replaced plan's locks; given, it replaces them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplanRequest {
    #[serde(default)]
    time_limit_s: Option<u64>,
    #[serde(default)]
    locks: Option<Vec<plans::Lock>>,
}

async fn replan_plan(
    State(state): State<AppState>,
    a: Auth,
    ip: ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReplanRequest>,
) -> ApiResult<(StatusCode, Json<Plan>)> {
    let id = parse_id(&id, "plan")?;
    let plan = plans::replan(
        &state.db,
        &a.principal,
        &a.actor(&ip),
        id,
        body.locks,
        body.time_limit_s,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(plan)))
}

async fn get_plan(State(state): State<AppState>, a: Auth, Path(id): Path<String>) -> ApiResult<Json<Plan>> {
    let id = parse_id(&id, "plan")?;
    Ok(Json(plans::get(&state.db, &a.principal, id).await?))
}

#[derive(Deserialize)]
struct StatsQuery {
    region: Option<shuxiang_core::RegionCode>,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
}

async fn region_stats(
    State(state): State<AppState>,
    a: Auth,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    let region = q
        .region
        .ok_or_else(|| shuxiang_core::CoreError::malformed("missing_region", "give ?region= a region code"))?;
    let period = stats::Period { from: q.from, to: q.to };
    Ok(Json(stats::stats_in(&state.db, &a.principal, &region, &period).await?))
}
