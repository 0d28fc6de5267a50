//! The authorisation matrix's rows for EPCIS capture and query. Capturing
//! roles (all but experts) capture in their scope; a `region` outside it is
//! 403. Events are read by scope readers (admin, official, village staff,
//! expert) within their scope and by dealers, farmers and carriers when they
//! captured them; capture jobs by their submitter only.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::{ALL, Call, Fixture, Out, Row, Side, unique};
use crate::support::{TestServer, USER_PASSWORD};

/// Routes checked elsewhere (named with the reason).
pub(super) const SPECIAL: &[&str] = &[];

const CAPTURERS: &[&str] = &["admin", "official", "village_staff", "dealer", "farmer", "carrier"];
const CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";

fn event(tag: &str) -> Value {
    json!({
        "type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
        "eventTime": "2026-04-01T08:00:00+08:00", "eventTimeZoneOffset": "+08:00",
        "epcList": [format!("https://id.gs1.org/01/09524000059109/21/{tag}")]
    })
}

fn single(tag: &str) -> Value {
    let mut e = event(tag);
    e["@context"] = json!([CONTEXT]);
    e
}

fn document(tag: &str) -> Value {
    json!({
        "@context": [CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
        "creationDate": "2026-04-01T00:00:00Z", "epcisBody": {"eventList": [event(tag)]}
    })
}

/// `extra` keys of a role's own event and capture job.
fn keys(role: &str) -> (&'static str, &'static str) {
    match role {
        "admin" => ("epcis_event_admin", "epcis_job_admin"),
        "official" => ("epcis_event_official", "epcis_job_official"),
        "village_staff" => ("epcis_event_village_staff", "epcis_job_village_staff"),
        "dealer" => ("epcis_event_dealer", "epcis_job_dealer"),
        "farmer" => ("epcis_event_farmer", "epcis_job_farmer"),
        "carrier" => ("epcis_event_carrier", "epcis_job_carrier"),
        // Experts capture nothing; they read the administrator's event.
        _ => ("epcis_event_admin", "epcis_job_admin"),
    }
}

fn encode(s: &str) -> String {
    shuxiang_trace::epcis::api::encode_path_segment(s)
}

/// One event and one capture job per capturing role (as that role, in
/// 360102) and of the outsider (a farmer of 360103).
pub(super) async fn fixture(
    srv: &TestServer,
    _admin: &str,
    _out_village: &str,
    extra: &mut HashMap<&'static str, String>,
) {
    let mut capturers: Vec<(&str, String)> = Vec::new();
    for role in CAPTURERS {
        let token = srv
            .login(&format!("role{}", role.replace('_', "")), USER_PASSWORD)
            .await;
        capturers.push((role, token));
    }
    capturers.push(("outsider", srv.login("outsider", USER_PASSWORD).await));
    for (role, token) in capturers {
        let (event_key, job_key) = if role == "outsider" {
            ("epcis_event_out", "epcis_job_out")
        } else {
            keys(role)
        };
        let created = srv
            .json(
                Method::POST,
                "/api/v1/epcis/events",
                Some(&token),
                Some(single(&format!("fx{role}"))),
                201,
            )
            .await;
        extra.insert(event_key, created["eventID"].as_str().unwrap().to_string());
        let job = srv
            .json(
                Method::POST,
                "/api/v1/epcis/capture",
                Some(&token),
                Some(document(&format!("fxdoc{role}"))),
                202,
            )
            .await;
        extra.insert(job_key, job["captureID"].as_str().unwrap().to_string());
    }
}

pub(super) fn rows(m: &mut HashMap<&'static str, Row>) {
    m.insert(
        "POST /api/v1/epcis/capture",
        Row {
            allowed: CAPTURERS,
            out: Out::Forbidden,
            make: |_, role, side| Call {
                path: format!(
                    "/api/v1/epcis/capture{}",
                    if side == Side::In { "" } else { "?region=360103" }
                ),
                body: Some(document(&unique(role))),
            },
        },
    );
    m.insert(
        "GET /api/v1/epcis/capture",
        Row {
            allowed: CAPTURERS,
            out: Out::Filtered(|f: &Fixture| f.extra["epcis_job_out"].clone()),
            make: |_, _, _| Call {
                path: "/api/v1/epcis/capture".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/epcis/capture/{captureID}",
        Row {
            allowed: CAPTURERS,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: format!(
                    "/api/v1/epcis/capture/{}",
                    if side == Side::In {
                        &f.extra[keys(role).1]
                    } else {
                        &f.extra["epcis_job_out"]
                    }
                ),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/epcis/events",
        Row {
            allowed: CAPTURERS,
            out: Out::Forbidden,
            make: |_, role, side| Call {
                path: format!(
                    "/api/v1/epcis/events{}",
                    if side == Side::In { "" } else { "?region=360103" }
                ),
                body: Some(single(&unique(role))),
            },
        },
    );
    m.insert(
        "GET /api/v1/epcis/events",
        Row {
            allowed: ALL,
            out: Out::Filtered(|f: &Fixture| f.extra["epcis_event_out"].clone()),
            make: |_, _, _| Call {
                path: "/api/v1/epcis/events?perPage=1000".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/epcis/events/{eventID}",
        Row {
            allowed: ALL,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: format!(
                    "/api/v1/epcis/events/{}",
                    encode(if side == Side::In {
                        &f.extra[keys(role).0]
                    } else {
                        &f.extra["epcis_event_out"]
                    })
                ),
                body: None,
            },
        },
    );
}
