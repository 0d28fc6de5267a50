//! Dispatch plans on SQLite and PostgreSQL: a depot's day of collection
//! runs keeps temperature classes apart, never exceeds a vehicle's capacity,
//! respects pickup windows and shifts, lists what it could not plan with
//! the reason, and marks the planned shipments; a planner's locks pin
//! pickups to vehicles and a re-plan moves stops between them, keeps the
//! locks that still apply and replaces its plan, once.

use chrono::{DateTime, NaiveDate, Utc};
use shuxiang_core::audit::{self, AuditQuery};
use shuxiang_core::auth::Role;
use shuxiang_core::{CoreError, db_test};
use shuxiang_logistics::coldchain::TemperatureClass;
use shuxiang_logistics::plans::{self, Lock, PlanRequest};
use shuxiang_logistics::shipments::{self, NewShipment, Status};
use shuxiang_logistics::store::LOGISTICS_MIGRATIONS;

use crate::support::*;

fn local(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn request(depot: i64) -> PlanRequest {
    PlanRequest {
        depot_site_id: depot,
        day: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        road_factor: None,
        speed_kmh: None,
        service_min: None,
        time_limit_s: Some(1),
        locks: Vec::new(),
    }
}

/// A pickup on 1 March 2026 (China time) a few km from the depot.
fn on_the_day(class: TemperatureClass, kg: f64, k: f64) -> NewShipment {
    let mut s = pickup(IN_VILLAGE, &dummy_site());
    s.temperature_class = class;
    s.commodity = match class {
        TemperatureClass::Chilled => "leafy_vegetables",
        TemperatureClass::Frozen => "frozen_pork",
        TemperatureClass::Ambient => "rice",
    }
    .into();
    s.weight_kg = kg;
    s.volume_m3 = 1.0;
    s.ready_at = local("2026-03-01T07:00:00+08:00");
    s.deadline = local("2026-03-01T17:00:00+08:00");
    s.origin.lon = Some(115.89 + 0.01 * k);
    s.origin.lat = Some(28.68 + 0.005 * k);
    s
}

/// The destination of the test pickups is replaced once the depot exists.
fn dummy_site() -> shuxiang_logistics::network::Site {
    shuxiang_logistics::network::Site {
        id: 0,
        name: String::new(),
        kind: shuxiang_logistics::network::SiteKind::CloudWarehouse,
        tier: shuxiang_logistics::network::Tier::County,
        region_code: IN_COUNTY.into(),
        lon: 115.89,
        lat: 28.68,
        capacity_kg: None,
        cold_storage: false,
        opening_hours: None,
        logger_device_id: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

db_test!([&LOGISTICS_MIGRATIONS] async fn a_depots_day_is_planned_within_the_rules(db) {
    let depot = site(&db, "东湖区运营中心", IN_COUNTY).await;
    let west = site(&db, "西湖仓", OUT_COUNTY).await;
    let reefer = vehicle(&db, "赣A10001", &depot, TemperatureClass::Chilled).await;
    let van = vehicle(&db, "赣A10002", &depot, TemperatureClass::Ambient).await;
    let farmer = who(10, Role::Farmer, IN_COUNTY);
    let book = |mut s: NewShipment| {
        let db = db.clone();
        let farmer = farmer.clone();
        s.destination.site_id = Some(depot.id);
        async move { shipments::book(&db, &farmer, &actor(&farmer), s).await.unwrap() }
    };
    let mut veg = Vec::new();
    for k in 0..3 {
        veg.push(book(on_the_day(TemperatureClass::Chilled, 200.0, k as f64)).await);
    }
    let rice = book(on_the_day(TemperatureClass::Ambient, 300.0, 3.0)).await;
    let frozen = book(on_the_day(TemperatureClass::Frozen, 100.0, 4.0)).await;
    let too_heavy = book(on_the_day(TemperatureClass::Ambient, 5000.0, 5.0)).await;
    let mut dawn = on_the_day(TemperatureClass::Ambient, 50.0, 6.0);
    dawn.ready_at = local("2026-03-01T03:00:00+08:00");
    dawn.deadline = local("2026-03-01T05:00:00+08:00");
    let before_shift = book(dawn).await;
    let mut tomorrow = on_the_day(TemperatureClass::Ambient, 50.0, 1.0);
    tomorrow.ready_at = local("2026-03-02T07:00:00+08:00");
    tomorrow.deadline = local("2026-03-02T17:00:00+08:00");
    let next_day = book(tomorrow).await;
    let western = shipments::book(&db, &who(13, Role::Farmer, OUT_VILLAGE), &actor(&who(13, Role::Farmer, OUT_VILLAGE)), pickup(OUT_VILLAGE, &west)).await.unwrap();

    let carrier = who(20, Role::Carrier, IN_COUNTY);
    let plan = plans::create(&db, &carrier, &actor(&carrier), request(depot.id)).await.unwrap();

    // What could not be planned, and why.
    let mut unassigned: Vec<(i64, &str)> = plan.unassigned.iter().map(|u| (u.shipment_id, u.reason.as_str())).collect();
    unassigned.sort_unstable();
    assert_eq!(unassigned, [(frozen.id, "skills"), (too_heavy.id, "capacity"), (before_shift.id, "time_window")]);

    // Every other pickup of the day is on exactly one route, chilled goods on the reefer.
    let on = |vehicle: i64| -> Vec<i64> {
        plan.routes.iter().filter(|r| r.vehicle_id == vehicle).flat_map(|r| r.stops.iter().map(|s| s.shipment_id)).collect()
    };
    let mut served: Vec<i64> = on(reefer.id).into_iter().chain(on(van.id)).collect();
    served.sort_unstable();
    let mut expected = vec![veg[0].id, veg[1].id, veg[2].id, rice.id];
    expected.sort_unstable();
    assert_eq!(served, expected);
    for v in &veg {
        assert!(on(reefer.id).contains(&v.id), "chilled goods ride on the reefer");
    }
    assert!(!served.contains(&next_day.id) && !served.contains(&western.id));
    let weights = |vehicle: i64| -> f64 {
        on(vehicle).iter().map(|id| if *id == rice.id { 300.0 } else { 200.0 }).sum()
    };
    assert!(weights(reefer.id) <= reefer.capacity_kg && weights(van.id) <= van.capacity_kg);

    // Stops lie within the pickup windows and the shift (06:00–18:00).
    for r in &plan.routes {
        assert!(r.start >= local("2026-03-01T06:00:00+08:00") && r.end <= local("2026-03-01T18:00:00+08:00"), "{r:?}");
        for s in &r.stops {
            assert!(s.departure >= s.arrival);
            assert!(s.departure >= local("2026-03-01T07:00:00+08:00"), "service starts in the window: {s:?}");
        }
        assert!(r.distance_km > 0.0);
    }
    assert!((plan.distance_km - plan.routes.iter().map(|r| r.distance_km).sum::<f64>()).abs() < 1e-6);

    // The planned shipments are planned on their vehicle; the others stay booked.
    for id in &served {
        let s = shipments::get(&db, &admin(), *id).await.unwrap();
        assert_eq!(s.status, Status::Planned);
        assert_eq!(s.vehicle_id, plan.routes.iter().find(|r| r.stops.iter().any(|st| st.shipment_id == *id)).map(|r| r.vehicle_id));
    }
    for id in [frozen.id, too_heavy.id, before_shift.id, next_day.id, western.id] {
        assert_eq!(shipments::get(&db, &admin(), id).await.unwrap().status, Status::Booked);
    }

    // The stored plan reads back the same; the audit log has it.
    assert_eq!(plans::get(&db, &carrier, plan.id).await.unwrap(), plan);
    let log = audit::list(&db, None, &AuditQuery { action: Some("dispatch_plan.create".into()), limit: 1, ..Default::default() }).await.unwrap();
    assert_eq!(log[0].detail_json()["planned"], 4);

    // Planning again finds only what is still booked.
    let again = plans::create(&db, &carrier, &actor(&carrier), request(depot.id)).await.unwrap();
    assert!(again.routes.is_empty());
    assert_eq!(again.unassigned.len(), 3);
});

db_test!([&LOGISTICS_MIGRATIONS] async fn only_the_countys_operators_plan(db) {
    let depot = site(&db, "东湖区运营中心", IN_COUNTY).await;
    let west = site(&db, "西湖仓", OUT_COUNTY).await;
    vehicle(&db, "赣A10001", &depot, TemperatureClass::Chilled).await;
    for p in [who(3, Role::Official, OUT_COUNTY), who(10, Role::Farmer, IN_COUNTY), who(30, Role::Dealer, IN_COUNTY)] {
        let err = plans::create(&db, &p, &actor(&p), request(depot.id)).await.unwrap_err();
        assert!(matches!(err, CoreError::Forbidden(_)), "{err}");
    }
    let official = who(2, Role::Official, IN_COUNTY);
    let err = plans::create(&db, &official, &actor(&official), request(west.id)).await.unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)), "{err}");
    let err = plans::create(&db, &admin(), &actor(&admin()), request(west.id)).await.unwrap_err();
    assert_eq!(err.code(), "no_vehicles");
    assert_eq!(plans::create(&db, &official, &actor(&official), request(999)).await.unwrap_err().code(), "unknown_depot");
    let mut bad = request(depot.id);
    bad.road_factor = Some(0.5);
    assert_eq!(plans::create(&db, &official, &actor(&official), bad).await.unwrap_err().code(), "invalid_plan_settings");
    let mut bad = request(depot.id);
    bad.time_limit_s = Some(600);
    assert_eq!(plans::create(&db, &official, &actor(&official), bad).await.unwrap_err().code(), "invalid_plan_settings");

    let plan = plans::create(&db, &official, &actor(&official), request(depot.id)).await.unwrap();
    assert!(plan.routes.is_empty() && plan.unassigned.is_empty());
    assert!(matches!(plans::get(&db, &who(21, Role::Carrier, OUT_COUNTY), plan.id).await, Err(CoreError::Forbidden(_))));
    assert!(matches!(plans::get(&db, &official, 999).await, Err(CoreError::NotFound(_))));
});

