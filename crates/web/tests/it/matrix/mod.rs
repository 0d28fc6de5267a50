//! The authorisation matrix: every API route × every role × a target inside
//! the caller's scope and one outside it, plus anonymous callers. Each role
//! is held over county 东湖区 (360102); "outside" targets lie in 西湖区
//! (360103). A route added without a row here fails the test.
//!
//! Each slice keeps its rows, its fixture and its specially checked routes
//! in its own submodule; this module walks them all.

mod alarms;
mod epcis;
mod ledger;
mod logistics;
mod produce;
mod telemetry;

/// The slices' specially checked routes.
fn slice_special() -> Vec<&'static str> {
    [
        telemetry::SPECIAL,
        alarms::SPECIAL,
        epcis::SPECIAL,
        ledger::SPECIAL,
        logistics::SPECIAL,
        produce::SPECIAL,
    ]
    .concat()
}

fn slice_rows(m: &mut HashMap<&'static str, Row>) {
    telemetry::rows(m);
    alarms::rows(m);
    epcis::rows(m);
    ledger::rows(m);
    logistics::rows(m);
    produce::rows(m);
}

async fn slice_fixtures(srv: &TestServer, admin: &str, out_village: &str, extra: &mut HashMap<&'static str, String>) {
    telemetry::fixture(srv, admin, out_village, extra).await;
    alarms::fixture(srv, admin, out_village, extra).await;
    epcis::fixture(srv, admin, out_village, extra).await;
    ledger::fixture(srv, admin, out_village, extra).await;
    logistics::fixture(srv, admin, out_village, extra).await;
    produce::fixture(srv, admin, out_village, extra).await;
}

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::TestServer;

const ROLES: [&str; 7] = [
    "admin",
    "official",
    "village_staff",
    "dealer",
    "farmer",
    "carrier",
    "expert",
];
const IN_VILLAGE: &str = "360102002001";
/// PD20180001, own production, specification 001, serial 1.
const VALID_LABEL_CODE: &str = "11800011001000000000000000000001";

/// Ids created before the matrix runs.
struct Fixture {
    tokens: HashMap<&'static str, String>,
    own_token_ids: HashMap<&'static str, i64>,
    outsider_token_id: i64,
    user_in: i64,
    user_out: i64,
    out_village: String,
    /// A registered pesticide (PD20180001) for the product rows.
    product_id: i64,
    /// What the slices' fixtures created, by name (ids, codes).
    extra: HashMap<&'static str, String>,
}

/// One request of the matrix.
struct Call {
    path: String,
    body: Option<Value>,
}

/// What a route allows: the roles that succeed in scope, and what "outside
/// the scope" means for it.
struct Row {
    allowed: &'static [&'static str],
    /// `Forbidden`: the out-of-scope call must be 403; `Filtered`: it
    /// succeeds but must not reveal the out-of-scope record (needle).
    out: Out,
    make: fn(&Fixture, &str, Side) -> Call,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    In,
    Out,
}

enum Out {
    Forbidden,
    Filtered(fn(&Fixture) -> String),
    /// No region or owner is involved; the call is the same both ways.
    NotScoped,
}

const ALL: &[&str] = &ROLES;
const ADMIN: &[&str] = &["admin"];
const ADMIN_OFFICIAL: &[&str] = &["admin", "official"];

fn unique(role: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("m{}{}", role.replace('_', ""), N.fetch_add(1, Ordering::Relaxed))
}

fn code(side: Side) -> &'static str {
    if side == Side::In { "360102" } else { "360103" }
}

