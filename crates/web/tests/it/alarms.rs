//! Alarms over the API on real servers: rules CRUD, alarms raised by
//! telemetry sent with a device token, the lifecycle with its history,
//! scoping of the list (farmers see their own devices' alarms), webhooks
//! with masked URLs, and the error contract. Every route per role in and out
//! of scope is in the authorisation matrix (matrix/alarms.rs).

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{TestServer, assert_error, client};

const RULES: &str = "/api/v1/alarm-rules";
const ALARMS: &str = "/api/v1/alarms";
const HOOKS: &str = "/api/v1/alarm-webhooks";
pub const IN_VILLAGE: &str = "360102002001";

/// A cold-chain rule: above 8 °C, cleared at 6 °C or below.
pub fn reefer_rule(region: &str) -> Value {
    json!({"name": "冷藏车超温", "region": region, "device_type": "cold_chain", "severity": "critical",
        "condition": {"kind": "threshold", "metric": "temperature", "direction": "above", "limit": 8.0, "hysteresis": 2.0}})
}

/// Registers a cold-chain logger; returns (id, device token).
pub async fn logger(srv: &TestServer, token: &str, village: &str, owner: Option<&str>) -> (i64, String) {
    let mut body = json!({"name": format!("冷藏车 {village}"), "type": "cold_chain", "village": village,
        "location": {"lon": 115.89, "lat": 28.68}});
    if let Some(o) = owner {
        body["owner"] = json!(o);
    }
    let v = srv
        .json(Method::POST, "/api/v1/devices", Some(token), Some(body), 201)
        .await;
    (v["id"].as_i64().unwrap(), v["token"].as_str().unwrap().to_string())
}

