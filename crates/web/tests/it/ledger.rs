//! Dealers' ledgers and their supervision over a real server: the sale rules
//! and their error codes, the alarm seen by the county and not by its
//! neighbour, masking and the audited reveal, statistics as JSON and CSV,
//! CSV import (every error with line and field; every role in and out of
//! scope, which the matrix cannot send), and the denials.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{TestServer, assert_error, client};

const SAMPLE_ID: &str = "11010519491231002X";

async fn user_id(srv: &TestServer, token: &str) -> i64 {
    srv.json(Method::GET, "/api/v1/auth/me", Some(token), None, 200).await["user_id"]
        .as_i64()
        .unwrap()
}

async fn create(srv: &TestServer, path: &str, token: &str, body: Value) -> i64 {
    srv.json(Method::POST, path, Some(token), Some(body), 201).await["id"]
        .as_i64()
        .unwrap()
}

/// The first village of the first township of `county`.
async fn village(srv: &TestServer, token: &str, county: &str) -> String {
    let towns = srv
        .json(
            Method::GET,
            &format!("/api/v1/regions/{county}/children"),
            Some(token),
            None,
            200,
        )
        .await;
    let town = towns["regions"][0]["code"].as_str().unwrap().to_string();
    let villages = srv
        .json(
            Method::GET,
            &format!("/api/v1/regions/{town}/children"),
            Some(token),
            None,
            200,
        )
        .await;
    villages["regions"][0]["code"].as_str().unwrap().to_string()
}

async fn shop(srv: &TestServer, official: &str, owner_token: &str, region: &str, licence: &str) -> i64 {
    let owner = user_id(srv, owner_token).await;
    create(
        srv,
        "/api/v1/dealers",
        official,
        json!({"name": "东湖农资店", "licence_number": licence, "region": region, "address": "解放路1号", "owner_user_id": owner}),
    )
    .await
}

