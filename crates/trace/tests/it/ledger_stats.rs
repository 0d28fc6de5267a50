//! CSV import of a dealer's ledger (every bad line reported, nothing
//! written; a good file written whole) and the supervision statistics,
//! checked against sums computed here over the inserted records, with
//! drill-down and scope filtering, on SQLite and PostgreSQL.

use std::collections::BTreeMap;

use shuxiang_core::auth::Role;
use shuxiang_trace::ledger::import::{ImportOutcome, import_ledger};
use shuxiang_trace::ledger::service;
use shuxiang_trace::ledger::stats::{Group, StatsQuery, sales_stats, stats_csv};
use shuxiang_trace::ledger::store::{AnomalyQuery, LedgerQuery};
use shuxiang_trace::log_store::TRACE_MIGRATIONS;
use shuxiang_trace::products::ProductKind;

use crate::ledger::{
    SAMPLE_ID, actor, audit_actions, id_number, label, principal, product, sale, shop, stock, villages,
};

const HEADER: &str =
    "type,date,product_id,quantity,unit,label_codes,supplier,buyer_name,buyer_id_number,buyer_phone,buyer_village,crop";

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn an_import_with_bad_lines_reports_them_all_and_writes_nothing(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let plain = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false).await.id;
    let banned = product(&db, "甲胺磷", ProductKind::Pesticide, Some("PD20180002"), false, true).await.id;
    let v = villages(&db, "360102").await[0].clone();
    let mut bad_id = SAMPLE_ID.to_string();
    bad_id.replace_range(17.., "1");
    let good_id = id_number("19800101", 1);
    let code = label(7);
    let file = [
        HEADER.to_string(),
        format!("stock_in,2026-03-01,{plain},10,kg,,批发商,,,,,"),
        format!("sale,2026-03-02,{plain},1,kg,,,李四,{bad_id},,{v},水稻"),
        format!("sale,2026-03-02,999999,1,kg,,,李四,,,{v},"),
        format!("sale,2026-03-02,{banned},1,kg,,,李四,{good_id},,{v},"),
        format!("sale,2026-03-02,{plain},abc,kg,,,,,,{v},"),
        format!("sale,2026-03-02,{plain},1,kg,,,,,,,"),
        format!("sale,2026-03-02,{plain},1,piece,{code},,,,,{v},"),
        format!("sale,2026-03-02,{plain},1,piece,{code},,,,,{v},"),
        format!("refund,2026-03-02,{plain},1,kg,,,,,,{v},"),
        format!("sale,2026-13-01,{plain},1,kg,,,,,,{v},"),
        format!("sale,2026-03-02,{plain},1,gallon,,,,{bad_id},phone,{v},"),
    ]
    .join("\n");
    let outcome = import_ledger(&db, &owner, &actor(&owner), dealer.id, &file).await.unwrap();
    let ImportOutcome::Rejected(errors) = outcome else { panic!("a file with bad lines was imported") };
    let got: Vec<(u64, &str, &str)> = errors.iter().map(|e| (e.line, e.field.as_str(), e.error.as_str())).collect();
    assert_eq!(got, vec![
        (3, "buyer_id_number", "invalid_id_number"),
        (4, "product_id", "unknown_product"),
        (5, "product_id", "banned_product"),
        (6, "quantity", "invalid_quantity"),
        (7, "buyer_village", "missing_field"),
        (9, "label_codes", "label_code_sold"),
        (10, "type", "invalid_type"),
        (11, "date", "invalid_date"),
        (12, "buyer_id_number", "invalid_id_number"),
        (12, "buyer_phone", "invalid_phone"),
        (12, "unit", "invalid_unit"),
    ]);
    assert!(errors.iter().all(|e| !e.message.is_empty()));
    assert!(service::ledger(&db, &owner, dealer.id, &LedgerQuery::default()).await.unwrap().is_empty(), "nothing written");
    let official = principal(901, Role::Official, "360102");
    assert!(service::anomalies(&db, &official, &AnomalyQuery::default()).await.unwrap().is_empty(), "import errors raise no anomaly");
    assert!(audit_actions(&db, "dealer_ledger.import").await.is_empty());

    // Header problems are reported on line 1.
    let ImportOutcome::Rejected(errors) = import_ledger(&db, &owner, &actor(&owner), dealer.id, "type,date,product,quantity\n").await.unwrap() else { panic!() };
    let got: Vec<(u64, &str, &str)> = errors.iter().map(|e| (e.line, e.field.as_str(), e.error.as_str())).collect();
    assert_eq!(got, vec![(1, "product", "unknown_column"), (1, "product_id", "missing_column"), (1, "unit", "missing_column")]);
    let ImportOutcome::Rejected(errors) = import_ledger(&db, &owner, &actor(&owner), dealer.id, &format!("{HEADER}\n")).await.unwrap() else { panic!() };
    assert_eq!(errors[0].error, "empty_file");
    // Only the owner imports.
    let other = crate::ledger::user(&db, "dealertwo", Role::Dealer, "360102").await;
    assert_eq!(import_ledger(&db, &other, &actor(&other), dealer.id, &file).await.unwrap_err().code(), "forbidden");
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn a_good_import_is_written_whole(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let plain = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false);
    let plain = plain.await;
    let restricted = product(&db, "克百威", ProductKind::Pesticide, Some("PD20180003"), true, false).await.id;
    let v = villages(&db, "360102").await;
    let (c1, c2) = (label(11), label(12));
    let id = id_number("19900520", 3);
    let file = [
        // A BOM and columns in another order, as spreadsheets write them.
        "\u{feff}date,type,product_id,unit,quantity,label_codes,batch,supplier,buyer_name,buyer_id_number,buyer_village,crop".to_string(),
        format!("2026-01-02,进货,{},千克,20,,,省农资公司,,,,", plain.id),
        format!("2026-01-03,stock_in,{restricted},kg,5,,,省农资公司,,,,"),
        format!("2026-01-05,销售,{},瓶,2,{c1};{c2},B20251201,,王五,,{},蔬菜", plain.id, v[1]),
        format!("2026-01-06,sale,{restricted},kg,0.5,,,,赵六,{id},{},水稻", v[2]),
        String::new(),
    ]
    .join("\r\n");
    let ImportOutcome::Imported(summary) = import_ledger(&db, &owner, &actor(&owner), dealer.id, &file).await.unwrap() else { panic!("rejected") };
    assert_eq!((summary.stock_in, summary.sales, summary.entry_ids.len()), (2, 2, 4));
    let entries = service::ledger(&db, &owner, dealer.id, &LedgerQuery::default()).await.unwrap();
    assert_eq!(entries.len(), 4);
    let bottles = entries.iter().find(|e| e.label_codes.len() == 2).unwrap();
    assert_eq!((bottles.unit.as_str(), bottles.base_amount, bottles.buyer_village.as_deref()), ("piece", 2, Some(v[1].as_str())));
    assert_eq!(bottles.batch.as_deref(), Some("B20251201"));
    let logged = audit_actions(&db, "dealer_ledger.import").await;
    assert_eq!(logged.len(), 1);
    // The imported sale's codes count as sold.
    let mut again = sale(&plain, "1", "piece", &v[0], None);
    again.label_codes = vec![c2.clone()];
    assert_eq!(service::record_sale(&db, &owner, &actor(&owner), dealer.id, again).await.unwrap_err().code(), "label_code_sold");
    // Stock is kept per dimension: the bottles were never stocked in, so the
    // import flags that product once, after all its lines.
    let official = principal(901, Role::Official, "360102");
    let negative = service::anomalies(&db, &official, &AnomalyQuery::default()).await.unwrap();
    let kinds: Vec<_> = negative.iter().map(|a| (a.kind, a.product_id)).collect();
    assert_eq!(kinds, vec![
        (shuxiang_trace::ledger::store::AnomalyKind::LabelCodeSoldTwice, Some(plain.id)),
        (shuxiang_trace::ledger::store::AnomalyKind::NegativeStock, Some(plain.id)),
    ], "newest first");
});

