//! The farm-input pages over a real server, as a browser without JavaScript
//! uses them: a dealer's stock-in, sale, reversal and CSV import through
//! plain form posts, refusals shown on the form in the viewer's language,
//! the masked ledger, the officials' supervision page (totals per region
//! and month, anomalies, CSV export) and the role and scope denials.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_test;
use crate::support::{TestServer, client};

const SAMPLE_ID: &str = "11010519491231002X";
const MASKED_ID: &str = "110105********002X";

async fn get(srv: &TestServer, path: &str, token: &str) -> (u16, String) {
    let r = client().get(srv.url(path)).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A form post; returns the status, the `Location` and the body.
async fn post<F: serde::Serialize + ?Sized>(
    srv: &TestServer,
    path: &str,
    token: &str,
    form: &F,
) -> (u16, String, String) {
    let r = client()
        .post(srv.url(path))
        .bearer_auth(token)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

async fn create(srv: &TestServer, path: &str, token: &str, body: Value) -> i64 {
    srv.json(Method::POST, path, Some(token), Some(body), 201).await["id"]
        .as_i64()
        .unwrap()
}

async fn user_id(srv: &TestServer, token: &str) -> i64 {
    srv.json(Method::GET, "/api/v1/auth/me", Some(token), None, 200).await["user_id"]
        .as_i64()
        .unwrap()
}

/// The first township of `county` and its first village.
async fn town_and_village(srv: &TestServer, token: &str, county: &str) -> (String, String) {
    let children = |code: String| async move {
        srv.json(
            Method::GET,
            &format!("/api/v1/regions/{code}/children"),
            Some(token),
            None,
            200,
        )
        .await["regions"][0]["code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let town = children(county.to_owned()).await;
    let village = children(town.clone()).await;
    (town, village)
}

async fn shop(srv: &TestServer, official: &str, owner: &str, region: &str, licence: &str, name: &str) -> i64 {
    let owner_id = user_id(srv, owner).await;
    create(
        srv,
        "/api/v1/dealers",
        official,
        json!({"name": name, "licence_number": licence, "region": region, "address": "解放路1号", "owner_user_id": owner_id}),
    )
    .await
}

fn pesticide(name: &str, number: &str, restricted: bool, banned: bool) -> Value {
    json!({"kind": "pesticide", "name": name, "registration_number": number, "maker": "x",
        "restricted_use": restricted, "banned": banned})
}

server_test!(async fn dealers_keep_their_ledger_through_the_forms(srv) {
    let admin = srv.admin_token().await;
    let official = srv.user_with("nongye", "official", "360102").await;
    let dealer = srv.user_with("nongzi", "dealer", "360102").await;
    let shop_id = shop(srv, &official, &dealer, "360102", "L-0001", "东湖农资店").await;
    let (_, v) = town_and_village(srv, &official, "360102").await;
    let plain = create(srv, "/api/v1/inputs/products", &admin, pesticide("吡虫啉", "PD20180001", false, false)).await;
    let restricted = create(srv, "/api/v1/inputs/products", &admin, pesticide("克百威", "PD20180003", true, false)).await;
    let banned = create(srv, "/api/v1/inputs/products", &admin, pesticide("甲胺磷", "PD20180002", false, true)).await;
    let page = format!("/dealers/{shop_id}");

    let (status, html) = get(srv, "/dealers", &dealer).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("href=\"{page}\"")) && html.contains("东湖农资店"));
    let (status, html) = get(srv, &page, &dealer).await;
    assert_eq!(status, 200);
    for needle in ["进货", "销售", "导入台账", "[限用]", "[禁用]", &format!("action=\"{page}/sales\"")] {
        assert!(html.contains(needle), "the dealer's page lacks {needle}");
    }
    assert!(!html.contains("<script"));

    // Stock in and a real-name sale through the forms.
    let plain_id = plain.to_string();
    let (status, location, _) = post(srv, &format!("{page}/stock-in"), &dealer, &[
        ("product_id", plain_id.as_str()), ("quantity", "10"), ("unit", "kg"), ("supplier", "省农资公司"),
        ("batch", "20260215A"), ("date", "2026-03-01"), ("label_codes", ""),
    ]).await;
    assert_eq!((status, location.as_str()), (303, format!("{page}?done=stock_in").as_str()));
    let sale = |product: String, id: &'static str| vec![
        ("product_id", product), ("quantity", "0.5".to_owned()), ("unit", "kg".to_owned()),
        ("buyer_name", "张三".to_owned()), ("buyer_id_number", id.to_owned()), ("buyer_phone", "13912345678".to_owned()),
        ("buyer_village", v.clone()), ("crop", "水稻".to_owned()), ("date", "2026-03-02".to_owned()),
    ];
    let (status, _, _) = post(srv, &format!("{page}/sales"), &dealer, &sale(plain_id.clone(), SAMPLE_ID)).await;
    assert_eq!(status, 303);

    let (_, html) = get(srv, &format!("{page}?done=sale"), &dealer).await;
    assert!(html.contains("已记录"));
    assert!(html.contains(MASKED_ID) && html.contains("139****5678"), "the buyer shows masked");
    assert!(!html.contains(SAMPLE_ID) && !html.contains("13912345678"), "never in full");
    assert!(html.contains("省农资公司") && html.contains("20260215A") && html.contains("水稻"));
    let stock_table = &html[html.find("id=\"stock\"").expect("a stock table")..];
    assert!(stock_table[..stock_table.find("</table>").unwrap()].contains("<td>9.5</td>"), "10 kg in, 0.5 kg out");
    let ledger = srv.json(Method::GET, &format!("/api/v1/dealers/{shop_id}/ledger"), Some(&dealer), None, 200).await;
    let entries = ledger["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let sale_id = entries[0]["id"].as_i64().unwrap();
    assert_eq!((entries[0]["entry_type"].as_str(), entries[0]["buyer_id_number"].as_str()), (Some("sale"), Some(MASKED_ID)));

    // A restricted product without the buyer's ID comes back on the form, in Chinese or English.
    let mut no_id = sale(restricted.to_string(), "");
    no_id[3].1 = "李四".to_owned();
    let (status, _, html) = post(srv, &format!("{page}/sales"), &dealer, &no_id).await;
    assert_eq!(status, 422);
    assert!(html.contains("限用农药须登记购买人真实姓名和身份证号"), "the refusal is explained");
    assert!(html.contains("value=\"李四\""), "the form keeps what was typed");
    assert!(html.contains(&format!("<option value=\"{restricted}\" selected>")));
    let (status, _, html) = post(srv, &format!("{page}/sales?lang=en"), &dealer, &no_id).await;
    assert_eq!(status, 422);
    assert!(html.contains("needs the buyer&#39;s real name and ID number") || html.contains("needs the buyer's real name and ID number"), "{html}");
    // A banned product is refused with the clear message, and nothing is written.
    let (status, _, html) = post(srv, &format!("{page}/sales"), &dealer, &sale(banned.to_string(), SAMPLE_ID)).await;
    assert_eq!(status, 422);
    assert!(html.contains("该产品为禁用农药，不得销售"), "banned refusal");
    assert!(html.contains("甲胺磷"), "the detail names the product");
    // A bad ID number is refused on its field.
    let (status, _, html) = post(srv, &format!("{page}/sales"), &dealer, &sale(plain_id.clone(), "110105194912310021")).await;
    assert_eq!(status, 422);
    assert!(html.contains("身份证号：身份证号无效"), "{html}");
    let ledger = srv.json(Method::GET, &format!("/api/v1/dealers/{shop_id}/ledger"), Some(&dealer), None, 200).await;
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 2, "refused sales write nothing");

    // Label codes without a quantity count as pieces.
    let (status, _, _) = post(srv, &format!("{page}/stock-in"), &dealer, &[
        ("product_id", plain_id.as_str()), ("quantity", ""), ("unit", "kg"), ("supplier", "省农资公司"),
        ("label_codes", "11800011001000000000000000000001\n11800011001000000000000000000002"),
    ]).await;
    assert_eq!(status, 303);
    let ledger = srv.json(Method::GET, &format!("/api/v1/dealers/{shop_id}/ledger"), Some(&dealer), None, 200).await;
    assert_eq!((ledger["entries"][0]["quantity"].as_str(), ledger["entries"][0]["unit"].as_str()), (Some("2"), Some("piece")));

    // Reversal from the entry's button; twice is refused on the page.
    let reversal = format!("{page}/ledger/{sale_id}/reversal");
    let (status, location, _) = post(srv, &reversal, &dealer, &[("reason", "录错")]).await;
    assert_eq!((status, location.as_str()), (303, format!("{page}?done=reversal").as_str()));
    let (_, html) = get(srv, &page, &dealer).await;
    assert!(html.contains("冲销") && html.contains("录错") && html.contains("已冲销"));
    assert!(!html.contains(&format!("action=\"{reversal}\"")), "a reversed entry offers no second reversal");
    let (status, _, html) = post(srv, &reversal, &dealer, &[("reason", "again")]).await;
    assert_eq!(status, 409);
    assert!(html.contains("该记录已经冲销过"));

    // CSV import: every line error listed, nothing written; a good file imports.
    let header = "type,date,product_id,quantity,unit,supplier,buyer_name,buyer_id_number,buyer_village";
    let bad = format!("{header}\nstock_in,2026-03-01,{plain},10,kg,,,,\nsale,2026-03-02,{plain},1,kg,,,,\n");
    let (status, _, html) = post(srv, &format!("{page}/import"), &dealer, &[("csv", bad.as_str())]).await;
    assert_eq!(status, 422);
    let errors = &html[html.find("id=\"import-errors\"").expect("the line errors are listed")..];
    assert!(errors.contains("<td>2</td><td>supplier</td>") && errors.contains("<td>3</td><td>buyer_village</td>"), "{errors}");
    let good = format!("{header}\nstock_in,2026-03-05,{plain},4,kg,省农资公司,,,\nsale,2026-03-06,{plain},1.25,kg,,李四,{SAMPLE_ID},{v}\n");
    let (status, location, _) = post(srv, &format!("{page}/import"), &dealer, &[("csv", good.as_str())]).await;
    assert_eq!((status, location.as_str()), (303, format!("{page}?done=import").as_str()));
    let ledger = srv.json(Method::GET, &format!("/api/v1/dealers/{shop_id}/ledger"), Some(&dealer), None, 200).await;
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 6, "2 + stock-in by codes + reversal + 2 imported");

    // The official reads the page but gets no forms; their post is refused.
    let (status, html) = get(srv, &page, &official).await;
    assert_eq!(status, 200);
    assert!(html.contains(MASKED_ID) && !html.contains(SAMPLE_ID));
    assert!(!html.contains(&format!("action=\"{page}/sales\"")) && !html.contains("/reversal\""));
    let (status, _, _) = post(srv, &format!("{page}/stock-in"), &official, &[("product_id", plain_id.as_str()), ("quantity", "1"), ("unit", "kg"), ("supplier", "x")]).await;
    assert_eq!(status, 403);
});

