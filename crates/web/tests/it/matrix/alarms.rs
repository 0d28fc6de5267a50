//! The authorisation matrix's rows for alarm rules, alarms and alarm
//! webhooks. The fixture raises real alarms by sending telemetry with device
//! tokens: one in 东湖区 on a device owned by the matrix's farmer, one in 西湖区,
//! and one per role that may acknowledge and clear (each acts on its own).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::json;

#[allow(unused_imports)]
use super::{ADMIN, ADMIN_OFFICIAL, ALL, Call, Fixture, Out, Row, Side, code};
use crate::alarms::{IN_VILLAGE, logger, reefer_rule, send};
use crate::support::TestServer;

/// Routes checked elsewhere (named with the reason).
pub(super) const SPECIAL: &[&str] = &[];

const STAFF: &[&str] = &["admin", "official", "village_staff"];
const READERS: &[&str] = &["admin", "official", "village_staff", "farmer"];

/// Creates what the rows below refer to, under names in `extra`.
pub(super) async fn fixture(
    srv: &TestServer,
    admin: &str,
    out_village: &str,
    extra: &mut HashMap<&'static str, String>,
) {
    let id = |v: serde_json::Value| v["id"].as_i64().unwrap().to_string();
    let rule = |region: &str| reefer_rule(region);
    let idle_meter = json!({"name": "水表离线", "region": "360102", "device_type": "water_meter", "severity": "minor",
        "condition": {"kind": "not_reporting", "minutes": 60}});
    let post = |path: &'static str, body: serde_json::Value| srv.json(Method::POST, path, Some(admin), Some(body), 201);
    extra.insert("alarm_rule_in", id(post("/api/v1/alarm-rules", rule("360102")).await));
    extra.insert("alarm_rule_out", id(post("/api/v1/alarm-rules", rule("360103")).await));
    extra.insert(
        "alarm_rule_admin",
        id(post("/api/v1/alarm-rules", idle_meter.clone()).await),
    );
    extra.insert("alarm_rule_official", id(post("/api/v1/alarm-rules", idle_meter).await));
    let hook = |region: &str| json!({"region": region, "url": "http://127.0.0.1:9/alarms"});
    extra.insert(
        "alarm_hook_in",
        id(post("/api/v1/alarm-webhooks", hook("360102")).await),
    );
    extra.insert(
        "alarm_hook_out",
        id(post("/api/v1/alarm-webhooks", hook("360103")).await),
    );
    extra.insert(
        "alarm_hook_admin",
        id(post("/api/v1/alarm-webhooks", hook("360102")).await),
    );
    extra.insert(
        "alarm_hook_official",
        id(post("/api/v1/alarm-webhooks", hook("360102")).await),
    );

    for (key, village, owner) in [
        ("alarm_in", IN_VILLAGE, Some("rolefarmer")),
        ("alarm_out", out_village, None),
        ("alarm_admin", IN_VILLAGE, None),
        ("alarm_official", IN_VILLAGE, None),
        ("alarm_village_staff", IN_VILLAGE, None),
    ] {
        let (device, token) = logger(srv, admin, village, owner).await;
        send(srv, &token, 20.0).await;
        let list = srv
            .json(
                Method::GET,
                &format!("/api/v1/alarms?device={device}"),
                Some(admin),
                None,
                200,
            )
            .await;
        extra.insert(
            key,
            list["alarms"][0]["id"]
                .as_i64()
                .expect("telemetry raised an alarm")
                .to_string(),
        );
    }
}

/// The record a role acts on: in scope its own where the call consumes it
/// (a delete, an acknowledgement followed by a clear), else the shared one.
fn own(f: &Fixture, role: &str, prefix: &str, side: Side) -> String {
    if side == Side::Out {
        return shared(f, prefix, side);
    }
    let key = match (prefix, role) {
        ("alarm_rule", "admin") => "alarm_rule_admin",
        ("alarm_rule", "official") => "alarm_rule_official",
        ("alarm_hook", "admin") => "alarm_hook_admin",
        ("alarm_hook", "official") => "alarm_hook_official",
        ("alarm", "admin") => "alarm_admin",
        ("alarm", "official") => "alarm_official",
        ("alarm", "village_staff") => "alarm_village_staff",
        _ => return shared(f, prefix, side),
    };
    f.extra[key].clone()
}

/// The shared record of one side (not consumed by the call).
fn shared(f: &Fixture, prefix: &str, side: Side) -> String {
    let key = match (prefix, side) {
        ("alarm_rule", Side::In) => "alarm_rule_in",
        ("alarm_rule", Side::Out) => "alarm_rule_out",
        ("alarm_hook", Side::In) => "alarm_hook_in",
        ("alarm_hook", Side::Out) => "alarm_hook_out",
        (_, Side::In) => "alarm_in",
        (_, Side::Out) => "alarm_out",
    };
    f.extra[key].clone()
}

pub(super) fn rows(m: &mut HashMap<&'static str, Row>) {
    m.insert(
        "POST /api/v1/alarm-rules",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: "/api/v1/alarm-rules".into(),
                body: Some(reefer_rule(code(side))),
            },
        },
    );
    m.insert(
        "GET /api/v1/alarm-rules",
        Row {
            allowed: STAFF,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: format!("/api/v1/alarm-rules?region={}", code(side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/alarm-rules/{id}",
        Row {
            allowed: STAFF,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/alarm-rules/{}", shared(f, "alarm_rule", side)),
                body: None,
            },
        },
    );
    m.insert(
        "PATCH /api/v1/alarm-rules/{id}",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/alarm-rules/{}", shared(f, "alarm_rule", side)),
                body: Some(json!({"name": "改名"})),
            },
        },
    );
    m.insert(
        "DELETE /api/v1/alarm-rules/{id}",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: format!("/api/v1/alarm-rules/{}", own(f, role, "alarm_rule", side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/alarms",
        Row {
            allowed: READERS,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: format!("/api/v1/alarms?region={}&status=active", code(side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/alarms/{id}",
        Row {
            allowed: READERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/alarms/{}", shared(f, "alarm", side)),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/alarms/{id}/acknowledge",
        Row {
            allowed: STAFF,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: format!("/api/v1/alarms/{}/acknowledge", own(f, role, "alarm", side)),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/alarms/{id}/clear",
        Row {
            allowed: STAFF,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: format!("/api/v1/alarms/{}/clear", own(f, role, "alarm", side)),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/alarm-webhooks",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: "/api/v1/alarm-webhooks".into(),
                body: Some(json!({"region": code(side), "url": "http://127.0.0.1:9/matrix"})),
            },
        },
    );
    m.insert(
        "GET /api/v1/alarm-webhooks",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: format!("/api/v1/alarm-webhooks?region={}", code(side)),
                body: None,
            },
        },
    );
    m.insert(
        "PATCH /api/v1/alarm-webhooks/{id}",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/alarm-webhooks/{}", shared(f, "alarm_hook", side)),
                body: Some(json!({"enabled": true})),
            },
        },
    );
    m.insert(
        "DELETE /api/v1/alarm-webhooks/{id}",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: format!("/api/v1/alarm-webhooks/{}", own(f, role, "alarm_hook", side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/alarm-webhooks/{id}/deliveries",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/alarm-webhooks/{}/deliveries", shared(f, "alarm_hook", side)),
                body: None,
            },
        },
    );
}
