//! The cold-chain report of a shipment on SQLite and PostgreSQL, with the
//! readings from a list source standing in for the IoT slice: excursions by
//! handover leg, MKT, gaps, and the verdicts.

use chrono::Utc;
use shuxiang_core::auth::Role;
use shuxiang_core::{CoreError, db_test};
use shuxiang_logistics::coldchain::{Direction, ListSource, Reading, TemperatureClass};
use shuxiang_logistics::network::{self, VehicleUpdate};
use shuxiang_logistics::report::{self, Verdict};
use shuxiang_logistics::shipments::{self, NewHandover, ProofOfDelivery, Status, StatusChange};
use shuxiang_logistics::store::LOGISTICS_MIGRATIONS;

use crate::support::*;

const LOGGER: i64 = 42;

fn at_minutes_ago(m: i64) -> chrono::DateTime<Utc> {
    // Whole seconds, so times survive the round trip through either backend.
    let now = Utc::now().timestamp();
    chrono::DateTime::from_timestamp(now - now % 60 - m * 60, 0).unwrap()
}

fn handover(from: &str, to: &str, minutes_ago: i64) -> NewHandover {
    NewHandover {
        from_party: from.into(),
        to_party: to.into(),
        at: Some(at_minutes_ago(minutes_ago)),
        temperature_c: Some(2.5),
        signature_name: "签名".into(),
        note: None,
    }
}

/// One reading every 5 minutes from 180 to 60 minutes ago, at `temp(minutes_ago)`.
fn readings(temp: impl Fn(i64) -> f64) -> Vec<Reading> {
    (0..=24)
        .map(|k| {
            let ago = 180 - 5 * k;
            Reading {
                ts_ms: at_minutes_ago(ago).timestamp_millis(),
                celsius: temp(ago),
            }
        })
        .collect()
}

db_test!([&LOGISTICS_MIGRATIONS] async fn the_report_places_excursions_in_their_leg(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let truck = vehicle(&db, "赣A12345", &warehouse, TemperatureClass::Chilled).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let a = admin();
    let act = actor(&a);
    let s = book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    let no_readings = ListSource::default();

    // Before pickup there is nothing to report.
    let r = report::report(&db, &no_readings, &farmer, s.id, None).await.unwrap();
    assert_eq!((r.verdict, r.readings), (Verdict::NotStarted, 0));

    shipments::assign(&db, &a, &act, s.id, truck.id).await.unwrap();
    let pickup = StatusChange { status: Status::PickedUp, handover: Some(handover("农户", "司机", 180)), proof_of_delivery: None, reason: None };
    shipments::change_status(&db, &a, &act, s.id, pickup).await.unwrap();
    let depart = StatusChange { status: Status::InTransit, handover: Some(handover("司机", "中转站", 120)), proof_of_delivery: None, reason: None };
    shipments::change_status(&db, &a, &act, s.id, depart).await.unwrap();
    let deliver = StatusChange {
        status: Status::Delivered,
        handover: None,
        proof_of_delivery: Some(ProofOfDelivery { receiver_name: "仓管".into(), at: Some(at_minutes_ago(60)), note: None }),
        reason: None,
    };
    shipments::change_status(&db, &a, &act, s.id, deliver).await.unwrap();

    // Leafy vegetables, 0–4 °C: 3 °C throughout except 6 °C from 100 to 90
    // minutes ago, in the second leg (中转站 from 120 minutes ago).
    let source = ListSource {
        series: vec![(LOGGER, readings(|ago| if (90..=100).contains(&ago) { 6.0 } else { 3.0 }))],
    };
    let r = report::report(&db, &source, &farmer, s.id, None).await.unwrap();
    assert_eq!(r.verdict, Verdict::Excursions);
    assert_eq!((r.logger_device_id, r.plate.as_deref()), (Some(LOGGER), Some("赣A12345")));
    assert_eq!((r.window_from, r.window_to), (Some(at_minutes_ago(180)), Some(at_minutes_ago(60))));
    assert_eq!(r.readings, 25);
    assert_eq!((r.min_c, r.max_c), (Some(3.0), Some(6.0)));
    assert_eq!(r.legs.len(), 2);
    assert_eq!((r.legs[1].from_party.as_str(), r.legs[1].end), ("司机", Some(at_minutes_ago(60))));
    assert_eq!(r.excursions.len(), 1);
    let e = &r.excursions[0];
    assert_eq!((e.direction, e.leg, e.readings), (Direction::TooWarm, Some(1), 3));
    assert_eq!((e.start, e.end, e.duration_s), (at_minutes_ago(100), at_minutes_ago(85), 900.0));
    // 3 readings at 6 °C and 22 at 3 °C: the MKT sits above the 3.36 °C mean.
    let mean = (3.0 * 6.0 + 22.0 * 3.0) / 25.0;
    assert!((r.mean_c.unwrap() - mean).abs() < 1e-9);
    assert!(r.mkt_c.unwrap() > mean && r.mkt_c.unwrap() < 6.0);
    assert!(r.gaps.is_empty());

    // In band throughout: held.
    let steady = ListSource { series: vec![(LOGGER, readings(|_| 3.0))] };
    let r = report::report(&db, &steady, &farmer, s.id, None).await.unwrap();
    assert_eq!(r.verdict, Verdict::Held);
    assert!((r.mkt_c.unwrap() - 3.0).abs() < 1e-9);

    // Readings missing for 40 minutes: a gap with the default 15-minute limit,
    // none with a one-hour limit.
    let holey = ListSource {
        series: vec![(LOGGER, readings(|_| 3.0).into_iter().filter(|r| {
            let ago = (at_minutes_ago(0).timestamp_millis() - r.ts_ms) / 60_000;
            !(110..=145).contains(&ago)
        }).collect())],
    };
    let r = report::report(&db, &holey, &farmer, s.id, None).await.unwrap();
    assert_eq!(r.verdict, Verdict::Gaps);
    assert_eq!(r.gaps.len(), 1);
    assert_eq!((r.gaps[0].from, r.gaps[0].to, r.gaps[0].duration_s), (at_minutes_ago(150), at_minutes_ago(105), 2700.0));
    assert_eq!(report::report(&db, &holey, &farmer, s.id, Some(3600)).await.unwrap().verdict, Verdict::Held);
    let err = report::report(&db, &holey, &farmer, s.id, Some(0)).await.unwrap_err();
    assert_eq!(err.code(), "invalid_max_gap");

    // No readings at all; another logger's readings do not count.
    let elsewhere = ListSource { series: vec![(7, readings(|_| 30.0))] };
    assert_eq!(report::report(&db, &elsewhere, &farmer, s.id, None).await.unwrap().verdict, Verdict::NoData);

    // Only those who may read the shipment get its report.
    let neighbour = who(11, Role::Farmer, IN_VILLAGE);
    assert!(matches!(report::report(&db, &steady, &neighbour, s.id, None).await, Err(CoreError::Forbidden(_))));
    let dealer = who(30, Role::Dealer, IN_COUNTY);
    assert!(matches!(report::report(&db, &steady, &dealer, s.id, None).await, Err(CoreError::Forbidden(_))));
    assert!(report::report(&db, &steady, &who(20, Role::Carrier, IN_COUNTY), s.id, None).await.is_ok());
});

