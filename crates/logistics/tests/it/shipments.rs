//! Shipments on SQLite and PostgreSQL: booking and its validation, only
//! legal status transitions, handovers and proof of delivery, planning onto
//! vehicles (temperature compatibility, capacity), and who sees which
//! shipment.

use chrono::{Duration, Utc};
use shuxiang_core::audit::{self, AuditQuery};
use shuxiang_core::auth::Role;
use shuxiang_core::{CoreError, Db, db_test};
use shuxiang_logistics::coldchain::{Band, BandSource, TemperatureClass};
use shuxiang_logistics::shipments::{
    self, NewHandover, Place, ProofOfDelivery, Shipment, ShipmentQuery, Status, StatusChange,
};
use shuxiang_logistics::store::LOGISTICS_MIGRATIONS;

use crate::support::*;

fn handover(from: &str, to: &str, minutes_ago: i64) -> NewHandover {
    NewHandover {
        from_party: from.into(),
        to_party: to.into(),
        at: Some(Utc::now() - Duration::minutes(minutes_ago)),
        temperature_c: Some(3.0),
        signature_name: "王师傅".into(),
        note: None,
    }
}

fn to(status: Status) -> StatusChange {
    StatusChange {
        status,
        handover: None,
        proof_of_delivery: None,
        reason: None,
    }
}

fn picked_up(minutes_ago: i64) -> StatusChange {
    StatusChange {
        handover: Some(handover("李四 (农户)", "赣A12345 司机", minutes_ago)),
        ..to(Status::PickedUp)
    }
}

fn delivered(minutes_ago: i64) -> StatusChange {
    StatusChange {
        proof_of_delivery: Some(ProofOfDelivery {
            receiver_name: "仓管 张三".into(),
            at: Some(Utc::now() - Duration::minutes(minutes_ago)),
            note: Some("完好".into()),
        }),
        ..to(Status::Delivered)
    }
}

fn ids(list: &[Shipment]) -> Vec<i64> {
    let mut v: Vec<i64> = list.iter().map(|s| s.id).collect();
    v.sort_unstable();
    v
}

async fn expect_code(f: impl std::future::Future<Output = Result<Shipment, CoreError>>, expected: &str) {
    let err = f.await.unwrap_err();
    assert_eq!(err.code(), expected, "{err}");
}

db_test!([&LOGISTICS_MIGRATIONS] async fn farmers_book_pickups_from_their_village(db) {
    let warehouse = site(&db, "东湖区供销云仓", IN_COUNTY).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let s = book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    assert_eq!((s.status, s.booked_by, s.region_code.as_str()), (Status::Booked, 10, IN_VILLAGE));
    assert_eq!((s.band, s.band_source), (Band { min_c: Some(0.0), max_c: Some(4.0) }, BandSource::Commodity));
    assert_eq!(s.trace_codes, ["3601020020010001"]);
    assert_eq!(s.destination.site_id, Some(warehouse.id));
    assert_eq!((s.destination.lon, s.destination.lat), (Some(warehouse.lon), Some(warehouse.lat)));
    assert_eq!(shipments::get(&db, &farmer, s.id).await.unwrap(), s);
    let entry = audit::list(&db, None, &AuditQuery { action: Some("shipment.book".into()), limit: 1, ..Default::default() })
        .await
        .unwrap();
    assert_eq!((entry[0].target.clone(), entry[0].region.clone()), (format!("shipment:{}", s.id), Some(IN_VILLAGE.to_string())));

    // From a site, the site's region is the pickup's region.
    let station = site(&db, "东湖站", IN_COUNTY).await;
    let mut from_site = pickup(IN_VILLAGE, &warehouse);
    from_site.origin = Place { site_id: Some(station.id), name: None, lon: None, lat: None, region_code: None };
    let staff = who(12, Role::VillageStaff, IN_COUNTY);
    let s2 = shipments::book(&db, &staff, &actor(&staff), from_site.clone()).await.unwrap();
    assert_eq!(s2.region_code, IN_COUNTY);
    let err = shipments::book(&db, &farmer, &actor(&farmer), from_site).await.unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "the station lies outside the farmer's village: {err}");

    // Outside the scope, or a role that does not book.
    let err = shipments::book(&db, &farmer, &actor(&farmer), pickup(OUT_VILLAGE, &warehouse)).await.unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err}");
    for role in [Role::Carrier, Role::Dealer, Role::Official, Role::Expert] {
        let p = who(40, role, IN_COUNTY);
        let err = shipments::book(&db, &p, &actor(&p), pickup(IN_VILLAGE, &warehouse)).await.unwrap_err();
        assert!(matches!(err, CoreError::Forbidden(_)), "{role:?}: {err}");
    }
});

