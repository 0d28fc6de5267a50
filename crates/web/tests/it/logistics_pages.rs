//! The officials' logistics pages over a real server: the region overview's
//! per-village numbers computed from booked and delivered shipments, scope
//! denials, and the printable cold-chain report read from a reefer logger's
//! telemetry, with and without an excursion.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{TestServer, client};

const VILLAGE: &str = "360102002001";

fn rfc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339()
}

async fn page(srv: &TestServer, path: &str, token: &str) -> (u16, String) {
    let r = client().get(srv.url(path)).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The text from `start` to the next `end`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html.find(start).unwrap_or_else(|| panic!("no {start}"));
    let to = html[from..].find(end).unwrap() + from;
    &html[from..to]
}

fn mkt(values: &[f64]) -> f64 {
    let (dh_r, n) = (83_144.0 / 8.3144, values.len() as f64);
    dh_r / -((values.iter().map(|t| (-dh_r / (t + 273.15)).exp()).sum::<f64>() / n).ln()) - 273.15
}

/// Books a leafy-vegetable pickup in the village bound for `site`.
async fn book(srv: &TestServer, farmer: &str, site: i64, ready: &str, deadline: &str) -> i64 {
    srv.json(Method::POST, "/api/v1/shipments", Some(farmer), Some(json!({"goods": "白菜 20 箱", "commodity": "leafy_vegetables", "weight_kg": 200, "volume_m3": 1.5,
        "temperature_class": "chilled", "ready_at": ready, "deadline": deadline,
        "origin": {"lon": 115.9, "lat": 28.7, "region_code": VILLAGE, "name": "村口"}, "destination": {"site_id": site}})), 201)
        .await["id"]
        .as_i64()
        .unwrap()
}

/// Picks up at `picked` (handover at 2.5 °C) and delivers at `delivered`.
async fn carry(srv: &TestServer, carrier: &str, id: i64, picked: i64, delivered: i64) {
    let one = format!("/api/v1/shipments/{id}");
    srv.json(Method::POST, &format!("{one}/status"), Some(carrier), Some(json!({"status": "picked_up",
        "handover": {"at": rfc(picked), "from_party": "李四", "to_party": "司机", "temperature_c": 2.5, "signature_name": "王师傅"}})), 200).await;
    srv.json(
        Method::POST,
        &format!("{one}/status"),
        Some(carrier),
        Some(json!({"status": "in_transit"})),
        200,
    )
    .await;
    srv.json(
        Method::POST,
        &format!("{one}/status"),
        Some(carrier),
        Some(json!({"status": "delivered",
        "proof_of_delivery": {"at": rfc(delivered), "receiver_name": "仓管 张三"}})),
        200,
    )
    .await;
}

