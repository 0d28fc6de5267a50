//! The IoT API over a real server: devices registered with a token shown
//! once, telemetry over HTTP with per-point refusals and the good points
//! kept, device credentials (wrong, user tokens, disabled, re-keyed), raw
//! and rolled-up series, latest values, CSV export and CSV import, and the
//! denials the matrix cannot express (CSV bodies, device tokens).

use chrono::{SecondsFormat, TimeZone, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{TestServer, assert_error, client};

const DEVICES: &str = "/api/v1/devices";
const TELEMETRY: &str = "/api/v1/telemetry";
const IN_VILLAGE: &str = "360102002001";
const OUT_VILLAGE: &str = "360103001001";

fn soil_probe(name: &str) -> Value {
    json!({"name": name, "type": "soil_moisture", "village": IN_VILLAGE, "location": {"lon": 115.92, "lat": 28.70}})
}

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Sends a telemetry body with a bearer token.
async fn send(srv: &TestServer, token: &str, body: &str) -> reqwest::Response {
    client()
        .post(srv.url(TELEMETRY))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn send_ok(srv: &TestServer, token: &str, body: &str) -> Value {
    let r = send(srv, token, body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn import(srv: &TestServer, token: &str, csv: &str) -> reqwest::Response {
    client()
        .post(srv.url("/api/v1/devices/import"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap()
}

server_test!(async fn devices_report_telemetry_with_refusals_per_point(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    let created = srv.json(Method::POST, DEVICES, Some(&official), Some(soil_probe("1号墒情站")), 201).await;
    let id = created["id"].as_i64().unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("sxd_"));

    // The token is shown once: never in reads or lists.
    let shown = srv.json(Method::GET, &format!("{DEVICES}/{id}"), Some(&official), None, 200).await;
    assert!(!shown.to_string().contains(&token));
    assert_eq!(shown["type"], "soil_moisture");
    assert_eq!(shown["village"], IN_VILLAGE);
    let keys: Vec<&str> = shown["metrics"].as_array().unwrap().iter().map(|m| m["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["vwc", "soil_temperature"]);
    let list = srv.json(Method::GET, DEVICES, Some(&official), None, 200).await;
    assert!(!list.to_string().contains(&token));
    assert_eq!(list["devices"][0]["id"], id);

    let now = Utc::now().timestamp_millis();
    let t1 = now - 120_000;
    let body = format!(r#"[{{"ts": {t1}, "values": {{"vwc": 31.5, "soil_temperature": 18.25}}}}, {{"ts": {t1}, "values": {{"vwc": "wet", "ph": 7}}}}, {{"vwc": 101}}]"#);
    let report = send_ok(srv, &token, &body).await;
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["rejected"].as_array().unwrap().len(), 3);
    let codes: Vec<(i64, &str)> = report["rejected"].as_array().unwrap().iter().map(|r| (r["index"].as_i64().unwrap(), r["error"].as_str().unwrap())).collect();
    assert_eq!(codes, [(2, "wrong_type"), (3, "unknown_metric"), (4, "value_out_of_range")]);
    assert!(report["rejected"].as_array().unwrap().iter().all(|r| !r["message"].as_str().unwrap().is_empty()));

    // SenML from the same device.
    let senml = format!(r#"[{{"bn": "urn:dev:sx:{id}:", "bt": {}, "n": "vwc", "u": "%", "v": 30}}]"#, now / 1000);
    assert_eq!(send_ok(srv, &token, &senml).await["accepted"], 1);

    // The owner sees the good points, the latest values and the refusals.
    let latest = srv.json(Method::GET, &format!("{DEVICES}/{id}/latest"), Some(&official), None, 200).await;
    let latest: Vec<(String, f64)> = latest["latest"].as_array().unwrap().iter().map(|l| (l["metric"].as_str().unwrap().to_string(), l["value"].as_f64().unwrap())).collect();
    assert!(latest.contains(&("vwc".into(), 30.0)) && latest.contains(&("soil_temperature".into(), 18.25)), "{latest:?}");
    let shown = srv.json(Method::GET, &format!("{DEVICES}/{id}"), Some(&official), None, 200).await;
    let counts: Vec<(&str, i64)> = shown["rejections"].as_array().unwrap().iter().map(|r| (r["error"].as_str().unwrap(), r["count"].as_i64().unwrap())).collect();
    assert_eq!(counts, [("unknown_metric", 1), ("value_out_of_range", 1), ("wrong_type", 1)]);

    // Whole-message refusals.
    assert_error(send(srv, &token, "{\"vwc\": ").await, 400, "malformed_json").await;
    let too_many: Vec<Value> = (0..10_001).map(|i| json!({"ts": now - i, "values": {"vwc": 1}})).collect();
    assert_error(send(srv, &token, &Value::Array(too_many).to_string()).await, 422, "too_many_points").await;
    let exactly: Vec<Value> = (0..10_000).map(|i| json!({"ts": now - i, "values": {"vwc": 1}})).collect();
    assert_eq!(send_ok(srv, &token, &Value::Array(exactly).to_string()).await["accepted"], 10_000);
});

server_test!(async fn device_credentials_are_not_user_credentials(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    let created = srv.json(Method::POST, DEVICES, Some(&official), Some(soil_probe("a")), 201).await;
    let id = created["id"].as_i64().unwrap();
    let token = created["token"].as_str().unwrap().to_string();

    assert_error(send(srv, "sxd_0000", r#"{"vwc": 1}"#).await, 401, "unauthenticated").await;
    assert_error(send(srv, &official, r#"{"vwc": 1}"#).await, 401, "unauthenticated").await;
    let anonymous = client().post(srv.url(TELEMETRY)).body(r#"{"vwc": 1}"#).send().await.unwrap();
    assert_error(anonymous, 401, "unauthenticated").await;
    // A device token opens no user route.
    assert_error(srv.call(Method::GET, DEVICES, Some(&token), None).await, 401, "unauthenticated").await;

    // Disabled: refused; enabled again: accepted.
    srv.json(Method::PATCH, &format!("{DEVICES}/{id}"), Some(&official), Some(json!({"disabled": true})), 200).await;
    assert_error(send(srv, &token, r#"{"vwc": 1}"#).await, 403, "forbidden").await;
    srv.json(Method::PATCH, &format!("{DEVICES}/{id}"), Some(&official), Some(json!({"disabled": false})), 200).await;
    assert_eq!(send_ok(srv, &token, r#"{"vwc": 1}"#).await["accepted"], 1);

    // A new token replaces the old at once.
    let rotated = srv.json(Method::POST, &format!("{DEVICES}/{id}/token"), Some(&official), None, 200).await;
    let new_token = rotated["token"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_error(send(srv, &token, r#"{"vwc": 1}"#).await, 401, "unauthenticated").await;
    assert_eq!(send_ok(srv, new_token, r#"{"vwc": 2}"#).await["accepted"], 1);
});

server_test!(async fn series_raw_rolled_up_and_as_csv(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    let created = srv.json(Method::POST, DEVICES, Some(&official), Some(soil_probe("b")), 201).await;
    let id = created["id"].as_i64().unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    // Two whole hours ago, on the hour: three points in one hour, one in the next.
    let hour = 3_600_000;
    let base = (Utc::now().timestamp_millis() / hour - 3) * hour;
    let points = [(base, 20.0), (base + 600_000, 26.5), (base + 1_800_000, 23.0), (base + hour + 60_000, 40.0)];
    let body: Vec<Value> = points.iter().map(|(ts, v)| json!({"ts": ts, "values": {"vwc": v}})).collect();
    assert_eq!(send_ok(srv, &token, &Value::Array(body).to_string()).await["accepted"], 4);

    let window = format!("metric=vwc&from={}&to={}", rfc3339(base), rfc3339(base + 2 * hour));
    let raw = srv.json(Method::GET, &format!("{DEVICES}/{id}/series?{window}"), Some(&official), None, 200).await;
    let got: Vec<(String, f64)> = raw["points"].as_array().unwrap().iter().map(|p| (p["ts"].as_str().unwrap().to_string(), p["value"].as_f64().unwrap())).collect();
    let want: Vec<(String, f64)> = points.iter().map(|(ts, v)| (rfc3339(*ts), *v)).collect();
    assert_eq!(got, want);

    let hourly = srv.json(Method::GET, &format!("{DEVICES}/{id}/series?{window}&step=1h"), Some(&official), None, 200).await;
    assert_eq!(hourly["points"], json!([
        {"ts": rfc3339(base), "min": 20.0, "max": 26.5, "avg": (20.0 + 26.5 + 23.0) / 3.0, "count": 3, "last": 23.0},
        {"ts": rfc3339(base + hour), "min": 40.0, "max": 40.0, "avg": 40.0, "count": 1, "last": 40.0},
    ]));

    // A window edge is exclusive at `to`: the first hour only.
    let first = srv.json(Method::GET, &format!("{DEVICES}/{id}/series?metric=vwc&from={}&to={}", rfc3339(base), rfc3339(base + hour)), Some(&official), None, 200).await;
    assert_eq!(first["points"].as_array().unwrap().len(), 3);

    let r = srv.call(Method::GET, &format!("{DEVICES}/{id}/series.csv?{window}"), Some(&official), None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let mut want = String::from("ts,value\n");
    for (ts, v) in points {
        want.push_str(&format!("{},{v}\n", rfc3339(ts)));
    }
    assert_eq!(csv, want);
    let r = srv.call(Method::GET, &format!("{DEVICES}/{id}/series.csv?{window}&step=1h"), Some(&official), None).await;
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().next(), Some("ts,min,max,avg,count,last"));
    assert_eq!(csv.lines().nth(2), Some(format!("{},40,40,40,1,40", rfc3339(base + hour)).as_str()));

    // Bad requests name what is wrong.
    let path = |q: &str| format!("{DEVICES}/{id}/series?{q}");
    assert_error(srv.call(Method::GET, &path("from=2025-01-01T00:00:00Z"), Some(&official), None).await, 422, "missing_metric").await;
    assert_error(srv.call(Method::GET, &path("metric=ph"), Some(&official), None).await, 422, "unknown_metric").await;
    assert_error(srv.call(Method::GET, &path("metric=vwc&from=yesterday"), Some(&official), None).await, 400, "invalid_time").await;
    assert_error(srv.call(Method::GET, &path(&format!("{window}&step=5m")), Some(&official), None).await, 422, "invalid_step").await;
    let reversed = format!("metric=vwc&from={}&to={}", rfc3339(base + hour), rfc3339(base));
    assert_error(srv.call(Method::GET, &path(&reversed), Some(&official), None).await, 422, "invalid_window").await;
    assert_error(srv.call(Method::GET, &format!("{DEVICES}/x/series?metric=vwc"), Some(&official), None).await, 400, "invalid_id").await;
    assert_error(srv.call(Method::GET, &format!("{DEVICES}/999999/latest"), Some(&official), None).await, 404, "not_found").await;
});

server_test!(async fn csv_import_names_line_and_field_and_writes_all_or_nothing(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    let good = format!("name,type,village,lon,lat\n墒情1,soil_moisture,{IN_VILLAGE},115.92,28.70\n气象1,weather,{IN_VILLAGE},115.93,28.71\n");
    let r = import(srv, &official, &good).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let made = v["devices"].as_array().unwrap();
    assert_eq!(made.iter().map(|d| d["line"].as_i64().unwrap()).collect::<Vec<_>>(), [2, 3]);
    // Each imported token works at once.
    for d in made {
        let body = if d["name"] == "墒情1" { r#"{"vwc": 12}"# } else { r#"{"rainfall": 1.5}"# };
        assert_eq!(send_ok(srv, d["token"].as_str().unwrap(), body).await["accepted"], 1);
    }
    let count = |v: Value| v["devices"].as_array().unwrap().len();
    assert_eq!(count(srv.json(Method::GET, DEVICES, Some(&official), None, 200).await), 2);

    let bad = format!("name,type,village,lon,lat\nok,weather,{IN_VILLAGE},115.92,28.70\nbad,weather,{IN_VILLAGE},115.92,north\n");
    let r = import(srv, &official, &bad).await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_csv");
    assert!(v["message"].as_str().unwrap().contains("line 3, field lat"), "{v}");
    assert_eq!(count(srv.json(Method::GET, DEVICES, Some(&official), None, 200).await), 2, "nothing written");

    let outside = format!("name,type,village,lon,lat\nout,weather,{OUT_VILLAGE},115.87,28.63\n");
    assert_error(import(srv, &official, &outside).await, 403, "forbidden").await;
    let as_json = srv.call(Method::POST, "/api/v1/devices/import", Some(&official), Some(json!({"csv": good}))).await;
    assert_error(as_json, 400, "unsupported_content_type").await;
    let anonymous = client().post(srv.url("/api/v1/devices/import")).header("content-type", "text/csv").body(good.clone()).send().await.unwrap();
    assert_error(anonymous, 401, "unauthenticated").await;
    // Only managers import: every other role is refused, in scope or not.
    for role in ["dealer", "farmer", "carrier", "expert"] {
        let t = srv.user_with(&format!("imp{role}"), role, "360102").await;
        assert_error(import(srv, &t, &good).await, 403, "forbidden").await;
    }
    let staff = srv.user_with("cunganbu", "village_staff", IN_VILLAGE).await;
    assert_eq!(import(srv, &staff, &format!("name,type,village,lon,lat\n水表,water_meter,{IN_VILLAGE},115.92,28.70\n")).await.status(), 201);
    assert_error(import(srv, &staff, &format!("name,type,village,lon,lat\n水表,water_meter,360102002002,115.92,28.70\n")).await, 403, "forbidden").await;
    assert_eq!(count(srv.json(Method::GET, DEVICES, Some(&official), None, 200).await), 3);
});

server_test!(async fn owners_and_scopes_decide_who_sees_a_device(srv) {
    let official = srv.user_with("nongye", "official", "360102").await;
    let farmer = srv.user_with("nonghu", "farmer", IN_VILLAGE).await;
    let neighbour = srv.user_with("linju", "farmer", IN_VILLAGE).await;
    let outsider = srv.user_with("xihu", "official", "360103").await;
    let mut probe = soil_probe("农户的探头");
    probe["owner"] = json!("nonghu");
    let id = srv.json(Method::POST, DEVICES, Some(&official), Some(probe), 201).await["id"].as_i64().unwrap();

    let own = srv.json(Method::GET, DEVICES, Some(&farmer), None, 200).await;
    assert_eq!(own["devices"].as_array().unwrap().len(), 1);
    srv.json(Method::GET, &format!("{DEVICES}/{id}/series?metric=vwc"), Some(&farmer), None, 200).await;
    assert_eq!(srv.json(Method::GET, DEVICES, Some(&neighbour), None, 200).await["devices"], json!([]));
    for path in [format!("{DEVICES}/{id}"), format!("{DEVICES}/{id}/latest"), format!("{DEVICES}/{id}/series?metric=vwc")] {
        assert_error(srv.call(Method::GET, &path, Some(&neighbour), None).await, 403, "forbidden").await;
        assert_error(srv.call(Method::GET, &path, Some(&outsider), None).await, 403, "forbidden").await;
    }
    // Owners see their device but do not manage it.
    assert_error(srv.call(Method::PATCH, &format!("{DEVICES}/{id}"), Some(&farmer), Some(json!({"name": "x"}))).await, 403, "forbidden").await;
    assert_error(srv.call(Method::POST, &format!("{DEVICES}/{id}/token"), Some(&farmer), None).await, 403, "forbidden").await;
    // Bad registrations are 4xx with the error format.
    let mut far = soil_probe("far");
    far["location"] = json!({"lon": 116.4, "lat": 39.9});
    assert_error(srv.call(Method::POST, DEVICES, Some(&official), Some(far)).await, 422, "invalid_location").await;
    let mut typo = soil_probe("typo");
    typo["type"] = json!("soil");
    assert_error(srv.call(Method::POST, DEVICES, Some(&official), Some(typo)).await, 422, "invalid_type").await;
    let mut out = soil_probe("out");
    out["village"] = json!(OUT_VILLAGE);
    assert_error(srv.call(Method::POST, DEVICES, Some(&official), Some(out)).await, 403, "forbidden").await;
    let mut stranger = soil_probe("stranger");
    stranger["owner"] = json!("xihu");
    assert_error(srv.call(Method::POST, DEVICES, Some(&official), Some(stranger)).await, 422, "invalid_owner").await;
    // An audit entry for every write, in the device's region.
    let admin = srv.admin_token().await;
    let audit = srv.json(Method::GET, "/api/v1/audit?limit=1000", Some(&admin), None, 200).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"device.create"), "{audit}");
});