db_test!([&LOGISTICS_MIGRATIONS] async fn booking_fields_are_validated(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    type Change = Box<dyn Fn(&mut shipments::NewShipment)>;
    let cases: Vec<(&str, Change)> = vec![
        ("invalid_weight", Box::new(|s| s.weight_kg = 0.0)),
        ("invalid_weight", Box::new(|s| s.weight_kg = f64::INFINITY)),
        ("invalid_volume", Box::new(|s| s.volume_m3 = 500.0)),
        ("invalid_goods", Box::new(|s| s.goods = String::new())),
        ("invalid_window", Box::new(|s| s.deadline = s.ready_at)),
        ("invalid_band", Box::new(|s| s.band = Some(Band { min_c: Some(8.0), max_c: Some(2.0) }))),
        ("invalid_trace_codes", Box::new(|s| s.trace_codes = vec!["with space".into()])),
        ("invalid_origin", Box::new(|s| s.origin.site_id = Some(1))),
        ("invalid_origin", Box::new(|s| s.origin.region_code = None)),
        ("invalid_origin", Box::new(|s| s.origin.region_code = Some(IN_COUNTY.into()))),
        ("invalid_origin", Box::new(|s| s.origin.lat = None)),
        ("unknown_region", Box::new(|s| s.origin.region_code = Some("360102002999".into()))),
        ("invalid_location", Box::new(|s| s.origin.lon = Some(200.0))),
        ("invalid_destination", Box::new(|s| s.destination.site_id = Some(999))),
        ("invalid_destination", Box::new(|s| {
            s.destination = Place { site_id: None, name: None, lon: Some(115.9), lat: Some(28.6), region_code: None };
        })),
        ("invalid_destination", Box::new(|s| {
            s.destination = Place { site_id: None, name: Some("超市".into()), lon: Some(115.9), lat: Some(28.6), region_code: Some(IN_VILLAGE.into()) };
        })),
    ];
    for (expected, change) in cases {
        let mut s = pickup(IN_VILLAGE, &warehouse);
        change(&mut s);
        let err = shipments::book(&db, &farmer, &actor(&farmer), s).await.unwrap_err();
        assert_eq!(err.code(), expected, "{err}");
        assert!(matches!(err, CoreError::Invalid { .. }), "{err}");
    }
    assert!(shipments::list(&db, &admin(), &ShipmentQuery::default()).await.unwrap().is_empty());

    // A buyer as the destination and the shipment's own band are fine.
    let mut s = pickup(IN_VILLAGE, &warehouse);
    s.destination = Place { site_id: None, name: Some("南昌某超市".into()), lon: Some(115.85), lat: Some(28.65), region_code: None };
    s.band = Some(Band { min_c: Some(1.0), max_c: Some(3.0) });
    let booked = shipments::book(&db, &farmer, &actor(&farmer), s).await.unwrap();
    assert_eq!((booked.band.min_c, booked.band_source), (Some(1.0), BandSource::Shipment));
    assert_eq!(booked.destination.name.as_deref(), Some("南昌某超市"));
});

