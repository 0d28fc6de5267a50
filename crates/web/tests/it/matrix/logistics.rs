//! The authorisation matrix's rows for the logistics network, shipments, dispatch and cold chain.
//!
//! The fixture builds a depot, a vehicle and an empty dispatch plan in each
//! county, a shipment in each county planned on that county's vehicle (the
//! one inside booked by the matrix's farmer), and shipments in the states
//! the state-changing routes need: one booked (re-planning is legal, so
//! every role may plan it), one picked up (handovers may repeat), and one
//! planned shipment per role allowed to pick up. Plans are made for a day
//! without pickups, so the solver has nothing to search.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

#[allow(unused_imports)]
use super::{ADMIN, ADMIN_OFFICIAL, ALL, Call, Fixture, Out, Row, Side, code};
use crate::support::{TestServer, USER_PASSWORD};

/// Routes checked elsewhere (named with the reason). Public by design: a
/// consumer scans without an account; crates/web/tests/it/trace_journey.rs
/// covers it.
pub(super) const SPECIAL: &[&str] = &["GET /api/v1/trace-codes/{code}/journey"];

const OUT_VILLAGE: &str = "360103001001";
const IN_VILLAGE: &str = "360102002001";
const FLEET: &[&str] = &["admin", "official", "carrier"];
const BOOKERS: &[&str] = &["admin", "village_staff", "farmer"];
const READERS: &[&str] = &["admin", "official", "village_staff", "farmer", "carrier"];
const OUT_TRACE_CODE: &str = "OUTSIDE0000000001";

fn plate() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("赣M{:05}", N.fetch_add(1, Ordering::Relaxed))
}

fn site_body(name: &str, county: &str) -> Value {
    json!({"name": name, "kind": "cloud_warehouse", "tier": "county", "region_code": county,
        "lon": 115.89, "lat": 28.68, "cold_storage": true})
}

fn vehicle_body(plate: &str, depot: &str) -> Value {
    json!({"plate": plate, "capacity_kg": 10000, "capacity_m3": 50, "refrigeration": "chilled",
        "depot_site_id": depot.parse::<i64>().unwrap(), "shift_start": "06:00", "shift_end": "20:00", "logger_device_id": 42})
}

fn shipment_body(village: &str, to_site: &str, trace_code: &str) -> Value {
    json!({"goods": "白菜", "commodity": "leafy_vegetables", "weight_kg": 100, "volume_m3": 0.5,
        "temperature_class": "chilled", "ready_at": "2026-01-01T06:00:00Z", "deadline": "2026-01-01T18:00:00Z",
        "origin": {"lon": 115.9, "lat": 28.7, "region_code": village},
        "destination": {"site_id": to_site.parse::<i64>().unwrap()},
        "trace_codes": [trace_code]})
}

fn pickup_body() -> Value {
    json!({"status": "picked_up", "handover": {"from_party": "农户", "to_party": "司机", "signature_name": "王师傅"}})
}

/// A day without pickups, so the solver has nothing to search.
fn plan_body(depot: &str) -> Value {
    json!({"depot_site_id": depot.parse::<i64>().unwrap(), "day": "2030-01-01", "time_limit_s": 1})
}

fn id(v: &Value) -> String {
    v["id"].as_i64().expect("an id").to_string()
}

