//! Produce traceability over a real server: a farmer's batch from planting
//! to labelled packages, the rules on each step, the public scan with its
//! verification (which must fail when a stored event is changed), the
//! consumer page and the QR images.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{assert_error, client};

const VILLAGE: &str = "360102002001";
/// PD20180001, own production, specification 001, serial 1.
const LABEL_CODE: &str = "11800011001000000000000000000001";

async fn scan(srv: &crate::support::TestServer, code: &str) -> Value {
    srv.json(Method::GET, &format!("/api/v1/trace-codes/{code}"), None, None, 200)
        .await
}

server_test!(async fn a_batch_from_planting_to_a_verified_consumer_page(srv) {
    let admin = srv.admin_token().await;
    let product = srv
        .json(
            Method::POST,
            "/api/v1/inputs/products",
            Some(&admin),
            Some(json!({"kind": "pesticide", "name": "吡虫啉", "registration_number": "PD20180001", "maker": "某农化"})),
            201,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let banned = srv
        .json(
            Method::POST,
            "/api/v1/inputs/products",
            Some(&admin),
            Some(json!({"kind": "pesticide", "name": "甲胺磷", "registration_number": "PD20180002", "maker": "某农化", "banned": true})),
            201,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let farmer = srv.user_with("grower", "farmer", VILLAGE).await;
    let batch = srv
        .json(
            Method::POST,
            "/api/v1/produce/batches",
            Some(&farmer),
            Some(json!({"crop": "水稻", "village": VILLAGE, "producer_name": "东湖水稻合作社", "lon": 115.90, "lat": 28.68, "planted_on": "2026-04-10"})),
            201,
        )
        .await;
    let id = batch["id"].as_i64().unwrap();
    let code = batch["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 16);
    assert_eq!(batch["trace_path"], format!("/t/{code}"));
    assert_eq!(batch["events"].as_array().unwrap().len(), 1, "the commissioning event");
    let steps = format!("/api/v1/produce/batches/{id}/steps");

    // Rules on inputs: banned products, label codes of another product, dates.
    let r = srv
        .call(Method::POST, &steps, Some(&farmer), Some(json!({"step": "input", "product_id": banned, "applied_on": "2026-05-01", "amount": 1, "unit": "kg"})))
        .await;
    assert_error(r, 422, "banned_product").await;
    let r = srv
        .call(Method::POST, &steps, Some(&farmer), Some(json!({"step": "input", "product_id": product, "label_code": "11800021001000000000000000000001", "applied_on": "2026-05-01", "amount": 1, "unit": "kg"})))
        .await;
    assert_error(r, 422, "label_code_mismatch").await;
    let r = srv
        .call(Method::POST, &steps, Some(&farmer), Some(json!({"step": "harvest", "harvested_on": "2099-01-01", "quantity_kg": 10})))
        .await;
    assert_error(r, 422, "date_in_future").await;
    let r = srv
        .call(Method::POST, &format!("/api/v1/produce/batches/{id}/packages"), Some(&farmer), Some(json!({"count": 3})))
        .await;
    assert_error(r, 409, "not_harvested").await;

    srv.json(Method::POST, &steps, Some(&farmer), Some(json!({"step": "input", "product_id": product, "label_code": LABEL_CODE, "applied_on": "2026-05-02", "amount": 0.5, "unit": "kg"})), 200).await;
    srv.json(Method::POST, &steps, Some(&farmer), Some(json!({"step": "harvest", "harvested_on": "2026-09-20", "quantity_kg": 5200})), 200).await;
    // The same harvest recorded twice is one event.
    let b = srv.json(Method::POST, &steps, Some(&farmer), Some(json!({"step": "harvest", "harvested_on": "2026-09-20", "quantity_kg": 5200})), 200).await;
    assert_eq!(b["events"].as_array().unwrap().len(), 3);
    let b = srv
        .json(Method::POST, &steps, Some(&farmer), Some(json!({"step": "test", "tested_on": "2026-09-21", "item": "农药残留速测", "passed": true, "lab": "东湖区农产品检测站"})), 200)
        .await;
    assert_eq!(b["events"].as_array().unwrap().len(), 4);
    let packed = srv
        .json(Method::POST, &format!("/api/v1/produce/batches/{id}/packages"), Some(&farmer), Some(json!({"count": 3})), 201)
        .await;
    let packages: Vec<String> = packed["packages"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap().to_string()).collect();
    assert_eq!(packages.len(), 3);

    // Before a checkpoint covers them the events are pending, not verified.
    let before = scan(srv, &packages[0]).await;
    assert_eq!(before["is_package"], true);
    assert_eq!(before["batch_code"], code);
    assert_eq!(before["events"].as_array().unwrap().len(), 5);
    assert_eq!(before["verification"]["verified"], 0);
    assert_eq!(before["verification"]["pending"], 5);
    srv.publish_checkpoint().await;
    let after = scan(srv, &code).await;
    assert_eq!(after["verification"]["verified"], 5, "{after}");
    assert_eq!(after["verification"]["failed"], json!([]));
    let types: Vec<&str> = after["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ObjectEvent", "TransformationEvent", "ObjectEvent", "ObjectEvent", "AggregationEvent"]);
    // Each event's ID is its standard hash ID, with an inclusion proof.
    for e in after["events"].as_array().unwrap() {
        let id = e["eventID"].as_str().unwrap();
        assert!(id.starts_with("ni:///sha-256;"), "{id}");
        let proof = srv.call(Method::GET, &format!("/api/v1/trace/proof?event={}", urlencode(id)), None, None).await;
        assert_eq!(proof.status(), 200);
    }

    // The consumer page, as a phone gets it: no script, the facts, the badge.
    let page = client().get(srv.url(&format!("/t/{}", packages[0]))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for needle in ["水稻", "东湖水稻合作社", "吡虫啉 (PD20180001)", "5200 kg", "农药残留速测", "合格", "东湖区", "class=\"badge verified\"", "class=\"marker\""] {
        assert!(html.contains(needle), "consumer page lacks {needle}");
    }
    assert!(!html.contains("<script"), "no JavaScript on the consumer page");
    // Codes are accepted as printed: grouped, lower case.
    let grouped: String = code.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap().to_lowercase()).collect::<Vec<_>>().join("-");
    assert_eq!(client().get(srv.url(&format!("/t/{grouped}"))).send().await.unwrap().status(), 200);
    let unknown = client().get(srv.url("/t/0000000000000000")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().await.unwrap().contains("未找到该追溯码"));

    // A changed database row is detected and shown as such.
    let changed = srv
        .db()
        .execute_raw("UPDATE epcis_events SET body = REPLACE(body, '5200', '9999') WHERE body LIKE '%quantityKg%'")
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let tampered = scan(srv, &code).await;
    assert_eq!(tampered["verification"]["failed"].as_array().unwrap().len(), 1, "{tampered}");
    let html = client().get(srv.url(&format!("/t/{code}"))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("class=\"badge failed\""), "the page says the record failed verification");
});

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

server_test!(async fn only_producers_in_scope_record_batches(srv) {
    let farmer = srv.user_with("grower", "farmer", VILLAGE).await;
    let neighbour = srv.user_with("neighbour", "farmer", VILLAGE).await;
    let expert = srv.user_with("agronomist", "expert", "360102").await;
    let elsewhere = srv.user_with("faraway", "farmer", "360103").await;
    let new = json!({"crop": "绿茶", "village": VILLAGE, "producer_name": "茶农"});
    assert_error(srv.call(Method::POST, "/api/v1/produce/batches", Some(&expert), Some(new.clone())).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, "/api/v1/produce/batches", Some(&elsewhere), Some(new.clone())).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, "/api/v1/produce/batches", None, Some(new.clone())).await, 401, "unauthenticated").await;
    let r = srv
        .call(Method::POST, "/api/v1/produce/batches", Some(&farmer), Some(json!({"crop": "绿茶", "village": "360102", "producer_name": "茶农"})))
        .await;
    assert_error(r, 422, "not_a_village").await;
    let r = srv
        .call(Method::POST, "/api/v1/produce/batches", Some(&farmer), Some(json!({"crop": "", "village": VILLAGE, "producer_name": "茶农"})))
        .await;
    assert_error(r, 422, "invalid_crop").await;
    let id = srv.json(Method::POST, "/api/v1/produce/batches", Some(&farmer), Some(new), 201).await["id"].as_i64().unwrap();
    // Another farmer of the same village neither reads nor writes it.
    let path = format!("/api/v1/produce/batches/{id}");
    assert_error(srv.call(Method::GET, &path, Some(&neighbour), None).await, 403, "forbidden").await;
    let step = json!({"step": "harvest", "harvested_on": "2026-09-20", "quantity_kg": 10});
    assert_error(srv.call(Method::POST, &format!("{path}/steps"), Some(&neighbour), Some(step.clone())).await, 403, "forbidden").await;
    // The expert reads it; the owner lists it, the neighbour does not.
    srv.json(Method::GET, &path, Some(&expert), None, 200).await;
    let mine = srv.json(Method::GET, "/api/v1/produce/batches", Some(&farmer), None, 200).await;
    assert_eq!(mine["batches"].as_array().unwrap().len(), 1);
    let theirs = srv.json(Method::GET, "/api/v1/produce/batches", Some(&neighbour), None, 200).await;
    assert_eq!(theirs["batches"], json!([]));
});

server_test!(async fn qr_images_carry_the_consumer_page(srv) {
    let farmer = srv.user_with("grower", "farmer", VILLAGE).await;
    let code = srv
        .json(Method::POST, "/api/v1/produce/batches", Some(&farmer), Some(json!({"crop": "脐橙", "village": VILLAGE, "producer_name": "果园"})), 201)
        .await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let svg = client().get(srv.url(&format!("/api/v1/trace-codes/{code}/qr"))).send().await.unwrap();
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<svg"));
    let png = client().get(srv.url(&format!("/api/v1/trace-codes/{code}/qr?format=png&scale=4"))).send().await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    assert_error(srv.call(Method::GET, &format!("/api/v1/trace-codes/{code}/qr?format=gif"), None, None).await, 400, "invalid_format").await;
    assert_error(srv.call(Method::GET, "/api/v1/trace-codes/0000000000000000/qr", None, None).await, 404, "unknown_trace_code").await;
    assert_error(srv.call(Method::GET, "/api/v1/trace-codes/not-a-code", None, None).await, 404, "unknown_trace_code").await;
});
