//! The cold chain across slices: a reefer's logger reports its temperatures
//! as IoT telemetry, and the shipment's cold-chain report reads them from
//! there — excursions, extremes and mean kinetic temperature over the legs
//! of the journey.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::client;

fn rfc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339()
}

server_test!(async fn the_report_reads_the_logger_from_telemetry(srv) {
    let admin = srv.admin_token().await;
    let official = srv.user_with("wuliuju", "official", "360102").await;
    let carrier = srv.user_with("lenglian", "carrier", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", "360102002001").await;
    let logger = srv
        .json(Method::POST, "/api/v1/devices", Some(&admin), Some(json!({"name": "赣A冷藏车记录仪", "type": "cold_chain", "village": "360102002001", "location": {"lon": 115.9, "lat": 28.68}})), 201)
        .await;
    let logger_id = logger["id"].as_i64().unwrap();
    let site = srv
        .json(Method::POST, "/api/v1/logistics/sites", Some(&official), Some(json!({"name": "东湖区冷库", "kind": "cold_store", "tier": "county", "region_code": "360102",
            "lon": 115.89, "lat": 28.68, "capacity_kg": 100000, "cold_storage": true, "opening_hours": "08:00-18:00"})), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let truck = srv
        .json(Method::POST, "/api/v1/logistics/vehicles", Some(&carrier), Some(json!({"plate": "赣A54321", "capacity_kg": 2000, "capacity_m3": 12, "refrigeration": "chilled",
            "depot_site_id": site, "shift_start": "00:00", "shift_end": "23:59", "logger_device_id": logger_id})), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let shipment = srv
        .json(Method::POST, "/api/v1/shipments", Some(&farmer), Some(json!({"goods": "白菜 20 箱", "commodity": "leafy_vegetables", "weight_kg": 200, "volume_m3": 1.5,
            "temperature_class": "chilled", "ready_at": "2026-01-01T06:00:00Z", "deadline": "2099-01-01T18:00:00Z",
            "origin": {"lon": 115.9, "lat": 28.7, "region_code": "360102002001", "name": "村口"}, "destination": {"site_id": site}})), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let one = format!("/api/v1/shipments/{shipment}");
    srv.json(Method::POST, &format!("{one}/assign"), Some(&official), Some(json!({"vehicle_id": truck})), 200).await;

    // Two hours ago the truck loaded; an hour later it delivered. The logger
    // reported each minute: 2–3.5 °C, except ten minutes at 6 °C.
    let now = chrono::Utc::now().timestamp_millis();
    let (picked, delivered) = (now - 2 * 3_600_000, now - 3_600_000);
    let temps: Vec<(i64, f64)> = (1..60)
        .map(|m| (picked + m * 60_000, if (20..30).contains(&m) { 6.0 } else { 2.0 + (m % 4) as f64 * 0.5 }))
        .collect();
    let body: Vec<Value> = temps.iter().map(|(ts, t)| json!({"ts": ts, "values": {"temperature": t, "door": 0}})).collect();
    let r = client().post(srv.url("/api/v1/telemetry")).bearer_auth(logger["token"].as_str().unwrap()).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    srv.json(Method::POST, &format!("{one}/status"), Some(&carrier), Some(json!({"status": "picked_up",
        "handover": {"at": rfc(picked), "from_party": "李四", "to_party": "司机", "temperature_c": 2.5, "signature_name": "王师傅"}})), 200).await;
    srv.json(Method::POST, &format!("{one}/status"), Some(&carrier), Some(json!({"status": "in_transit"})), 200).await;
    srv.json(Method::POST, &format!("{one}/status"), Some(&carrier), Some(json!({"status": "delivered",
        "proof_of_delivery": {"at": rfc(delivered), "receiver_name": "仓管 张三"}})), 200).await;

    let report = srv.json(Method::GET, &format!("{one}/cold-chain"), Some(&farmer), None, 200).await;
    assert_eq!(report["logger_device_id"], logger_id);
    assert_eq!(report["readings"], temps.len());
    assert_eq!(report["verdict"], "excursions", "{report}");
    let excursions = report["excursions"].as_array().unwrap();
    assert_eq!(excursions.len(), 1, "{report}");
    assert_eq!(excursions[0]["max_c"], 6.0);
    assert_eq!((report["min_c"].as_f64(), report["max_c"].as_f64()), (Some(2.0), Some(6.0)));
    // MKT weighs the warm minutes more than the mean does.
    let values: Vec<f64> = temps.iter().map(|(_, t)| *t).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let (dh_r, n) = (83_144.0 / 8.3144, values.len() as f64);
    let mkt = dh_r / -((values.iter().map(|t| (-dh_r / (t + 273.15)).exp()).sum::<f64>() / n).ln()) - 273.15;
    let got = report["mkt_c"].as_f64().unwrap();
    assert!((got - mkt).abs() < 1e-6 && got > mean, "MKT {got} vs {mkt} (mean {mean})");
});
