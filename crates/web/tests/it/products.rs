//! The farm-input product registry over the API: officials register and
//! change products, every signed-in role reads them, a label code finds its
//! pesticide, and the error contract.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{assert_error, client};

const PRODUCTS: &str = "/api/v1/inputs/products";

fn imidacloprid() -> Value {
    json!({
        "kind": "pesticide", "name": "吡虫啉可湿性粉剂", "registration_number": "PD20180001", "maker": "江西某农药有限公司",
        "active_ingredients": [{"name": "吡虫啉", "content": "25%"}]
    })
}

server_test!(async fn officials_register_products_and_everyone_signed_in_reads_them(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", "360102002001").await;

    let created = srv.json(Method::POST, PRODUCTS, Some(&official), Some(imidacloprid()), 201).await;
    assert_eq!(created["kind"], "pesticide");
    assert_eq!(created["registration_number"], "PD20180001");
    assert_eq!(created["active_ingredients"], json!([{"name": "吡虫啉", "content": "25%"}]));
    assert_eq!((created["restricted_use"].as_bool(), created["banned"].as_bool()), (Some(false), Some(false)));
    let id = created["id"].as_i64().unwrap();
    let fert = json!({"kind": "fertilizer", "name": "复合肥", "registration_number": "农肥(2019)准字1234号", "maker": "某肥业"});
    srv.json(Method::POST, PRODUCTS, Some(&official), Some(fert), 201).await;

    // The farmer reads, searches and filters.
    assert_eq!(srv.json(Method::GET, &format!("{PRODUCTS}/{id}"), Some(&farmer), None, 200).await, created);
    let all = srv.json(Method::GET, PRODUCTS, Some(&farmer), None, 200).await;
    assert_eq!(all["products"].as_array().unwrap().len(), 2);
    let found = srv.json(Method::GET, &format!("{PRODUCTS}?q=PD2018"), Some(&farmer), None, 200).await;
    assert_eq!(found["products"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect::<Vec<_>>(), [id]);
    let fertilizers = srv.json(Method::GET, &format!("{PRODUCTS}?kind=fertilizer&banned=false"), Some(&farmer), None, 200).await;
    assert_eq!(fertilizers["products"][0]["name"], "复合肥");
    assert_error(srv.call(Method::GET, &format!("{PRODUCTS}?kind=seed"), Some(&farmer), None).await, 400, "invalid_query").await;

    // The farmer may not write; nobody anonymous may read.
    assert_error(srv.call(Method::POST, PRODUCTS, Some(&farmer), Some(imidacloprid())).await, 403, "forbidden").await;
    assert_error(srv.call(Method::PATCH, &format!("{PRODUCTS}/{id}"), Some(&farmer), Some(json!({"banned": true}))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, PRODUCTS, None, None).await, 401, "unauthenticated").await;
    assert_error(srv.call(Method::GET, &format!("{PRODUCTS}/{id}"), None, None).await, 401, "unauthenticated").await;

    // Banning is audited from → to.
    let banned = srv.json(Method::PATCH, &format!("{PRODUCTS}/{id}"), Some(&official), Some(json!({"banned": true})), 200).await;
    assert_eq!(banned["banned"], true);
    let admin = srv.admin_token().await;
    let log = srv.json(Method::GET, "/api/v1/audit?action=input_product.update", Some(&admin), None, 200).await;
    assert_eq!(log["entries"][0]["actor"], "nongye");
    assert_eq!(log["entries"][0]["target"], format!("input_product:{id}"));
    assert_eq!(log["entries"][0]["detail"], json!({"banned": {"from": false, "to": true}}));
    let listed = srv.json(Method::GET, &format!("{PRODUCTS}?banned=true"), Some(&farmer), None, 200).await;
    assert_eq!(listed["products"][0]["id"], id);
});

server_test!(async fn products_errors(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    srv.json(Method::POST, PRODUCTS, Some(&official), Some(imidacloprid()), 201).await;
    assert_error(srv.call(Method::POST, PRODUCTS, Some(&official), Some(imidacloprid())).await, 409, "registration_taken").await;
    let mut bad = imidacloprid();
    bad["registration_number"] = json!("PD2018");
    assert_error(srv.call(Method::POST, PRODUCTS, Some(&official), Some(bad)).await, 422, "invalid_registration_number").await;
    assert_error(srv.call(Method::POST, PRODUCTS, Some(&official), Some(json!({"kind": "seed", "name": "x", "maker": "y"}))).await, 422, "invalid_body").await;
    let raw = client().post(srv.url(PRODUCTS)).bearer_auth(&official).header("content-type", "application/json").body("{\"kind\":").send().await.unwrap();
    assert_error(raw, 400, "malformed_json").await;
    assert_error(srv.call(Method::PATCH, &format!("{PRODUCTS}/1"), Some(&official), Some(json!({"kind": "fertilizer"}))).await, 422, "invalid_body").await;
    assert_error(srv.call(Method::PATCH, &format!("{PRODUCTS}/1"), Some(&official), Some(json!({}))).await, 422, "missing_field").await;
    assert_error(srv.call(Method::PATCH, &format!("{PRODUCTS}/999"), Some(&official), Some(json!({"banned": true}))).await, 404, "not_found").await;
    assert_error(srv.call(Method::GET, &format!("{PRODUCTS}/999"), Some(&official), None).await, 404, "not_found").await;
    assert_error(srv.call(Method::GET, &format!("{PRODUCTS}/abc"), Some(&official), None).await, 400, "invalid_id").await;
});

server_test!(async fn label_codes_lead_to_their_pesticide(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    let dealer = srv.user_with("nongzi", "dealer", "360102").await;
    let created = srv.json(Method::POST, PRODUCTS, Some(&official), Some(imidacloprid()), 201).await;
    let found = srv.json(Method::GET, &format!("{PRODUCTS}/by-label-code/11800011001000000000000000000001"), Some(&dealer), None, 200).await;
    assert_eq!(found["products"], json!([created]));
    assert_eq!(found["label"]["code"], "11800011001000000000000000000001");
    assert_eq!(found["label"]["registration_suffix"], "180001");

    // The same digits under the hygiene category (WP) match nothing here.
    assert_error(srv.call(Method::GET, &format!("{PRODUCTS}/by-label-code/21800011001000000000000000000001"), Some(&dealer), None).await, 404, "not_found").await;
    for (code, position) in [("1180001100100000000000000000000x", 32), ("91800011001000000000000000000001", 1), ("118000110010", 13)] {
        let r = srv.call(Method::GET, &format!("{PRODUCTS}/by-label-code/{code}"), Some(&dealer), None).await;
        assert_eq!(r.status(), 422, "{code}");
        let v: Value = r.json().await.unwrap();
        assert_eq!((v["error"].as_str(), v["position"].as_u64()), (Some("invalid_label_code"), Some(position)), "{code}: {v}");
        let same = srv.json(Method::POST, "/api/v1/inputs/validate-code", Some(&dealer), Some(json!({"code": code})), 422).await;
        assert_eq!(v, same, "the same body as validate-code");
    }
    assert_error(srv.call(Method::GET, &format!("{PRODUCTS}/by-label-code/11800011001000000000000000000001"), None, None).await, 401, "unauthenticated").await;
});
