//! Sites and vehicles on SQLite and PostgreSQL: who may register and change
//! them in which region, what is validated, and the audit entries.

use shuxiang_core::audit::{self, AuditQuery};
use shuxiang_core::auth::Role;
use shuxiang_core::{CoreError, Db, RegionCode, db_test};
use shuxiang_logistics::coldchain::TemperatureClass;
use shuxiang_logistics::network::{self, SiteKind, SiteQuery, SiteUpdate, Tier, VehicleQuery, VehicleUpdate};
use shuxiang_logistics::store::LOGISTICS_MIGRATIONS;

use crate::support::*;

type SiteChange = Box<dyn Fn(&mut network::NewSite)>;
type VehicleChange = Box<dyn Fn(&mut network::NewVehicle)>;

fn code(e: &CoreError) -> &'static str {
    e.code()
}

async fn last_audit(db: &Db, action: &str) -> audit::AuditEntry {
    audit::list(
        db,
        None,
        &AuditQuery {
            action: Some(action.into()),
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .remove(0)
}

db_test!([&LOGISTICS_MIGRATIONS] async fn officials_manage_the_sites_of_their_region(db) {
    let official = who(2, Role::Official, IN_COUNTY);
    let created = network::create_site(&db, &official, &actor(&official), new_site("东湖区供销云仓", IN_COUNTY))
        .await
        .unwrap();
    assert_eq!((created.tier, created.kind, created.cold_storage), (Tier::County, SiteKind::CloudWarehouse, true));
    assert_eq!(network::get_site(&db, created.id).await.unwrap(), created);
    let entry = last_audit(&db, "logistics_site.create").await;
    assert_eq!((entry.target.as_str(), entry.region.as_deref()), (format!("logistics_site:{}", created.id).as_str(), Some(IN_COUNTY)));

    // Out of the official's county, and for roles that do not keep the network.
    let err = network::create_site(&db, &official, &actor(&official), new_site("西湖区", OUT_COUNTY)).await.unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err}");
    let farmer = who(10, Role::Farmer, IN_COUNTY);
    let err = network::create_site(&db, &farmer, &actor(&farmer), new_site("x", IN_COUNTY)).await.unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err}");

    // Changes are audited from → to and scoped like creation.
    let upd = SiteUpdate { opening_hours: Some("07:30-19:00".into()), ..Default::default() };
    let other = who(3, Role::Official, OUT_COUNTY);
    assert!(matches!(network::update_site(&db, &other, &actor(&other), created.id, upd.clone()).await, Err(CoreError::Forbidden(_))));
    let changed = network::update_site(&db, &official, &actor(&official), created.id, upd).await.unwrap();
    assert_eq!(changed.opening_hours.as_deref(), Some("07:30-19:00"));
    assert_eq!(changed.name, created.name);
    let entry = last_audit(&db, "logistics_site.update").await;
    assert_eq!(entry.detail_json(), serde_json::json!({"opening_hours": {"from": "08:00-18:00", "to": "07:30-19:00"}}));
    let err = network::update_site(&db, &official, &actor(&official), created.id, SiteUpdate::default()).await.unwrap_err();
    assert_eq!(code(&err), "missing_field");
    assert!(matches!(network::update_site(&db, &official, &actor(&official), 999, SiteUpdate { cold_storage: Some(false), ..Default::default() }).await, Err(CoreError::NotFound(_))));
});