/// Books `s` for the depot as a farmer of the village.
async fn booked(
    db: &shuxiang_core::Db,
    depot: &shuxiang_logistics::network::Site,
    mut s: NewShipment,
) -> shipments::Shipment {
    let farmer = who(10, Role::Farmer, IN_COUNTY);
    s.destination.site_id = Some(depot.id);
    shipments::book(db, &farmer, &actor(&farmer), s).await.unwrap()
}

fn vehicle_of(plan: &plans::Plan, shipment: i64) -> Option<i64> {
    plan.routes
        .iter()
        .find(|r| r.stops.iter().any(|s| s.shipment_id == shipment))
        .map(|r| r.vehicle_id)
}

db_test!([&LOGISTICS_MIGRATIONS] async fn a_locked_pickup_rides_on_its_vehicle(db) {
    let depot = site(&db, "东湖区运营中心", IN_COUNTY).await;
    let first = vehicle(&db, "赣A10001", &depot, TemperatureClass::Ambient).await;
    let second = vehicle(&db, "赣A10002", &depot, TemperatureClass::Ambient).await;
    let mut rice = Vec::new();
    for k in 0..3 {
        rice.push(booked(&db, &depot, on_the_day(TemperatureClass::Ambient, 100.0, k as f64)).await);
    }
    let carrier = who(20, Role::Carrier, IN_COUNTY);
    // Unlocked, all three fit one vehicle and the shortest plan uses one.
    // Locked, each pickup goes where the planner put it.
    let mut req = request(depot.id);
    req.locks = vec![
        Lock { shipment_id: rice[0].id, vehicle_id: second.id },
        Lock { shipment_id: rice[1].id, vehicle_id: first.id },
    ];
    let plan = plans::create(&db, &carrier, &actor(&carrier), req).await.unwrap();
    assert!(plan.unassigned.is_empty(), "{:?}", plan.unassigned);
    assert_eq!(vehicle_of(&plan, rice[0].id), Some(second.id));
    assert_eq!(vehicle_of(&plan, rice[1].id), Some(first.id));
    assert_eq!(shipments::get(&db, &admin(), rice[0].id).await.unwrap().vehicle_id, Some(second.id));

    // Re-planning moves a stop to the other vehicle and takes the plan's
    // other stops back into the pool; the shipments follow the new plan.
    let moved = plans::replan(&db, &carrier, &actor(&carrier), plan.id,
        Some(vec![Lock { shipment_id: rice[0].id, vehicle_id: first.id }, Lock { shipment_id: rice[2].id, vehicle_id: second.id }]), Some(1)).await.unwrap();
    assert_ne!(moved.id, plan.id);
    assert!(moved.unassigned.is_empty(), "{:?}", moved.unassigned);
    assert_eq!(vehicle_of(&moved, rice[0].id), Some(first.id));
    assert_eq!(vehicle_of(&moved, rice[2].id), Some(second.id));
    let stops: usize = moved.routes.iter().map(|r| r.stops.len()).sum();
    assert_eq!(stops, 3, "every stop of the earlier plan is planned again");
    for s in &rice {
        let now = shipments::get(&db, &admin(), s.id).await.unwrap();
        assert_eq!((now.status, now.vehicle_id), (Status::Planned, vehicle_of(&moved, s.id)));
    }
    let log = audit::list(&db, None, &AuditQuery { action: Some("dispatch_plan.create".into()), limit: 1, ..Default::default() }).await.unwrap();
    assert_eq!(log[0].detail_json()["replan_of"], plan.id);

    // A stop already picked up stays where it is: a re-plan leaves it out.
    let picked = shipments::StatusChange {
        status: Status::PickedUp,
        handover: Some(shipments::NewHandover { from_party: "农户".into(), to_party: "司机".into(), at: None,
            temperature_c: None, signature_name: "王".into(), note: None }),
        proof_of_delivery: None,
        reason: None,
    };
    shipments::change_status(&db, &admin(), &actor(&admin()), rice[2].id, picked).await.unwrap();
    let again = plans::replan(&db, &carrier, &actor(&carrier), moved.id, Some(Vec::new()), Some(1)).await.unwrap();
    assert_eq!(vehicle_of(&again, rice[2].id), None);
    assert_eq!(again.routes.iter().map(|r| r.stops.len()).sum::<usize>(), 2);
    let err = plans::replan(&db, &carrier, &actor(&carrier), again.id,
        Some(vec![Lock { shipment_id: rice[2].id, vehicle_id: first.id }]), Some(1)).await.unwrap_err();
    assert_eq!(err.code(), "invalid_lock", "a picked-up shipment is no pickup of the re-plan");

    // Plans of the county are listed newest first with their counts.
    let listed = plans::list(&db, &carrier, &shuxiang_core::RegionCode::parse(IN_COUNTY).unwrap(), false, None).await.unwrap();
    assert_eq!(listed.iter().map(|p| p.id).collect::<Vec<_>>(), [again.id, moved.id, plan.id]);
    assert_eq!((listed[1].stops, listed[1].unassigned, listed[1].vehicles), (3, 0, 2));
    let outsider = who(21, Role::Carrier, OUT_COUNTY);
    assert!(matches!(plans::list(&db, &outsider, &shuxiang_core::RegionCode::parse(IN_COUNTY).unwrap(), false, None).await, Err(CoreError::Forbidden(_))));
    assert!(matches!(plans::replan(&db, &outsider, &actor(&outsider), again.id, None, Some(1)).await, Err(CoreError::Forbidden(_))));
});

