//! The farm-input product registry on SQLite and PostgreSQL: registration,
//! search, changes, the unique registration number, validation, role checks,
//! audit entries written with the change, and label-code look-up.

use serde_json::json;
use shuxiang_core::audit::{self, AuditQuery};
use shuxiang_core::auth::{self, Credential, Grant, Principal, Role, Scope};
use shuxiang_core::{CoreError, Db, RegionCode};
use shuxiang_trace::label_code::parse_label_code;
use shuxiang_trace::log_store::TRACE_MIGRATIONS;
use shuxiang_trace::products::{self, ActiveIngredient, NewProduct, ProductKind, ProductQuery, ProductUpdate};

fn principal(role: Role, scope: &str) -> Principal {
    Principal {
        user_id: 7,
        username: format!("{}7", role.as_str()),
        display_name: "tester".into(),
        grants: vec![Grant {
            role,
            scope: Scope::Region(RegionCode::parse(scope).unwrap()),
        }],
        credential: Credential::Session,
        expires_at: None,
    }
}

fn pesticide(name: &str, number: &str) -> NewProduct {
    NewProduct {
        kind: ProductKind::Pesticide,
        name: name.into(),
        registration_number: Some(number.into()),
        maker: "江西某农药有限公司".into(),
        active_ingredients: vec![ActiveIngredient {
            name: "吡虫啉".into(),
            content: "25%".into(),
        }],
        restricted_use: false,
        banned: false,
    }
}

fn fertilizer(name: &str, number: Option<&str>) -> NewProduct {
    NewProduct {
        kind: ProductKind::Fertilizer,
        name: name.into(),
        registration_number: number.map(Into::into),
        maker: "某肥业".into(),
        active_ingredients: vec![],
        restricted_use: false,
        banned: false,
    }
}

