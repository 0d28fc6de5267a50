//! The logistics slice over the API: the network kept by officials and
//! carriers, a shipment's life from booking to proof of delivery, the
//! cold-chain report, and the error contract (400/401/403/404/409/422).

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{assert_error, client};

const SITES: &str = "/api/v1/logistics/sites";
const VEHICLES: &str = "/api/v1/logistics/vehicles";
const SHIPMENTS: &str = "/api/v1/shipments";

fn warehouse(county: &str) -> Value {
    json!({"name": "东湖区供销云仓", "kind": "cloud_warehouse", "tier": "county", "region_code": county,
        "lon": 115.89, "lat": 28.68, "capacity_kg": 500000, "cold_storage": true, "opening_hours": "08:00-18:00"})
}

fn truck(plate: &str, depot: i64) -> Value {
    json!({"plate": plate, "capacity_kg": 2000, "capacity_m3": 12, "refrigeration": "chilled",
        "depot_site_id": depot, "shift_start": "06:00", "shift_end": "18:00", "logger_device_id": 42})
}

fn pickup(depot: i64) -> Value {
    json!({"goods": "白菜 20 箱", "commodity": "leafy_vegetables", "weight_kg": 200, "volume_m3": 1.5,
        "temperature_class": "chilled", "ready_at": "2026-01-01T06:00:00Z", "deadline": "2099-01-01T18:00:00Z",
        "origin": {"lon": 115.9, "lat": 28.7, "region_code": "360102002001", "name": "村口"},
        "destination": {"site_id": depot}, "trace_codes": ["3601020020010001"]})
}

