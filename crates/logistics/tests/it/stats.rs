//! Officials' numbers on SQLite and PostgreSQL: shipments per pickup region
//! and status, on-time rate, handover temperatures outside the band, the
//! network per tier, empty running of stored plans, the period filter, and
//! who may see them.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;
use shuxiang_core::auth::Role;
use shuxiang_core::{CoreError, RegionCode, db_test};
use shuxiang_logistics::coldchain::TemperatureClass;
use shuxiang_logistics::network::{self, SiteKind, Tier};
use shuxiang_logistics::plans::{self, haversine_km};
use shuxiang_logistics::shipments::{self, NewHandover, ProofOfDelivery, Shipment, Status, StatusChange};
use shuxiang_logistics::stats::{self, Period};
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

fn local(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn day(s: &str) -> Option<NaiveDate> {
    Some(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
}

async fn tier_site(
    db: &shuxiang_core::Db,
    name: &str,
    tier: Tier,
    region: &str,
    lat: f64,
    cold: bool,
) -> network::Site {
    let a = admin();
    let mut s = new_site(name, IN_COUNTY);
    s.kind = if tier == Tier::Village {
        SiteKind::CollectionPoint
    } else {
        SiteKind::CloudWarehouse
    };
    s.tier = tier;
    s.region_code = RegionCode::parse(region).unwrap();
    (s.lon, s.lat, s.cold_storage) = (115.9, lat, cold);
    network::create_site(db, &a, &actor(&a), s).await.unwrap()
}

db_test!([&LOGISTICS_MIGRATIONS] async fn tiers_and_empty_running_of_a_county(db) {
    // On one meridian, so every distance is R × Δlat: the depot at 28.60°,
    // the first pickup (a village collection point) at 28.70°, the second
    // (a field edge) at 28.80°. Their windows force that order.
    let depot = tier_site(&db, "东湖区运营中心", Tier::County, IN_COUNTY, 28.60, true).await;
    let point = tier_site(&db, "村级收集点", Tier::Village, IN_VILLAGE, 28.70, false).await;
    tier_site(&db, "益农信息社冷柜", Tier::Village, OTHER_VILLAGE, 28.75, true).await;
    let city = tier_site(&db, "南昌市供销云仓", Tier::City, "3601", 28.65, true).await;
    tier_site(&db, "西湖仓", Tier::County, OUT_COUNTY, 28.65, true).await;
    vehicle(&db, "赣A20001", &depot, TemperatureClass::Chilled).await;
    let farmer = who(10, Role::Farmer, IN_COUNTY);
    let book = |mut s: shipments::NewShipment, from: &str, to: &str| {
        s.ready_at = local(from);
        s.deadline = local(to);
        let (db, farmer) = (db.clone(), farmer.clone());
        async move { shipments::book(&db, &farmer, &actor(&farmer), s).await.unwrap() }
    };
    let mut at_point = pickup(IN_VILLAGE, &depot);
    at_point.origin = shipments::Place { site_id: Some(point.id), name: None, lon: None, lat: None, region_code: None };
    book(at_point, "2026-03-01T08:00:00+08:00", "2026-03-01T09:00:00+08:00").await;
    let mut field = pickup(IN_VILLAGE, &depot);
    field.origin.lat = Some(28.80);
    book(field, "2026-03-01T14:00:00+08:00", "2026-03-01T15:00:00+08:00").await;
    book(pickup(IN_VILLAGE, &city), "2026-03-05T08:00:00+08:00", "2026-03-05T17:00:00+08:00").await;

    let carrier = who(20, Role::Carrier, IN_COUNTY);
    let req = serde_json::from_value(json!({"depot_site_id": depot.id, "day": "2026-03-01", "time_limit_s": 1})).unwrap();
    let plan = plans::create(&db, &carrier, &actor(&carrier), req).await.unwrap();
    assert_eq!((plan.routes.len(), plan.routes[0].stops.len()), (1, 2), "{plan:?}");

    let official = who(2, Role::Official, IN_COUNTY);
    let county = RegionCode::parse(IN_COUNTY).unwrap();
    let s = stats::stats(&db, &official, &county).await.unwrap();
    let tiers: Vec<(Tier, i64, i64, i64, i64)> =
        s.tiers.iter().map(|t| (t.tier, t.sites, t.cold_storage_sites, t.shipments_from, t.shipments_to)).collect();
    // The city warehouse lies outside the county but receives one of its shipments.
    assert_eq!(tiers, [
        (Tier::Province, 0, 0, 0, 0),
        (Tier::City, 0, 0, 0, 1),
        (Tier::County, 1, 1, 0, 2),
        (Tier::Village, 2, 1, 1, 0),
    ]);

    // Depot → 28.70° is empty; the route runs 0.1° + 0.1° + 0.2° in all.
    let leg = haversine_km((115.9, 28.60), (115.9, 28.70)) * 1.3;
    let e = &s.empty_running;
    assert_eq!((e.plans, e.routes), (1, 1));
    assert!((e.empty_km - leg).abs() < 1e-6, "{e:?} vs {leg}");
    assert!((e.total_km - 4.0 * leg).abs() < 1e-6, "{e:?}");
    assert!((e.ratio.unwrap() - 0.25).abs() < 1e-9, "{e:?}");

    // A re-planned day counts once, as last planned.
    let again = plans::replan(&db, &carrier, &actor(&carrier), plan.id, None, Some(1)).await.unwrap();
    assert_eq!(again.replan_of, Some(plan.id));
    let s = stats::stats(&db, &official, &county).await.unwrap();
    assert_eq!((s.empty_running.plans, s.empty_running.routes), (1, 1), "{:?}", s.empty_running);
    assert!((s.empty_running.total_km - 4.0 * leg).abs() < 1e-6, "{:?}", s.empty_running);

    // The period: shipments by ready day, plans by day, both ends included.
    let march_1 = Period { from: day("2026-03-01"), to: day("2026-03-01") };
    let p = stats::stats_in(&db, &official, &county, &march_1).await.unwrap();
    assert_eq!((p.totals.shipments, p.tiers[1].shipments_to, p.empty_running.plans), (2, 0, 1));
    assert_eq!((p.from, p.to), (march_1.from, march_1.to));
    let later = Period { from: day("2026-03-02"), to: None };
    let p = stats::stats_in(&db, &official, &county, &later).await.unwrap();
    assert_eq!((p.totals.shipments, p.tiers[1].shipments_to, p.tiers[3].sites), (1, 1, 2));
    assert_eq!((p.empty_running.routes, p.empty_running.ratio), (0, None));
    let backwards = Period { from: day("2026-03-02"), to: day("2026-03-01") };
    assert!(matches!(stats::stats_in(&db, &official, &county, &backwards).await, Err(CoreError::Invalid { .. })));

    // Another county's numbers hold none of this.
    let west = stats::stats(&db, &admin(), &RegionCode::parse(OUT_COUNTY).unwrap()).await.unwrap();
    assert_eq!((west.tiers[2].sites, west.tiers[2].shipments_to, west.empty_running.plans), (1, 0, 0));
});