/// Creates what the rows below refer to, under names in `extra`.
pub(super) async fn fixture(
    srv: &TestServer,
    admin: &str,
    _out_village: &str,
    extra: &mut HashMap<&'static str, String>,
) {
    let post = |path: &'static str, token: String, body: Value, status: u16| async move {
        srv.json(Method::POST, path, Some(&token), Some(body), status).await
    };
    let site_in = id(&post(
        "/api/v1/logistics/sites",
        admin.into(),
        site_body("东湖仓", "360102"),
        201,
    )
    .await);
    let site_out = id(&post(
        "/api/v1/logistics/sites",
        admin.into(),
        site_body("西湖仓", "360103"),
        201,
    )
    .await);
    let vehicle_in = id(&post(
        "/api/v1/logistics/vehicles",
        admin.into(),
        vehicle_body(&plate(), &site_in),
        201,
    )
    .await);
    let out_plate = plate();
    let vehicle_out = id(&post(
        "/api/v1/logistics/vehicles",
        admin.into(),
        vehicle_body(&out_plate, &site_out),
        201,
    )
    .await);

    let farmer = srv.login("rolefarmer", USER_PASSWORD).await;
    let book = |token: String, village: &'static str, code: &'static str| {
        let site_in = site_in.clone();
        async move {
            id(&srv
                .json(
                    Method::POST,
                    "/api/v1/shipments",
                    Some(&token),
                    Some(shipment_body(village, &site_in, code)),
                    201,
                )
                .await)
        }
    };
    let assign = |shipment: String, vehicle: String| async move {
        srv.json(
            Method::POST,
            &format!("/api/v1/shipments/{shipment}/assign"),
            Some(admin),
            Some(json!({"vehicle_id": vehicle.parse::<i64>().unwrap()})),
            200,
        )
        .await;
    };
    let shipment_in = book(farmer, IN_VILLAGE, "IN0000000000001").await;
    assign(shipment_in.clone(), vehicle_in.clone()).await;
    let shipment_out = book(admin.into(), OUT_VILLAGE, OUT_TRACE_CODE).await;
    assign(shipment_out.clone(), vehicle_out.clone()).await;
    let assign_in = book(admin.into(), IN_VILLAGE, "IN0000000000002").await;
    let handover_in = book(admin.into(), IN_VILLAGE, "IN0000000000003").await;
    assign(handover_in.clone(), vehicle_in.clone()).await;
    srv.json(
        Method::POST,
        &format!("/api/v1/shipments/{handover_in}/status"),
        Some(admin),
        Some(pickup_body()),
        200,
    )
    .await;
    for key in ["status_admin", "status_official", "status_carrier"] {
        let s = book(admin.into(), IN_VILLAGE, "IN0000000000004").await;
        assign(s.clone(), vehicle_in.clone()).await;
        extra.insert(key, s);
    }
    for (key, depot) in [("plan_in", &site_in), ("plan_out", &site_out)] {
        let plan = post("/api/v1/dispatch/plans", admin.into(), plan_body(depot), 201).await;
        extra.insert(key, id(&plan));
    }
    // A plan is re-planned once (then it is replaced, 409): one per role allowed.
    for key in ["replan_admin", "replan_official", "replan_carrier"] {
        let plan = post("/api/v1/dispatch/plans", admin.into(), plan_body(&site_in), 201).await;
        extra.insert(key, id(&plan));
    }
    extra.insert("site_in", site_in);
    extra.insert("site_out", site_out);
    extra.insert("vehicle_in", vehicle_in);
    extra.insert("vehicle_out", vehicle_out);
    extra.insert("vehicle_out_plate", out_plate);
    extra.insert("shipment_in", shipment_in);
    extra.insert("shipment_out", shipment_out);
    extra.insert("assign_in", assign_in);
    extra.insert("handover_in", handover_in);
}

fn pick<'a>(f: &'a Fixture, side: Side, inside: &'static str, outside: &'static str) -> &'a str {
    &f.extra[if side == Side::In { inside } else { outside }]
}