server_test!(async fn officials_keep_the_network_and_carriers_their_fleet(srv) {
    let official = srv.user_with("wuliuju", "official", "360102").await;
    let carrier = srv.user_with("lenglian", "carrier", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", "360102002001").await;
    let dealer = srv.user_with("nongzi", "dealer", "360102").await;

    let site = srv.json(Method::POST, SITES, Some(&official), Some(warehouse("360102")), 201).await;
    assert_eq!((site["tier"].as_str(), site["cold_storage"].as_bool()), (Some("county"), Some(true)));
    let site_id = site["id"].as_i64().unwrap();
    assert_error(srv.call(Method::POST, SITES, Some(&official), Some(warehouse("360103"))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, SITES, Some(&farmer), Some(warehouse("360102"))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, SITES, Some(&official), Some(warehouse("360102002001"))).await, 422, "tier_mismatch").await;
    let mut bad = warehouse("360102");
    bad["kind"] = json!("castle");
    assert_error(srv.call(Method::POST, SITES, Some(&official), Some(bad)).await, 422, "invalid_body").await;
    let raw = client().post(srv.url(SITES)).bearer_auth(&official).header("content-type", "application/json").body("{\"name\":").send().await.unwrap();
    assert_error(raw, 400, "malformed_json").await;

    // Everyone signed in reads the network; nobody anonymous does.
    let listed = srv.json(Method::GET, &format!("{SITES}?region=3601&kind=cloud_warehouse"), Some(&farmer), None, 200).await;
    assert_eq!(listed["sites"], json!([site]));
    assert_eq!(srv.json(Method::GET, &format!("{SITES}/{site_id}"), Some(&dealer), None, 200).await, site);
    assert_error(srv.call(Method::GET, SITES, None, None).await, 401, "unauthenticated").await;
    assert_error(srv.call(Method::GET, &format!("{SITES}/999"), Some(&farmer), None).await, 404, "not_found").await;
    assert_error(srv.call(Method::GET, &format!("{SITES}/x"), Some(&farmer), None).await, 400, "invalid_id").await;
    assert_error(srv.call(Method::GET, &format!("{SITES}?tier=moon"), Some(&farmer), None).await, 400, "invalid_query").await;

    // The carrier registers its truck; dealers and farmers do not see the fleet.
    let v = srv.json(Method::POST, VEHICLES, Some(&carrier), Some(truck("赣A12345", site_id)), 201).await;
    assert_eq!((v["refrigeration"].as_str(), v["region_code"].as_str()), (Some("chilled"), Some("360102")));
    assert_error(srv.call(Method::POST, VEHICLES, Some(&carrier), Some(truck("赣A12345", site_id))).await, 409, "plate_taken").await;
    assert_error(srv.call(Method::POST, VEHICLES, Some(&carrier), Some(truck("12345", site_id))).await, 422, "invalid_plate").await;
    let mut reversed = truck("赣A99999", site_id);
    reversed["shift_end"] = json!("05:00");
    assert_error(srv.call(Method::POST, VEHICLES, Some(&carrier), Some(reversed)).await, 422, "invalid_shift").await;
    assert_error(srv.call(Method::GET, VEHICLES, Some(&dealer), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, VEHICLES, Some(&farmer), None).await, 403, "forbidden").await;
    let fleet = srv.json(Method::GET, VEHICLES, Some(&carrier), None, 200).await;
    assert_eq!(fleet["vehicles"], json!([v]));
    let vid = v["id"].as_i64().unwrap();
    let changed = srv.json(Method::PATCH, &format!("{VEHICLES}/{vid}"), Some(&carrier), Some(json!({"capacity_kg": 2500})), 200).await;
    assert_eq!(changed["capacity_kg"], 2500.0);
    assert_error(srv.call(Method::PATCH, &format!("{VEHICLES}/{vid}"), Some(&carrier), Some(json!({"plate": "赣A1"}))).await, 422, "invalid_body").await;

    // Site changes are audited from → to, in the site's county.
    srv.json(Method::PATCH, &format!("{SITES}/{site_id}"), Some(&official), Some(json!({"opening_hours": "07:00-19:00"})), 200).await;
    let log = srv.json(Method::GET, "/api/v1/audit?action=logistics_site.update", Some(&official), None, 200).await;
    assert_eq!(log["entries"][0]["detail"], json!({"opening_hours": {"from": "08:00-18:00", "to": "07:00-19:00"}}));
    assert_eq!(log["entries"][0]["actor"], "wuliuju");
});

server_test!(async fn a_shipment_from_booking_to_proof_of_delivery(srv) {
    let official = srv.user_with("wuliuju", "official", "360102").await;
    let carrier = srv.user_with("lenglian", "carrier", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", "360102002001").await;
    let neighbour = srv.user_with("linju", "farmer", "360102002001").await;
    let site_id = srv.json(Method::POST, SITES, Some(&official), Some(warehouse("360102")), 201).await["id"].as_i64().unwrap();
    let vid = srv.json(Method::POST, VEHICLES, Some(&carrier), Some(truck("赣A12345", site_id)), 201).await["id"].as_i64().unwrap();

    let booked = srv.json(Method::POST, SHIPMENTS, Some(&farmer), Some(pickup(site_id)), 201).await;
    assert_eq!((booked["status"].as_str(), booked["band"]["max_c"].as_f64()), (Some("booked"), Some(4.0)));
    let id = booked["id"].as_i64().unwrap();
    let one = format!("{SHIPMENTS}/{id}");

    // Validation and scope of booking.
    let mut heavy = pickup(site_id);
    heavy["weight_kg"] = json!(-5);
    assert_error(srv.call(Method::POST, SHIPMENTS, Some(&farmer), Some(heavy)).await, 422, "invalid_weight").await;
    let mut codes = pickup(site_id);
    codes["trace_codes"] = json!(["ok", "not ok"]);
    assert_error(srv.call(Method::POST, SHIPMENTS, Some(&farmer), Some(codes)).await, 422, "invalid_trace_codes").await;
    let mut elsewhere = pickup(site_id);
    elsewhere["origin"]["region_code"] = json!("360103001001");
    assert_error(srv.call(Method::POST, SHIPMENTS, Some(&farmer), Some(elsewhere)).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, SHIPMENTS, Some(&carrier), Some(pickup(site_id))).await, 403, "forbidden").await;

    // Before planning, the carrier and the neighbour do not see it.
    assert_error(srv.call(Method::GET, &one, Some(&carrier), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &one, Some(&neighbour), None).await, 403, "forbidden").await;
    assert_eq!(srv.json(Method::GET, SHIPMENTS, Some(&neighbour), None, 200).await["shipments"], json!([]));
    assert_error(srv.call(Method::POST, &format!("{one}/status"), Some(&official), Some(json!({"status": "in_transit"}))).await, 409, "illegal_transition").await;

    let planned = srv.json(Method::POST, &format!("{one}/assign"), Some(&official), Some(json!({"vehicle_id": vid})), 200).await;
    assert_eq!(planned["status"], "planned");
    let seen = srv.json(Method::GET, SHIPMENTS, Some(&carrier), None, 200).await;
    assert_eq!(seen["shipments"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect::<Vec<_>>(), [id]);
    assert_error(srv.call(Method::POST, &format!("{one}/status"), Some(&carrier), Some(json!({"status": "picked_up"}))).await, 422, "missing_handover").await;
    let up = srv.json(Method::POST, &format!("{one}/status"), Some(&carrier), Some(json!({"status": "picked_up",
        "handover": {"from_party": "李四", "to_party": "赣A12345 司机", "temperature_c": 3.1, "signature_name": "王师傅"}})), 200).await;
    assert_eq!((up["status"].as_str(), up["handovers"][0]["temperature_c"].as_f64()), (Some("picked_up"), Some(3.1)));
    assert_error(srv.call(Method::POST, &format!("{one}/status"), Some(&farmer), Some(json!({"status": "cancelled"}))).await, 409, "illegal_transition").await;
    assert_error(srv.call(Method::POST, &format!("{one}/status"), Some(&farmer), Some(json!({"status": "in_transit"}))).await, 403, "forbidden").await;
    srv.json(Method::POST, &format!("{one}/status"), Some(&carrier), Some(json!({"status": "in_transit"})), 200).await;
    let hub = srv.json(Method::POST, &format!("{one}/handovers"), Some(&carrier), Some(json!({"from_party": "司机", "to_party": "中转站", "signature_name": "赵"})), 201).await;
    assert_eq!(hub["handovers"].as_array().unwrap().len(), 2);
    assert_error(srv.call(Method::POST, &format!("{one}/status"), Some(&carrier), Some(json!({"status": "delivered"}))).await, 422, "missing_proof_of_delivery").await;
    let done = srv.json(Method::POST, &format!("{one}/status"), Some(&carrier), Some(json!({"status": "delivered",
        "proof_of_delivery": {"receiver_name": "仓管 张三", "note": "完好"}})), 200).await;
    assert_eq!((done["status"].as_str(), done["on_time"].as_bool(), done["receiver_name"].as_str()), (Some("delivered"), Some(true), Some("仓管 张三")));
    assert_error(srv.call(Method::POST, &format!("{one}/handovers"), Some(&carrier), Some(json!({"from_party": "a", "to_party": "b", "signature_name": "c"}))).await, 409, "not_under_way").await;

    // The booker reads it all back, trace codes included.
    let mine = srv.json(Method::GET, &one, Some(&farmer), None, 200).await;
    assert_eq!(mine, done);
    assert_eq!(mine["trace_codes"], json!(["3601020020010001"]));

    // The cold-chain report: no temperature source is wired into this
    // server, so the logger's readings are missing and nothing is claimed.
    let report = srv.json(Method::GET, &format!("{one}/cold-chain"), Some(&farmer), None, 200).await;
    assert_eq!((report["verdict"].as_str(), report["logger_device_id"].as_i64()), (Some("no_data"), Some(42)));
    assert_eq!(report["legs"].as_array().unwrap().len(), 2);
    assert_eq!(report["band"], json!({"min_c": 0.0, "max_c": 4.0}));
    assert_error(srv.call(Method::GET, &format!("{one}/cold-chain?max_gap_s=0"), Some(&farmer), None).await, 422, "invalid_max_gap").await;
    assert_error(srv.call(Method::GET, &format!("{one}/cold-chain"), Some(&neighbour), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &format!("{one}/cold-chain"), None, None).await, 401, "unauthenticated").await;
    assert_error(srv.call(Method::GET, &format!("{SHIPMENTS}/999"), Some(&official), None).await, 404, "not_found").await;

    // The county's numbers count the delivery as on time.
    let numbers = srv.json(Method::GET, "/api/v1/logistics/stats?region=360102", Some(&official), None, 200).await;
    assert_eq!((numbers["totals"]["delivered"].as_i64(), numbers["totals"]["on_time_rate"].as_f64()), (Some(1), Some(1.0)));
    assert_eq!(numbers["by_region"][0]["region_code"], "360102002001");
    assert_error(srv.call(Method::GET, "/api/v1/logistics/stats", Some(&official), None).await, 400, "missing_region").await;
    assert_error(srv.call(Method::GET, "/api/v1/logistics/stats?region=360103", Some(&official), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, "/api/v1/logistics/stats?region=360102", Some(&farmer), None).await, 403, "forbidden").await;

    // Every step is in the audit log of the county.
    let log = srv.json(Method::GET, "/api/v1/audit?action=shipment.status", Some(&official), None, 200).await;
    let steps: Vec<&str> = log["entries"].as_array().unwrap().iter().map(|e| e["detail"]["to"].as_str().unwrap()).collect();
    assert_eq!(steps, ["delivered", "in_transit", "picked_up"]);
});

server_test!(async fn a_depots_day_is_planned_over_the_api(srv) {
    let official = srv.user_with("wuliuju", "official", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", "360102002001").await;
    let west = srv.user_with("xihu", "carrier", "360103").await;
    let depot = srv.json(Method::POST, SITES, Some(&official), Some(warehouse("360102")), 201).await["id"].as_i64().unwrap();
    let vid = srv.json(Method::POST, VEHICLES, Some(&official), Some(truck("赣A12345", depot)), 201).await["id"].as_i64().unwrap();
    let mut veg = pickup(depot);
    veg["ready_at"] = json!("2026-03-01T07:00:00+08:00");
    veg["deadline"] = json!("2026-03-01T17:00:00+08:00");
    let sid = srv.json(Method::POST, SHIPMENTS, Some(&farmer), Some(veg.clone()), 201).await["id"].as_i64().unwrap();
    veg["temperature_class"] = json!("frozen");
    veg["commodity"] = json!("frozen_pork");
    let frozen = srv.json(Method::POST, SHIPMENTS, Some(&farmer), Some(veg), 201).await["id"].as_i64().unwrap();

    let body = json!({"depot_site_id": depot, "day": "2026-03-01", "time_limit_s": 1});
    assert_error(srv.call(Method::POST, "/api/v1/dispatch/plans", Some(&farmer), Some(body.clone())).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, "/api/v1/dispatch/plans", Some(&west), Some(body.clone())).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, "/api/v1/dispatch/plans", Some(&official), Some(json!({"depot_site_id": depot, "day": "2026-02-30"}))).await, 422, "invalid_body").await;
    let plan = srv.json(Method::POST, "/api/v1/dispatch/plans", Some(&official), Some(body), 201).await;
    assert_eq!(plan["routes"].as_array().unwrap().len(), 1);
    assert_eq!((plan["routes"][0]["vehicle_id"].as_i64(), plan["routes"][0]["stops"][0]["shipment_id"].as_i64()), (Some(vid), Some(sid)));
    assert_eq!(plan["unassigned"], json!([{"shipment_id": frozen, "reason": "skills"}]));
    let shipment = srv.json(Method::GET, &format!("{SHIPMENTS}/{sid}"), Some(&farmer), None, 200).await;
    assert_eq!((shipment["status"].as_str(), shipment["vehicle_id"].as_i64()), (Some("planned"), Some(vid)));

    let path = format!("/api/v1/dispatch/plans/{}", plan["id"]);
    assert_eq!(srv.json(Method::GET, &path, Some(&official), None, 200).await, plan);
    assert_error(srv.call(Method::GET, &path, Some(&west), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &path, None, None).await, 401, "unauthenticated").await;
    assert_error(srv.call(Method::GET, "/api/v1/dispatch/plans/999", Some(&official), None).await, 404, "not_found").await;
});