/// Sends one temperature reading with the device's token.
pub async fn send(srv: &TestServer, device_token: &str, celsius: f64) {
    let r = client()
        .post(srv.url("/api/v1/telemetry"))
        .bearer_auth(device_token)
        .json(&json!({"temperature": celsius}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The one alarm of `device`, if any.
async fn alarm_of(srv: &TestServer, token: &str, device: i64) -> Option<Value> {
    let v = srv
        .json(
            Method::GET,
            &format!("{ALARMS}?device={device}"),
            Some(token),
            None,
            200,
        )
        .await;
    let list = v["alarms"].as_array().unwrap();
    assert!(list.len() <= 1, "{v}");
    list.first().cloned()
}

fn transitions(alarm: &Value) -> Vec<(String, String)> {
    alarm["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["transition"].as_str().unwrap().to_string(),
                h["by"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

server_test!(async fn telemetry_raises_alarms_that_staff_acknowledge_and_that_clear(srv) {
    let admin = srv.admin_token().await;
    let official = srv.user_with("nongye", "official", "360102").await;
    let staff = srv.user_with("cunganbu", "village_staff", IN_VILLAGE).await;
    let farmer = srv.user_with("nonghu", "farmer", IN_VILLAGE).await;
    let neighbour = srv.user_with("linju", "farmer", IN_VILLAGE).await;
    let dealer = srv.user_with("nongzi", "dealer", "360102").await;
    let west = srv.user_with("xihu", "official", "360103").await;

    let rule = srv.json(Method::POST, RULES, Some(&official), Some(reefer_rule("360102")), 201).await;
    let (device, device_token) = logger(srv, &admin, IN_VILLAGE, Some("nonghu")).await;
    send(srv, &device_token, 5.0).await;
    assert_eq!(alarm_of(srv, &official, device).await, None);
    send(srv, &device_token, 12.5).await;

    // The contract: GET /api/v1/alarms?region=CODE&status=active → {"alarms": [...]}.
    let active = srv.json(Method::GET, &format!("{ALARMS}?region=360102&status=active"), Some(&official), None, 200).await;
    let list = active["alarms"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{active}");
    let a = &list[0];
    assert_eq!((a["device_id"].as_i64(), a["rule_id"].as_i64()), (Some(device), rule["id"].as_i64()));
    assert_eq!((a["status"].as_str(), a["severity"].as_str(), a["village"].as_str()), (Some("active"), Some("critical"), Some(IN_VILLAGE)));
    assert_eq!((a["kind"].as_str(), a["metric"].as_str(), a["value"].as_f64()), (Some("threshold"), Some("temperature"), Some(12.5)));
    assert_eq!(a["rule_name"], "冷藏车超温");
    assert!(a["raised_at"].as_str().unwrap().contains('T'));
    assert!(a.get("owner_user_id").is_none(), "owners are not exposed");
    let id = a["id"].as_i64().unwrap();
    let path = format!("{ALARMS}/{id}");

    // Who sees it: the owner, not another farmer, not a dealer, not another county.
    assert_eq!(alarm_of(srv, &farmer, device).await.unwrap()["id"], id);
    assert_eq!(alarm_of(srv, &neighbour, device).await, None);
    assert_error(srv.call(Method::GET, &path, Some(&neighbour), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, ALARMS, Some(&dealer), None).await, 403, "forbidden").await;
    assert_eq!(srv.json(Method::GET, ALARMS, Some(&west), None, 200).await["alarms"], json!([]));
    assert_error(srv.call(Method::GET, &format!("{ALARMS}?region=360102"), Some(&west), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &path, Some(&west), None).await, 403, "forbidden").await;

    // Acknowledged by village staff; only once; not by the farmer.
    assert_error(srv.call(Method::POST, &format!("{path}/acknowledge"), Some(&farmer), None).await, 403, "forbidden").await;
    let acked = srv.json(Method::POST, &format!("{path}/acknowledge"), Some(&staff), None, 200).await;
    assert_eq!((acked["status"].as_str(), acked["acknowledged_by"].as_str()), (Some("acknowledged"), Some("cunganbu")));
    assert_error(srv.call(Method::POST, &format!("{path}/acknowledge"), Some(&official), None).await, 409, "alarm_state").await;
    let worklist = srv.json(Method::GET, &format!("{ALARMS}?status=active"), Some(&official), None, 200).await;
    assert_eq!(worklist["alarms"], json!([]));
    let acknowledged = srv.json(Method::GET, &format!("{ALARMS}?status=acknowledged"), Some(&official), None, 200).await;
    assert_eq!(acknowledged["alarms"][0]["id"], id);

    // Inside the hysteresis band nothing changes; at 6 °C it clears.
    send(srv, &device_token, 7.0).await;
    assert_eq!(srv.json(Method::GET, &path, Some(&staff), None, 200).await["status"], "acknowledged");
    send(srv, &device_token, 6.0).await;
    let done = srv.json(Method::GET, &path, Some(&farmer), None, 200).await;
    assert_eq!((done["status"].as_str(), done["cleared_by"].as_str()), (Some("cleared"), Some("system")));
    assert_eq!(transitions(&done), pairs(&[("raised", "system"), ("acknowledged", "cunganbu"), ("cleared", "system")]));
    assert!(done["history"][0]["at"].as_str().unwrap().contains('T'));
    assert_eq!(done["history"][2]["value"], 6.0);
    assert_error(srv.call(Method::POST, &format!("{path}/clear"), Some(&official), None).await, 409, "alarm_state").await;

    // A manual clear; the acknowledgement is in the audit log.
    send(srv, &device_token, 30.0).await;
    let second = srv.json(Method::GET, &format!("{ALARMS}?status=active"), Some(&official), None, 200).await["alarms"][0].clone();
    assert_ne!(second["id"], id);
    let cleared = srv.json(Method::POST, &format!("{ALARMS}/{}/clear", second["id"]), Some(&official), None, 200).await;
    assert_eq!((cleared["status"].as_str(), cleared["cleared_by"].as_str()), (Some("cleared"), Some("nongye")));
    let log = srv.json(Method::GET, "/api/v1/audit?action=alarm.acknowledge", Some(&admin), None, 200).await;
    assert_eq!(log["entries"][0]["actor"], "cunganbu");
    assert_eq!(log["entries"][0]["target"], format!("alarm:{id}"));
    assert_eq!(log["entries"][0]["detail"]["to"], "acknowledged");

    // Errors.
    assert_error(srv.call(Method::GET, &format!("{ALARMS}?status=open"), Some(&official), None).await, 400, "invalid_query").await;
    assert_error(srv.call(Method::GET, &format!("{ALARMS}?region=36x"), Some(&official), None).await, 400, "invalid_region_code").await;
    assert_error(srv.call(Method::GET, &format!("{ALARMS}/abc"), Some(&official), None).await, 400, "invalid_id").await;
    assert_error(srv.call(Method::GET, &format!("{ALARMS}/999999"), Some(&official), None).await, 404, "not_found").await;
    assert_error(srv.call(Method::POST, &format!("{ALARMS}/999999/acknowledge"), Some(&official), None).await, 404, "not_found").await;
    assert_error(srv.call(Method::GET, ALARMS, None, None).await, 401, "unauthenticated").await;
    assert_error(srv.call(Method::POST, &format!("{path}/clear"), None, None).await, 401, "unauthenticated").await;
});

server_test!(async fn rules_over_the_api(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    let staff = srv.user_with("cunganbu", "village_staff", "360102").await;
    let west = srv.user_with("xihu", "official", "360103").await;
    let farmer = srv.user_with("nonghu", "farmer", IN_VILLAGE).await;

    let created = srv.json(Method::POST, RULES, Some(&official), Some(reefer_rule("360102")), 201).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["condition"], json!({"kind": "threshold", "metric": "temperature", "direction": "above", "limit": 8.0, "hysteresis": 2.0, "for_seconds": 0}));
    assert_eq!((created["region"].as_str(), created["device_type"].as_str(), created["enabled"].as_bool()), (Some("360102"), Some("cold_chain"), Some(true)));
    let device_rule = json!({"name": "一台表", "region": "360102", "device_id": 42, "severity": "warning",
        "condition": {"kind": "not_reporting", "minutes": 30}});
    srv.json(Method::POST, RULES, Some(&official), Some(device_rule), 201).await;
    let province = srv.json(Method::POST, RULES, Some(&srv.admin_token().await),
        Some(json!({"name": "全省水质", "region": "36", "device_type": "water_quality", "severity": "major",
            "condition": {"kind": "valid_range", "metric": "ph", "min": 6.5, "max": 8.5}})), 201).await;

    // Staff read the rules that apply to them (including the province's); another county does not.
    let listed = srv.json(Method::GET, RULES, Some(&staff), None, 200).await;
    assert_eq!(listed["rules"].as_array().unwrap().len(), 3);
    assert_eq!(srv.json(Method::GET, &format!("{RULES}/{id}"), Some(&staff), None, 200).await, created);
    let theirs = srv.json(Method::GET, RULES, Some(&west), None, 200).await;
    assert_eq!(theirs["rules"].as_array().unwrap().iter().map(|r| r["id"].clone()).collect::<Vec<_>>(), [province["id"].clone()]);
    assert_error(srv.call(Method::GET, &format!("{RULES}/{id}"), Some(&west), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &format!("{RULES}?region=360102"), Some(&west), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, RULES, Some(&farmer), None).await, 403, "forbidden").await;

    // Changes are audited from → to; the province's rule is not the county's to change.
    let changed = srv.json(Method::PATCH, &format!("{RULES}/{id}"), Some(&official), Some(json!({"severity": "minor", "enabled": false})), 200).await;
    assert_eq!((changed["severity"].as_str(), changed["enabled"].as_bool()), (Some("minor"), Some(false)));
    let log = srv.json(Method::GET, "/api/v1/audit?action=alarm_rule.update", Some(&official), None, 200).await;
    assert_eq!(log["entries"][0]["detail"], json!({"severity": {"from": "critical", "to": "minor"}, "enabled": {"from": true, "to": false}}));
    assert_error(srv.call(Method::PATCH, &format!("{RULES}/{}", province["id"]), Some(&official), Some(json!({"enabled": false}))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::PATCH, &format!("{RULES}/{id}"), Some(&staff), Some(json!({"enabled": true}))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::DELETE, &format!("{RULES}/{id}"), Some(&west), None).await, 403, "forbidden").await;

    // Bad input.
    let with = |patch: Value| {
        let mut body = reefer_rule("360102");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, status, code) in [
        (with(json!({"colour": "red"})), 422, "invalid_body"),
        (with(json!({"condition": {"kind": "threshold", "metric": "temperature", "direction": "above", "limit": 8, "speed": 1}})), 422, "invalid_body"),
        (with(json!({"condition": {"kind": "spike"}})), 422, "invalid_body"),
        (with(json!({"severity": "urgent"})), 422, "invalid_body"),
        (with(json!({"condition": {"kind": "valid_range", "metric": "ph", "min": 9, "max": 1}})), 422, "invalid_condition"),
        (with(json!({"condition": {"kind": "not_reporting", "minutes": 0}})), 422, "invalid_condition"),
        (with(json!({"device_id": 5})), 422, "invalid_target"),
        (with(json!({"device_type": "tractor"})), 422, "invalid_device_type"),
        (with(json!({"region": "369999"})), 422, "unknown_region"),
        (with(json!({"region": "360103"})), 403, "forbidden"),
    ] {
        assert_error(srv.call(Method::POST, RULES, Some(&official), Some(body)).await, status, code).await;
    }
    let raw = client().post(srv.url(RULES)).bearer_auth(&official).header("content-type", "application/json").body("{\"name\":").send().await.unwrap();
    assert_error(raw, 400, "malformed_json").await;
    assert_error(srv.call(Method::POST, RULES, Some(&farmer), Some(reefer_rule(IN_VILLAGE))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::PATCH, &format!("{RULES}/{id}"), Some(&official), Some(json!({}))).await, 422, "missing_field").await;
    assert_error(srv.call(Method::PATCH, &format!("{RULES}/{id}"), Some(&official), Some(json!({"region": "36"}))).await, 422, "invalid_body").await;
    assert_error(srv.call(Method::GET, &format!("{RULES}/x1"), Some(&official), None).await, 400, "invalid_id").await;
    assert_error(srv.call(Method::POST, RULES, None, Some(reefer_rule("360102"))).await, 401, "unauthenticated").await;

    // Deleted: gone, audited.
    assert_eq!(srv.call(Method::DELETE, &format!("{RULES}/{id}"), Some(&official), None).await.status(), 204);
    assert_error(srv.call(Method::GET, &format!("{RULES}/{id}"), Some(&official), None).await, 404, "not_found").await;
    assert_error(srv.call(Method::DELETE, &format!("{RULES}/{id}"), Some(&official), None).await, 404, "not_found").await;
    let log = srv.json(Method::GET, "/api/v1/audit?action=alarm_rule.delete", Some(&official), None, 200).await;
    assert_eq!(log["entries"][0]["target"], format!("alarm_rule:{id}"));
});

server_test!(async fn webhooks_over_the_api_never_show_their_secret(srv) {
    let admin = srv.admin_token().await;
    let official = srv.user_with("nongye", "official", "360102").await;
    let west = srv.user_with("xihu", "official", "360103").await;
    let staff = srv.user_with("cunganbu", "village_staff", "360102").await;
    let secret_url = "http://127.0.0.1:9/hooks/alarms?token=s3cret-value";

    let created = srv.call(Method::POST, HOOKS, Some(&official), Some(json!({"region": "360102", "url": secret_url}))).await;
    assert_eq!(created.status(), 201);
    let text = created.text().await.unwrap();
    assert!(!text.contains("s3cret") && !text.contains("/hooks"), "{text}");
    let hook: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((hook["url"].as_str(), hook["region"].as_str(), hook["enabled"].as_bool()), (Some("http://127.0.0.1:9/…"), Some("360102"), Some(true)));
    let id = hook["id"].as_i64().unwrap();

    let listed = srv.json(Method::GET, HOOKS, Some(&official), None, 200).await;
    assert_eq!(listed["webhooks"], json!([hook]));
    assert_eq!(srv.json(Method::GET, HOOKS, Some(&west), None, 200).await["webhooks"], json!([]));
    assert_error(srv.call(Method::GET, HOOKS, Some(&staff), None).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, HOOKS, Some(&west), Some(json!({"region": "360102", "url": "http://x.example/"}))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, HOOKS, Some(&official), Some(json!({"region": "360102", "url": "https://x.example/"}))).await, 422, "invalid_url").await;
    assert_error(srv.call(Method::POST, HOOKS, Some(&official), Some(json!({"region": "360102"}))).await, 422, "invalid_body").await;
    assert_error(srv.call(Method::PATCH, &format!("{HOOKS}/{id}"), Some(&west), Some(json!({"enabled": false}))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::GET, &format!("{HOOKS}/{id}/deliveries"), Some(&west), None).await, 403, "forbidden").await;

    // An alarm in the region enqueues a delivery, visible with its outcome.
    srv.json(Method::POST, RULES, Some(&official), Some(reefer_rule("360102")), 201).await;
    let (_, device_token) = logger(srv, &admin, IN_VILLAGE, None).await;
    send(srv, &device_token, 15.0).await;
    let deliveries = srv.json(Method::GET, &format!("{HOOKS}/{id}/deliveries"), Some(&official), None, 200).await;
    let d = &deliveries["deliveries"][0];
    assert_eq!((d["event"].as_str(), d["status"].as_str(), d["attempts"].as_i64()), (Some("alarm.raised"), Some("pending"), Some(0)));

    let off = srv.json(Method::PATCH, &format!("{HOOKS}/{id}"), Some(&official), Some(json!({"enabled": false})), 200).await;
    assert_eq!(off["enabled"], false);
    assert_eq!(srv.call(Method::DELETE, &format!("{HOOKS}/{id}"), Some(&official), None).await.status(), 204);
    assert_error(srv.call(Method::GET, &format!("{HOOKS}/{id}/deliveries"), Some(&official), None).await, 404, "not_found").await;

    let log = srv.call(Method::GET, "/api/v1/audit?limit=1000", Some(&admin), None).await.text().await.unwrap();
    assert!(log.contains("alarm_webhook.create") && log.contains("alarm_webhook.delete"));
    assert!(!log.contains("s3cret"), "the audit log must not hold the webhook's secret");
});