db_test!([&LOGISTICS_MIGRATIONS] async fn site_fields_are_validated(db) {
    let a = admin();
    let mut s = new_site("站", IN_VILLAGE);
    let err = network::create_site(&db, &a, &actor(&a), s.clone()).await.unwrap_err();
    assert_eq!(code(&err), "tier_mismatch", "a county-tier site at a village code");
    s.tier = Tier::Village;
    s.kind = SiteKind::ServiceStation;
    assert!(network::create_site(&db, &a, &actor(&a), s.clone()).await.is_ok(), "an 益农信息社 in the village");

    let mut station = new_site("站", IN_COUNTY);
    station.kind = SiteKind::CollectionPoint;
    assert_eq!(code(&network::create_site(&db, &a, &actor(&a), station).await.unwrap_err()), "tier_mismatch");

    let mut unknown = new_site("x", IN_COUNTY);
    unknown.region_code = RegionCode::parse("369999").unwrap();
    assert_eq!(code(&network::create_site(&db, &a, &actor(&a), unknown).await.unwrap_err()), "unknown_region");

    let cases: Vec<(&str, SiteChange)> = vec![
        ("invalid_location", Box::new(|s| { s.lon = 28.68; s.lat = 115.89; })),
        ("invalid_location", Box::new(|s| s.lat = f64::NAN)),
        ("invalid_name", Box::new(|s| s.name = "  ".into())),
        ("invalid_capacity", Box::new(|s| s.capacity_kg = Some(0.0))),
        ("invalid_opening_hours", Box::new(|s| s.opening_hours = Some("18:00-08:00".into()))),
        ("invalid_logger_device", Box::new(|s| s.logger_device_id = Some(0))),
    ];
    for (expected, change) in cases {
        let mut s = new_site("x", IN_COUNTY);
        change(&mut s);
        assert_eq!(code(&network::create_site(&db, &a, &actor(&a), s).await.unwrap_err()), expected);
    }
});

db_test!([&LOGISTICS_MIGRATIONS] async fn everyone_reads_the_network_filtered_by_region_and_kind(db) {
    let east = site(&db, "东湖", IN_COUNTY).await;
    let west = site(&db, "西湖", OUT_COUNTY).await;
    let a = admin();
    let mut store = new_site("冷库", IN_COUNTY);
    store.kind = SiteKind::ColdStore;
    let cold = network::create_site(&db, &a, &actor(&a), store).await.unwrap();
    let ids = |sites: Vec<network::Site>| sites.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(network::list_sites(&db, &SiteQuery::default()).await.unwrap()), [east.id, west.id, cold.id]);
    let q = SiteQuery { region: Some(RegionCode::parse(IN_COUNTY).unwrap()), ..Default::default() };
    assert_eq!(ids(network::list_sites(&db, &q).await.unwrap()), [east.id, cold.id]);
    let q = SiteQuery { kind: Some(SiteKind::ColdStore), ..Default::default() };
    assert_eq!(ids(network::list_sites(&db, &q).await.unwrap()), [cold.id]);
    let q = SiteQuery { cold_storage: Some(false), ..Default::default() };
    assert!(network::list_sites(&db, &q).await.unwrap().is_empty());
});

