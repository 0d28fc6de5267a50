//! The authorisation matrix's rows for devices, telemetry, series.
//!
//! The fixture registers one device in 东湖区 owned by the farmer of the
//! matrix (so "farmer" succeeds in scope as the owner) and one in 西湖区
//! owned by the administrator.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::json;

#[allow(unused_imports)]
use super::{ADMIN, ADMIN_OFFICIAL, ALL, Call, Fixture, Out, Row, Side, code};
use crate::support::TestServer;

/// Routes checked elsewhere (named with the reason).
pub(super) const SPECIAL: &[&str] = &[
    // Authenticated by a device token, not a user's: every user token is
    // 401 there. crates/web/tests/it/telemetry.rs covers device, wrong,
    // user, disabled and re-keyed credentials.
    "POST /api/v1/telemetry",
    // Takes a text/csv body, which the matrix's JSON calls cannot send;
    // crates/web/tests/it/telemetry.rs checks every role and scope.
    "POST /api/v1/devices/import",
];

const MANAGERS: &[&str] = &["admin", "official", "village_staff"];
const VIEWERS: &[&str] = &["admin", "official", "village_staff", "farmer"];
const IN_VILLAGE: &str = "360102002001";
const OUT_VILLAGE: &str = "360103001001";
const OUT_DEVICE_NAME: &str = "matrix-out-device";

/// Creates what the rows below refer to, under names in `extra`.
pub(super) async fn fixture(
    srv: &TestServer,
    admin: &str,
    _out_village: &str,
    extra: &mut HashMap<&'static str, String>,
) {
    let inside = srv
        .json(
            Method::POST,
            "/api/v1/devices",
            Some(admin),
            Some(
                json!({"name": "matrix-in-device", "type": "soil_moisture", "village": IN_VILLAGE,
                "location": {"lon": 115.92, "lat": 28.70}, "owner": "rolefarmer"}),
            ),
            201,
        )
        .await;
    let outside = srv
        .json(
            Method::POST,
            "/api/v1/devices",
            Some(admin),
            Some(
                json!({"name": OUT_DEVICE_NAME, "type": "soil_moisture", "village": OUT_VILLAGE,
                "location": {"lon": 115.87, "lat": 28.63}}),
            ),
            201,
        )
        .await;
    extra.insert("device_in", inside["id"].to_string());
    extra.insert("device_out", outside["id"].to_string());
}

fn device(f: &Fixture, side: Side) -> &str {
    &f.extra[if side == Side::In { "device_in" } else { "device_out" }]
}

pub(super) fn rows(m: &mut HashMap<&'static str, Row>) {
    m.insert(
        "POST /api/v1/devices",
        Row {
            allowed: MANAGERS,
            out: Out::Forbidden,
            make: |_, role, side| Call {
                path: "/api/v1/devices".into(),
                body: Some(if side == Side::In {
                    json!({"name": format!("m-{role}"), "type": "weather", "village": IN_VILLAGE, "location": {"lon": 115.92, "lat": 28.70}})
                } else {
                    json!({"name": format!("m-{role}"), "type": "weather", "village": OUT_VILLAGE, "location": {"lon": 115.87, "lat": 28.63}})
                }),
            },
        },
    );
    m.insert(
        "GET /api/v1/devices",
        Row {
            allowed: VIEWERS,
            out: Out::Filtered(|_| format!("\"name\":\"{OUT_DEVICE_NAME}\"")),
            make: |_, _, _| Call {
                path: "/api/v1/devices?limit=1000".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/devices/{id}",
        Row {
            allowed: VIEWERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/devices/{}", device(f, side)),
                body: None,
            },
        },
    );
    m.insert(
        "PATCH /api/v1/devices/{id}",
        Row {
            allowed: MANAGERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/devices/{}", device(f, side)),
                body: Some(json!({"name": "改名"})),
            },
        },
    );
    m.insert(
        "POST /api/v1/devices/{id}/token",
        Row {
            allowed: MANAGERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/devices/{}/token", device(f, side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/devices/{id}/series",
        Row {
            allowed: VIEWERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/devices/{}/series?metric=vwc", device(f, side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/devices/{id}/series.csv",
        Row {
            allowed: VIEWERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/devices/{}/series.csv?metric=vwc&step=1h", device(f, side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/devices/{id}/latest",
        Row {
            allowed: VIEWERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/devices/{}/latest", device(f, side)),
                body: None,
            },
        },
    );
}