async fn audit_entries(db: &Db, action: &str) -> Vec<audit::AuditEntry> {
    audit::list(
        db,
        None,
        &AuditQuery {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn code_of(err: CoreError) -> &'static str {
    err.code()
}

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn products_are_registered_listed_searched_and_changed(db) {
    let official = principal(Role::Official, "360102");
    let actor = official.actor(Some("10.0.0.1".into()));
    let p = products::create(&db, &official, &actor, pesticide("吡虫啉可湿性粉剂", " pd20180001 ")).await.unwrap();
    assert_eq!(p.registration_number.as_deref(), Some("PD20180001"), "trimmed and upper-cased");
    assert_eq!(p.active_ingredients, vec![ActiveIngredient { name: "吡虫啉".into(), content: "25%".into() }]);
    assert_eq!(products::get(&db, p.id).await.unwrap(), p);
    let f1 = products::create(&db, &official, &actor, fertilizer("复合肥 Compound", Some("农肥(2019)准字1234号"))).await.unwrap();
    let f2 = products::create(&db, &official, &actor, fertilizer("有机肥", None)).await.unwrap();
    // Several fertilizers may have no number.
    let f3 = products::create(&db, &official, &actor, fertilizer("生物有机肥", None)).await.unwrap();
    assert_eq!(f3.registration_number, None);

    let ids = |list: Vec<products::Product>| list.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(products::list(&db, &ProductQuery::default()).await.unwrap()), [p.id, f1.id, f2.id, f3.id]);
    let search = |q: &str| ProductQuery { q: Some(q.into()), ..Default::default() };
    assert_eq!(ids(products::list(&db, &search("吡虫啉")).await.unwrap()), [p.id]);
    assert_eq!(ids(products::list(&db, &search("pd2018")).await.unwrap()), [p.id], "registration numbers match in any case");
    assert_eq!(ids(products::list(&db, &search("compound")).await.unwrap()), [f1.id], "names ignore ASCII case");
    assert_eq!(ids(products::list(&db, &search("准字1234")).await.unwrap()), [f1.id]);
    assert_eq!(ids(products::list(&db, &search("有机肥")).await.unwrap()), [f2.id, f3.id]);
    assert!(products::list(&db, &search("%")).await.unwrap().is_empty(), "LIKE wildcards are literal");
    let kind = ProductQuery { kind: Some(ProductKind::Fertilizer), ..Default::default() };
    assert_eq!(ids(products::list(&db, &kind).await.unwrap()), [f1.id, f2.id, f3.id]);
    let limited = ProductQuery { limit: Some(2), ..Default::default() };
    assert_eq!(ids(products::list(&db, &limited).await.unwrap()), [p.id, f1.id]);

    let upd = ProductUpdate { banned: Some(true), name: Some("吡虫啉 WP".into()), ..Default::default() };
    let changed = products::update(&db, &official, &actor, p.id, upd).await.unwrap();
    assert!(changed.banned && !changed.restricted_use);
    assert_eq!(changed.name, "吡虫啉 WP");
    assert_eq!(changed.registration_number, p.registration_number);
    assert!(changed.updated_at >= p.updated_at && changed.created_at == p.created_at);
    assert_eq!(products::get(&db, p.id).await.unwrap(), changed);
    let banned = ProductQuery { banned: Some(true), ..Default::default() };
    assert_eq!(ids(products::list(&db, &banned).await.unwrap()), [p.id]);
    let allowed = ProductQuery { banned: Some(false), kind: Some(ProductKind::Pesticide), ..Default::default() };
    assert!(products::list(&db, &allowed).await.unwrap().is_empty());

    assert_eq!(code_of(products::get(&db, 4242).await.unwrap_err()), "not_found");
    assert_eq!(code_of(products::update(&db, &official, &actor, 4242, ProductUpdate { banned: Some(false), ..Default::default() }).await.unwrap_err()), "not_found");
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn writes_are_audited_in_their_transaction(db) {
    let admin = auth::operator();
    let actor = admin.actor(Some("10.0.0.2".into()));
    let p = products::create(&db, &admin, &actor, pesticide("毒死蜱乳油", "PD20080002")).await.unwrap();
    let created = audit_entries(&db, "input_product.create").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].target, format!("input_product:{}", p.id));
    assert_eq!(created[0].region, None, "products are national reference data");
    assert_eq!(created[0].ip.as_deref(), Some("10.0.0.2"));
    assert_eq!(created[0].detail_json()["registration_number"], "PD20080002");

    let upd = ProductUpdate { restricted_use: Some(true), banned: Some(true), maker: Some("某公司".into()), ..Default::default() };
    products::update(&db, &admin, &actor, p.id, upd).await.unwrap();
    let updated = audit_entries(&db, "input_product.update").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(
        updated[0].detail_json(),
        json!({
            "restricted_use": {"from": false, "to": true},
            "banned": {"from": false, "to": true},
            "maker": {"from": "江西某农药有限公司", "to": "某公司"},
        })
    );

    // A rejected write leaves neither a row nor an audit entry.
    let err = products::create(&db, &admin, &actor, pesticide("另一个", "PD20080002")).await.unwrap_err();
    assert_eq!(code_of(err), "registration_taken");
    assert_eq!(audit_entries(&db, "input_product.create").await.len(), 1);
    assert_eq!(products::list(&db, &ProductQuery::default()).await.unwrap().len(), 1);
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn registration_numbers_are_unique_and_validated(db) {
    let admin = auth::operator();
    let actor = admin.actor(None);
    let a = products::create(&db, &admin, &actor, pesticide("甲", "PD20180001")).await.unwrap();
    let b = products::create(&db, &admin, &actor, pesticide("乙", "WP20180001")).await.unwrap();
    products::create(&db, &admin, &actor, fertilizer("丙", Some("农肥(2019)准字1234号"))).await.unwrap();
    assert_eq!(code_of(products::create(&db, &admin, &actor, pesticide("丁", "pd20180001")).await.unwrap_err()), "registration_taken");
    assert_eq!(code_of(products::create(&db, &admin, &actor, fertilizer("戊", Some("农肥(2019)准字1234号"))).await.unwrap_err()), "registration_taken");
    // Changing to a taken number conflicts too, and changes nothing.
    let to_taken = ProductUpdate { registration_number: Some("PD20180001".into()), banned: Some(true), ..Default::default() };
    assert_eq!(code_of(products::update(&db, &admin, &actor, b.id, to_taken).await.unwrap_err()), "registration_taken");
    assert!(!products::get(&db, b.id).await.unwrap().banned);
    assert!(audit_entries(&db, "input_product.update").await.is_empty());

    for bad in ["PD2018001", "PD201800011", "XX20180001", "PD2018000A", "LS 20180001", "", "   "] {
        let err = products::create(&db, &admin, &actor, pesticide("错", bad)).await.unwrap_err();
        assert_eq!(code_of(err), "invalid_registration_number", "{bad:?}");
    }
    let mut missing = pesticide("无号", "x");
    missing.registration_number = None;
    assert_eq!(code_of(products::create(&db, &admin, &actor, missing).await.unwrap_err()), "invalid_registration_number");
    for good in ["LS20130001", "WP20100012"] {
        products::create(&db, &admin, &actor, pesticide("对", good)).await.unwrap();
    }
    let bad_update = ProductUpdate { registration_number: Some("PD1".into()), ..Default::default() };
    assert_eq!(code_of(products::update(&db, &admin, &actor, a.id, bad_update).await.unwrap_err()), "invalid_registration_number");

    assert_eq!(code_of(products::create(&db, &admin, &actor, pesticide("  ", "PD20990001")).await.unwrap_err()), "invalid_name");
    let mut no_maker = pesticide("甲2", "PD20990001");
    no_maker.maker = String::new();
    assert_eq!(code_of(products::create(&db, &admin, &actor, no_maker).await.unwrap_err()), "invalid_maker");
    let mut bad_ingredient = pesticide("甲3", "PD20990001");
    bad_ingredient.active_ingredients = vec![ActiveIngredient { name: "吡虫啉".into(), content: " ".into() }];
    assert_eq!(code_of(products::create(&db, &admin, &actor, bad_ingredient).await.unwrap_err()), "invalid_active_ingredients");
    assert_eq!(code_of(products::update(&db, &admin, &actor, a.id, ProductUpdate::default()).await.unwrap_err()), "missing_field");
    assert!(audit_entries(&db, "input_product.update").await.is_empty());
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn only_officials_and_admins_write(db) {
    for role in [Role::VillageStaff, Role::Dealer, Role::Farmer, Role::Carrier, Role::Expert] {
        let caller = principal(role, "360102");
        let actor = caller.actor(None);
        let err = products::create(&db, &caller, &actor, pesticide("甲", "PD20180001")).await.unwrap_err();
        assert_eq!(code_of(err), "forbidden", "{role:?}");
    }
    let admin = principal(Role::Admin, "360102");
    let p = products::create(&db, &admin, &admin.actor(None), pesticide("甲", "PD20180001")).await.unwrap();
    let farmer = principal(Role::Farmer, "360102");
    let err = products::update(&db, &farmer, &farmer.actor(None), p.id, ProductUpdate { banned: Some(true), ..Default::default() }).await.unwrap_err();
    assert_eq!(code_of(err), "forbidden");
    assert!(audit_entries(&db, "input_product.create").await.len() == 1);
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn label_codes_find_their_pesticides(db) {
    let admin = auth::operator();
    let actor = admin.actor(None);
    let pd = products::create(&db, &admin, &actor, pesticide("甲", "PD20180001")).await.unwrap();
    let wp = products::create(&db, &admin, &actor, pesticide("乙", "WP20180001")).await.unwrap();
    let ls = products::create(&db, &admin, &actor, pesticide("丙", "LS20180001")).await.unwrap();
    products::create(&db, &admin, &actor, pesticide("丁", "PD20180002")).await.unwrap();
    products::create(&db, &admin, &actor, fertilizer("戊 PD20180001-like", Some("PD20180001肥"))).await.unwrap();
    let find = async |code: &str| {
        products::by_label_code(&db, &parse_label_code(code).unwrap()).await.unwrap().into_iter().map(|p| p.id).collect::<Vec<_>>()
    };
    assert_eq!(find("11800011001000000000000000000001").await, [pd.id]);
    assert_eq!(find("21800011001000000000000000000001").await, [wp.id]);
    assert_eq!(find("31800011001000000000000000000001").await, [ls.id]);
    assert!(find("11800031001000000000000000000001").await.is_empty());
});
