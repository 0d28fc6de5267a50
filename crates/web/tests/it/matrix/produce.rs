//! The authorisation matrix's rows for produce batches and trace codes.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::json;

use super::{Call, Fixture, IN_VILLAGE, Out, Row, Side};
use crate::support::TestServer;

/// Public by design: a consumer scans without an account, and a label
/// printer fetches the QR; crates/web/tests/it/produce.rs covers them.
pub(super) const SPECIAL: &[&str] = &["GET /api/v1/trace-codes/{code}", "GET /api/v1/trace-codes/{code}/qr"];

const PRODUCERS: &[&str] = &["admin", "official", "village_staff", "farmer"];
const READERS: &[&str] = &["admin", "official", "village_staff", "expert"];
const STAFF: &[&str] = &["admin", "official", "village_staff"];

/// A harvested batch in each county, registered by the administrator.
pub(super) async fn fixture(
    srv: &TestServer,
    admin: &str,
    out_village: &str,
    extra: &mut HashMap<&'static str, String>,
) {
    for (name, code_name, village) in [
        ("batch_in", "batch_in_code", IN_VILLAGE.to_string()),
        ("batch_out", "batch_out_code", out_village.to_string()),
    ] {
        let b = srv
            .json(
                Method::POST,
                "/api/v1/produce/batches",
                Some(admin),
                Some(json!({"crop": "水稻", "village": village, "producer_name": "合作社"})),
                201,
            )
            .await;
        let id = b["id"].as_i64().unwrap();
        srv.json(
            Method::POST,
            &format!("/api/v1/produce/batches/{id}/steps"),
            Some(admin),
            Some(json!({"step": "harvest", "harvested_on": "2026-09-01", "quantity_kg": 100.0})),
            200,
        )
        .await;
        extra.insert(name, id.to_string());
        extra.insert(code_name, b["code"].as_str().unwrap().to_string());
    }
}

fn batch(f: &Fixture, side: Side) -> &str {
    &f.extra[if side == Side::In { "batch_in" } else { "batch_out" }]
}

pub(super) fn rows(m: &mut HashMap<&'static str, Row>) {
    m.insert(
        "POST /api/v1/produce/batches",
        Row {
            allowed: PRODUCERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: "/api/v1/produce/batches".into(),
                body: Some(json!({
                    "crop": "脐橙",
                    "village": if side == Side::In { IN_VILLAGE } else { f.out_village.as_str() },
                    "producer_name": "果业合作社",
                })),
            },
        },
    );
    m.insert(
        "GET /api/v1/produce/batches",
        Row {
            allowed: super::ALL,
            out: Out::Filtered(|f| f.extra["batch_out_code"].clone()),
            make: |_, _, _| Call {
                path: "/api/v1/produce/batches".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/produce/batches/{id}",
        Row {
            allowed: READERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/produce/batches/{}", batch(f, side)),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/produce/batches/{id}/steps",
        Row {
            allowed: STAFF,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/produce/batches/{}/steps", batch(f, side)),
                body: Some(json!({"step": "test", "tested_on": "2026-09-02", "item": "农药残留速测", "passed": true, "lab": "检测站"})),
            },
        },
    );
    m.insert(
        "POST /api/v1/produce/batches/{id}/packages",
        Row {
            allowed: STAFF,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/produce/batches/{}/packages", batch(f, side)),
                body: Some(json!({"count": 2})),
            },
        },
    );
}