fn rows() -> HashMap<&'static str, Row> {
    let mut m: HashMap<&'static str, Row> = HashMap::new();
    m.insert(
        "GET /api/v1/auth/me",
        Row {
            allowed: ALL,
            out: Out::NotScoped,
            make: |_, _, _| Call {
                path: "/api/v1/auth/me".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/regions",
        Row {
            allowed: ALL,
            out: Out::Filtered(|_| "360103".into()),
            make: |_, _, side| Call {
                path: format!(
                    "/api/v1/regions?q={}",
                    if side == Side::In {
                        "%E4%B8%9C%E6%B9%96"
                    } else {
                        "%E8%A5%BF%E6%B9%96"
                    }
                ),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/regions/{code}",
        Row {
            allowed: ALL,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: format!("/api/v1/regions/{}", code(side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/regions/{code}/children",
        Row {
            allowed: ALL,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: format!("/api/v1/regions/{}/children", code(side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/regions/{code}/boundary",
        Row {
            allowed: ALL,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: format!("/api/v1/regions/{}/boundary", code(side)),
                body: None,
            },
        },
    );
    m.insert(
        "PATCH /api/v1/regions/{code}",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/regions/{}",
                    if side == Side::In {
                        IN_VILLAGE.to_string()
                    } else {
                        f.out_village.clone()
                    }
                ),
                body: Some(json!({"village_type": "agglomeration"})),
            },
        },
    );
    m.insert(
        "POST /api/v1/users",
        Row {
            allowed: ADMIN,
            out: Out::Forbidden,
            make: |_, role, side| Call {
                path: "/api/v1/users".into(),
                body: Some(
                    json!({"username": unique(role), "password": "a long secret phrase", "display_name": "x",
                "roles": [{"role": "farmer", "scope": if side == Side::In { IN_VILLAGE } else { "360103" }}]}),
                ),
            },
        },
    );
    m.insert(
        "GET /api/v1/users",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Filtered(|_| "\"outsider\"".into()),
            make: |_, _, _| Call {
                path: "/api/v1/users".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/users/{id}",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/users/{}",
                    if side == Side::In { f.user_in } else { f.user_out }
                ),
                body: None,
            },
        },
    );
    m.insert(
        "PATCH /api/v1/users/{id}",
        Row {
            allowed: ADMIN,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/users/{}",
                    if side == Side::In { f.user_in } else { f.user_out }
                ),
                body: Some(json!({"display_name": "改名"})),
            },
        },
    );
    m.insert(
        "POST /api/v1/tokens",
        Row {
            allowed: ALL,
            out: Out::NotScoped,
            make: |_, _, _| Call {
                path: "/api/v1/tokens".into(),
                body: Some(json!({"name": "matrix"})),
            },
        },
    );
    m.insert(
        "GET /api/v1/tokens",
        Row {
            allowed: ALL,
            out: Out::Filtered(|f| format!("\"id\":{},", f.outsider_token_id)),
            make: |_, _, _| Call {
                path: "/api/v1/tokens".into(),
                body: None,
            },
        },
    );
    m.insert(
        "DELETE /api/v1/tokens/{id}",
        Row {
            allowed: ALL,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: format!(
                    "/api/v1/tokens/{}",
                    if side == Side::In {
                        f.own_token_ids[role]
                    } else {
                        f.outsider_token_id
                    }
                ),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/inputs/validate-code",
        Row {
            allowed: ALL,
            out: Out::NotScoped,
            make: |_, _, _| Call {
                path: "/api/v1/inputs/validate-code".into(),
                body: Some(json!({"code": VALID_LABEL_CODE})),
            },
        },
    );
    m.insert("POST /api/v1/inputs/products", Row {
        allowed: ADMIN_OFFICIAL,
        out: Out::NotScoped,
        make: |_, role, side| Call {
            path: "/api/v1/inputs/products".into(),
            body: Some(json!({"kind": "fertilizer", "name": unique(role), "maker": if side == Side::In { "in" } else { "out" }})),
        },
    });
    m.insert(
        "GET /api/v1/inputs/products",
        Row {
            allowed: ALL,
            out: Out::NotScoped,
            make: |_, _, _| Call {
                path: "/api/v1/inputs/products?q=PD".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/inputs/products/{id}",
        Row {
            allowed: ALL,
            out: Out::NotScoped,
            make: |f, _, _| Call {
                path: format!("/api/v1/inputs/products/{}", f.product_id),
                body: None,
            },
        },
    );
    m.insert(
        "PATCH /api/v1/inputs/products/{id}",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::NotScoped,
            make: |f, _, _| Call {
                path: format!("/api/v1/inputs/products/{}", f.product_id),
                body: Some(json!({"restricted_use": true})),
            },
        },
    );
    m.insert(
        "GET /api/v1/inputs/products/by-label-code/{code}",
        Row {
            allowed: ALL,
            out: Out::NotScoped,
            make: |_, _, _| Call {
                path: format!("/api/v1/inputs/products/by-label-code/{VALID_LABEL_CODE}"),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/audit",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Filtered(|_| "\"outsider\"".into()),
            make: |_, _, _| Call {
                path: "/api/v1/audit?limit=1000".into(),
                body: None,
            },
        },
    );
    slice_rows(&mut m);
    m
}

/// Routes whose matrix is checked elsewhere: sign-in is public, and
/// sign-out is exercised per role at the end (it ends the session).
const SPECIAL: [&str; 6] = [
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/logout",
    // Public by design (consumers verify without an account) and free of
    // regions and owners; crates/trace/tests/it/api.rs covers them.
    "GET /api/v1/trace/checkpoint",
    "GET /api/v1/trace/public-key",
    "GET /api/v1/trace/proof",
    "GET /api/v1/trace/consistency",
];

async fn fixture(srv: &TestServer) -> Fixture {
    let mut tokens = HashMap::new();
    for role in ROLES {
        tokens.insert(
            role,
            srv.user_with(&format!("role{}", role.replace('_', "")), role, "360102")
                .await,
        );
    }
    let outsider = srv.user_with("outsider", "farmer", "360103").await;
    let admin = srv.admin_token().await;
    let user_in = srv
        .json(Method::POST, "/api/v1/users", Some(&admin), Some(json!({"username": "insider", "password": "a long secret phrase", "display_name": "in", "roles": [{"role": "farmer", "scope": IN_VILLAGE}]})), 201)
        .await["id"]
        .as_i64()
        .unwrap();
    let users = srv.json(Method::GET, "/api/v1/users", Some(&admin), None, 200).await;
    let user_out = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "outsider")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let outsider_token_id = srv
        .json(
            Method::POST,
            "/api/v1/tokens",
            Some(&outsider),
            Some(json!({"name": "outsider's"})),
            201,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let mut own_token_ids = HashMap::new();
    for role in ROLES {
        let id = srv
            .json(
                Method::POST,
                "/api/v1/tokens",
                Some(&tokens[role]),
                Some(json!({"name": "to revoke"})),
                201,
            )
            .await["id"]
            .as_i64()
            .unwrap();
        own_token_ids.insert(role, id);
    }
    let towns = srv
        .json(Method::GET, "/api/v1/regions/360103/children", Some(&admin), None, 200)
        .await;
    let town = towns["regions"][0]["code"].as_str().unwrap().to_string();
    let villages = srv
        .json(
            Method::GET,
            &format!("/api/v1/regions/{town}/children"),
            Some(&admin),
            None,
            200,
        )
        .await;
    let out_village = villages["regions"][0]["code"].as_str().unwrap().to_string();
    // Something from the outsider's county in the audit log.
    srv.json(
        Method::PATCH,
        &format!("/api/v1/regions/{out_village}"),
        Some(&admin),
        Some(json!({"village_type": "relocation"})),
        200,
    )
    .await;
    let product_id = srv
        .json(
            Method::POST,
            "/api/v1/inputs/products",
            Some(&admin),
            Some(json!({"kind": "pesticide", "name": "吡虫啉", "registration_number": "PD20180001", "maker": "x"})),
            201,
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let mut extra = HashMap::new();
    slice_fixtures(srv, &admin, &out_village, &mut extra).await;
    Fixture {
        tokens,
        own_token_ids,
        outsider_token_id,
        user_in,
        user_out,
        out_village,
        product_id,
        extra,
    }
}

server_test!(async fn every_route_every_role_in_and_out_of_scope(srv) {
    let f = fixture(srv).await;
    let rows = rows();
    let routes = shuxiang_web::api::routes();
    let special: Vec<&str> = SPECIAL.iter().copied().chain(slice_special()).collect();
    for r in &routes {
        let key = format!("{} {}", r.method, r.path);
        assert!(rows.contains_key(key.as_str()) || special.contains(&key.as_str()), "route {key} has no row in the authorisation matrix");
    }
    let mut checked = 0;
    for r in &routes {
        let key = format!("{} {}", r.method, r.path);
        let Some(row) = rows.get(key.as_str()) else { continue };
        // Anonymous callers are always 401.
        let anon = (row.make)(&f, "admin", Side::In);
        let resp = srv.call(r.method.clone(), &anon.path, None, anon.body).await;
        assert_eq!(resp.status(), 401, "anonymous {key}");

        for role in ROLES {
            let token = &f.tokens[role];
            let allowed = row.allowed.contains(&role);
            for side in [Side::In, Side::Out] {
                let call = (row.make)(&f, role, side);
                let resp = srv.call(r.method.clone(), &call.path, Some(token), call.body).await;
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                let ctx = format!("{role} {key} {} → {status} {text}", if side == Side::In { "in scope" } else { "out of scope" });
                match (allowed, side, &row.out) {
                    (false, _, _) => {
                        assert_eq!(status, 403, "{ctx}");
                        assert!(text.contains("\"error\":\"forbidden\""), "{ctx}");
                    }
                    (true, Side::In, _) | (true, Side::Out, Out::NotScoped) => assert_eq!(status, r.ok_status, "{ctx}"),
                    (true, Side::Out, Out::Forbidden) => assert_eq!(status, 403, "{ctx}"),
                    (true, Side::Out, Out::Filtered(needle)) => {
                        assert_eq!(status, r.ok_status, "{ctx}");
                        let needle = needle(&f);
                        assert!(!text.contains(&needle), "{ctx}: must not reveal {needle}");
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, rows.len() * ROLES.len() * 2);

    // Sign-out, last: every role may end its own session.
    for role in ROLES {
        assert_eq!(srv.call(Method::POST, "/api/v1/auth/logout", Some(&f.tokens[role]), None).await.status(), 204, "{role} logout");
        assert_eq!(srv.call(Method::GET, "/api/v1/auth/me", Some(&f.tokens[role]), None).await.status(), 401, "{role} after logout");
    }
    assert_eq!(srv.call(Method::POST, "/api/v1/auth/logout", None, None).await.status(), 401);
});
