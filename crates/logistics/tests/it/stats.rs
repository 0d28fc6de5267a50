//! Officials' numbers on SQLite and PostgreSQL: shipments per pickup region
//! and status, on-time rate, handover temperatures outside the band, and
//! who may see them.

use chrono::{Duration, Utc};
use shuxiang_core::auth::Role;
use shuxiang_core::{CoreError, RegionCode, db_test};
use shuxiang_logistics::coldchain::TemperatureClass;
use shuxiang_logistics::shipments::{self, NewHandover, ProofOfDelivery, Shipment, Status, StatusChange};
use shuxiang_logistics::stats;
use shuxiang_logistics::store::LOGISTICS_MIGRATIONS;

use crate::support::*;

const OTHER_VILLAGE: &str = "360102002002";

fn change(status: Status, temperature_c: Option<f64>, minutes_ago: i64) -> StatusChange {
    let at = Some(Utc::now() - Duration::minutes(minutes_ago));
    StatusChange {
        status,
        handover: temperature_c.map(|t| NewHandover {
            from_party: "农户".into(),
            to_party: "司机".into(),
            at,
            temperature_c: Some(t),
            signature_name: "王".into(),
            note: None,
        }),
        proof_of_delivery: (status == Status::Delivered).then(|| ProofOfDelivery {
            receiver_name: "仓管".into(),
            at,
            note: None,
        }),
        reason: None,
    }
}

async fn deliver(db: &shuxiang_core::Db, s: &Shipment, vehicle: i64, pickup_c: f64) {
    let a = admin();
    let act = actor(&a);
    shipments::assign(db, &a, &act, s.id, vehicle).await.unwrap();
    shipments::change_status(db, &a, &act, s.id, change(Status::PickedUp, Some(pickup_c), 180))
        .await
        .unwrap();
    shipments::change_status(db, &a, &act, s.id, change(Status::InTransit, None, 170))
        .await
        .unwrap();
    shipments::change_status(db, &a, &act, s.id, change(Status::Delivered, None, 60))
        .await
        .unwrap();
}

db_test!([&LOGISTICS_MIGRATIONS] async fn officials_see_their_regions_numbers(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let west = site(&db, "西湖仓", OUT_COUNTY).await;
    let truck = vehicle(&db, "赣A12345", &warehouse, TemperatureClass::Chilled).await;
    let farmer = who(10, Role::Farmer, IN_COUNTY);
    let on_time = book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    deliver(&db, &on_time, truck.id, 3.0).await;
    let mut late = pickup(IN_VILLAGE, &warehouse);
    late.ready_at = Utc::now() - Duration::hours(5);
    late.deadline = Utc::now() - Duration::hours(2);
    let late = shipments::book(&db, &farmer, &actor(&farmer), late).await.unwrap();
    // 9 °C at pickup: outside the 0–4 °C band of leafy vegetables.
    deliver(&db, &late, truck.id, 9.0).await;
    book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    let cancelled = book(&db, &farmer, OTHER_VILLAGE, &warehouse).await;
    shipments::change_status(&db, &farmer, &actor(&farmer), cancelled.id, change(Status::Cancelled, None, 0)).await.unwrap();
    book(&db, &who(13, Role::Farmer, OUT_VILLAGE), OUT_VILLAGE, &west).await;

    let official = who(2, Role::Official, IN_COUNTY);
    let county = RegionCode::parse(IN_COUNTY).unwrap();
    let s = stats::stats(&db, &official, &county).await.unwrap();
    let t = &s.totals;
    assert_eq!((t.shipments, t.delivered, t.on_time, t.on_time_rate), (4, 2, 1, Some(0.5)));
    assert_eq!((t.handovers_measured, t.handover_excursions, t.handover_excursion_rate), (2, 1, Some(0.5)));
    assert_eq!(t.by_status.get("delivered"), Some(&2));
    assert_eq!(t.by_status.get("booked"), Some(&1));
    assert_eq!(t.by_status.get("cancelled"), Some(&1));
    assert_eq!(s.by_region.iter().map(|r| (r.region_code.as_str(), r.shipments)).collect::<Vec<_>>(), [(IN_VILLAGE, 3), (OTHER_VILLAGE, 1)]);
    assert_eq!(s.by_region[1].on_time_rate, None);

    // A village's staff see their village; nobody sees outside their scope.
    let staff = who(12, Role::VillageStaff, OTHER_VILLAGE);
    let village = stats::stats(&db, &staff, &RegionCode::parse(OTHER_VILLAGE).unwrap()).await.unwrap();
    assert_eq!((village.totals.shipments, village.by_region.len()), (1, 1));
    assert!(matches!(stats::stats(&db, &staff, &county).await, Err(CoreError::Forbidden(_))));
    for p in [who(3, Role::Official, OUT_COUNTY), farmer.clone(), who(20, Role::Carrier, IN_COUNTY), who(30, Role::Dealer, IN_COUNTY)] {
        assert!(matches!(stats::stats(&db, &p, &county).await, Err(CoreError::Forbidden(_))), "{:?}", p.grants);
    }
    let empty = stats::stats(&db, &admin(), &RegionCode::parse("360104").unwrap()).await.unwrap();
    assert_eq!((empty.totals.shipments, empty.totals.on_time_rate), (0, None));
    assert!(empty.by_region.is_empty());
});
