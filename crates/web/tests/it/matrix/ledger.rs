//! The authorisation matrix's rows for dealers' ledgers and their supervision.
//!
//! The fixture registers two shops: one in 东湖区 owned by the matrix's
//! dealer (`roledealer`), one in 西湖区 owned by a dealer of that county,
//! each with sales, and an alarm raised in 西湖区.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::json;

#[allow(unused_imports)]
use super::{ADMIN, ADMIN_OFFICIAL, ALL, Call, Fixture, IN_VILLAGE, Out, Row, Side, code, unique};
use crate::support::{TestServer, USER_PASSWORD};

/// Routes checked elsewhere (named with the reason).
pub(super) const SPECIAL: &[&str] = &[
    // Takes text/csv, which the matrix's JSON calls cannot send;
    // crates/web/tests/it/ledger.rs walks every role in and out of scope.
    "POST /api/v1/dealers/{id}/ledger/import",
];

const DEALER: &[&str] = &["dealer"];
const LEDGER_READERS: &[&str] = &["admin", "official", "dealer"];
const STATS_READERS: &[&str] = &["admin", "official", "village_staff", "expert"];
const OUT_LICENCE: &str = "赣农药经营许可证-西湖-0001";

async fn user_id(srv: &TestServer, token: &str) -> i64 {
    srv.json(Method::GET, "/api/v1/auth/me", Some(token), None, 200).await["user_id"]
        .as_i64()
        .unwrap()
}

async fn post_id(srv: &TestServer, path: &str, token: &str, body: serde_json::Value) -> String {
    srv.json(Method::POST, path, Some(token), Some(body), 201).await["id"]
        .as_i64()
        .unwrap()
        .to_string()
}

/// Creates what the rows below refer to, under names in `extra`.
pub(super) async fn fixture(
    srv: &TestServer,
    admin: &str,
    out_village: &str,
    extra: &mut HashMap<&'static str, String>,
) {
    let dealer_in = srv.login("roledealer", USER_PASSWORD).await;
    let dealer_out = srv.user_with("ledgerdealerout", "dealer", "360103").await;
    let owner_in = user_id(srv, &dealer_in).await;
    let owner_out = user_id(srv, &dealer_out).await;
    let shop = |region: &str, licence: &str, owner: i64| json!({"name": "农资店", "licence_number": licence, "region": region, "address": "路1号", "owner_user_id": owner});
    let shop_in = post_id(
        srv,
        "/api/v1/dealers",
        admin,
        shop("360102", "赣农药经营许可证-东湖-0001", owner_in),
    )
    .await;
    let shop_out = post_id(srv, "/api/v1/dealers", admin, shop("360103", OUT_LICENCE, owner_out)).await;
    let product = post_id(
        srv,
        "/api/v1/inputs/products",
        admin,
        json!({"kind": "fertilizer", "name": "矩阵复合肥", "maker": "x"}),
    )
    .await;
    let banned = post_id(
        srv,
        "/api/v1/inputs/products",
        admin,
        json!({"kind": "fertilizer", "name": "矩阵禁用品", "maker": "x", "banned": true}),
    )
    .await;
    let sale = |product: &str, village: &str| {
        json!({"product_id": product.parse::<i64>().unwrap(), "quantity": 1, "unit": "kg", "buyer_name": "张三",
            "buyer_id_number": "11010519491231002X", "buyer_village": village})
    };
    let stock =
        json!({"product_id": product.parse::<i64>().unwrap(), "quantity": 100, "unit": "kg", "supplier": "批发"});
    srv.json(
        Method::POST,
        &format!("/api/v1/dealers/{shop_in}/stock-in"),
        Some(&dealer_in),
        Some(stock),
        201,
    )
    .await;
    let sales_in = format!("/api/v1/dealers/{shop_in}/sales");
    let sale_in = post_id(srv, &sales_in, &dealer_in, sale(&product, IN_VILLAGE)).await;
    let to_reverse_in = post_id(srv, &sales_in, &dealer_in, sale(&product, IN_VILLAGE)).await;
    let sales_out = format!("/api/v1/dealers/{shop_out}/sales");
    let sale_out = post_id(srv, &sales_out, &dealer_out, sale(&product, out_village)).await;
    // An alarm in 西湖区.
    srv.json(
        Method::POST,
        &sales_out,
        Some(&dealer_out),
        Some(sale(&banned, out_village)),
        422,
    )
    .await;
    extra.insert("ledger_shop_in", shop_in);
    extra.insert("ledger_shop_out", shop_out.clone());
    extra.insert("ledger_owner_in", owner_in.to_string());
    extra.insert("ledger_owner_out", owner_out.to_string());
    extra.insert("ledger_product", product);
    extra.insert("ledger_sale_in", sale_in);
    extra.insert("ledger_reverse_in", to_reverse_in);
    extra.insert("ledger_sale_out", sale_out);
    extra.insert("ledger_alarm_needle", format!("\"dealer_id\":{shop_out},"));
}