db_test!([&LOGISTICS_MIGRATIONS] async fn carriers_manage_the_fleet_of_their_county(db) {
    let east = site(&db, "东湖", IN_COUNTY).await;
    let west = site(&db, "西湖", OUT_COUNTY).await;
    let carrier = who(20, Role::Carrier, IN_COUNTY);
    let v = network::create_vehicle(&db, &carrier, &actor(&carrier), new_vehicle("赣a12345", &east, TemperatureClass::Chilled))
        .await
        .unwrap();
    assert_eq!((v.plate.as_str(), v.region_code.as_str()), ("赣A12345", IN_COUNTY));
    let err = network::create_vehicle(&db, &carrier, &actor(&carrier), new_vehicle("赣A22222", &west, TemperatureClass::Chilled))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "a depot outside the carrier's county: {err}");
    let farmer = who(10, Role::Farmer, IN_COUNTY);
    let err = network::create_vehicle(&db, &farmer, &actor(&farmer), new_vehicle("赣A33333", &east, TemperatureClass::Ambient))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)));
    let err = network::create_vehicle(&db, &carrier, &actor(&carrier), new_vehicle("赣A12345", &east, TemperatureClass::Frozen))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "plate_taken");

    // Reading: the carrier sees its county's fleet only; farmers and dealers none.
    let west_v = vehicle(&db, "赣B00001", &west, TemperatureClass::Frozen).await;
    let listed = network::list_vehicles(&db, &carrier, &VehicleQuery::default()).await.unwrap();
    assert_eq!(listed.iter().map(|v| v.id).collect::<Vec<_>>(), [v.id]);
    let everything = network::list_vehicles(&db, &admin(), &VehicleQuery::default()).await.unwrap();
    assert_eq!(everything.len(), 2);
    let frozen = VehicleQuery { refrigeration: Some(TemperatureClass::Frozen), ..Default::default() };
    assert_eq!(network::list_vehicles(&db, &admin(), &frozen).await.unwrap()[0].id, west_v.id);
    assert!(matches!(network::get_vehicle(&db, &carrier, west_v.id).await, Err(CoreError::Forbidden(_))));
    assert_eq!(network::get_vehicle(&db, &carrier, v.id).await.unwrap(), v);
    let dealer = who(30, Role::Dealer, IN_COUNTY);
    assert!(matches!(network::list_vehicles(&db, &dealer, &VehicleQuery::default()).await, Err(CoreError::Forbidden(_))));

    // Changes: scoped, validated, audited.
    let upd = VehicleUpdate { capacity_kg: Some(1500.0), ..Default::default() };
    assert!(matches!(network::update_vehicle(&db, &carrier, &actor(&carrier), west_v.id, upd.clone()).await, Err(CoreError::Forbidden(_))));
    let changed = network::update_vehicle(&db, &carrier, &actor(&carrier), v.id, upd).await.unwrap();
    assert_eq!(changed.capacity_kg, 1500.0);
    let entry = last_audit(&db, "logistics_vehicle.update").await;
    assert_eq!(entry.detail_json(), serde_json::json!({"capacity_kg": {"from": 1000.0, "to": 1500.0}}));
    let reversed = VehicleUpdate { shift_end: Some("05:00".into()), ..Default::default() };
    assert_eq!(code(&network::update_vehicle(&db, &carrier, &actor(&carrier), v.id, reversed).await.unwrap_err()), "invalid_shift");
    let no_driver = VehicleUpdate { driver_user_id: Some(424242), ..Default::default() };
    assert_eq!(code(&network::update_vehicle(&db, &carrier, &actor(&carrier), v.id, no_driver).await.unwrap_err()), "unknown_driver");
});

db_test!([&LOGISTICS_MIGRATIONS] async fn vehicle_fields_are_validated(db) {
    let east = site(&db, "东湖", IN_COUNTY).await;
    let a = admin();
    let cases: Vec<(&str, VehicleChange)> = vec![
        ("invalid_plate", Box::new(|v| v.plate = "ABC123".into())),
        ("invalid_capacity", Box::new(|v| v.capacity_kg = 0.0)),
        ("invalid_capacity", Box::new(|v| v.capacity_kg = 1.0e6)),
        ("invalid_capacity", Box::new(|v| v.capacity_m3 = -1.0)),
        ("invalid_shift", Box::new(|v| v.shift_start = "19:00".into())),
        ("invalid_shift", Box::new(|v| v.shift_end = "25:00".into())),
        ("unknown_depot", Box::new(|v| v.depot_site_id = 999)),
        ("unknown_driver", Box::new(|v| v.driver_user_id = Some(999))),
        ("invalid_logger_device", Box::new(|v| v.logger_device_id = Some(-3))),
    ];
    for (expected, change) in cases {
        let mut v = new_vehicle("赣A54321", &east, TemperatureClass::Chilled);
        change(&mut v);
        let err = network::create_vehicle(&db, &a, &actor(&a), v).await.unwrap_err();
        assert_eq!(code(&err), expected, "{err}");
        assert!(matches!(err, CoreError::Invalid { .. }));
    }
    assert!(network::list_vehicles(&db, &a, &VehicleQuery::default()).await.unwrap().is_empty());
});
