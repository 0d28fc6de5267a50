//! The dispatch planner's pages over a real server: planning a depot's day
//! from a plain form, the plan's route map and tables, the driver's run
//! sheet in stop order, moving a stop by locking it and re-planning (the
//! locks kept, marked and changed one at a time; the replaced plan shown as
//! history), and the scope rules the pages share with the API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{TestServer, client};

const COUNTY: &str = "360102";
const VILLAGE: &str = "360102002001";

async fn page(srv: &TestServer, path: &str, token: &str) -> (u16, String) {
    let r = client().get(srv.url(path)).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Posts a urlencoded form as a browser without JavaScript would.
async fn post_form(srv: &TestServer, path: &str, token: &str, fields: &[(&str, String)]) -> reqwest::Response {
    client()
        .post(srv.url(path))
        .bearer_auth(token)
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// The plan a 303 from a form leads to.
async fn followed(srv: &TestServer, r: reqwest::Response, token: &str) -> Value {
    let status = r.status();
    let to = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    let body = r.text().await.unwrap();
    assert_eq!(status, 303, "{body}");
    let to = to.expect("a redirect has a location");
    let id = to.strip_prefix("/dispatch/plans/").expect("to the new plan's page");
    srv.json(
        Method::GET,
        &format!("/api/v1/dispatch/plans/{id}"),
        Some(token),
        None,
        200,
    )
    .await
}

fn truck(plate: &str, depot: i64, refrigeration: &str) -> Value {
    json!({"plate": plate, "capacity_kg": 2000, "capacity_m3": 12, "refrigeration": refrigeration,
        "depot_site_id": depot, "shift_start": "06:00", "shift_end": "18:00"})
}

/// A pickup on 1 March 2026 (China time) `k` steps from the depot.
fn pickup(depot: i64, goods: &str, class: &str, commodity: &str, k: u32) -> Value {
    let step = f64::from(k);
    json!({"goods": goods, "commodity": commodity, "weight_kg": 150, "volume_m3": 1,
        "temperature_class": class, "ready_at": "2026-03-01T07:00:00+08:00", "deadline": "2026-03-01T17:00:00+08:00",
        "origin": {"lon": 115.89 + 0.01 * step, "lat": 28.68 + 0.006 * step, "region_code": VILLAGE, "name": format!("{goods}收购点")},
        "destination": {"site_id": depot}, "trace_codes": [format!("36010200200100{k:02}")]})
}

fn stops_of(plan: &Value, vehicle: i64) -> Vec<i64> {
    plan["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["vehicle_id"] == vehicle)
        .flat_map(|r| {
            r["stops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["shipment_id"].as_i64().unwrap())
        })
        .collect()
}

/// The table row of a pickup on a plan's page.
fn row(html: &str, shipment: i64) -> &str {
    let start = html
        .find(&format!("<tr data-shipment=\"{shipment}\">"))
        .expect("the pickup has a row");
    let len = html[start..].find("</tr>").expect("the row ends");
    &html[start..start + len]
}

/// A plan's locks as (shipment, vehicle) pairs.
fn locks_of(plan: &Value) -> Vec<(i64, i64)> {
    plan["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["shipment_id"].as_i64().unwrap(), l["vehicle_id"].as_i64().unwrap()))
        .collect()
}

fn vehicle_of(plan: &Value, shipment: i64) -> Option<i64> {
    plan["routes"].as_array().unwrap().iter().find_map(|r| {
        r["stops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["shipment_id"] == shipment)
            .then(|| r["vehicle_id"].as_i64().unwrap())
    })
}

server_test!(async fn planners_plan_see_routes_print_run_sheets_and_move_stops(srv) {
    let official = srv.user_with("wuliuju", "official", COUNTY).await;
    let carrier = srv.user_with("lenglian", "carrier", COUNTY).await;
    let farmer = srv.user_with("nonghu", "farmer", VILLAGE).await;
    let depot = srv.json(Method::POST, "/api/v1/logistics/sites", Some(&official), Some(json!({
        "name": "东湖区运营中心", "kind": "operation_centre", "tier": "county", "region_code": COUNTY,
        "lon": 115.89, "lat": 28.68, "cold_storage": true})), 201).await["id"].as_i64().unwrap();
    let reefer = srv.json(Method::POST, "/api/v1/logistics/vehicles", Some(&carrier), Some(truck("赣A12345", depot, "chilled")), 201).await["id"].as_i64().unwrap();
    let van = srv.json(Method::POST, "/api/v1/logistics/vehicles", Some(&carrier), Some(truck("赣A20000", depot, "ambient")), 201).await["id"].as_i64().unwrap();
    let mut booked = Vec::new();
    for (k, (goods, class, commodity)) in [("白菜", "chilled", "leafy_vegetables"), ("芹菜", "chilled", "leafy_vegetables"),
        ("大米", "ambient", "rice"), ("茶油", "ambient", "oil"), ("冻肉", "frozen", "frozen_pork")].into_iter().enumerate() {
        let s = srv.json(Method::POST, "/api/v1/shipments", Some(&farmer), Some(pickup(depot, goods, class, commodity, k as u32 + 1)), 201).await;
        booked.push(s["id"].as_i64().unwrap());
    }
    let (cabbage, celery, rice, oil, frozen) = (booked[0], booked[1], booked[2], booked[3], booked[4]);

    // The region's page offers the depot; the plan form is a plain post.
    let (status, html) = page(srv, &format!("/dispatch?region={COUNTY}"), &carrier).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("<option value=\"{depot}\"")) && html.contains("东湖区运营中心"), "{html}");
    assert!(!html.contains("<script"), "the pages need no JavaScript");
    let form = [("depot_site_id", depot.to_string()), ("day", "2026-03-01".into()), ("time_limit_s", "1".into())];
    let plan = followed(srv, post_form(srv, &format!("/dispatch/plans?region={COUNTY}"), &carrier, &form).await, &carrier).await;
    let plan_id = plan["id"].as_i64().unwrap();
    let unassigned: Vec<(i64, &str)> = plan["unassigned"].as_array().unwrap().iter()
        .map(|u| (u["shipment_id"].as_i64().unwrap(), u["reason"].as_str().unwrap())).collect();
    assert_eq!(unassigned, [(frozen, "skills")]);
    for veg in [cabbage, celery] {
        assert_eq!(vehicle_of(&plan, veg), Some(reefer), "chilled goods ride on the reefer");
    }
    let used = plan["routes"].as_array().unwrap().len();
    assert!(used >= 1);

    // The plan's page: one line per used vehicle, every stop in a table,
    // the unassigned pickup with its reason, a lock form per stop.
    let (status, html) = page(srv, &format!("/dispatch/plans/{plan_id}"), &carrier).await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<polyline class=\"route\"").count(), used, "{html}");
    assert_eq!(html.matches("<g class=\"stop\">").count(), 4);
    for id in [cabbage, celery, rice, oil] {
        assert!(html.contains(&format!("<tr data-shipment=\"{id}\">")), "stop {id} is listed");
    }
    assert!(html.contains("没有温层相符的车辆") && html.contains("冻肉"));
    assert_eq!(html.matches("action=\"/dispatch/plans/").count(), 5 + 1, "a lock form per pickup and a re-plan form");
    let (_, en) = page(srv, &format!("/dispatch/plans/{plan_id}?lang=en"), &carrier).await;
    assert!(en.contains("Lock and re-plan"), "{en}");
    assert!(en.contains("no vehicle of its temperature class"));
    let (_, list) = page(srv, &format!("/dispatch?region={COUNTY}"), &official).await;
    assert!(list.contains(&format!("href=\"/dispatch/plans/{plan_id}\"")));

    // The reefer's run sheet lists its stops in the planned order.
    let (status, sheet) = page(srv, &format!("/dispatch/plans/{plan_id}/vehicles/{reefer}/run-sheet"), &carrier).await;
    assert_eq!(status, 200);
    assert!(sheet.contains("赣A12345") && sheet.contains("06:00–18:00") && sheet.contains("交接签字"));
    let order = stops_of(&plan, reefer);
    let at: Vec<usize> = order.iter().map(|id| sheet.find(&format!("data-shipment=\"{id}\"")).expect("stop on the sheet")).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "stops in route order: {order:?} at {at:?}");
    assert!(sheet.contains("3601020020010001") && sheet.contains("白菜收购点"), "trace codes and places");
    assert_eq!(sheet.matches("<td class=\"sign\">").count(), order.len() + 2, "a signature cell per stop and at the depot");
    assert!(sheet.contains("class=\"no-print\""));
    let (status, _) = page(srv, &format!("/dispatch/plans/{plan_id}/vehicles/999999/run-sheet"), &carrier).await;
    assert_eq!(status, 404, "no route of that vehicle in the plan");

    // Move the rice to the other vehicle: a new plan with the rice there.
    let target = if vehicle_of(&plan, rice) == Some(van) { reefer } else { van };
    let lock = [("shipment_id", rice.to_string()), ("vehicle_id", target.to_string())];
    let moved = followed(srv, post_form(srv, &format!("/dispatch/plans/{plan_id}/replan"), &official, &lock).await, &official).await;
    assert_ne!(moved["id"], plan_id);
    assert_eq!(vehicle_of(&moved, rice), Some(target));
    for id in [cabbage, celery, oil] {
        assert!(vehicle_of(&moved, id).is_some(), "the plan's other stops are planned again");
    }
    let shipment = srv.json(Method::GET, &format!("/api/v1/shipments/{rice}"), Some(&official), None, 200).await;
    assert_eq!((shipment["status"].as_str(), shipment["vehicle_id"].as_i64()), (Some("planned"), Some(target)));

    // The new plan keeps the lock: the stop is marked, its form offers the
    // locked vehicle first and a way to release it, the re-plan card lists it.
    let moved_id = moved["id"].as_i64().unwrap();
    assert_eq!(locks_of(&moved), [(rice, target)]);
    assert_eq!(moved["replan_of"], plan_id);
    let (status, html) = page(srv, &format!("/dispatch/plans/{moved_id}"), &carrier).await;
    assert_eq!(status, 200);
    let rice_row = row(&html, rice);
    assert!(rice_row.contains("🔒 已锁定"), "{rice_row}");
    assert!(rice_row.contains(&format!("<option value=\"{target}\" selected>")) && rice_row.contains("<option value=\"\">解除锁定</option>"), "{rice_row}");
    for id in [cabbage, celery, oil] {
        assert!(!row(&html, id).contains("已锁定"), "stop {id} is not locked");
    }
    assert!(html.contains(&format!("🔒 已锁定 #{rice} → ")), "the re-plan card lists the kept lock: {html}");
    assert!(html.contains(&format!("href=\"/dispatch/plans/{plan_id}\" class=\"replan-of\"")));
    assert!(!html.contains("id=\"replaced\""));
    let (_, en) = page(srv, &format!("/dispatch/plans/{moved_id}?lang=en"), &carrier).await;
    assert!(row(&en, rice).contains("🔒 Locked") && row(&en, rice).contains(">Unlock</option>"), "{en}");

    // The earlier plan is history: a banner links the plan that replaced it,
    // and it offers nothing to re-plan.
    let (status, html) = page(srv, &format!("/dispatch/plans/{plan_id}"), &carrier).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("<a href=\"/dispatch/plans/{moved_id}\">此计划已被计划 #{moved_id} 取代</a>")), "{html}");
    assert!(!html.contains("action=\"/dispatch/plans/"), "no lock or re-plan form on a replaced plan");
    let (_, en) = page(srv, &format!("/dispatch/plans/{plan_id}?lang=en"), &carrier).await;
    assert!(en.contains(&format!("Replaced by plan #{moved_id}")));
    // The list marks it, and can leave it out.
    let (_, list) = page(srv, &format!("/dispatch?region={COUNTY}"), &official).await;
    assert!(list.contains(&format!("<a href=\"/dispatch/plans/{moved_id}\">已被 #{moved_id} 取代</a>")), "{list}");
    assert_eq!(list.matches("<tr class=\"replaced\">").count(), 1);
    let (_, current) = page(srv, &format!("/dispatch?region={COUNTY}&current=true"), &official).await;
    assert!(current.contains(&format!("href=\"/dispatch/plans/{moved_id}\"")) && !current.contains(&format!("href=\"/dispatch/plans/{plan_id}\"")), "{current}");
    // A form posted from the stale page is refused with the newer plan's number.
    let r = post_form(srv, &format!("/dispatch/plans/{plan_id}/replan"), &carrier, &[]).await;
    assert_eq!(r.status(), 409);
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\"") && html.contains(&format!("replaced by plan {moved_id}")) && html.contains("id=\"replaced\""), "{html}");

    // Chilled goods locked to the van: unassigned with the reason, no error;
    // the rice keeps its lock, and the unassigned row shows the new one.
    let lock = [("shipment_id", cabbage.to_string()), ("vehicle_id", van.to_string()), ("time_limit_s", "1".into())];
    let stuck = followed(srv, post_form(srv, &format!("/dispatch/plans/{moved_id}/replan"), &carrier, &lock).await, &carrier).await;
    assert!(stuck["unassigned"].as_array().unwrap().iter().any(|u| u["shipment_id"] == cabbage && u["reason"] == "skills"), "{stuck}");
    let mut both = vec![(rice, target), (cabbage, van)];
    both.sort_unstable();
    assert_eq!(locks_of(&stuck), both);
    let stuck_id = stuck["id"].as_i64().unwrap();
    let (_, html) = page(srv, &format!("/dispatch/plans/{stuck_id}"), &carrier).await;
    let cabbage_row = row(&html, cabbage);
    assert!(cabbage_row.contains("🔒 已锁定") && cabbage_row.contains(&format!("<option value=\"{van}\" selected>")), "{cabbage_row}");
    // The plain re-plan keeps both locks; releasing one keeps the other.
    let kept = followed(srv, post_form(srv, &format!("/dispatch/plans/{stuck_id}/replan"), &carrier, &[("time_limit_s", "1".into())]).await, &carrier).await;
    assert_eq!(locks_of(&kept), both);
    let kept_id = kept["id"].as_i64().unwrap();
    let unlock = [("shipment_id", cabbage.to_string()), ("vehicle_id", String::new()), ("time_limit_s", "1".into())];
    let released = followed(srv, post_form(srv, &format!("/dispatch/plans/{kept_id}/replan"), &carrier, &unlock).await, &carrier).await;
    assert_eq!(locks_of(&released), [(rice, target)]);
    assert_eq!(vehicle_of(&released, cabbage), Some(reefer), "released, the cabbage rides on the reefer again");
    // A lock to no vehicle of the depot is shown on the plan's page.
    let released_id = released["id"].as_i64().unwrap();
    let lock = [("shipment_id", rice.to_string()), ("vehicle_id", "999999".to_string())];
    let r = post_form(srv, &format!("/dispatch/plans/{released_id}/replan"), &carrier, &lock).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\"") && html.contains("999999"), "{html}");
    // A bad day on the plan form is shown with the form.
    let bad = [("depot_site_id", depot.to_string()), ("day", "tomorrow".into())];
    let r = post_form(srv, &format!("/dispatch/plans?region={COUNTY}"), &carrier, &bad).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("YYYY-MM-DD"));
});