/// One sale as the test records it, for the independent sums.
struct Sold {
    village: String,
    kind: &'static str,
    date: String,
    grams: i64,
    millilitres: i64,
    pieces: i64,
}

#[derive(Debug, Default, PartialEq)]
struct Sum {
    grams: i64,
    millilitres: i64,
    pieces: i64,
    sales: i64,
}

fn expected(sold: &[Sold], key: impl Fn(&Sold) -> Option<String>) -> BTreeMap<(String, String), Sum> {
    let mut out: BTreeMap<(String, String), Sum> = BTreeMap::new();
    for s in sold {
        let Some(k) = key(s) else { continue };
        let e = out.entry((k, s.kind.to_string())).or_default();
        e.grams += s.grams;
        e.millilitres += s.millilitres;
        e.pieces += s.pieces;
        e.sales += 1;
    }
    out
}

fn actual(stats: &shuxiang_trace::ledger::stats::Stats) -> BTreeMap<(String, String), Sum> {
    stats
        .rows
        .iter()
        .map(|r| {
            (
                (r.group.clone(), r.kind.as_str().to_string()),
                Sum {
                    grams: (r.kg * 1000.0).round() as i64,
                    millilitres: (r.litres * 1000.0).round() as i64,
                    pieces: r.pieces,
                    sales: r.sales,
                },
            )
        })
        .collect()
}

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn statistics_match_sums_over_the_records_with_drill_down_and_scope(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let (owner_out, dealer_out) = shop(&db, "dealerxh", "360103", "L-2").await;
    let pesticide = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false).await;
    let fertilizer = product(&db, "复合肥", ProductKind::Fertilizer, None, false, false).await;
    let v = villages(&db, "360102").await;
    let v_out = villages(&db, "360103").await;
    let a = actor(&owner);
    for p in [&pesticide, &fertilizer] {
        service::record_stock_in(&db, &owner, &a, dealer.id, stock(p, "1000", "kg", &[])).await.unwrap();
    }
    let mut sold: Vec<Sold> = Vec::new();
    let mut first_id = None;
    for i in 0..36i64 {
        let village = v[(i % 4) as usize].clone();
        let date = format!("2026-{:02}-{:02}", 1 + i % 4, 1 + (i * 7) % 28);
        let (p, kind) = if i % 3 == 0 { (&fertilizer, "fertilizer") } else { (&pesticide, "pesticide") };
        let amount = 250 + (i * 137) % 4000;
        let (qty, unit, grams, ml, pieces) = match i % 5 {
            0..=2 => (format!("{}.{:03}", amount / 1000, amount % 1000), "kg", amount, 0, 0),
            3 => (format!("{}.{:03}", amount / 1000, amount % 1000), "l", 0, amount, 0),
            _ => ((1 + i % 3).to_string(), "piece", 0, 0, 1 + i % 3),
        };
        let mut raw = sale(p, &qty, unit, &village, None);
        raw.date = Some(date.clone());
        let e = service::record_sale(&db, &owner, &a, dealer.id, raw).await.unwrap();
        first_id.get_or_insert(e.id);
        sold.push(Sold { village, kind, date, grams, millilitres: ml, pieces });
    }
    // A reversed sale counts for nothing.
    service::reverse(&db, &owner, &a, dealer.id, first_id.unwrap(), "录错").await.unwrap();
    sold.remove(0);
    // Sales by a shop of 360102 to a buyer of 360103 count in 360103, and the
    // neighbouring county's own sales never show in 360102.
    let mut across = sale(&pesticide, "9", "kg", &v_out[0], None);
    across.date = Some("2026-02-02".into());
    service::record_sale(&db, &owner, &a, dealer.id, across).await.unwrap();
    service::record_sale(&db, &owner_out, &actor(&owner_out), dealer_out.id, sale(&pesticide, "7", "kg", &v_out[1], None)).await.unwrap();

    let official = principal(901, Role::Official, "360102");
    let q = |region: Option<&str>, group: Option<Group>| StatsQuery { region: region.map(Into::into), group, ..Default::default() };

    // Per township of the county (the default for a county, and its own default region).
    let by_town = sales_stats(&db, &official, &q(None, None)).await.unwrap();
    assert_eq!((by_town.region.as_str(), by_town.group), ("360102", Group::Township));
    assert_eq!(actual(&by_town), expected(&sold, |s| Some(s.village[..9].to_string())));
    assert!(by_town.rows.iter().all(|r| r.name.as_deref().is_some_and(|n| !n.is_empty())), "township names");
    // Drill down into the first township: per village.
    let town = v[0][..9].to_string();
    let by_village = sales_stats(&db, &official, &q(Some(&town), None)).await.unwrap();
    assert_eq!(by_village.group, Group::Village);
    assert_eq!(actual(&by_village), expected(&sold, |s| s.village.starts_with(&town).then(|| s.village.clone())));
    // Per village of the whole county, per month, by kind and period.
    let county_villages = sales_stats(&db, &official, &q(Some("360102"), Some(Group::Village))).await.unwrap();
    assert_eq!(actual(&county_villages), expected(&sold, |s| Some(s.village.clone())));
    let by_month = sales_stats(&db, &official, &q(Some("360102"), Some(Group::Month))).await.unwrap();
    assert_eq!(actual(&by_month), expected(&sold, |s| Some(s.date[..7].to_string())));
    let spring = StatsQuery { region: Some("360102".into()), from: Some("2026-02-01".into()), to: Some("2026-03-31".into()), kind: Some(ProductKind::Fertilizer), group: Some(Group::Month), format: None };
    let got = sales_stats(&db, &official, &spring).await.unwrap();
    assert_eq!(actual(&got), expected(&sold, |s| (s.kind == "fertilizer" && s.date.as_str() >= "2026-02-01" && s.date.as_str() <= "2026-03-31").then(|| s.date[..7].to_string())));
    assert!(!got.rows.is_empty());

    // CSV: a header and one line per row, the same numbers.
    let csv = stats_csv(&by_town).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "group,name,kind,kg,litres,pieces,sales");
    assert_eq!(lines.len(), by_town.rows.len() + 1);
    let r = &by_town.rows[0];
    assert!(lines[1].starts_with(&format!("{},", r.group)) && lines[1].ends_with(&format!(",{},{}", r.pieces, r.sales)), "{}", lines[1]);

    // The neighbouring county counts its own buyers only (including the one served from 360102).
    let neighbour = principal(902, Role::Official, "360103");
    let theirs = sales_stats(&db, &neighbour, &q(None, Some(Group::Village))).await.unwrap();
    let total_g: f64 = theirs.rows.iter().map(|r| r.kg).sum();
    assert!((total_g - 16.0).abs() < 1e-9, "9 kg + 7 kg, got {total_g}");
    assert_eq!(sales_stats(&db, &neighbour, &q(Some("360102"), None)).await.unwrap_err().code(), "forbidden");
    assert_eq!(sales_stats(&db, &neighbour, &q(Some(&town), None)).await.unwrap_err().code(), "forbidden");

    // Village staff read their village; experts their scope; dealers and farmers nothing.
    let staff = principal(910, Role::VillageStaff, &v[0]);
    let own = sales_stats(&db, &staff, &q(None, None)).await.unwrap();
    assert_eq!((own.region.as_str(), own.group), (v[0].as_str(), Group::Month));
    assert_eq!(actual(&own), expected(&sold, |s| (s.village == v[0]).then(|| s.date[..7].to_string())));
    assert_eq!(sales_stats(&db, &staff, &q(Some(&town), None)).await.unwrap_err().code(), "forbidden");
    let expert = principal(911, Role::Expert, "360102");
    assert_eq!(actual(&sales_stats(&db, &expert, &q(None, None)).await.unwrap()), actual(&by_town));
    for role in [Role::Dealer, Role::Farmer, Role::Carrier] {
        let p = principal(912, role, "360102");
        assert_eq!(sales_stats(&db, &p, &q(None, None)).await.unwrap_err().code(), "forbidden", "{role:?}");
    }
    // A grouping must lie below the region; a national caller names the region.
    assert_eq!(sales_stats(&db, &official, &q(Some(&town), Some(Group::Township))).await.unwrap_err().code(), "invalid_group");
    let national = principal(913, Role::Admin, "36");
    assert_eq!(sales_stats(&db, &national, &q(Some("360102"), None)).await.unwrap().rows.len(), by_town.rows.len());
    let bad_date = StatsQuery { from: Some("2026/01/01".into()), ..q(None, None) };
    assert_eq!(sales_stats(&db, &official, &bad_date).await.unwrap_err().code(), "invalid_date");
});