db_test!([&LOGISTICS_MIGRATIONS] async fn locks_must_name_the_plans_pickups_and_depots_vehicles(db) {
    let depot = site(&db, "东湖区运营中心", IN_COUNTY).await;
    let other = site(&db, "东湖区二号仓", IN_COUNTY).await;
    let van = vehicle(&db, "赣A10001", &depot, TemperatureClass::Ambient).await;
    let elsewhere = vehicle(&db, "赣A10009", &other, TemperatureClass::Chilled).await;
    let veg = booked(&db, &depot, on_the_day(TemperatureClass::Chilled, 100.0, 0.0)).await;
    let official = who(2, Role::Official, IN_COUNTY);
    let with = |locks: Vec<Lock>| {
        let mut r = request(depot.id);
        r.locks = locks;
        r
    };
    let code = |r: Result<plans::Plan, CoreError>| r.unwrap_err().code();
    let err = plans::create(&db, &official, &actor(&official), with(vec![Lock { shipment_id: veg.id, vehicle_id: elsewhere.id }])).await;
    assert_eq!(code(err), "invalid_lock", "a vehicle of another depot");
    let err = plans::create(&db, &official, &actor(&official), with(vec![Lock { shipment_id: 999, vehicle_id: van.id }])).await;
    assert_eq!(code(err), "invalid_lock", "no such pickup");
    let twice = vec![Lock { shipment_id: veg.id, vehicle_id: van.id }; 2];
    assert_eq!(code(plans::create(&db, &official, &actor(&official), with(twice)).await), "invalid_lock");
    assert_eq!(shipments::get(&db, &admin(), veg.id).await.unwrap().status, Status::Booked, "refused locks plan nothing");

    // Chilled goods locked to a van without refrigeration: not an error,
    // an unassigned pickup with the reason, even with a reefer at the depot.
    vehicle(&db, "赣A10002", &depot, TemperatureClass::Chilled).await;
    let plan = plans::create(&db, &official, &actor(&official), with(vec![Lock { shipment_id: veg.id, vehicle_id: van.id }])).await.unwrap();
    assert!(plan.routes.is_empty(), "{:?}", plan.routes);
    assert_eq!(plan.unassigned.iter().map(|u| (u.shipment_id, u.reason.as_str())).collect::<Vec<_>>(), [(veg.id, "skills")]);
    assert_eq!(shipments::get(&db, &admin(), veg.id).await.unwrap().status, Status::Booked);
});

