//! The JSON API against a real server: contract shapes, error format,
//! sign-in and sessions, regions, village types, users, tokens, audit.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{ADMIN_PASSWORD, USER_PASSWORD, assert_error, client};

server_test!(async fn health_readiness_metrics_and_openapi(srv) {
    assert_eq!(srv.json(Method::GET, "/healthz", None, None, 200).await["status"], "ok");
    assert_eq!(srv.json(Method::GET, "/readyz", None, None, 200).await["status"], "ready");
    let metrics = client().get(srv.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("shuxiang_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"), "{metrics}");
    assert!(metrics.contains("# TYPE shuxiang_http_request_duration_seconds histogram"));

    let doc = srv.json(Method::GET, "/api/v1/openapi.json", None, None, 200).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for r in shuxiang_web::api::routes() {
        let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
        assert!(op["summary"].is_string(), "{} {} missing from the OpenAPI document", r.method, r.path);
        assert!(op["responses"][r.ok_status.to_string()].is_object());
    }
});

server_test!(async fn sign_in_sessions_and_errors(srv) {
    // Wrong password, malformed JSON, missing field, wrong content type.
    assert_error(srv.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "admin", "password": "nope nope nope"}))).await, 401, "bad_credentials").await;
    let raw = client().post(srv.url("/api/v1/auth/login")).header("content-type", "application/json").body("{\"username\":").send().await.unwrap();
    assert_error(raw, 400, "malformed_json").await;
    assert_error(srv.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "admin"}))).await, 422, "invalid_body").await;
    let form = client().post(srv.url("/api/v1/auth/login")).body("username=admin").send().await.unwrap();
    assert_error(form, 400, "unsupported_content_type").await;

    // Success sets an HttpOnly session cookie and returns the same token.
    let r = srv.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "admin", "password": ADMIN_PASSWORD}))).await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("sx_session=sxs_") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let body: Value = r.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert!(cookie.contains(&token));
    assert_eq!(body["user"]["roles"][0], json!({"role": "admin", "scope": "*"}));

    // Bearer and cookie both authenticate; nothing else does.
    assert_eq!(srv.json(Method::GET, "/api/v1/auth/me", Some(&token), None, 200).await["username"], "admin");
    let by_cookie = client().get(srv.url("/api/v1/auth/me")).header("cookie", format!("sx_session={token}")).send().await.unwrap();
    assert_eq!(by_cookie.status(), 200);
    let anon = srv.call(Method::GET, "/api/v1/regions/36", None, None).await;
    assert_eq!(anon.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_error(anon, 401, "unauthenticated").await;
    assert_error(srv.call(Method::GET, "/api/v1/regions/36", Some("sxs_forged"), None).await, 401, "unauthenticated").await;

    // A cookie-authenticated write from another origin is refused.
    let forged = client()
        .post(srv.url("/api/v1/tokens"))
        .header("cookie", format!("sx_session={token}"))
        .header("origin", "http://evil.example")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(forged, 403, "forbidden").await;

    // Sign-out ends the session.
    assert_eq!(srv.call(Method::POST, "/api/v1/auth/logout", Some(&token), None).await.status(), 204);
    assert_error(srv.call(Method::GET, "/api/v1/auth/me", Some(&token), None).await, 401, "unauthenticated").await;
});

server_test!(async fn sign_in_is_throttled(srv) {
    for _ in 0..5 {
        assert_error(srv.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "admin", "password": "guess guess 1"}))).await, 401, "bad_credentials").await;
    }
    let r = srv.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "admin", "password": ADMIN_PASSWORD}))).await;
    let retry: u64 = r.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    assert_error(r, 429, "too_many_attempts").await;
});