db_test!([&LOGISTICS_MIGRATIONS] async fn a_shipment_moves_only_along_legal_transitions(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let truck = vehicle(&db, "赣A12345", &warehouse, TemperatureClass::Chilled).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let carrier = who(20, Role::Carrier, IN_COUNTY);
    let a = actor(&carrier);
    let s = book(&db, &farmer, IN_VILLAGE, &warehouse).await;

    // Booked: not yet picked up, in transit or delivered (the carrier does
    // not even see it before it is planned on its vehicle).
    let admin = admin();
    let aa = actor(&admin);
    for change in [picked_up(10), to(Status::InTransit), delivered(1)] {
        expect_code(shipments::change_status(&db, &admin, &aa, s.id, change), "illegal_transition").await;
    }
    expect_code(shipments::change_status(&db, &carrier, &a, s.id, picked_up(10)), "forbidden").await;
    expect_code(shipments::change_status(&db, &admin, &aa, s.id, to(Status::Booked)), "invalid_status").await;
    expect_code(shipments::add_handover(&db, &admin, &aa, s.id, handover("x", "y", 5)), "not_under_way").await;

    let planned = shipments::assign(&db, &carrier, &a, s.id, truck.id).await.unwrap();
    assert_eq!((planned.status, planned.vehicle_id), (Status::Planned, Some(truck.id)));
    expect_code(shipments::change_status(&db, &carrier, &a, s.id, to(Status::InTransit)), "illegal_transition").await;
    expect_code(shipments::change_status(&db, &carrier, &a, s.id, to(Status::PickedUp)), "missing_handover").await;

    let up = shipments::change_status(&db, &carrier, &a, s.id, picked_up(60)).await.unwrap();
    assert_eq!(up.status, Status::PickedUp);
    assert_eq!(up.handovers.len(), 1);
    assert_eq!((up.handovers[0].seq, up.handovers[0].signature_name.as_str(), up.handovers[0].recorded_by), (1, "王师傅", 20));
    expect_code(shipments::assign(&db, &carrier, &a, s.id, truck.id), "illegal_transition").await;
    expect_code(shipments::change_status(&db, &carrier, &a, s.id, to(Status::Cancelled)), "forbidden").await;
    expect_code(shipments::change_status(&db, &admin, &aa, s.id, to(Status::Cancelled)), "illegal_transition").await;

    // Handovers never go back in time.
    expect_code(shipments::change_status(&db, &carrier, &a, s.id, StatusChange { handover: Some(handover("司机", "中转", 90)), ..to(Status::InTransit) }), "invalid_time").await;
    let moving = shipments::change_status(&db, &carrier, &a, s.id, StatusChange { handover: Some(handover("赣A12345 司机", "中转站", 40)), ..to(Status::InTransit) }).await.unwrap();
    assert_eq!(moving.status, Status::InTransit);
    let hub = shipments::add_handover(&db, &carrier, &a, s.id, handover("中转站", "赣A67890 司机", 30)).await.unwrap();
    assert_eq!(hub.handovers.iter().map(|h| h.seq).collect::<Vec<_>>(), [1, 2, 3]);
    expect_code(shipments::add_handover(&db, &carrier, &a, s.id, NewHandover { temperature_c: Some(99.0), ..handover("a", "b", 20) }), "invalid_handover").await;
    expect_code(shipments::add_handover(&db, &carrier, &a, s.id, NewHandover { at: Some(Utc::now() + Duration::hours(1)), ..handover("a", "b", 0) }), "invalid_time").await;

    expect_code(shipments::change_status(&db, &carrier, &a, s.id, to(Status::Delivered)), "missing_proof_of_delivery").await;
    let done = shipments::change_status(&db, &carrier, &a, s.id, delivered(10)).await.unwrap();
    assert_eq!((done.status, done.receiver_name.as_deref(), done.on_time), (Status::Delivered, Some("仓管 张三"), Some(true)));
    for change in [to(Status::Cancelled), picked_up(5), to(Status::InTransit), delivered(1)] {
        let who_ = if change.status == Status::Cancelled { &admin } else { &carrier };
        expect_code(shipments::change_status(&db, who_, &actor(who_), s.id, change), "illegal_transition").await;
    }
    expect_code(shipments::add_handover(&db, &carrier, &a, s.id, handover("x", "y", 5)), "not_under_way").await;

    // The status changes are audited in the region of the pickup.
    let log = audit::list(&db, None, &AuditQuery { action: Some("shipment.status".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].detail_json()["to"], "delivered");
    assert_eq!(log[0].detail_json()["on_time"], true);
    assert_eq!(log[0].region.as_deref(), Some(IN_VILLAGE));
});

db_test!([&LOGISTICS_MIGRATIONS] async fn late_deliveries_are_not_on_time(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let truck = vehicle(&db, "赣A12345", &warehouse, TemperatureClass::Chilled).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let mut late = pickup(IN_VILLAGE, &warehouse);
    late.ready_at = Utc::now() - Duration::hours(5);
    late.deadline = Utc::now() - Duration::hours(2);
    let s = shipments::book(&db, &farmer, &actor(&farmer), late).await.unwrap();
    let a = admin();
    let act = actor(&a);
    shipments::assign(&db, &a, &act, s.id, truck.id).await.unwrap();
    shipments::change_status(&db, &a, &act, s.id, picked_up(240)).await.unwrap();
    shipments::change_status(&db, &a, &act, s.id, to(Status::InTransit)).await.unwrap();
    let done = shipments::change_status(&db, &a, &act, s.id, delivered(60)).await.unwrap();
    assert_eq!(done.on_time, Some(false));
});

db_test!([&LOGISTICS_MIGRATIONS] async fn cancelling_is_for_the_booker_and_the_region(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let neighbour = who(11, Role::Farmer, IN_VILLAGE);
    let s = book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    for p in [neighbour.clone(), who(20, Role::Carrier, IN_COUNTY), who(3, Role::Official, OUT_COUNTY), who(30, Role::Dealer, IN_COUNTY)] {
        expect_code(shipments::change_status(&db, &p, &actor(&p), s.id, to(Status::Cancelled)), "forbidden").await;
    }
    let cancelled = shipments::change_status(&db, &farmer, &actor(&farmer), s.id, StatusChange { reason: Some("价格没谈拢".into()), ..to(Status::Cancelled) })
        .await
        .unwrap();
    assert_eq!((cancelled.status, cancelled.cancel_reason.as_deref()), (Status::Cancelled, Some("价格没谈拢")));
    expect_code(shipments::change_status(&db, &farmer, &actor(&farmer), s.id, to(Status::Cancelled)), "illegal_transition").await;

    let staff = who(12, Role::VillageStaff, "360102002");
    let other = book(&db, &neighbour, IN_VILLAGE, &warehouse).await;
    assert_eq!(shipments::change_status(&db, &staff, &actor(&staff), other.id, to(Status::Cancelled)).await.unwrap().status, Status::Cancelled);
    expect_code(shipments::change_status(&db, &staff, &actor(&staff), 999, to(Status::Cancelled)), "not_found").await;
});

db_test!([&LOGISTICS_MIGRATIONS] async fn planning_respects_temperature_classes_and_capacity(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let west = site(&db, "西湖仓", OUT_COUNTY).await;
    let ambient = vehicle(&db, "赣A00001", &warehouse, TemperatureClass::Ambient).await;
    let chilled = vehicle(&db, "赣A00002", &warehouse, TemperatureClass::Chilled).await;
    let frozen = vehicle(&db, "赣A00003", &warehouse, TemperatureClass::Frozen).await;
    let west_truck = vehicle(&db, "赣A00004", &west, TemperatureClass::Frozen).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let carrier = who(20, Role::Carrier, IN_COUNTY);
    let a = actor(&carrier);

    // Chilled goods need a reefer; frozen goods a frozen unit; ambient goods ride anywhere.
    let veg = book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    expect_code(shipments::assign(&db, &carrier, &a, veg.id, ambient.id), "incompatible_vehicle").await;
    let mut ice = pickup(IN_VILLAGE, &warehouse);
    ice.temperature_class = TemperatureClass::Frozen;
    ice.commodity = "frozen_pork".into();
    let ice = shipments::book(&db, &farmer, &actor(&farmer), ice).await.unwrap();
    assert_eq!((ice.band, ice.band_source), (Band { min_c: None, max_c: Some(-18.0) }, BandSource::Class));
    expect_code(shipments::assign(&db, &carrier, &a, ice.id, chilled.id), "incompatible_vehicle").await;
    assert_eq!(shipments::assign(&db, &carrier, &a, ice.id, frozen.id).await.unwrap().vehicle_id, Some(frozen.id));
    let mut rice = pickup(IN_VILLAGE, &warehouse);
    rice.temperature_class = TemperatureClass::Ambient;
    rice.commodity = "rice".into();
    let rice = shipments::book(&db, &farmer, &actor(&farmer), rice).await.unwrap();
    assert!(shipments::assign(&db, &carrier, &a, rice.id, frozen.id).await.is_ok());

    // A vehicle outside the carrier's county, an unknown vehicle.
    expect_code(shipments::assign(&db, &carrier, &a, veg.id, west_truck.id), "forbidden").await;
    expect_code(shipments::assign(&db, &carrier, &a, veg.id, 999), "unknown_vehicle").await;
    let farmer_plans = shipments::assign(&db, &farmer, &actor(&farmer), veg.id, chilled.id).await.unwrap_err();
    assert!(matches!(farmer_plans, CoreError::Forbidden(_)));

    // 1000 kg capacity: five 200 kg loads fit, the sixth does not.
    let mut planned = Vec::new();
    for _ in 0..5 {
        let s = book(&db, &farmer, IN_VILLAGE, &warehouse).await;
        planned.push(shipments::assign(&db, &carrier, &a, s.id, chilled.id).await.unwrap());
    }
    expect_code(shipments::assign(&db, &carrier, &a, veg.id, chilled.id), "over_capacity").await;
    // Volume counts too: 10 m³, and one load of 9 m³ is too much beside 5 × 1.5 m³.
    shipments::change_status(&db, &farmer, &actor(&farmer), planned[0].id, to(Status::Cancelled)).await.unwrap();
    let mut bulky = pickup(IN_VILLAGE, &warehouse);
    bulky.weight_kg = 10.0;
    bulky.volume_m3 = 9.0;
    let bulky = shipments::book(&db, &farmer, &actor(&farmer), bulky).await.unwrap();
    expect_code(shipments::assign(&db, &carrier, &a, bulky.id, chilled.id), "over_capacity").await;
    // A cancelled load frees its room; re-planning onto another vehicle frees it too.
    assert_eq!(shipments::assign(&db, &carrier, &a, veg.id, chilled.id).await.unwrap().status, Status::Planned);
    let moved = shipments::assign(&db, &carrier, &a, planned[1].id, frozen.id).await.unwrap();
    assert_eq!((moved.status, moved.vehicle_id), (Status::Planned, Some(frozen.id)));
    let q = ShipmentQuery { vehicle_id: Some(chilled.id), status: Some(Status::Planned), ..Default::default() };
    assert_eq!(shipments::list(&db, &carrier, &q).await.unwrap().len(), 4);
});

db_test!([&LOGISTICS_MIGRATIONS] async fn each_role_sees_only_its_shipments(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let west = site(&db, "西湖仓", OUT_COUNTY).await;
    let truck = vehicle(&db, "赣A12345", &warehouse, TemperatureClass::Chilled).await;
    let west_truck = vehicle(&db, "赣A54321", &west, TemperatureClass::Chilled).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let neighbour = who(11, Role::Farmer, IN_VILLAGE);
    let west_farmer = who(13, Role::Farmer, OUT_VILLAGE);
    let mine = book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    let theirs = book(&db, &neighbour, IN_VILLAGE, &warehouse).await;
    let western = book(&db, &west_farmer, OUT_VILLAGE, &west).await;
    let a = admin();
    shipments::assign(&db, &a, &actor(&a), mine.id, truck.id).await.unwrap();
    shipments::assign(&db, &a, &actor(&a), western.id, west_truck.id).await.unwrap();

    let all = ShipmentQuery::default();
    let sees = |p| {
        let db = db.clone();
        async move { ids(&shipments::list(&db, &p, &ShipmentQuery::default()).await.unwrap()) }
    };
    assert_eq!(sees(farmer.clone()).await, [mine.id]);
    assert_eq!(sees(neighbour.clone()).await, [theirs.id]);
    assert_eq!(sees(who(12, Role::VillageStaff, "360102002")).await, [mine.id, theirs.id]);
    assert_eq!(sees(who(2, Role::Official, IN_COUNTY)).await, [mine.id, theirs.id]);
    assert_eq!(sees(who(3, Role::Official, OUT_COUNTY)).await, [western.id]);
    assert_eq!(sees(who(20, Role::Carrier, IN_COUNTY)).await, [mine.id], "only what is planned on the county's vehicles");
    assert_eq!(sees(a.clone()).await, [mine.id, theirs.id, western.id]);
    let status = ShipmentQuery { status: Some(Status::Booked), ..Default::default() };
    assert_eq!(ids(&shipments::list(&db, &a, &status).await.unwrap()), [theirs.id]);
    for role in [Role::Dealer, Role::Expert] {
        let p = who(30, role, IN_COUNTY);
        assert!(matches!(shipments::list(&db, &p, &all).await, Err(CoreError::Forbidden(_))));
        assert!(matches!(shipments::get(&db, &p, mine.id).await, Err(CoreError::Forbidden(_))));
    }

    // Reading one: the same rules.
    assert!(shipments::get(&db, &farmer, mine.id).await.is_ok());
    assert!(matches!(shipments::get(&db, &farmer, theirs.id).await, Err(CoreError::Forbidden(_))));
    assert!(matches!(shipments::get(&db, &who(20, Role::Carrier, IN_COUNTY), theirs.id).await, Err(CoreError::Forbidden(_))));
    assert!(shipments::get(&db, &who(21, Role::Carrier, OUT_COUNTY), western.id).await.is_ok());
    assert!(matches!(shipments::get(&db, &who(3, Role::Official, OUT_COUNTY), mine.id).await, Err(CoreError::Forbidden(_))));
    assert!(matches!(shipments::get(&db, &a, 999).await, Err(CoreError::NotFound(_))));

    // Only operators of the vehicle's county move a shipment.
    let west_carrier = who(21, Role::Carrier, OUT_COUNTY);
    expect_code(shipments::change_status(&db, &west_carrier, &actor(&west_carrier), mine.id, picked_up(5)), "forbidden").await;
    expect_code(shipments::change_status(&db, &farmer, &actor(&farmer), mine.id, picked_up(5)), "forbidden").await;
});

async fn count(db: &Db) -> usize {
    shipments::list(
        db,
        &admin(),
        &ShipmentQuery {
            limit: Some(1000),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .len()
}

db_test!([&LOGISTICS_MIGRATIONS] async fn a_failed_booking_writes_nothing(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let mut bad = pickup(IN_VILLAGE, &warehouse);
    bad.trace_codes = vec!["a".into(), "a".into()];
    assert!(shipments::book(&db, &farmer, &actor(&farmer), bad).await.is_err());
    assert_eq!(count(&db).await, 0);
    book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    assert_eq!(count(&db).await, 1);
});