pub(super) fn rows(m: &mut HashMap<&'static str, Row>) {
    m.insert(
        "POST /api/v1/logistics/sites",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: "/api/v1/logistics/sites".into(),
                body: Some(site_body("矩阵仓", code(side))),
            },
        },
    );
    m.insert(
        "GET /api/v1/logistics/sites",
        Row {
            allowed: ALL,
            out: Out::NotScoped,
            make: |_, _, _| Call {
                path: "/api/v1/logistics/sites".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/logistics/sites/{id}",
        Row {
            allowed: ALL,
            out: Out::NotScoped,
            make: |f, _, side| Call {
                path: format!("/api/v1/logistics/sites/{}", pick(f, side, "site_in", "site_out")),
                body: None,
            },
        },
    );
    m.insert(
        "PATCH /api/v1/logistics/sites/{id}",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/logistics/sites/{}", pick(f, side, "site_in", "site_out")),
                body: Some(json!({"opening_hours": "07:00-19:00"})),
            },
        },
    );
    m.insert(
        "POST /api/v1/logistics/vehicles",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: "/api/v1/logistics/vehicles".into(),
                body: Some(vehicle_body(&plate(), pick(f, side, "site_in", "site_out"))),
            },
        },
    );
    m.insert(
        "GET /api/v1/logistics/vehicles",
        Row {
            allowed: FLEET,
            out: Out::Filtered(|f| f.extra["vehicle_out_plate"].clone()),
            make: |_, _, _| Call {
                path: "/api/v1/logistics/vehicles?limit=1000".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/logistics/vehicles/{id}",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/logistics/vehicles/{}",
                    pick(f, side, "vehicle_in", "vehicle_out")
                ),
                body: None,
            },
        },
    );
    m.insert(
        "PATCH /api/v1/logistics/vehicles/{id}",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/logistics/vehicles/{}",
                    pick(f, side, "vehicle_in", "vehicle_out")
                ),
                body: Some(json!({"capacity_kg": 12000})),
            },
        },
    );
    m.insert(
        "POST /api/v1/shipments",
        Row {
            allowed: BOOKERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: "/api/v1/shipments".into(),
                body: Some(shipment_body(
                    if side == Side::In { IN_VILLAGE } else { OUT_VILLAGE },
                    &f.extra["site_in"],
                    "MATRIX00000001",
                )),
            },
        },
    );
    m.insert(
        "GET /api/v1/shipments",
        Row {
            allowed: READERS,
            out: Out::Filtered(|_| OUT_TRACE_CODE.into()),
            make: |_, _, _| Call {
                path: "/api/v1/shipments?limit=1000".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/shipments/{id}",
        Row {
            allowed: READERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/shipments/{}", pick(f, side, "shipment_in", "shipment_out")),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/shipments/{id}/assign",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/shipments/{}/assign",
                    pick(f, side, "assign_in", "shipment_out")
                ),
                body: Some(json!({"vehicle_id": pick(f, side, "vehicle_in", "vehicle_out").parse::<i64>().unwrap()})),
            },
        },
    );
    m.insert(
        "POST /api/v1/shipments/{id}/status",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, role, side| {
                let inside = match role {
                    "official" => "status_official",
                    "carrier" => "status_carrier",
                    _ => "status_admin",
                };
                Call {
                    path: format!("/api/v1/shipments/{}/status", pick(f, side, inside, "shipment_out")),
                    body: Some(pickup_body()),
                }
            },
        },
    );
    m.insert(
        "POST /api/v1/shipments/{id}/handovers",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/shipments/{}/handovers",
                    pick(f, side, "handover_in", "shipment_out")
                ),
                body: Some(json!({"from_party": "司机", "to_party": "中转站", "signature_name": "李"})),
            },
        },
    );
    m.insert(
        "GET /api/v1/shipments/{id}/cold-chain",
        Row {
            allowed: READERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/shipments/{}/cold-chain",
                    pick(f, side, "shipment_in", "shipment_out")
                ),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/dispatch/plans",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: "/api/v1/dispatch/plans".into(),
                body: Some(plan_body(pick(f, side, "site_in", "site_out"))),
            },
        },
    );
    m.insert(
        "POST /api/v1/dispatch/plans/{id}/replan",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: format!(
                    "/api/v1/dispatch/plans/{}/replan",
                    match (side, role) {
                        (Side::In, "admin") => f.extra["replan_admin"].as_str(),
                        (Side::In, "official") => f.extra["replan_official"].as_str(),
                        (Side::In, "carrier") => f.extra["replan_carrier"].as_str(),
                        _ => pick(f, side, "plan_in", "plan_out"),
                    }
                ),
                body: Some(json!({"time_limit_s": 1})),
            },
        },
    );
    m.insert(
        "GET /api/v1/dispatch/plans/{id}",
        Row {
            allowed: FLEET,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/dispatch/plans/{}", pick(f, side, "plan_in", "plan_out")),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/logistics/stats",
        Row {
            allowed: &["admin", "official", "village_staff"],
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: format!("/api/v1/logistics/stats?region={}", code(side)),
                body: None,
            },
        },
    );
}