async fn import(srv: &TestServer, token: Option<&str>, shop: i64, body: &str) -> reqwest::Response {
    let mut req = client()
        .post(srv.url(&format!("/api/v1/dealers/{shop}/ledger/import")))
        .header("content-type", "text/csv; charset=utf-8")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

server_test!(async fn dealers_sell_under_the_rules_and_the_county_supervises(srv) {
    let admin = srv.admin_token().await;
    let official = srv.user_with("nongye", "official", "360102").await;
    let neighbour = srv.user_with("xihu", "official", "360103").await;
    let dealer = srv.user_with("nongzi", "dealer", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", "360102").await;
    let shop_id = shop(srv, &official, &dealer, "360102", "赣农药经营许可证-0001").await;
    let v = village(srv, &official, "360102").await;
    let product = |name: &str, number: &str, restricted: bool, banned: bool| json!({
        "kind": "pesticide", "name": name, "registration_number": number, "maker": "x", "restricted_use": restricted, "banned": banned});
    let plain = create(srv, "/api/v1/inputs/products", &admin, product("吡虫啉", "PD20180001", false, false)).await;
    let restricted = create(srv, "/api/v1/inputs/products", &admin, product("克百威", "PD20180003", true, false)).await;
    let banned = create(srv, "/api/v1/inputs/products", &admin, product("甲胺磷", "PD20180002", false, true)).await;
    let sales = format!("/api/v1/dealers/{shop_id}/sales");
    let stock = srv.json(Method::POST, &format!("/api/v1/dealers/{shop_id}/stock-in"), Some(&dealer),
        Some(json!({"product_id": plain, "quantity": 10, "unit": "kg", "supplier": "省农资", "date": "2026-03-01", "batch": "20260215A",
            "label_codes": ["11800011001000000000000000000001", "11800011001000000000000000000002"]})), 201).await;
    assert_eq!((stock["entry_type"].as_str(), stock["base_amount"].as_i64(), stock["batch"].as_str()), (Some("stock_in"), Some(10_000), Some("20260215A")));

    // Restricted without ID, banned, a label code twice.
    let sale = |product: i64, id: Option<&str>| json!({"product_id": product, "quantity": "0.5", "unit": "kg", "buyer_name": "张三",
        "buyer_id_number": id, "buyer_phone": "13912345678", "buyer_village": v, "crop": "水稻", "date": "2026-03-02"});
    assert_error(srv.call(Method::POST, &sales, Some(&dealer), Some(sale(restricted, None))).await, 422, "buyer_id_required").await;
    assert_error(srv.call(Method::POST, &sales, Some(&dealer), Some(sale(banned, Some(SAMPLE_ID)))).await, 422, "banned_product").await;
    assert_error(srv.call(Method::POST, &sales, Some(&dealer), Some(sale(plain, Some("110105194912310021")))).await, 422, "invalid_id_number").await;
    let mut coded = sale(plain, Some(SAMPLE_ID));
    coded["label_codes"] = json!(["11800011001000000000000000000001"]);
    let sold = srv.json(Method::POST, &sales, Some(&dealer), Some(coded.clone()), 201).await;
    assert_eq!(sold["buyer_id_number"], "110105********002X");
    assert_eq!(sold["buyer_phone"], "139****5678");
    assert_error(srv.call(Method::POST, &sales, Some(&dealer), Some(coded)).await, 409, "label_code_sold").await;
    let sale_id = sold["id"].as_i64().unwrap();

    // The county's official sees the three alarms; the neighbour sees none.
    let seen = srv.json(Method::GET, "/api/v1/inputs/anomalies", Some(&official), None, 200).await;
    let kinds: Vec<&str> = seen["anomalies"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["label_code_sold_twice", "banned_product_sale", "restricted_without_buyer_id"]);
    assert!(seen["anomalies"].as_array().unwrap().iter().all(|a| a["dealer_id"] == shop_id));
    let banned_only = srv.json(Method::GET, "/api/v1/inputs/anomalies?region=360102&kind=banned_product_sale", Some(&official), None, 200).await;
    assert_eq!(banned_only["anomalies"].as_array().unwrap().len(), 1);
    let theirs = srv.json(Method::GET, "/api/v1/inputs/anomalies", Some(&neighbour), None, 200).await;
    assert_eq!(theirs["anomalies"], json!([]));
    assert_error(srv.call(Method::GET, "/api/v1/inputs/anomalies?region=360102", Some(&neighbour), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, "/api/v1/inputs/anomalies", Some(&dealer), None).await, 403, "forbidden").await;

    // Ledger: masked for the dealer and the official; the official reveals one buyer, audited.
    let path = format!("/api/v1/dealers/{shop_id}/ledger");
    for token in [&dealer, &official] {
        let l = srv.json(Method::GET, &path, Some(token), None, 200).await;
        assert_eq!(l["entries"].as_array().unwrap().len(), 2);
        assert!(!l.to_string().contains(SAMPLE_ID) && !l.to_string().contains("13912345678"));
    }
    let reveal = format!("/api/v1/dealers/{shop_id}/ledger/{sale_id}/buyer");
    let buyer = srv.json(Method::GET, &reveal, Some(&official), None, 200).await;
    assert_eq!((buyer["buyer_id_number"].as_str(), buyer["buyer_phone"].as_str()), (Some(SAMPLE_ID), Some("13912345678")));
    let log = srv.json(Method::GET, "/api/v1/audit?action=dealer_ledger.reveal_buyer", Some(&official), None, 200).await;
    assert_eq!(log["entries"][0]["actor"], "nongye");
    assert_error(srv.call(Method::GET, &reveal, Some(&dealer), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &reveal, Some(&neighbour), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &path, Some(&farmer), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &path, Some(&neighbour), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &path, None, None).await, 401, "unauthenticated").await;

    // Reversal: a new entry; twice is a conflict.
    let reversal = format!("/api/v1/dealers/{shop_id}/ledger/{sale_id}/reversal");
    let rev = srv.json(Method::POST, &reversal, Some(&dealer), Some(json!({"reason": "录错"})), 201).await;
    assert_eq!((rev["reverses_id"].as_i64(), rev["base_amount"].as_i64()), (Some(sale_id), Some(-500)));
    assert_error(srv.call(Method::POST, &reversal, Some(&dealer), Some(json!({"reason": "again"}))).await, 409, "already_reversed").await;
    assert_error(srv.call(Method::POST, &reversal, Some(&official), Some(json!({"reason": "x"}))).await, 403, "forbidden").await;

    // Stats: net of the reversal nothing was sold; one more sale shows.
    srv.json(Method::POST, &sales, Some(&dealer), Some(sale(plain, None)), 201).await;
    let stock_path = format!("/api/v1/dealers/{shop_id}/stock");
    let stock = srv.json(Method::GET, &stock_path, Some(&dealer), None, 200).await;
    assert_eq!(stock["stock"], json!([{"product_id": plain, "product_kind": "pesticide", "dimension": "mass", "base_amount": 9500, "quantity": 9.5, "unit": "kg"}]));
    assert_error(srv.call(Method::GET, &stock_path, Some(&farmer), None).await, 403, "forbidden").await;
    let stats = srv.json(Method::GET, "/api/v1/inputs/stats?group=village", Some(&official), None, 200).await;
    assert_eq!(stats["region"], "360102");
    assert_eq!(stats["rows"], json!([{"group": v, "name": stats["rows"][0]["name"], "kind": "pesticide", "kg": 0.5, "litres": 0.0, "pieces": 0, "sales": 1}]));
    let r = srv.call(Method::GET, "/api/v1/inputs/stats?region=360102&group=village&format=csv", Some(&official), None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].starts_with(&format!("{v},")) && lines[1].ends_with(",pesticide,0.5,0,0,1"), "{csv}");
    assert_error(srv.call(Method::GET, "/api/v1/inputs/stats?region=360102", Some(&neighbour), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, "/api/v1/inputs/stats?region=360102", Some(&farmer), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, "/api/v1/inputs/stats?format=xls", Some(&official), None).await, 400, "invalid_query").await;
    assert_error(srv.call(Method::GET, "/api/v1/inputs/stats?group=year", Some(&official), None).await, 400, "invalid_query").await;

    // Malformed and invalid bodies, unknown ids.
    assert_error(srv.call(Method::POST, &sales, Some(&dealer), Some(json!({"product_id": plain}))).await, 422, "invalid_body").await;
    assert_error(srv.call(Method::POST, &sales, Some(&dealer), Some(json!({"product_id": plain, "quantity": 1, "unit": "kg", "buyer_village": v, "price": 3}))).await, 422, "invalid_body").await;
    assert_error(srv.call(Method::POST, &sales, Some(&dealer), Some(json!({"product_id": plain, "quantity": -1, "unit": "kg", "buyer_village": v}))).await, 422, "invalid_quantity").await;
    assert_error(srv.call(Method::GET, "/api/v1/dealers/abc", Some(&official), None).await, 400, "invalid_id").await;
    assert_error(srv.call(Method::GET, "/api/v1/dealers/9999", Some(&official), None).await, 404, "not_found").await;
    assert_error(srv.call(Method::POST, "/api/v1/dealers", Some(&official), Some(json!({"name": "x", "licence_number": "赣农药经营许可证-0001", "region": "360102", "address": "y", "owner_user_id": user_id(srv, &dealer).await}))).await, 409, "licence_taken").await;
    assert_error(srv.call(Method::POST, "/api/v1/dealers", Some(&official), Some(json!({"name": "x", "licence_number": "L2", "region": "360102", "address": "y", "owner_user_id": user_id(srv, &farmer).await}))).await, 422, "owner_not_dealer").await;
});

server_test!(async fn csv_imports_report_every_error_and_admit_only_the_owner(srv) {
    let admin = srv.admin_token().await;
    let mut tokens = Vec::new();
    for role in ["admin", "official", "village_staff", "dealer", "farmer", "carrier", "expert"] {
        tokens.push((role, srv.user_with(&format!("imp{}", role.replace('_', "")), role, "360102").await));
    }
    let dealer = &tokens.iter().find(|(r, _)| *r == "dealer").unwrap().1;
    let outsider = srv.user_with("impout", "dealer", "360103").await;
    let shop_in = shop(srv, &admin, dealer, "360102", "L-IN").await;
    let shop_out = shop(srv, &admin, &outsider, "360103", "L-OUT").await;
    let plain = create(srv, "/api/v1/inputs/products", &admin, json!({"kind": "fertilizer", "name": "复合肥", "maker": "x"})).await;
    let v = village(srv, &admin, "360102").await;
    let header = "type,date,product_id,quantity,unit,supplier,buyer_name,buyer_id_number,buyer_village";

    let bad = format!("{header}\nstock_in,2026-03-01,{plain},10,kg,,,,\nsale,2026-03-02,{plain},1,kg,,李四,110105194912310021,{v}\nsale,2026-03-02,{plain},1,kg,,,,\n");
    let r = import(srv, Some(dealer), shop_in, &bad).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_ledger_file");
    let got: Vec<(u64, &str, &str)> = body["errors"].as_array().unwrap().iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap(), e["error"].as_str().unwrap())).collect();
    assert_eq!(got, [(2, "supplier", "missing_field"), (3, "buyer_id_number", "invalid_id_number"), (4, "buyer_village", "missing_field")]);
    let ledger = srv.json(Method::GET, &format!("/api/v1/dealers/{shop_in}/ledger"), Some(dealer), None, 200).await;
    assert_eq!(ledger["entries"], json!([]), "nothing written");

    let good = format!("{header}\nstock_in,2026-03-01,{plain},10,kg,省农资,,,\nsale,2026-03-02,{plain},1.25,kg,,李四,{SAMPLE_ID},{v}\n");
    // Every role, in and out of scope: only the owner imports into their own shop.
    for (role, token) in &tokens {
        for (shop, side) in [(shop_in, "in"), (shop_out, "out")] {
            let r = import(srv, Some(token), shop, &good).await;
            let expected = if *role == "dealer" && side == "in" { 201 } else { 403 };
            assert_eq!(r.status().as_u16(), expected, "{role} {side}");
            let v: Value = r.json().await.unwrap();
            if expected == 201 {
                assert_eq!((v["stock_in"].as_u64(), v["sales"].as_u64()), (Some(1), Some(1)), "{v}");
            } else {
                assert_eq!(v["error"], "forbidden");
            }
        }
    }
    assert_error(import(srv, None, shop_in, &good).await, 401, "unauthenticated").await;
    let ledger = srv.json(Method::GET, &format!("/api/v1/dealers/{shop_in}/ledger"), Some(dealer), None, 200).await;
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 2);
    let json_body = srv.call(Method::POST, &format!("/api/v1/dealers/{shop_in}/ledger/import"), Some(dealer), Some(json!({"csv": good}))).await;
    assert_error(json_body, 400, "unsupported_content_type").await;
    let log = srv.json(Method::GET, "/api/v1/audit?action=dealer_ledger.import", Some(&admin), None, 200).await;
    assert_eq!(log["entries"].as_array().unwrap().len(), 1);
});