server_test!(async fn regions_contract(srv) {
    let t = srv.admin_token().await;
    let jx = srv.json(Method::GET, "/api/v1/regions/36", Some(&t), None, 200).await;
    assert_eq!(jx["name"], "江西省");
    assert_eq!(jx["level"], "province");
    assert_eq!(jx["parent"], Value::Null);
    assert_eq!(jx["counts"], json!({"city": 11, "county": 100, "township": 1767, "village": 22080}));
    assert_eq!(srv.json(Method::GET, "/api/v1/regions/360000", Some(&t), None, 200).await["code"], "36");
    let nc = srv.json(Method::GET, "/api/v1/regions/360100", Some(&t), None, 200).await;
    assert_eq!((nc["code"].as_str(), nc["level"].as_str(), nc["parent"].as_str()), (Some("3601"), Some("city"), Some("36")));
    let v = srv.json(Method::GET, "/api/v1/regions/360102002001", Some(&t), None, 200).await;
    assert_eq!(v["level"], "village");
    assert_eq!(v["ancestors"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect::<Vec<_>>(), ["江西省", "南昌市", "东湖区", "滕王阁街道"]);

    assert_error(srv.call(Method::GET, "/api/v1/regions/36x", Some(&t), None).await, 400, "invalid_region_code").await;
    assert_error(srv.call(Method::GET, "/api/v1/regions/369999", Some(&t), None).await, 404, "not_found").await;

    let kids = srv.json(Method::GET, "/api/v1/regions/36/children", Some(&t), None, 200).await;
    assert_eq!(kids["regions"].as_array().unwrap().len(), 11);
    let found = srv.json(Method::GET, "/api/v1/regions?q=%E6%BB%95%E7%8E%8B%E9%98%81", Some(&t), None, 200).await;
    assert!(found["regions"].as_array().unwrap().iter().any(|r| r["code"] == "360102002"));
    assert_error(srv.call(Method::GET, "/api/v1/regions?limit=many", Some(&t), None).await, 400, "invalid_query").await;

    let b = srv.json(Method::GET, "/api/v1/regions/360102/boundary", Some(&t), None, 200).await;
    assert_eq!(b["type"], "Feature");
    assert_eq!(b["geometry"]["type"], "MultiPolygon");
    assert_eq!(b["properties"]["code"], "360102");
    let simple = srv.json(Method::GET, "/api/v1/regions/360102/boundary?detail=simplified", Some(&t), None, 200).await;
    assert!(simple["geometry"].to_string().len() < b["geometry"].to_string().len());
    assert_error(srv.call(Method::GET, "/api/v1/regions/360102002/boundary", Some(&t), None).await, 404, "not_found").await;
    assert_error(srv.call(Method::GET, "/api/v1/regions/360102/boundary?detail=huge", Some(&t), None).await, 422, "invalid_detail").await;
});

server_test!(async fn village_types_are_scoped_validated_and_audited(srv) {
    let official = srv.user_with("donghu", "official", "360102").await;
    let village = "/api/v1/regions/360102002001";
    let set = srv.json(Method::PATCH, village, Some(&official), Some(json!({"village_type": "characteristic"})), 200).await;
    assert_eq!(set["village_type"], "characteristic");
    assert_eq!(srv.json(Method::GET, village, Some(&official), None, 200).await["village_type"], "characteristic");
    srv.json(Method::PATCH, village, Some(&official), Some(json!({"village_type": null})), 200).await;
    assert_eq!(srv.json(Method::GET, village, Some(&official), None, 200).await["village_type"], Value::Null);

    assert_error(srv.call(Method::PATCH, village, Some(&official), Some(json!({"village_type": "urban"}))).await, 422, "invalid_village_type").await;
    assert_error(srv.call(Method::PATCH, village, Some(&official), Some(json!({}))).await, 422, "missing_field").await;
    assert_error(srv.call(Method::PATCH, village, Some(&official), Some(json!({"name": "x", "village_type": null}))).await, 422, "unknown_field").await;
    assert_error(srv.call(Method::PATCH, "/api/v1/regions/360102002", Some(&official), Some(json!({"village_type": "suburban"}))).await, 422, "not_a_village").await;
    // Out of scope: a village of 西湖区 (360103).
    let other = srv.json(Method::GET, "/api/v1/regions/360103/children", Some(&srv.admin_token().await), None, 200).await;
    let town = other["regions"][0]["code"].as_str().unwrap().to_string();
    let admin = srv.admin_token().await;
    let villages = srv.json(Method::GET, &format!("/api/v1/regions/{town}/children"), Some(&admin), None, 200).await;
    let outside = villages["regions"][0]["code"].as_str().unwrap().to_string();
    assert_error(srv.call(Method::PATCH, &format!("/api/v1/regions/{outside}"), Some(&official), Some(json!({"village_type": "suburban"}))).await, 403, "forbidden").await;
    assert_eq!(srv.json(Method::GET, &format!("/api/v1/regions/{outside}"), Some(&admin), None, 200).await["village_type"], Value::Null);

    // The county official reads the audit entries of the county only.
    let log = srv.json(Method::GET, "/api/v1/audit?action=region.update", Some(&official), None, 200).await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["actor"], "donghu");
    assert_eq!(entries[0]["ip"], "127.0.0.1");
    assert_eq!(entries[1]["detail"]["village_type"], json!({"from": null, "to": "characteristic"}));
});

