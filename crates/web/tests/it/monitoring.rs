//! The IoT dashboards over a real server: a region's devices with their
//! latest values and alarms, a device's charts, acting on an alarm from the
//! page, and the scope rules the pages share with the API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::client;

const VILLAGE: &str = "360102002001";

async fn page(srv: &crate::support::TestServer, path: &str, token: &str) -> (u16, String) {
    let r = client().get(srv.url(path)).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

server_test!(async fn dashboards_show_devices_values_charts_and_alarms(srv) {
    let admin = srv.admin_token().await;
    let created = srv
        .json(
            Method::POST,
            "/api/v1/devices",
            Some(&admin),
            Some(json!({"name": "滕王阁墒情站", "type": "soil_moisture", "village": VILLAGE, "location": {"lon": 115.89, "lat": 28.68}})),
            201,
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    let device_token = created["token"].as_str().unwrap();
    srv.json(
        Method::POST,
        "/api/v1/alarm-rules",
        Some(&admin),
        Some(json!({"name": "过湿", "region": "360102", "device_type": "soil_moisture", "severity": "major",
                    "condition": {"kind": "threshold", "metric": "vwc", "direction": "above", "limit": 40.0, "hysteresis": 2.0}})),
        201,
    )
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    let points: Vec<Value> = (0..30)
        .map(|i| json!({"ts": now - (30 - i) * 60_000, "values": {"vwc": 30.0 + f64::from(i as i32) / 2.0, "soil_temperature": 21.0}}))
        .collect();
    let r = client().post(srv.url("/api/v1/telemetry")).bearer_auth(device_token).json(&points).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let (status, html) = page(srv, "/monitoring?region=360102", &admin).await;
    assert_eq!(status, 200);
    for needle in ["滕王阁墒情站", "44.50 %", "● 在线", "class=\"marker\"", "过湿", "/monitoring/alarms/"] {
        assert!(html.contains(needle), "dashboard lacks {needle}");
    }
    assert!(!html.contains("<script"));
    let (_, en) = page(srv, "/monitoring?region=360102&lang=en", &admin).await;
    assert!(en.contains("IoT monitoring") && en.contains("Soil-moisture probe"));

    let (status, html) = page(srv, &format!("/monitoring/devices/{id}?range=24h"), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 2, "one chart per metric");
    assert!(html.contains("class=\"line\""), "the chart draws the series");

    // Acknowledge the alarm from the page; the API sees it.
    let alarms = srv.json(Method::GET, "/api/v1/alarms?region=360102&status=active", Some(&admin), None, 200).await;
    let alarm = alarms["alarms"][0]["id"].as_i64().expect("the rule raised an alarm");
    let r = client()
        .post(srv.url(&format!("/monitoring/alarms/{alarm}/acknowledge")))
        .bearer_auth(&admin)
        .form(&[("back", "/monitoring?region=360102")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/monitoring?region=360102");
    let acked = srv.json(Method::GET, "/api/v1/alarms?region=360102&status=acknowledged", Some(&admin), None, 200).await;
    assert_eq!(acked["alarms"][0]["id"], alarm);

    // Scope: a farmer of another county sees neither the device nor the region.
    let outsider = srv.user_with("faraway", "farmer", "360103").await;
    let (status, _) = page(srv, &format!("/monitoring/devices/{id}"), &outsider).await;
    assert_eq!(status, 403);
    let (status, _) = page(srv, "/monitoring?region=360102", &outsider).await;
    assert_eq!(status, 403);
    let r = client()
        .post(srv.url(&format!("/monitoring/alarms/{alarm}/clear")))
        .bearer_auth(&outsider)
        .form(&[("back", "/monitoring")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Signed-out visitors are sent to sign in.
    let r = client().get(srv.url("/monitoring")).send().await.unwrap();
    assert_eq!(r.status(), 303);
});

server_test!(async fn managers_register_devices_from_the_page(srv) {
    let staff = srv.user_with("cunganbu", "village_staff", VILLAGE).await;
    let form = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let post = |token: String, body: Vec<(String, String)>| {
        let url = srv.url(&format!("/monitoring/devices?region={VILLAGE}"));
        async move { client().post(url).bearer_auth(token).form(&body).send().await.unwrap() }
    };
    let (_, page_html) = page(srv, &format!("/monitoring?region={VILLAGE}"), &staff).await;
    assert!(page_html.contains("登记设备"), "village staff manage devices");

    let r = post(staff.clone(), form(&[("name", "村口气象站"), ("type", "weather"), ("village", VILLAGE), ("lon", "115.89"), ("lat", "28.68")])).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("村口气象站") && html.contains("sxd_"), "the new token is shown once");
    let listed = srv.json(Method::GET, "/api/v1/devices", Some(&staff), None, 200).await;
    assert_eq!(listed["devices"].as_array().unwrap().len(), 1);
    // Shown once: the dashboard afterwards carries no token.
    let (_, again) = page(srv, &format!("/monitoring?region={VILLAGE}"), &staff).await;
    assert!(!again.contains("sxd_"));

    // A bad field is shown inline and nothing is registered.
    let r = post(staff.clone(), form(&[("name", "坏"), ("type", "weather"), ("village", VILLAGE), ("lon", "east"), ("lat", "28.68")])).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("longitude"));
    // A CSV with a bad line imports nothing; a good one imports all.
    let bad = format!("name,type,village,lon,lat\n甲,soil_moisture,{VILLAGE},115.89,28.68\n乙,rocket,{VILLAGE},115.89,28.68\n");
    let r = post(staff.clone(), form(&[("csv", &bad)])).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("line 3"));
    let good = format!("name,type,village,lon,lat\n甲,soil_moisture,{VILLAGE},115.89,28.68\n乙,water_meter,{VILLAGE},115.891,28.681\n");
    let r = post(staff.clone(), form(&[("csv", &good)])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().matches("sxd_").count(), 2);
    let listed = srv.json(Method::GET, "/api/v1/devices", Some(&staff), None, 200).await;
    assert_eq!(listed["devices"].as_array().unwrap().len(), 3);

    // A farmer sees no form and may not post one.
    let farmer = srv.user_with("nonghu", "farmer", VILLAGE).await;
    let (_, farmer_page) = page(srv, &format!("/monitoring?region={VILLAGE}"), &farmer).await;
    assert!(!farmer_page.contains("登记设备"));
    let r = post(farmer, form(&[("name", "x"), ("type", "weather"), ("village", VILLAGE), ("lon", "115.89"), ("lat", "28.68")])).await;
    assert_eq!(r.status(), 403);
});