server_test!(async fn officials_supervise_sales_and_anomalies_within_their_scope(srv) {
    let admin = srv.admin_token().await;
    let official = srv.user_with("jianguan", "official", "360102").await;
    let neighbour = srv.user_with("xihuguan", "official", "360103").await;
    let dealer = srv.user_with("dianzhu", "dealer", "360102").await;
    let other_dealer = srv.user_with("biedian", "dealer", "360103").await;
    let farmer = srv.user_with("nonghu", "farmer", "360102").await;
    let shop_id = shop(srv, &official, &dealer, "360102", "L-A", "东湖农资店").await;
    let other_shop = shop(srv, &admin, &other_dealer, "360103", "L-B", "西湖农资店").await;
    let (town, v) = town_and_village(srv, &official, "360102").await;
    let plain = create(srv, "/api/v1/inputs/products", &admin, pesticide("吡虫啉", "PD20180001", false, false)).await;
    let banned = create(srv, "/api/v1/inputs/products", &admin, pesticide("甲胺磷", "PD20180002", false, true)).await;
    let urea = create(srv, "/api/v1/inputs/products", &admin, json!({"kind": "fertilizer", "name": "尿素", "maker": "x"})).await;

    // Sales into the village: (product, date, kg).
    let fixtures = [(plain, "2026-03-02", 0.5), (plain, "2026-04-05", 2.0), (urea, "2026-04-06", 25.0), (plain, "2025-12-30", 7.0)];
    for (product, date, kg) in fixtures {
        srv.json(Method::POST, &format!("/api/v1/dealers/{shop_id}/sales"), Some(&dealer),
            Some(json!({"product_id": product, "quantity": kg.to_string(), "unit": "kg", "buyer_village": v, "date": date})), 201).await;
    }
    let (status, _, _) = post(srv, &format!("/dealers/{shop_id}/sales"), &dealer, &[
        ("product_id", banned.to_string().as_str()), ("quantity", "1"), ("unit", "kg"), ("buyer_village", v.as_str()),
    ]).await;
    assert_eq!(status, 422);
    let in_2026 = |p: i64| fixtures.iter().filter(|f| f.0 == p && f.1.starts_with("2026")).map(|f| f.2).sum::<f64>();
    let count_2026 = |p: i64| fixtures.iter().filter(|f| f.0 == p && f.1.starts_with("2026")).count();

    // The county: its township's totals for the period, with a drill-down link.
    let (status, html) = get(srv, "/inputs?region=360102&from=2026-01-01", &official).await;
    assert_eq!(status, 200, "{html}");
    let by_region = &html[html.find("id=\"by-region\"").expect("sales per township")..];
    let by_region = &by_region[..by_region.find("</table>").unwrap()];
    assert!(by_region.contains(&format!("href=\"/inputs?region={town}&#38;from=2026-01-01\"")), "{by_region}");
    let pesticide_row = format!("<td>农药</td><td>{}</td><td>0</td><td>0</td><td>{}</td>", in_2026(plain), count_2026(plain));
    let fertilizer_row = format!("<td>肥料</td><td>{}</td><td>0</td><td>0</td><td>{}</td>", in_2026(urea), count_2026(urea));
    assert!(by_region.contains(&pesticide_row) && by_region.contains(&fertilizer_row), "{by_region}");
    // The anomaly of the banned attempt, linked to its shop.
    let anomalies = &html[html.find("id=\"anomalies\"").expect("the anomalies")..];
    assert!(anomalies.contains("销售禁用农药") && anomalies.contains(&format!("href=\"/dealers/{shop_id}\"")) && anomalies.contains("甲胺磷"));
    assert!(html.contains("<svg class=\"chart bars\""), "the monthly series is drawn");

    // The village: its monthly series; the kind filter narrows it.
    let (status, html) = get(srv, &format!("/inputs?region={v}&from=2026-01-01&kind=pesticide"), &official).await;
    assert_eq!(status, 200);
    let by_month = &html[html.find("id=\"by-month\"").expect("sales per month")..];
    let by_month = &by_month[..by_month.find("</table>").unwrap()];
    assert!(by_month.contains("<td>2026-03</td><td>农药</td><td>0.5</td>") && by_month.contains("<td>2026-04</td><td>农药</td><td>2</td>"), "{by_month}");
    assert!(!by_month.contains("肥料") && !by_month.contains("2025-12"), "kind and period filter");
    assert!(!html.contains("id=\"by-region\""), "a village has no child regions to list");
    let (_, en) = get(srv, &format!("/inputs?region={v}&lang=en"), &official).await;
    assert!(en.contains("Farm-input supervision") && en.contains("Sales by month"));

    // Export: the page's link gives the CSV with its header and the rows.
    let (_, html) = get(srv, "/inputs?region=360102&from=2026-01-01", &official).await;
    let start = html.find("href=\"/api/v1/inputs/stats?").expect("an export link") + 6;
    let href = html[start..start + html[start..].find('"').unwrap()].replace("&#38;", "&");
    let r = client().get(srv.url(&href)).bearer_auth(&official).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "group,name,kind,kg,litres,pieces,sales");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with(&format!("{town},")) && lines[1].ends_with(&format!(",fertilizer,{},0,0,1", in_2026(urea))), "{csv}");
    assert!(lines[2].ends_with(&format!(",pesticide,{},0,0,{}", in_2026(plain), count_2026(plain))), "{csv}");

    // Shop lists follow scope.
    let (_, html) = get(srv, "/dealers", &official).await;
    assert!(html.contains("东湖农资店") && !html.contains("西湖农资店"));
    let (_, html) = get(srv, "/dealers", &other_dealer).await;
    assert!(html.contains("西湖农资店") && !html.contains("东湖农资店"));

    // Denials: the other county's dealer and official, a farmer.
    for (who, token) in [("other dealer", &other_dealer), ("neighbour", &neighbour), ("farmer", &farmer)] {
        let (status, html) = get(srv, &format!("/dealers/{shop_id}"), token).await;
        assert_eq!(status, 403, "{who} opens the shop");
        assert!(html.contains("<html") && !html.contains("东湖农资店"), "{who} gets the error page");
    }
    let (status, _, _) = post(srv, &format!("/dealers/{shop_id}/sales"), &other_dealer, &[
        ("product_id", plain.to_string().as_str()), ("quantity", "1"), ("unit", "kg"), ("buyer_village", v.as_str()),
    ]).await;
    assert_eq!(status, 403);
    let (status, _) = get(srv, &format!("/dealers/{other_shop}"), &dealer).await;
    assert_eq!(status, 403);
    for path in ["/inputs?region=360102", "/dealers?region=360102"] {
        assert_eq!(get(srv, path, &neighbour).await.0, 403, "neighbour {path}");
    }
    assert_eq!(get(srv, "/inputs?region=360102", &farmer).await.0, 403);
    assert_eq!(get(srv, "/inputs", &farmer).await.0, 403);
    assert_eq!(get(srv, "/dealers", &farmer).await.0, 403);
    assert_eq!(get(srv, "/inputs?region=360102", &dealer).await.0, 403, "dealers read no statistics");
    let r = client().get(srv.url("/inputs")).send().await.unwrap();
    assert_eq!(r.status(), 303, "visitors are sent to sign in");
});