server_test!(async fn users_are_managed_with_masked_phones(srv) {
    let admin = srv.admin_token().await;
    let body = |name: &str, scope: &str| json!({"username": name, "password": USER_PASSWORD, "display_name": "张三", "phone": "13912345678", "roles": [{"role": "farmer", "scope": scope}]});
    let created = srv.json(Method::POST, "/api/v1/users", Some(&admin), Some(body("zhangsan", "360102002001")), 201).await;
    assert_eq!(created["roles"], json!([{"role": "farmer", "scope": "360102002001"}]));
    assert!(created.get("password_hash").is_none());
    assert_error(srv.call(Method::POST, "/api/v1/users", Some(&admin), Some(body("zhangsan", "36"))).await, 409, "username_taken").await;
    assert_error(srv.call(Method::POST, "/api/v1/users", Some(&admin), Some(body("Bad Name", "36"))).await, 422, "invalid_username").await;
    assert_error(srv.call(Method::POST, "/api/v1/users", Some(&admin), Some(body("lisi", "99"))).await, 422, "unknown_region").await;
    assert_error(srv.call(Method::POST, "/api/v1/users", Some(&admin), Some(json!({"username": "lisi"}))).await, 422, "invalid_body").await;

    let official = srv.user_with("donghu", "official", "360102").await;
    let seen = srv.json(Method::GET, "/api/v1/users", Some(&official), None, 200).await;
    let farmer = seen["users"].as_array().unwrap().iter().find(|u| u["username"] == "zhangsan").unwrap();
    assert_eq!(farmer["phone"], "139****5678", "officials see masked phones");
    let full = srv.json(Method::GET, "/api/v1/users", Some(&admin), None, 200).await;
    assert!(full["users"].as_array().unwrap().iter().any(|u| u["phone"] == "13912345678"));

    let id = created["id"].as_i64().unwrap();
    let upd = srv.json(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&admin), Some(json!({"display_name": "张三丰"})), 200).await;
    assert_eq!(upd["display_name"], "张三丰");
    assert_error(srv.call(Method::PATCH, "/api/v1/users/abc", Some(&admin), Some(json!({}))).await, 400, "invalid_id").await;
    assert_error(srv.call(Method::GET, "/api/v1/users/99999", Some(&admin), None).await, 404, "not_found").await;
    // A new password ends existing sessions.
    let farmer_token = srv.login("zhangsan", USER_PASSWORD).await;
    srv.json(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&admin), Some(json!({"password": "another long secret"})), 200).await;
    assert_error(srv.call(Method::GET, "/api/v1/auth/me", Some(&farmer_token), None).await, 401, "unauthenticated").await;
});

server_test!(async fn api_tokens_are_shown_once_and_revocable(srv) {
    let staff = srv.user_with("station", "village_staff", "360102002001").await;
    let made = srv.json(Method::POST, "/api/v1/tokens", Some(&staff), Some(json!({"name": "station sync", "expires_in_days": 90})), 201).await;
    let secret = made["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sxt_"));
    let listed = srv.json(Method::GET, "/api/v1/tokens", Some(&staff), None, 200).await;
    assert!(!listed.to_string().contains(&secret), "secrets are never listed");
    assert_eq!(listed["tokens"][0]["name"], "station sync");
    // The token acts with the owner's scope.
    srv.json(Method::GET, "/api/v1/regions/360102002001", Some(&secret), None, 200).await;
    assert_error(srv.call(Method::GET, "/api/v1/regions/360103", Some(&secret), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, "/api/v1/tokens", Some(&staff), Some(json!({"name": ""}))).await, 422, "invalid_token_name").await;
    let id = made["id"].as_i64().unwrap();
    assert_eq!(srv.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&staff), None).await.status(), 204);
    assert_error(srv.call(Method::GET, "/api/v1/auth/me", Some(&secret), None).await, 401, "unauthenticated").await;
    assert_error(srv.call(Method::DELETE, "/api/v1/tokens/424242", Some(&staff), None).await, 404, "not_found").await;
});