fn county() -> shuxiang_core::RegionCode {
    shuxiang_core::RegionCode::parse(IN_COUNTY).unwrap()
}

fn lock(shipment: &shipments::Shipment, vehicle: &shuxiang_logistics::network::Vehicle) -> Lock {
    Lock {
        shipment_id: shipment.id,
        vehicle_id: vehicle.id,
    }
}

db_test!([&LOGISTICS_MIGRATIONS] async fn a_plan_keeps_its_locks_and_a_replan_replaces_it_once(db) {
    let depot = site(&db, "东湖区运营中心", IN_COUNTY).await;
    let first = vehicle(&db, "赣A10001", &depot, TemperatureClass::Ambient).await;
    let second = vehicle(&db, "赣A10002", &depot, TemperatureClass::Ambient).await;
    let mut rice = Vec::new();
    for k in 0..3 {
        rice.push(booked(&db, &depot, on_the_day(TemperatureClass::Ambient, 100.0, k as f64)).await);
    }
    let official = who(2, Role::Official, IN_COUNTY);
    let carrier = who(20, Role::Carrier, IN_COUNTY);

    // The locks are stored with the plan, by shipment, whatever order they came in.
    let mut req = request(depot.id);
    req.locks = vec![lock(&rice[1], &first), lock(&rice[0], &second)];
    let plan = plans::create(&db, &official, &actor(&official), req).await.unwrap();
    assert_eq!(plan.locks, [lock(&rice[0], &second), lock(&rice[1], &first)]);
    assert_eq!((plan.replan_of, plan.replaced_by), (None, None));
    assert_eq!(plans::get(&db, &carrier, plan.id).await.unwrap(), plan, "locks round-trip");

    // A re-plan without locks keeps the plan's: the pins hold again.
    let second_plan = plans::replan(&db, &carrier, &actor(&carrier), plan.id, None, Some(1)).await.unwrap();
    assert_eq!(second_plan.locks, plan.locks);
    assert_eq!(vehicle_of(&second_plan, rice[0].id), Some(second.id));
    assert_eq!(vehicle_of(&second_plan, rice[1].id), Some(first.id));
    assert_eq!((second_plan.replan_of, second_plan.replaced_by), (Some(plan.id), None));
    assert_eq!(plans::get(&db, &official, second_plan.id).await.unwrap(), second_plan);
    let old = plans::get(&db, &official, plan.id).await.unwrap();
    assert_eq!(old.replaced_by, Some(second_plan.id), "the old plan reads as replaced");
    assert_eq!((old.routes, old.locks), (plan.routes.clone(), plan.locks.clone()), "and keeps its history");

    // A replaced plan is not re-planned again: the refusal names the newer plan.
    let err = plans::replan(&db, &official, &actor(&official), plan.id, None, Some(1)).await.unwrap_err();
    assert!(matches!(err, CoreError::Conflict { code: "plan_replaced", .. }), "{err}");
    assert!(err.to_string().contains(&format!("plan {}", second_plan.id)), "{err}");
    // An operator outside the county learns nothing of it: denied first.
    for outsider in [who(3, Role::Official, OUT_COUNTY), who(21, Role::Carrier, OUT_COUNTY)] {
        let err = plans::replan(&db, &outsider, &actor(&outsider), plan.id, None, Some(1)).await.unwrap_err();
        assert!(matches!(err, CoreError::Forbidden(_)), "{err}");
        let err = plans::replan(&db, &outsider, &actor(&outsider), second_plan.id, None, Some(1)).await.unwrap_err();
        assert!(matches!(err, CoreError::Forbidden(_)), "{err}");
    }

    // The list marks the replaced plan, and can leave it out.
    let listed = plans::list(&db, &carrier, &county(), false, None).await.unwrap();
    let marks: Vec<(i64, Option<i64>, Option<i64>)> = listed.iter().map(|p| (p.id, p.replan_of, p.replaced_by)).collect();
    assert_eq!(marks, [(second_plan.id, Some(plan.id), None), (plan.id, None, Some(second_plan.id))]);
    let current = plans::list(&db, &carrier, &county(), true, None).await.unwrap();
    assert_eq!(current.iter().map(|p| p.id).collect::<Vec<_>>(), [second_plan.id]);

    // Once a locked shipment is picked up its lock lapses: the default
    // carries over only the locks that still apply.
    let picked = shipments::StatusChange {
        status: Status::PickedUp,
        handover: Some(shipments::NewHandover { from_party: "农户".into(), to_party: "司机".into(), at: None,
            temperature_c: None, signature_name: "王".into(), note: None }),
        proof_of_delivery: None,
        reason: None,
    };
    shipments::change_status(&db, &admin(), &actor(&admin()), rice[0].id, picked).await.unwrap();
    let third = plans::replan(&db, &carrier, &actor(&carrier), second_plan.id, None, Some(1)).await.unwrap();
    assert_eq!(third.locks, [lock(&rice[1], &first)]);
    assert_eq!(vehicle_of(&third, rice[1].id), Some(first.id));
    assert_eq!(vehicle_of(&third, rice[0].id), None, "picked up, no longer a stop");

    // Given locks replace the kept ones; the replaced plan's own lock that
    // lapsed, sent back as a page would, is dropped rather than refused.
    let picked = shipments::StatusChange {
        status: Status::PickedUp,
        handover: Some(shipments::NewHandover { from_party: "农户".into(), to_party: "司机".into(), at: None,
            temperature_c: None, signature_name: "李".into(), note: None }),
        proof_of_delivery: None,
        reason: None,
    };
    shipments::change_status(&db, &admin(), &actor(&admin()), rice[1].id, picked).await.unwrap();
    let fourth = plans::replan(&db, &carrier, &actor(&carrier), third.id,
        Some(vec![lock(&rice[1], &first), lock(&rice[2], &second)]), Some(1)).await.unwrap();
    assert_eq!(fourth.locks, [lock(&rice[2], &second)]);
    assert_eq!(vehicle_of(&fourth, rice[2].id), Some(second.id));
    let fifth = plans::replan(&db, &carrier, &actor(&carrier), fourth.id, Some(Vec::new()), Some(1)).await.unwrap();
    assert!(fifth.locks.is_empty(), "an empty list clears the locks");
    assert_eq!(plans::get(&db, &carrier, fifth.id).await.unwrap().locks, []);
    let err = plans::replan(&db, &carrier, &actor(&carrier), fifth.id,
        Some(vec![lock(&rice[0], &first)]), Some(1)).await.unwrap_err();
    assert_eq!(err.code(), "invalid_lock", "a lock the plan never held must apply");
    let err = plans::replan(&db, &carrier, &actor(&carrier), fourth.id,
        Some(vec![lock(&rice[0], &first)]), Some(1)).await.unwrap_err();
    assert_eq!(err.code(), "plan_replaced");

    // The audit log has each re-plan with the locks it used.
    let log = audit::list(&db, None, &AuditQuery { action: Some("dispatch_plan.create".into()), limit: 3, ..Default::default() }).await.unwrap();
    assert_eq!(log[0].detail_json()["replan_of"], fourth.id);
    assert_eq!(log[2].detail_json()["locks"], serde_json::json!([{"shipment_id": rice[1].id, "vehicle_id": first.id}]));
});

