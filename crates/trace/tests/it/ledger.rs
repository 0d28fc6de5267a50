//! Dealers' ledgers on SQLite and PostgreSQL: shop registration, the sale
//! rules (banned refused with an alarm to the county only, restricted only
//! with the buyer's ID, a label code sold once), ID checksums, masking and
//! the audited reveal per role, reversals, negative stock, and the database
//! refusing to change or delete an entry.

use serde_json::Value;
use shuxiang_core::audit::{self, AuditQuery};
use shuxiang_core::auth::{self, Actor, Credential, Grant, GrantInput, NewUser, Principal, Role, Scope};
use shuxiang_core::{CoreError, Db, RegionCode, regions};
use shuxiang_trace::ledger::model::{RawEntry, mask_id_number, validate_id_number};
use shuxiang_trace::ledger::service::{self, NewDealer};
use shuxiang_trace::ledger::store::{AnomalyKind, AnomalyQuery, Dealer, LedgerQuery};
use shuxiang_trace::log_store::TRACE_MIGRATIONS;
use shuxiang_trace::products::{self, NewProduct, Product, ProductKind};

/// The GB 11643 sample number, published with its check character.
pub const SAMPLE_ID: &str = "11010519491231002X";

/// A valid ID number for a birth date and sequence: the check character is
/// computed here from the standard's weights, independently of the crate.
pub fn id_number(birth: &str, seq: u32) -> String {
    let body = format!("360102{birth}{seq:03}");
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

pub fn principal(user_id: i64, role: Role, scope: &str) -> Principal {
    Principal {
        user_id,
        username: format!("{}{user_id}", role.as_str()),
        display_name: "tester".into(),
        grants: vec![Grant {
            role,
            scope: Scope::Region(RegionCode::parse(scope).unwrap()),
        }],
        credential: Credential::Session,
        expires_at: None,
    }
}

pub fn actor(p: &Principal) -> Actor {
    p.actor(Some("10.0.0.9".into()))
}

/// Creates a stored user with one role and returns them as a principal.
pub async fn user(db: &Db, name: &str, role: Role, scope: &str) -> Principal {
    let u = auth::create_user(
        db,
        &auth::operator(),
        &Actor::system("test"),
        NewUser {
            username: name.into(),
            password: "a long secret phrase".into(),
            display_name: name.into(),
            phone: None,
            roles: vec![GrantInput {
                role: role.as_str().into(),
                scope: scope.into(),
            }],
        },
    )
    .await
    .unwrap();
    principal(u.id, role, scope)
}

pub async fn product(
    db: &Db,
    name: &str,
    kind: ProductKind,
    number: Option<&str>,
    restricted: bool,
    banned: bool,
) -> Product {
    let official = principal(900, Role::Official, "36");
    products::create(
        db,
        &official,
        &actor(&official),
        NewProduct {
            kind,
            name: name.into(),
            registration_number: number.map(Into::into),
            maker: "江西某农化".into(),
            active_ingredients: vec![],
            restricted_use: restricted,
            banned,
        },
    )
    .await
    .unwrap()
}

/// Two villages of the county in different townships.
pub async fn villages(db: &Db, county: &str) -> Vec<String> {
    let towns = regions::children(db, &RegionCode::parse(county).unwrap())
        .await
        .unwrap();
    let mut out = Vec::new();
    for t in towns.iter().take(2) {
        let v = regions::children(db, &t.code()).await.unwrap();
        out.extend(v.iter().take(2).map(|r| r.code.clone()));
    }
    assert_eq!(out.len(), 4, "two townships with two villages each in {county}");
    out
}

/// A dealer user of `county` and their shop, registered by the county's official.
pub async fn shop(db: &Db, owner_name: &str, county: &str, licence: &str) -> (Principal, Dealer) {
    let owner = user(db, owner_name, Role::Dealer, county).await;
    let official = principal(901, Role::Official, county);
    let dealer = service::create_dealer(
        db,
        &official,
        &actor(&official),
        NewDealer {
            name: format!("{owner_name}农资店"),
            licence_number: licence.into(),
            region: county.into(),
            address: "解放路1号".into(),
            owner_user_id: owner.user_id,
        },
    )
    .await
    .unwrap();
    (owner, dealer)
}

pub fn stock(product: &Product, qty: &str, unit: &str, codes: &[&str]) -> RawEntry {
    RawEntry {
        date: Some("2026-03-01".into()),
        product_id: Some(product.id.to_string()),
        quantity: Some(qty.into()),
        unit: Some(unit.into()),
        label_codes: codes.iter().map(|c| c.to_string()).collect(),
        supplier: Some("江西农资批发".into()),
        ..RawEntry::default()
    }
}

pub fn sale(product: &Product, qty: &str, unit: &str, village: &str, id: Option<&str>) -> RawEntry {
    RawEntry {
        date: Some("2026-03-05".into()),
        product_id: Some(product.id.to_string()),
        quantity: Some(qty.into()),
        unit: Some(unit.into()),
        buyer_name: Some("张三".into()),
        buyer_id_number: id.map(Into::into),
        buyer_phone: Some("13912345678".into()),
        buyer_village: Some(village.into()),
        crop: Some("水稻".into()),
        ..RawEntry::default()
    }
}

pub async fn anomalies(
    db: &Db,
    viewer: &Principal,
    region: Option<&str>,
) -> Result<Vec<(AnomalyKind, i64, Option<String>)>, CoreError> {
    let q = AnomalyQuery {
        region: region.map(Into::into),
        ..Default::default()
    };
    Ok(service::anomalies(db, viewer, &q)
        .await?
        .into_iter()
        .map(|a| (a.kind, a.dealer_id, a.label_code))
        .collect())
}

pub async fn audit_actions(db: &Db, action: &str) -> Vec<audit::AuditEntry> {
    audit::list(
        db,
        None,
        &AuditQuery {
            action: Some(action.into()),
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn code(e: CoreError) -> &'static str {
    e.code()
}

/// PD20180001, own production, specification 001, serial `n`.
pub fn label(n: u32) -> String {
    format!("11800011001{:021}", n)
}

#[test]
fn id_numbers_are_checked_against_gb_11643() {
    assert_eq!(validate_id_number(SAMPLE_ID).unwrap(), SAMPLE_ID);
    assert_eq!(
        validate_id_number(" 11010519491231002x ").unwrap(),
        SAMPLE_ID,
        "lower-case x accepted"
    );
    for n in 0..30 {
        let good = id_number("19800101", n);
        assert!(validate_id_number(&good).is_ok(), "{good}");
        // Every other check character is wrong.
        for c in "0123456789X".chars().filter(|c| !good.ends_with(*c)) {
            let bad = format!("{}{c}", &good[..17]);
            assert_eq!(validate_id_number(&bad).unwrap_err().code, "invalid_id_number", "{bad}");
        }
    }
    for bad in [
        "11010519491231002",
        "1101051949123100200",
        "11010519491331002X",
        "1101051949123100AX",
        "",
    ] {
        let e = validate_id_number(bad).unwrap_err();
        assert_eq!((e.field, e.code), ("buyer_id_number", "invalid_id_number"), "{bad:?}");
    }
    assert_eq!(mask_id_number(SAMPLE_ID), "110105********002X");
}

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn shops_are_registered_by_officials_of_their_region_for_a_dealer_owner(db) {
    let official = principal(901, Role::Official, "360102");
    let neighbour = principal(902, Role::Official, "360103");
    let owner = user(&db, "dealerone", Role::Dealer, "360102").await;
    let farmer = user(&db, "farmerone", Role::Farmer, "360102").await;
    let new = |owner: i64, region: &str, licence: &str| NewDealer {
        name: "东湖农资店".into(), licence_number: licence.into(), region: region.into(),
        address: "解放路1号".into(), owner_user_id: owner,
    };
    let d = service::create_dealer(&db, &official, &actor(&official), new(owner.user_id, "360102", "农药经营许可证（赣）001")).await.unwrap();
    assert_eq!((d.region.as_str(), d.owner_user_id), ("360102", owner.user_id));
    let logged = audit_actions(&db, "dealer.create").await;
    assert_eq!((logged.len(), logged[0].region.as_deref()), (1, Some("360102")));

    let town = regions::children(&db, &RegionCode::parse("360102").unwrap()).await.unwrap()[0].code.clone();
    assert!(service::create_dealer(&db, &official, &actor(&official), new(owner.user_id, &town, "L-town")).await.is_ok(), "a township shop");
    let village = villages(&db, "360102").await[0].clone();
    assert_eq!(code(service::create_dealer(&db, &official, &actor(&official), new(owner.user_id, &village, "L-v")).await.unwrap_err()), "invalid_region");
    assert_eq!(code(service::create_dealer(&db, &official, &actor(&official), new(owner.user_id, "360102", "农药经营许可证（赣）001")).await.unwrap_err()), "licence_taken");
    assert_eq!(code(service::create_dealer(&db, &official, &actor(&official), new(farmer.user_id, "360102", "L-2")).await.unwrap_err()), "owner_not_dealer");
    assert_eq!(code(service::create_dealer(&db, &official, &actor(&official), new(99_999, "360102", "L-3")).await.unwrap_err()), "unknown_owner");
    assert_eq!(code(service::create_dealer(&db, &neighbour, &actor(&neighbour), new(owner.user_id, "360102", "L-4")).await.unwrap_err()), "forbidden");
    assert_eq!(code(service::create_dealer(&db, &owner, &actor(&owner), new(owner.user_id, "360102", "L-5")).await.unwrap_err()), "forbidden");
    assert_eq!(audit_actions(&db, "dealer.create").await.len(), 2, "refusals are not logged as creations");

    // Listing: the official sees the county's shops, the neighbour none, the owner their own.
    assert_eq!(service::list_dealers(&db, &official, None).await.unwrap().len(), 2);
    assert!(service::list_dealers(&db, &neighbour, None).await.unwrap().is_empty());
    assert_eq!(service::list_dealers(&db, &owner, None).await.unwrap().len(), 2);
    assert_eq!(code(service::list_dealers(&db, &farmer, None).await.unwrap_err()), "forbidden");
    assert_eq!(code(service::get_dealer(&db, &neighbour, d.id).await.unwrap_err()), "forbidden");
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn banned_products_are_refused_and_alarm_their_county_only(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let banned = product(&db, "甲胺磷", ProductKind::Pesticide, Some("PD20180002"), false, true).await;
    let village = villages(&db, "360102").await[0].clone();
    let err = service::record_sale(&db, &owner, &actor(&owner), dealer.id, sale(&banned, "1", "kg", &village, Some(SAMPLE_ID))).await.unwrap_err();
    assert_eq!(code(err), "banned_product");
    // Only sales are refused: a shop still records banned stock it holds (and hands in).
    assert!(service::ledger(&db, &owner, dealer.id, &LedgerQuery::default()).await.unwrap().is_empty(), "nothing sold");

    let county_official = principal(901, Role::Official, "360102");
    let neighbour = principal(902, Role::Official, "360103");
    let seen = anomalies(&db, &county_official, None).await.unwrap();
    assert_eq!(seen, vec![(AnomalyKind::BannedProductSale, dealer.id, None)]);
    let listed = service::anomalies(&db, &county_official, &AnomalyQuery::default()).await.unwrap();
    assert_eq!(listed[0].dealer_name, dealer.name);
    assert_eq!(listed[0].actor_id, Some(owner.user_id));
    assert_eq!(listed[0].detail["buyer_id_number"], Value::from(mask_id_number(SAMPLE_ID)), "no full ID in the alarm");
    assert!(anomalies(&db, &neighbour, None).await.unwrap().is_empty(), "the neighbouring county sees nothing");
    assert_eq!(code(anomalies(&db, &neighbour, Some("360102")).await.unwrap_err()), "forbidden");
    assert_eq!(code(anomalies(&db, &owner, None).await.unwrap_err()), "forbidden", "dealers do not list anomalies");
    let city = principal(903, Role::Official, "3601");
    assert_eq!(anomalies(&db, &city, Some("360102")).await.unwrap().len(), 1, "the city above sees it");

    // The alarm is audited in the county.
    let raised = audit_actions(&db, "input_anomaly.raise").await;
    assert_eq!((raised.len(), raised[0].region.as_deref()), (1, Some("360102")));
    let scoped = audit::list(&db, Some(&[Scope::Region(RegionCode::parse("360103").unwrap())]), &AuditQuery { action: Some("input_anomaly.raise".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert!(scoped.is_empty());
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn restricted_products_need_the_buyers_real_name_and_id(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let restricted = product(&db, "克百威", ProductKind::Pesticide, Some("PD20180003"), true, false).await;
    let village = villages(&db, "360102").await[0].clone();
    service::record_stock_in(&db, &owner, &actor(&owner), dealer.id, stock(&restricted, "10", "kg", &[])).await.unwrap();

    let err = service::record_sale(&db, &owner, &actor(&owner), dealer.id, sale(&restricted, "1", "kg", &village, None)).await.unwrap_err();
    assert_eq!(code(err), "buyer_id_required");
    let mut nameless = sale(&restricted, "1", "kg", &village, Some(SAMPLE_ID));
    nameless.buyer_name = None;
    assert_eq!(code(service::record_sale(&db, &owner, &actor(&owner), dealer.id, nameless).await.unwrap_err()), "buyer_id_required");
    let mut wrong = SAMPLE_ID.to_string();
    wrong.replace_range(17.., "1");
    assert_eq!(code(service::record_sale(&db, &owner, &actor(&owner), dealer.id, sale(&restricted, "1", "kg", &village, Some(&wrong))).await.unwrap_err()), "invalid_id_number");
    let official = principal(901, Role::Official, "360102");
    let kinds: Vec<AnomalyKind> = anomalies(&db, &official, None).await.unwrap().into_iter().map(|a| a.0).collect();
    assert_eq!(kinds, vec![AnomalyKind::RestrictedWithoutBuyerId; 2], "both attempts without ID reported; the bad checksum is a plain input error");

    let id = id_number("19750615", 12);
    let sold = service::record_sale(&db, &owner, &actor(&owner), dealer.id, sale(&restricted, "1.5", "kg", &village, Some(&id))).await.unwrap();
    assert_eq!(sold.buyer_id_number.as_deref(), Some(mask_id_number(&id).as_str()));
    assert_eq!(sold.buyer_phone.as_deref(), Some("139****5678"));
    assert_eq!(sold.base_amount, 1500);
    // Ordinary products sell without an ID.
    let plain = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false).await;
    service::record_stock_in(&db, &owner, &actor(&owner), dealer.id, stock(&plain, "5", "kg", &[])).await.unwrap();
    assert!(service::record_sale(&db, &owner, &actor(&owner), dealer.id, sale(&plain, "1", "kg", &village, None)).await.is_ok());
    let sales = audit_actions(&db, "dealer_ledger.sale").await;
    assert_eq!(sales.len(), 2);
    assert!(!sales.iter().any(|e| e.detail.contains(&id)), "the audit log holds no full ID number");
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn a_label_code_is_sold_once_and_twice_raises_an_anomaly(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let imidacloprid = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false).await;
    let other = product(&db, "阿维菌素", ProductKind::Pesticide, Some("PD20190007"), false, false).await;
    let fert = product(&db, "复合肥", ProductKind::Fertilizer, None, false, false).await;
    let village = villages(&db, "360102").await[0].clone();
    let (a, b) = (label(1), label(2));
    service::record_stock_in(&db, &owner, &actor(&owner), dealer.id, stock(&imidacloprid, "2", "piece", &[&a, &b])).await.unwrap();

    let mut first = sale(&imidacloprid, "1", "piece", &village, None);
    first.label_codes = vec![a.clone()];
    let sold = service::record_sale(&db, &owner, &actor(&owner), dealer.id, first.clone()).await.unwrap();
    assert_eq!(sold.label_codes, vec![a.clone()]);
    let err = service::record_sale(&db, &owner, &actor(&owner), dealer.id, first.clone()).await.unwrap_err();
    assert_eq!(code(err), "label_code_sold");
    let mut both = first.clone();
    both.label_codes = vec![b.clone(), a.clone()];
    assert_eq!(code(service::record_sale(&db, &owner, &actor(&owner), dealer.id, both).await.unwrap_err()), "label_code_sold", "one sold code refuses the whole sale");

    let official = principal(901, Role::Official, "360102");
    let seen = anomalies(&db, &official, None).await.unwrap();
    assert_eq!(seen, vec![(AnomalyKind::LabelCodeSoldTwice, dealer.id, Some(a.clone())); 2]);
    let ledger = service::ledger(&db, &owner, dealer.id, &LedgerQuery::default()).await.unwrap();
    assert_eq!(ledger.len(), 2, "the stock-in and one sale");

    // Codes must belong to the product's registration; fertilizers carry none.
    let mut mismatch = sale(&other, "1", "piece", &village, None);
    mismatch.label_codes = vec![b.clone()];
    assert_eq!(code(service::record_sale(&db, &owner, &actor(&owner), dealer.id, mismatch).await.unwrap_err()), "label_code_mismatch");
    let mut on_fert = sale(&fert, "1", "piece", &village, None);
    on_fert.label_codes = vec![b.clone()];
    assert_eq!(code(service::record_sale(&db, &owner, &actor(&owner), dealer.id, on_fert).await.unwrap_err()), "label_code_mismatch");
    let mut broken = first.clone();
    broken.label_codes = vec!["1180001100100000000000000000000x".into()];
    assert_eq!(code(service::record_sale(&db, &owner, &actor(&owner), dealer.id, broken).await.unwrap_err()), "invalid_label_code");

    // Reversing the sale frees the code.
    service::reverse(&db, &owner, &actor(&owner), dealer.id, sold.id, "扫错了").await.unwrap();
    assert!(service::record_sale(&db, &owner, &actor(&owner), dealer.id, first).await.is_ok());
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn buyers_are_masked_for_every_role_and_revealed_to_officials_with_an_audit(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let other_dealer = user(&db, "dealertwo", Role::Dealer, "360102").await;
    let plain = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false).await;
    let village = villages(&db, "360102").await[0].clone();
    let id = id_number("19660203", 7);
    service::record_stock_in(&db, &owner, &actor(&owner), dealer.id, stock(&plain, "5", "kg", &[])).await.unwrap();
    let sold = service::record_sale(&db, &owner, &actor(&owner), dealer.id, sale(&plain, "1", "kg", &village, Some(&id))).await.unwrap();

    let official = principal(901, Role::Official, "360102");
    let admin = principal(904, Role::Admin, "36");
    for viewer in [&owner, &official, &admin] {
        let entries = service::ledger(&db, viewer, dealer.id, &LedgerQuery::default()).await.unwrap();
        let s = entries.iter().find(|e| e.id == sold.id).unwrap();
        assert_eq!(s.buyer_id_number.as_deref(), Some(mask_id_number(&id).as_str()), "{}", viewer.username);
        assert_eq!(s.buyer_phone.as_deref(), Some("139****5678"));
        assert!(!serde_json::to_string(&entries).unwrap().contains(&id));
    }
    let revealed = service::reveal_buyer(&db, &official, &actor(&official), dealer.id, sold.id).await.unwrap();
    assert_eq!((revealed.buyer_id_number.as_deref(), revealed.buyer_phone.as_deref()), (Some(id.as_str()), Some("13912345678")));
    let reveals = audit_actions(&db, "dealer_ledger.reveal_buyer").await;
    assert_eq!((reveals.len(), reveals[0].actor_id, reveals[0].target.clone()), (1, Some(901), format!("dealer_ledger:{}", sold.id)));

    let neighbour = principal(902, Role::Official, "360103");
    for (who, p) in [("owner", &owner), ("neighbour", &neighbour), ("other dealer", &other_dealer), ("farmer", &principal(905, Role::Farmer, "360102"))] {
        assert_eq!(code(service::reveal_buyer(&db, p, &actor(p), dealer.id, sold.id).await.unwrap_err()), "forbidden", "{who}");
    }
    assert_eq!(audit_actions(&db, "dealer_ledger.reveal_buyer").await.len(), 1, "refused reveals are not logged as reveals");
    for p in [&neighbour, &other_dealer, &principal(906, Role::Expert, "360102"), &principal(907, Role::VillageStaff, "360102")] {
        assert_eq!(code(service::ledger(&db, p, dealer.id, &LedgerQuery::default()).await.unwrap_err()), "forbidden", "{}", p.username);
    }
    // Only the owner writes, not another dealer of the county nor an official.
    for p in [&other_dealer, &official] {
        let e = service::record_stock_in(&db, p, &actor(p), dealer.id, stock(&plain, "1", "kg", &[])).await.unwrap_err();
        assert_eq!(code(e), "forbidden", "{}", p.username);
    }
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn mistakes_are_reversed_by_new_entries_and_entries_never_change(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let plain = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false).await;
    let village = villages(&db, "360102").await[0].clone();
    let a = actor(&owner);
    let stocked = service::record_stock_in(&db, &owner, &a, dealer.id, stock(&plain, "10", "kg", &[])).await.unwrap();
    let sold = service::record_sale(&db, &owner, &a, dealer.id, sale(&plain, "4", "kg", &village, None)).await.unwrap();
    let reversal = service::reverse(&db, &owner, &a, dealer.id, sold.id, "录错数量").await.unwrap();
    assert_eq!((reversal.reverses_id, reversal.base_amount, reversal.quantity.as_str()), (Some(sold.id), -4000, "-4"));
    assert_eq!((reversal.date.as_str(), reversal.entry_type), (sold.date.as_str(), sold.entry_type));
    assert_eq!(reversal.reason.as_deref(), Some("录错数量"));

    let entries = service::ledger(&db, &owner, dealer.id, &LedgerQuery::default()).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.id).collect::<Vec<_>>(), vec![reversal.id, sold.id, stocked.id], "the original stays");
    assert_eq!(code(service::reverse(&db, &owner, &a, dealer.id, sold.id, "again").await.unwrap_err()), "already_reversed");
    assert_eq!(code(service::reverse(&db, &owner, &a, dealer.id, reversal.id, "undo").await.unwrap_err()), "cannot_reverse_reversal");
    assert_eq!(code(service::reverse(&db, &owner, &a, dealer.id, 99_999, "x").await.unwrap_err()), "not_found");
    let official = principal(901, Role::Official, "360102");
    assert_eq!(code(service::reverse(&db, &official, &actor(&official), dealer.id, stocked.id, "x").await.unwrap_err()), "forbidden");
    assert_eq!(audit_actions(&db, "dealer_ledger.reverse").await.len(), 1);

    // The database itself refuses to change or delete an entry.
    assert!(db.execute_raw(&format!("UPDATE dealer_ledger SET quantity = '1' WHERE id = {}", sold.id)).await.is_err());
    assert!(db.execute_raw(&format!("DELETE FROM dealer_ledger WHERE id = {}", sold.id)).await.is_err());
    assert_eq!(service::ledger(&db, &owner, dealer.id, &LedgerQuery::default()).await.unwrap().len(), 3);

    // Filters.
    let only_sales = service::ledger(&db, &owner, dealer.id, &LedgerQuery { entry_type: Some(shuxiang_trace::ledger::model::EntryType::Sale), ..Default::default() }).await.unwrap();
    assert_eq!(only_sales.len(), 2);
    let march_first = service::ledger(&db, &owner, dealer.id, &LedgerQuery { to: Some("2026-03-01".into()), ..Default::default() }).await.unwrap();
    assert_eq!(march_first.iter().map(|e| e.id).collect::<Vec<_>>(), vec![stocked.id]);
    assert_eq!(code(service::ledger(&db, &owner, dealer.id, &LedgerQuery { from: Some("March".into()), ..Default::default() }).await.unwrap_err()), "invalid_date");
    let until_2099 = LedgerQuery { from: Some("2026-03-02".into()), to: Some("2099-12-31".into()), ..Default::default() };
    assert_eq!(service::ledger(&db, &owner, dealer.id, &until_2099).await.unwrap().len(), 2, "a future bound is a valid query");
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn sales_beyond_stock_are_kept_and_flagged(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let plain = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false).await;
    let village = villages(&db, "360102").await[0].clone();
    let a = actor(&owner);
    service::record_stock_in(&db, &owner, &a, dealer.id, stock(&plain, "2", "kg", &[])).await.unwrap();
    service::record_sale(&db, &owner, &a, dealer.id, sale(&plain, "1.5", "kg", &village, None)).await.unwrap();
    // Litres are a separate stock: none was stocked in.
    let over_l = service::record_sale(&db, &owner, &a, dealer.id, sale(&plain, "500", "ml", &village, None)).await.unwrap();
    let over_kg = service::record_sale(&db, &owner, &a, dealer.id, sale(&plain, "0.6", "kg", &village, None)).await.unwrap();
    let official = principal(901, Role::Official, "360102");
    let listed = service::anomalies(&db, &official, &AnomalyQuery { kind: Some(AnomalyKind::NegativeStock), ..Default::default() }).await.unwrap();
    let flagged: Vec<(Option<i64>, Value)> = listed.iter().map(|x| (x.entry_id, x.detail["balance"].clone())).collect();
    assert_eq!(flagged, vec![(Some(over_kg.id), Value::from(-100)), (Some(over_l.id), Value::from(-500))]);
    assert_eq!(service::ledger(&db, &owner, dealer.id, &LedgerQuery::default()).await.unwrap().len(), 4, "the sales are kept");
    let stock: Vec<(i64, &str, i64, f64, &str)> = service::stock(&db, &owner, dealer.id).await.unwrap().iter()
        .map(|l| (l.product_id, l.dimension.as_str(), l.base_amount, l.quantity, l.unit)).collect();
    assert_eq!(stock, vec![(plain.id, "mass", -100, -0.1, "kg"), (plain.id, "volume", -500, -0.5, "l")]);
    assert_eq!(service::stock(&db, &official, dealer.id).await.unwrap().len(), 2);
    let neighbour = principal(902, Role::Official, "360103");
    assert_eq!(code(service::stock(&db, &neighbour, dealer.id).await.unwrap_err()), "forbidden");
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn entries_are_validated_field_by_field(db) {
    let (owner, dealer) = shop(&db, "dealerdh", "360102", "L-1").await;
    let plain = product(&db, "吡虫啉", ProductKind::Pesticide, Some("PD20180001"), false, false).await;
    let village = villages(&db, "360102").await[0].clone();
    let a = actor(&owner);
    let cases: Vec<(RawEntry, &str)> = vec![
        (RawEntry { quantity: Some("0".into()), ..sale(&plain, "1", "kg", &village, None) }, "invalid_quantity"),
        (RawEntry { unit: Some("gallon".into()), ..sale(&plain, "1", "kg", &village, None) }, "invalid_unit"),
        (RawEntry { date: Some("2026-02-30".into()), ..sale(&plain, "1", "kg", &village, None) }, "invalid_date"),
        (RawEntry { date: Some("2999-01-01".into()), ..sale(&plain, "1", "kg", &village, None) }, "invalid_date"),
        (RawEntry { buyer_village: Some("360102".into()), ..sale(&plain, "1", "kg", &village, None) }, "invalid_village"),
        (RawEntry { buyer_village: Some("360102999999".into()), ..sale(&plain, "1", "kg", &village, None) }, "unknown_village"),
        (RawEntry { buyer_phone: Some("phone".into()), ..sale(&plain, "1", "kg", &village, None) }, "invalid_phone"),
        (RawEntry { product_id: Some("424242".into()), ..sale(&plain, "1", "kg", &village, None) }, "unknown_product"),
    ];
    for (raw, expected) in cases {
        let e = service::record_sale(&db, &owner, &a, dealer.id, raw.clone()).await.unwrap_err();
        assert_eq!(code(e), expected, "{raw:?}");
    }
    let mut no_supplier = stock(&plain, "1", "kg", &[]);
    no_supplier.supplier = None;
    assert_eq!(code(service::record_stock_in(&db, &owner, &a, dealer.id, no_supplier).await.unwrap_err()), "missing_field");
    assert!(service::ledger(&db, &owner, dealer.id, &LedgerQuery::default()).await.unwrap().is_empty());
    assert!(audit_actions(&db, "dealer_ledger.sale").await.is_empty());
});