server_test!(async fn unknown_paths_are_404_json_under_the_api_and_html_elsewhere(srv) {
    assert_error(srv.call(Method::GET, "/api/v1/nothing/here", None, None).await, 404, "not_found").await;
    let page = srv.call(Method::GET, "/nothing/here", None, None).await;
    assert_eq!(page.status(), 404);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("<html"));
});

server_test!(async fn another_node_notices_changes_within_the_sync_interval(srv) {
    let b = srv.another_node().await;
    let official = srv.user_with("donghu", "official", "360102").await;
    let village = "/api/v1/regions/360102002001";
    // Node B caches the session and the region.
    assert_eq!(b.json(Method::GET, village, Some(&official), None, 200).await["village_type"], Value::Null);
    srv.json(Method::PATCH, village, Some(&official), Some(json!({"village_type": "suburban"})), 200).await;
    tokio::time::sleep(shuxiang_web::state::CACHE_SYNC_INTERVAL + std::time::Duration::from_millis(200)).await;
    assert_eq!(b.json(Method::GET, village, Some(&official), None, 200).await["village_type"], "suburban");
    // Sign-out on node A ends the session on node B too.
    assert_eq!(srv.call(Method::POST, "/api/v1/auth/logout", Some(&official), None).await.status(), 204);
    tokio::time::sleep(shuxiang_web::state::CACHE_SYNC_INTERVAL + std::time::Duration::from_millis(200)).await;
    assert_error(b.call(Method::GET, "/api/v1/auth/me", Some(&official), None).await, 401, "unauthenticated").await;
    b.stop().await;
});

server_test!(async fn pesticide_label_codes_are_validated_with_the_failing_position(srv) {
    let dealer = srv.user_with("nongzi", "dealer", "360102").await;
    let ok = srv.json(Method::POST, "/api/v1/inputs/validate-code", Some(&dealer), Some(json!({"code": "11800011001000000000000000000001"})), 200).await;
    assert_eq!(ok["code"], "11800011001000000000000000000001");
    assert_eq!(ok["registration_suffix"], "180001");
    let qr = srv.json(Method::POST, "/api/v1/inputs/validate-code", Some(&dealer), Some(json!({"code": "https://example.gov.cn/t/11800011001000000000000000000001"})), 200).await;
    assert_eq!(qr["code"], ok["code"]);
    for (code, position) in [("1180001100100000000000000000000x", 32), ("91800011001000000000000000000001", 1), ("118000110010", 13)] {
        let r = srv.call(Method::POST, "/api/v1/inputs/validate-code", Some(&dealer), Some(json!({"code": code}))).await;
        assert_eq!(r.status(), 422, "{code}");
        let v: Value = r.json().await.unwrap();
        assert_eq!((v["error"].as_str(), v["position"].as_u64()), (Some("invalid_label_code"), Some(position)), "{code}: {v}");
    }
    assert_error(srv.call(Method::POST, "/api/v1/inputs/validate-code", None, Some(json!({"code": "1"}))).await, 401, "unauthenticated").await;
    assert_error(srv.call(Method::POST, "/api/v1/inputs/validate-code", Some(&dealer), Some(json!({}))).await, 422, "invalid_body").await;
});

server_test!(async fn bodies_over_the_limit_are_refused_in_json(srv) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Only the announced length is sent: the server must refuse from the
    // header, and a client still writing a large body would race the close.
    let admin = srv.admin_token().await;
    let host = srv.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "POST /api/v1/epcis/capture HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        3 * 1024 * 1024
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("application/json") && text.contains("\"error\":\"payload_too_large\""), "{text}");
});