db_test!([&LOGISTICS_MIGRATIONS] async fn two_planners_replanning_one_plan_make_one_new_plan(db) {
    let depot = site(&db, "东湖区运营中心", IN_COUNTY).await;
    let van = vehicle(&db, "赣A10001", &depot, TemperatureClass::Ambient).await;
    let rice = booked(&db, &depot, on_the_day(TemperatureClass::Ambient, 100.0, 1.0)).await;
    let official = who(2, Role::Official, IN_COUNTY);
    let carrier = who(20, Role::Carrier, IN_COUNTY);
    let plan = plans::create(&db, &official, &actor(&official), request(depot.id)).await.unwrap();
    let (by_official, by_carrier) = (actor(&official), actor(&carrier));
    let (a, b) = tokio::join!(
        plans::replan(&db, &official, &by_official, plan.id, None, Some(1)),
        plans::replan(&db, &carrier, &by_carrier, plan.id, Some(vec![Lock { shipment_id: rice.id, vehicle_id: van.id }]), Some(1)),
    );
    let (won, lost) = match (a, b) {
        (Ok(p), Err(e)) | (Err(e), Ok(p)) => (p, e),
        other => panic!("exactly one re-plan wins: {other:?}"),
    };
    assert_eq!(lost.code(), "plan_replaced", "{lost}");
    assert!(lost.to_string().contains(&format!("plan {}", won.id)), "{lost}");
    assert_eq!(plans::get(&db, &official, plan.id).await.unwrap().replaced_by, Some(won.id));
    let listed = plans::list(&db, &official, &county(), false, None).await.unwrap();
    assert_eq!(listed.len(), 2, "no second successor was stored");
    let s = shipments::get(&db, &admin(), rice.id).await.unwrap();
    assert_eq!((s.status, s.vehicle_id), (Status::Planned, vehicle_of(&won, rice.id)));
});