server_test!(async fn officials_see_the_overview_and_print_cold_chain_reports(srv) {
    let admin = srv.admin_token().await;
    let official = srv.user_with("wuliuju", "official", "360102").await;
    let outsider = srv.user_with("xihu", "official", "360103").await;
    let carrier = srv.user_with("lenglian", "carrier", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", VILLAGE).await;
    let logger = srv
        .json(Method::POST, "/api/v1/devices", Some(&admin), Some(json!({"name": "冷藏车记录仪", "type": "cold_chain", "village": VILLAGE, "location": {"lon": 115.9, "lat": 28.68}})), 201)
        .await;
    let site = srv
        .json(Method::POST, "/api/v1/logistics/sites", Some(&official), Some(json!({"name": "东湖区冷库", "kind": "cold_store", "tier": "county", "region_code": "360102",
            "lon": 115.89, "lat": 28.68, "capacity_kg": 100000, "cold_storage": true})), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let truck = srv
        .json(Method::POST, "/api/v1/logistics/vehicles", Some(&carrier), Some(json!({"plate": "赣A54321", "capacity_kg": 2000, "capacity_m3": 12, "refrigeration": "chilled",
            "depot_site_id": site, "shift_start": "00:00", "shift_end": "23:59", "logger_device_id": logger["id"]})), 201)
        .await["id"]
        .as_i64()
        .unwrap();

    // Two deliveries on the truck, one on time and one after its deadline,
    // and a pickup still waiting.
    let now = chrono::Utc::now().timestamp_millis();
    let hour = 3_600_000;
    let warm = book(srv, &farmer, site, "2026-01-01T06:00:00Z", "2099-01-01T18:00:00Z").await;
    let late = book(srv, &farmer, site, &rfc(now - 5 * hour), &rfc(now - 7 * hour / 2)).await;
    book(srv, &farmer, site, "2026-01-01T06:00:00Z", "2099-01-01T18:00:00Z").await;
    for id in [warm, late] {
        srv.json(Method::POST, &format!("/api/v1/shipments/{id}/assign"), Some(&official), Some(json!({"vehicle_id": truck})), 200).await;
    }
    // The logger each minute: the late run (4 h to 3 h ago) stays at
    // 2–3.5 °C; the on-time run (2 h to 1 h ago) has ten minutes at 6 °C.
    let in_band = |m: i64| 2.0 + (m % 4) as f64 * 0.5;
    let cool: Vec<(i64, f64)> = (1..60).map(|m| (now - 4 * hour + m * 60_000, in_band(m))).collect();
    let hot: Vec<(i64, f64)> =
        (1..60).map(|m| (now - 2 * hour + m * 60_000, if (20..30).contains(&m) { 6.0 } else { in_band(m) })).collect();
    let body: Vec<Value> = cool.iter().chain(&hot).map(|(ts, t)| json!({"ts": ts, "values": {"temperature": t}})).collect();
    let r = client().post(srv.url("/api/v1/telemetry")).bearer_auth(logger["token"].as_str().unwrap()).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    carry(srv, &carrier, late, now - 4 * hour, now - 3 * hour).await;
    carry(srv, &carrier, warm, now - 2 * hour, now - hour).await;

    // The overview: three shipments in the village, one of two on time.
    let (status, html) = page(srv, "/logistics?region=360102", &official).await;
    assert_eq!(status, 200, "{html}");
    let village = between(&html, &format!("data-code=\"{VILLAGE}\""), "</tr>");
    for needle in ["<td>3</td>", "已送达 2", "已预约 1", "<td>50.0%</td>", "<td>0.0%</td>"] {
        assert!(village.contains(needle), "village row lacks {needle}: {village}");
    }
    assert!(html.contains(&format!("/logistics/shipments/{warm}/cold-chain")), "links to the reports");
    assert!(html.contains("/logistics?region=360102002"), "drills down to the township");
    assert!(html.contains("class=\"marker site\"") && html.contains("class=\"marker village\""), "sites and the village on the map");
    assert!(!html.contains("<script"));
    // A period before the deliveries holds none of them.
    let (_, before) = page(srv, "/logistics?region=360102&from=2025-01-01&to=2025-12-31", &official).await;
    assert!(!before.contains(&format!("data-code=\"{VILLAGE}\"")));
    let (_, en) = page(srv, "/logistics?region=360102&lang=en", &official).await;
    assert!(en.contains("Rural logistics overview") && en.contains("Empty running"));

    // The API takes the same period.
    let api = "/api/v1/logistics/stats?region=360102";
    let all = srv.json(Method::GET, api, Some(&official), None, 200).await;
    assert_eq!((all["totals"]["shipments"].as_i64(), all["tiers"][2]["sites"].as_i64()), (Some(3), Some(1)));
    let past = srv.json(Method::GET, &format!("{api}&from=2025-01-01&to=2025-12-31"), Some(&official), None, 200).await;
    assert_eq!((past["totals"]["shipments"].as_i64(), past["from"].as_str()), (Some(0), Some("2025-01-01")));
    let r = srv.call(Method::GET, &format!("{api}&from=2026-02-01&to=2026-01-01"), Some(&official), None).await;
    crate::support::assert_error(r, 422, "invalid_period").await;

    // Another county's official and a farmer are refused; bad input is 400.
    assert_eq!(page(srv, "/logistics?region=360102", &outsider).await.0, 403);
    assert_eq!(page(srv, "/logistics?region=360102", &farmer).await.0, 403);
    assert_eq!(page(srv, "/logistics?region=360102&from=yesterday", &official).await.0, 400);
    assert_eq!(page(srv, &format!("/logistics/shipments/{warm}/cold-chain"), &outsider).await.0, 403);

    // The report with the excursion: MKT of the readings, the 6 °C peak.
    let (status, html) = page(srv, &format!("/logistics/shipments/{warm}/cold-chain"), &official).await;
    assert_eq!(status, 200, "{html}");
    let values: Vec<f64> = hot.iter().map(|(_, t)| *t).collect();
    let expected = format!("{:.2} °C", mkt(&values));
    assert!(html.contains(&format!("<dd id=\"mkt\">{expected}</dd>")), "MKT {expected} missing");
    let excursions = between(&html, "id=\"excursions\"", "</table>");
    assert_eq!(excursions.matches("<tr>").count(), 2, "one excursion under the header: {excursions}");
    assert!(excursions.contains("6.00 °C") && excursions.contains("李四 → 司机"), "{excursions}");
    for needle in ["有温度超标", "0–4 °C", "品类默认温度", "赣A54321", "签字", "<svg class=\"chart\"", "class=\"reference\""] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    // In-band data: no excursions.
    let (status, html) = page(srv, &format!("/logistics/shipments/{late}/cold-chain"), &farmer).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"no-excursions\"") && !html.contains("id=\"excursions\""));
    let cool_values: Vec<f64> = cool.iter().map(|(_, t)| *t).collect();
    assert!(html.contains(&format!("{:.2} °C", mkt(&cool_values))));
});
