//! The consumer's scan across slices: a trace code issued by the trace slice
//! rides on shipments of the logistics slice, whose reefer logger reports
//! through telemetry; the page `/t/{code}` and the public journey API show
//! the path and whether the cold chain held, naming no one.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{TestServer, client};

const VILLAGE: &str = "360102002001";
/// Names and numbers only staff may see; none may reach the public.
const PRIVATE: &[&str] = &["李四", "王师傅", "张三", "13912345678", "赣A54321", "村口冷棚"];

fn rfc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339()
}

/// The carrier's world: a cold store, a reefer with a logger, and tokens.
struct Fleet {
    official: String,
    carrier: String,
    farmer: String,
    logger_token: String,
    site: i64,
    truck: i64,
}

async fn fleet(srv: &TestServer) -> Fleet {
    let admin = srv.admin_token().await;
    let official = srv.user_with("wuliuju", "official", "360102").await;
    let carrier = srv.user_with("lenglian", "carrier", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", VILLAGE).await;
    let logger = srv
        .json(Method::POST, "/api/v1/devices", Some(&admin), Some(json!({"name": "赣A冷藏车记录仪", "type": "cold_chain", "village": VILLAGE, "location": {"lon": 115.9, "lat": 28.68}})), 201)
        .await;
    let site = srv
        .json(
            Method::POST,
            "/api/v1/logistics/sites",
            Some(&official),
            Some(
                json!({"name": "东湖区冷库", "kind": "cold_store", "tier": "county", "region_code": "360102",
            "lon": 115.89, "lat": 28.68, "capacity_kg": 100000, "cold_storage": true, "opening_hours": "08:00-18:00"}),
            ),
            201,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let truck = srv
        .json(
            Method::POST,
            "/api/v1/logistics/vehicles",
            Some(&carrier),
            Some(
                json!({"plate": "赣A54321", "capacity_kg": 2000, "capacity_m3": 12, "refrigeration": "chilled",
            "depot_site_id": site, "shift_start": "00:00", "shift_end": "23:59", "logger_device_id": logger["id"]}),
            ),
            201,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    Fleet {
        official,
        carrier,
        farmer,
        logger_token: logger["token"].as_str().unwrap().into(),
        site,
        truck,
    }
}

/// A batch registered by the farmer: its trace code as the trace slice made it.
async fn batch_code(srv: &TestServer, f: &Fleet, crop: &str) -> String {
    srv.json(
        Method::POST,
        "/api/v1/produce/batches",
        Some(&f.farmer),
        Some(json!({"crop": crop, "village": VILLAGE, "producer_name": "东湖蔬菜合作社", "lon": 115.91, "lat": 28.69})),
        201,
    )
    .await["code"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Books `codes` from the village to the cold store on the reefer, the
/// logger reporting `temp(minute)` each minute of the hour that starts
/// `hours_ago` hours ago, and delivers at the end of that hour.
async fn carry(srv: &TestServer, f: &Fleet, codes: &[String], hours_ago: i64, temp: impl Fn(i64) -> f64) -> i64 {
    let shipment = srv
        .json(Method::POST, "/api/v1/shipments", Some(&f.farmer), Some(json!({"goods": "白菜 20 箱", "commodity": "leafy_vegetables", "weight_kg": 200, "volume_m3": 1.5,
            "temperature_class": "chilled", "ready_at": "2026-01-01T06:00:00Z", "deadline": "2099-01-01T18:00:00Z", "trace_codes": codes,
            "origin": {"lon": 115.9, "lat": 28.7, "region_code": VILLAGE, "name": "村口冷棚"}, "destination": {"site_id": f.site}})), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let one = format!("/api/v1/shipments/{shipment}");
    srv.json(
        Method::POST,
        &format!("{one}/assign"),
        Some(&f.official),
        Some(json!({"vehicle_id": f.truck})),
        200,
    )
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    let (picked, delivered) = (now - hours_ago * 3_600_000, now - (hours_ago - 1) * 3_600_000);
    let body: Vec<Value> = (1..60)
        .map(|m| json!({"ts": picked + m * 60_000, "values": {"temperature": temp(m)}}))
        .collect();
    let r = client()
        .post(srv.url("/api/v1/telemetry"))
        .bearer_auth(&f.logger_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    srv.json(Method::POST, &format!("{one}/status"), Some(&f.carrier), Some(json!({"status": "picked_up",
        "handover": {"at": rfc(picked), "from_party": "李四", "to_party": "司机", "temperature_c": 2.5, "signature_name": "王师傅", "note": "电话 13912345678"}})), 200).await;
    srv.json(
        Method::POST,
        &format!("{one}/status"),
        Some(&f.carrier),
        Some(json!({"status": "in_transit"})),
        200,
    )
    .await;
    srv.json(
        Method::POST,
        &format!("{one}/status"),
        Some(&f.carrier),
        Some(json!({"status": "delivered",
        "proof_of_delivery": {"at": rfc(delivered), "receiver_name": "仓管 张三"}})),
        200,
    )
    .await;
    shipment
}

async fn page(srv: &TestServer, path: &str) -> (u16, String) {
    let r = client().get(srv.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn assert_public(what: &str, text: &str) {
    for p in PRIVATE {
        assert!(!text.contains(p), "{what} reveals {p}");
    }
}

server_test!(async fn the_scan_page_shows_the_path_and_the_cold_chain(srv) {
    let f = fleet(srv).await;
    let held_code = batch_code(srv, &f, "白菜").await;
    let broken_code = batch_code(srv, &f, "菜心").await;
    // The label's code as a scanner may deliver it: grouped, lower case.
    let printed: String = held_code.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap().to_lowercase()).collect::<Vec<_>>().join("-");
    let held = carry(srv, &f, &[printed], 2, |m| 2.0 + (m % 4) as f64 * 0.5).await;
    // 0–4 °C for leafy vegetables; ten minutes at 6 °C break the chain.
    let broken = carry(srv, &f, std::slice::from_ref(&broken_code), 4, |m| if (20..30).contains(&m) { 6.0 } else { 3.0 }).await;

    // The public API: no token, the trace slice's code finds the shipment.
    let api = srv.json(Method::GET, &format!("/api/v1/trace-codes/{held_code}/journey"), None, None, 200).await;
    let journeys = api["journeys"].as_array().unwrap();
    assert_eq!(journeys.len(), 1, "{api}");
    assert_eq!(journeys[0]["shipment_id"], held);
    assert_eq!(journeys[0]["status"], "delivered");
    assert_eq!(journeys[0]["destination"]["name"], "东湖区冷库");
    assert_eq!(journeys[0]["cold_chain"]["verdict"], "held", "{api}");
    assert_eq!(journeys[0]["cold_chain"]["basis"], "logger");
    assert_eq!(journeys[0]["cold_chain"]["readings"], 59);
    assert_public("the journey API", &api.to_string());
    let api = srv.json(Method::GET, &format!("/api/v1/trace-codes/{broken_code}/journey"), None, None, 200).await;
    let cc = &api["journeys"][0]["cold_chain"];
    assert_eq!((api["journeys"][0]["shipment_id"].as_i64(), cc["verdict"].as_str()), (Some(broken), Some("excursions")), "{api}");
    assert_eq!((cc["excursions"][0]["direction"].as_str(), cc["excursions"][0]["peak_c"].as_f64()), (Some("too_warm"), Some(6.0)));

    // The page: the path, the held badge, the honest note, dots on the map.
    let (status, html) = page(srv, &format!("/t/{held_code}")).await;
    assert_eq!(status, 200);
    for needle in ["id=\"logistics\"", "物流信息来自物流系统记录", "→ 东湖区冷库", "data-verdict=\"held\"", "冷链全程达标", "揽收", "2.5 °C", "送达", "0–4 °C"] {
        assert!(html.contains(needle), "the page lacks {needle}");
    }
    assert!(!html.contains("data-verdict=\"excursions\""));
    // The batch's field, the pickup point and the cold store.
    assert_eq!(html.matches("class=\"marker\"").count(), 3);
    assert!(!html.contains("<script"), "no JavaScript on the consumer page");
    assert_public("the consumer page", &html);

    let (status, html) = page(srv, &format!("/t/{broken_code}?lang=en")).await;
    assert_eq!(status, 200);
    for needle in ["Logistics", "not part of the signed log", "data-verdict=\"excursions\"", "Cold chain broken", "too warm · peak 6.0 °C"] {
        assert!(html.contains(needle), "the page lacks {needle}");
    }
    assert!(!html.contains("Cold chain held"));
    assert_public("the consumer page", &html);
});

server_test!(async fn codes_without_shipments_show_no_logistics(srv) {
    let f = fleet(srv).await;
    let code = batch_code(srv, &f, "白菜").await;
    // Issued but not shipped: the page as before, the API an empty list.
    let (status, html) = page(srv, &format!("/t/{code}")).await;
    assert_eq!(status, 200);
    assert!(!html.contains("id=\"logistics\""));
    let api = srv.json(Method::GET, &format!("/api/v1/trace-codes/{code}/journey"), None, None, 200).await;
    assert_eq!(api, json!({"journeys": []}));

    // Shipped but never issued by the trace slice: still the unknown page,
    // with nothing from the logistics records.
    let stray = "0000000000000000".to_string();
    carry(srv, &f, std::slice::from_ref(&stray), 2, |_| 3.0).await;
    let (status, html) = page(srv, &format!("/t/{stray}")).await;
    assert_eq!(status, 404);
    assert!(html.contains("未找到该追溯码") && !html.contains("id=\"logistics\""));
    let overlong = "7".repeat(300);
    let r = srv.call(Method::GET, &format!("/api/v1/trace-codes/{overlong}/journey"), None, None).await;
    crate::support::assert_error(r, 404, "unknown_trace_code").await;
});