server_test!(async fn only_the_countys_operators_open_the_planner(srv) {
    let official = srv.user_with("wuliuju", "official", COUNTY).await;
    let carrier = srv.user_with("lenglian", "carrier", COUNTY).await;
    let depot = srv.json(Method::POST, "/api/v1/logistics/sites", Some(&official), Some(json!({
        "name": "东湖区运营中心", "kind": "operation_centre", "tier": "county", "region_code": COUNTY,
        "lon": 115.89, "lat": 28.68})), 201).await["id"].as_i64().unwrap();
    let truck_id = srv.json(Method::POST, "/api/v1/logistics/vehicles", Some(&carrier), Some(truck("赣A12345", depot, "chilled")), 201).await["id"].as_i64().unwrap();
    let plan = srv.json(Method::POST, "/api/v1/dispatch/plans", Some(&carrier), Some(json!({"depot_site_id": depot, "day": "2026-03-01", "time_limit_s": 1})), 201).await;
    let plan_id = plan["id"].as_i64().unwrap();

    let outsider = srv.user_with("xihu", "carrier", "360103").await;
    let outside_official = srv.user_with("xihuju", "official", "360103").await;
    let farmer = srv.user_with("nonghu", "farmer", VILLAGE).await;
    for token in [&outsider, &outside_official, &farmer] {
        for path in [format!("/dispatch?region={COUNTY}"), format!("/dispatch/plans/{plan_id}"),
            format!("/dispatch/plans/{plan_id}/vehicles/{truck_id}/run-sheet")] {
            let (status, html) = page(srv, &path, token).await;
            assert_eq!(status, 403, "{path}");
            assert!(html.contains("<!doctype html>"), "the denial is a page");
        }
        let r = post_form(srv, &format!("/dispatch/plans/{plan_id}/replan"), token, &[]).await;
        assert_eq!(r.status(), 403);
        let form = [("depot_site_id", depot.to_string()), ("day", "2026-03-01".into())];
        let r = post_form(srv, &format!("/dispatch/plans?region={COUNTY}"), token, &form).await;
        assert_eq!(r.status(), 403);
    }
    // Their own region shows no depot to plan for the outsider.
    let (status, html) = page(srv, "/dispatch", &outsider).await;
    assert_eq!(status, 200);
    assert!(!html.contains(&format!("<option value=\"{depot}\"")));
    // Signed out, the planner sends the browser to sign in.
    let r = client().get(srv.url(&format!("/dispatch/plans/{plan_id}"))).send().await.unwrap();
    assert_eq!(r.status(), 303);
});