db_test!([&LOGISTICS_MIGRATIONS] async fn a_vehicle_without_a_logger_cannot_prove_the_chain(db) {
    let warehouse = site(&db, "仓", IN_COUNTY).await;
    let a = admin();
    let mut nv = new_vehicle("赣A12345", &warehouse, TemperatureClass::Chilled);
    nv.logger_device_id = None;
    let truck = network::create_vehicle(&db, &a, &actor(&a), nv).await.unwrap();
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let s = book(&db, &farmer, IN_VILLAGE, &warehouse).await;
    shipments::assign(&db, &a, &actor(&a), s.id, truck.id).await.unwrap();
    let pickup = StatusChange { status: Status::PickedUp, handover: Some(handover("农户", "司机", 30)), proof_of_delivery: None, reason: None };
    shipments::change_status(&db, &a, &actor(&a), s.id, pickup).await.unwrap();
    let source = ListSource { series: vec![(LOGGER, readings(|_| 3.0))] };
    let r = report::report(&db, &source, &farmer, s.id, None).await.unwrap();
    assert_eq!((r.verdict, r.logger_device_id, r.window_to.is_some()), (Verdict::NoLogger, None, true));

    // Fitting a logger makes the readings since pickup count; the window
    // runs to now while the shipment is under way.
    network::update_vehicle(&db, &a, &actor(&a), truck.id, VehicleUpdate { logger_device_id: Some(LOGGER), ..Default::default() }).await.unwrap();
    let recent = ListSource {
        series: vec![(LOGGER, (0..=6).map(|k| Reading { ts_ms: at_minutes_ago(30 - 5 * k).timestamp_millis(), celsius: 3.0 }).collect())],
    };
    let r = report::report(&db, &recent, &farmer, s.id, None).await.unwrap();
    assert_eq!((r.verdict, r.readings), (Verdict::Held, 7));
});