fn shop(f: &Fixture, side: Side) -> &str {
    &f.extra[if side == Side::In {
        "ledger_shop_in"
    } else {
        "ledger_shop_out"
    }]
}

fn entry_body(f: &Fixture, supplier: bool) -> serde_json::Value {
    let product: i64 = f.extra["ledger_product"].parse().unwrap();
    if supplier {
        json!({"product_id": product, "quantity": "2.5", "unit": "kg", "supplier": "批发"})
    } else {
        json!({"product_id": product, "quantity": 1, "unit": "kg", "buyer_village": IN_VILLAGE})
    }
}

pub(super) fn rows(m: &mut HashMap<&'static str, Row>) {
    m.insert(
        "POST /api/v1/dealers",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, role, side| Call {
                path: "/api/v1/dealers".into(),
                body: Some(json!({
                    "name": "新店", "licence_number": unique(role), "region": code(side), "address": "路2号",
                    "owner_user_id": f.extra[if side == Side::In { "ledger_owner_in" } else { "ledger_owner_out" }].parse::<i64>().unwrap(),
                })),
            },
        },
    );
    m.insert(
        "GET /api/v1/dealers",
        Row {
            allowed: LEDGER_READERS,
            out: Out::Filtered(|_| OUT_LICENCE.into()),
            make: |_, _, _| Call {
                path: "/api/v1/dealers".into(),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/dealers/{id}",
        Row {
            allowed: LEDGER_READERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/dealers/{}", shop(f, side)),
                body: None,
            },
        },
    );
    m.insert(
        "POST /api/v1/dealers/{id}/stock-in",
        Row {
            allowed: DEALER,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/dealers/{}/stock-in", shop(f, side)),
                body: Some(entry_body(f, true)),
            },
        },
    );
    m.insert(
        "POST /api/v1/dealers/{id}/sales",
        Row {
            allowed: DEALER,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/dealers/{}/sales", shop(f, side)),
                body: Some(entry_body(f, false)),
            },
        },
    );
    m.insert(
        "POST /api/v1/dealers/{id}/ledger/{entry}/reversal",
        Row {
            allowed: DEALER,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/dealers/{}/ledger/{}/reversal",
                    shop(f, side),
                    f.extra[if side == Side::In {
                        "ledger_reverse_in"
                    } else {
                        "ledger_sale_out"
                    }]
                ),
                body: Some(json!({"reason": "录错"})),
            },
        },
    );
    m.insert(
        "GET /api/v1/dealers/{id}/ledger",
        Row {
            allowed: LEDGER_READERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/dealers/{}/ledger", shop(f, side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/dealers/{id}/stock",
        Row {
            allowed: LEDGER_READERS,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!("/api/v1/dealers/{}/stock", shop(f, side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/dealers/{id}/ledger/{entry}/buyer",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Forbidden,
            make: |f, _, side| Call {
                path: format!(
                    "/api/v1/dealers/{}/ledger/{}/buyer",
                    shop(f, side),
                    f.extra[if side == Side::In {
                        "ledger_sale_in"
                    } else {
                        "ledger_sale_out"
                    }]
                ),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/inputs/stats",
        Row {
            allowed: STATS_READERS,
            out: Out::Forbidden,
            make: |_, _, side| Call {
                path: format!("/api/v1/inputs/stats?region={}", code(side)),
                body: None,
            },
        },
    );
    m.insert(
        "GET /api/v1/inputs/anomalies",
        Row {
            allowed: ADMIN_OFFICIAL,
            out: Out::Filtered(|f| f.extra["ledger_alarm_needle"].clone()),
            make: |_, _, _| Call {
                path: "/api/v1/inputs/anomalies".into(),
                body: None,
            },
        },
    );
}
