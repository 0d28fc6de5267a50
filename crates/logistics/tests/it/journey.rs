//! The public journey of a trace code on SQLite and PostgreSQL: the index
//! finds a booked code in any printed form (and the migration's backfill
//! folds codes exactly as booking does), cancelled shipments drop out, the
//! number of shipments is capped, the cold-chain verdict comes from the
//! logger or else from handover temperatures, and nothing names a person.

use chrono::{Duration, Utc};
use shuxiang_core::auth::Role;
use shuxiang_core::db::Backend;
use shuxiang_core::{Db, db_test};
use shuxiang_logistics::coldchain::{Direction, ListSource, Reading, TemperatureClass};
use shuxiang_logistics::journey::{self, Basis, MAX_JOURNEYS};
use shuxiang_logistics::network;
use shuxiang_logistics::report::Verdict;
use shuxiang_logistics::shipments::{self, NewHandover, Place, ProofOfDelivery, Status, StatusChange};
use shuxiang_logistics::store::LOGISTICS_MIGRATIONS;

use crate::support::*;

const LOGGER: i64 = 42;
/// A code as the trace slice prints it on a label.
const LABEL: &str = "7K3M-Q9T2-ABCD-EF01";

/// `m` minutes before a fixed instant of the test run (whole seconds, so
/// times survive the round trip through either backend, and fixed, so two
/// calls agree however slow the test is).
fn minutes_ago(m: i64) -> chrono::DateTime<Utc> {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| Utc::now().timestamp());
    chrono::DateTime::from_timestamp(start - m * 60, 0).unwrap()
}

/// One reading every five minutes from 180 to 60 minutes ago.
fn series(temp: impl Fn(i64) -> f64) -> Vec<Reading> {
    (0..=24)
        .map(|k| {
            let ago = 180 - 5 * k;
            Reading {
                ts_ms: minutes_ago(ago).timestamp_millis(),
                celsius: temp(ago),
            }
        })
        .collect()
}

fn handover(from: &str, to: &str, ago: i64, temperature_c: f64) -> NewHandover {
    NewHandover {
        from_party: from.into(),
        to_party: to.into(),
        at: Some(minutes_ago(ago)),
        temperature_c: Some(temperature_c),
        signature_name: "王师傅".into(),
        note: Some("电话 13912345678".into()),
    }
}

fn change(status: Status, handover: Option<NewHandover>) -> StatusChange {
    StatusChange {
        status,
        handover,
        proof_of_delivery: (status == Status::Delivered).then(|| ProofOfDelivery {
            receiver_name: "仓管 张三".into(),
            at: Some(minutes_ago(60)),
            note: None,
        }),
        reason: None,
    }
}

async fn lookup(db: &Db, code: &str) -> Vec<i64> {
    journey::journeys_for_trace_code(db, &ListSource::default(), code)
        .await
        .unwrap()
        .iter()
        .map(|j| j.shipment_id)
        .collect()
}

db_test!([&LOGISTICS_MIGRATIONS] async fn a_booked_code_is_found_however_it_is_scanned(db) {
    let warehouse = site(&db, "东湖云仓", IN_COUNTY).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let mut new = pickup(IN_VILLAGE, &warehouse);
    new.trace_codes = vec![LABEL.to_lowercase(), "GS1-0695".into()];
    let s = shipments::book(&db, &farmer, &actor(&farmer), new).await.unwrap();

    for scanned in [LABEL, "7K3MQ9T2ABCDEF01", " 7k3m q9t2 abcd ef01 ", "7K3M-Q9T2-ABCD-EFO1"] {
        assert_eq!(lookup(&db, scanned).await, [s.id], "{scanned:?}");
    }
    // Other schemes match as booked, trimmed only.
    assert_eq!(lookup(&db, " GS1-0695 ").await, [s.id]);
    assert!(lookup(&db, "gs1-0695").await.is_empty());
    assert!(lookup(&db, "7K3M-Q9T2-ABCD-EF02").await.is_empty());
    assert!(lookup(&db, &"7".repeat(300)).await.is_empty());

    // Two printed forms of one code are one code.
    let mut twice = pickup(IN_VILLAGE, &warehouse);
    twice.trace_codes = vec![LABEL.into(), "7k3mq9t2abcdef01".into()];
    let err = shipments::book(&db, &farmer, &actor(&farmer), twice).await.unwrap_err();
    assert_eq!(err.code(), "invalid_trace_codes");

    // A later shipment of the same goods joins the journey, oldest first;
    // a cancelled one never carried them.
    let mut onward = pickup(IN_VILLAGE, &warehouse);
    onward.trace_codes = vec![LABEL.into()];
    let second = shipments::book(&db, &farmer, &actor(&farmer), onward.clone()).await.unwrap();
    let cancelled = shipments::book(&db, &farmer, &actor(&farmer), onward).await.unwrap();
    shipments::change_status(&db, &farmer, &actor(&farmer), cancelled.id, change(Status::Cancelled, None))
        .await
        .unwrap();
    assert_eq!(lookup(&db, LABEL).await, [s.id, second.id]);
});

db_test!([&LOGISTICS_MIGRATIONS] async fn a_code_on_many_shipments_returns_the_newest_few(db) {
    let warehouse = site(&db, "东湖云仓", IN_COUNTY).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let mut ids = Vec::new();
    for _ in 0..=MAX_JOURNEYS {
        let mut new = pickup(IN_VILLAGE, &warehouse);
        new.trace_codes = vec![LABEL.into()];
        ids.push(shipments::book(&db, &farmer, &actor(&farmer), new).await.unwrap().id);
    }
    assert_eq!(lookup(&db, LABEL).await, ids[1..]);
});

db_test!([&LOGISTICS_MIGRATIONS] async fn the_backfill_folds_codes_as_booking_does(db) {
    let warehouse = site(&db, "东湖云仓", IN_COUNTY).await;
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    for codes in [
        vec![LABEL.to_lowercase(), "GS1-0695".into()],
        vec!["7K3M-Q9T2-ABCD-EFO1".into(), "Ab-12".into()],
        vec!["7K3M-Q9T2-ABCD-EFU1".into(), "https://t.example/01/0695".into()],
        vec![],
    ] {
        let mut new = pickup(IN_VILLAGE, &warehouse);
        new.trace_codes = codes;
        shipments::book(&db, &farmer, &actor(&farmer), new).await.unwrap();
    }
    let index = || async {
        let rows: Vec<(i64, String)> = db
            .fetch_all(
                &sea_query::Query::select()
                    .columns([sea_query::Alias::new("shipment_id"), sea_query::Alias::new("trace_code")])
                    .from(sea_query::Alias::new("logistics_shipment_trace_codes"))
                    .order_by(sea_query::Alias::new("shipment_id"), sea_query::Order::Asc)
                    .order_by(sea_query::Alias::new("trace_code"), sea_query::Order::Asc)
                    .to_owned(),
            )
            .await
            .unwrap();
        rows
    };
    let booked = index().await;
    assert_eq!(booked.len(), 6, "{booked:?}");
    assert!(booked.iter().any(|(_, c)| c == "7K3MQ9T2ABCDEF01"), "{booked:?}");
    assert!(booked.iter().any(|(_, c)| c == "7K3M-Q9T2-ABCD-EFU1"), "{booked:?}");

    // Replaying the migration's backfill over the JSON column rebuilds the
    // very same rows.
    let migration = match db.backend() {
        Backend::Sqlite => include_str!("../../migrations/sqlite/0003_trace_code_index.sql"),
        Backend::Postgres => include_str!("../../migrations/postgres/0003_trace_code_index.sql"),
    };
    let backfill = &migration[migration.find("INSERT INTO").expect("the migration backfills")..];
    db.execute_raw("DELETE FROM logistics_shipment_trace_codes").await.unwrap();
    assert!(index().await.is_empty());
    db.execute_raw(backfill).await.unwrap();
    assert_eq!(index().await, booked);
});

db_test!([&LOGISTICS_MIGRATIONS] async fn the_journey_shows_places_times_and_the_cold_chain_but_no_one(db) {
    let warehouse = site(&db, "东湖云仓", IN_COUNTY).await;
    let truck = vehicle(&db, "赣A12345", &warehouse, TemperatureClass::Chilled).await;
    let a = admin();
    let act = actor(&a);
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let mut new = pickup(IN_VILLAGE, &warehouse);
    new.trace_codes = vec![LABEL.into()];
    new.ready_at = Utc::now() - Duration::hours(4);
    let s = shipments::book(&db, &farmer, &actor(&farmer), new).await.unwrap();
    shipments::assign(&db, &a, &act, s.id, truck.id).await.unwrap();
    shipments::change_status(&db, &a, &act, s.id, change(Status::PickedUp, Some(handover("李四", "司机王五", 180, 2.5))))
        .await
        .unwrap();
    shipments::change_status(&db, &a, &act, s.id, change(Status::InTransit, Some(handover("司机王五", "中转站赵六", 120, 9.0))))
        .await
        .unwrap();
    shipments::change_status(&db, &a, &act, s.id, change(Status::Delivered, None)).await.unwrap();

    // Leafy vegetables, 0–4 °C: the logger reads 3 °C every five minutes
    // from pickup to delivery.
    let steady = series(|_| 3.0);
    let held = ListSource { series: vec![(LOGGER, steady.clone())] };
    let journeys = journey::journeys_for_trace_code(&db, &held, LABEL).await.unwrap();
    assert_eq!(journeys.len(), 1);
    let j = &journeys[0];
    assert_eq!((j.shipment_id, j.status, j.on_time), (s.id, Status::Delivered, Some(true)));
    assert_eq!(j.picked_up_at, Some(minutes_ago(180)));
    assert_eq!(j.delivered_at, Some(minutes_ago(60)));
    assert_eq!((j.origin.kind, j.origin.region_code.as_deref()), ("pickup_point", Some(IN_VILLAGE)));
    assert_eq!((j.origin.lon, j.origin.lat), (Some(115.9), Some(28.7)));
    assert!(j.origin.name.as_deref().is_some_and(|n| !n.is_empty() && n != "村口冷棚"), "{:?}", j.origin);
    assert_eq!((j.destination.kind, j.destination.name.as_deref()), ("site", Some("东湖云仓")));
    let kinds: Vec<(&str, Option<bool>)> = j.handovers.iter().map(|h| (h.kind, h.in_band)).collect();
    assert_eq!(kinds, [("pickup", Some(true)), ("transfer", Some(false))]);
    assert_eq!((j.cold_chain.verdict, j.cold_chain.basis), (Verdict::Held, Basis::Logger));
    assert_eq!(j.cold_chain.readings, steady.len());
    assert_eq!((j.cold_chain.handovers_measured, j.cold_chain.handovers_out_of_band), (2, 1));

    // Twenty minutes at 7 °C are one warm excursion peaking at 7 °C.
    let warm = ListSource { series: vec![(LOGGER, series(|ago| if (100..=120).contains(&ago) { 7.0 } else { 3.0 }))] };
    let cc = &journey::journeys_for_trace_code(&db, &warm, LABEL).await.unwrap()[0].cold_chain;
    assert_eq!(cc.verdict, Verdict::Excursions);
    assert_eq!(cc.excursions.len(), 1, "{cc:?}");
    assert_eq!((cc.excursions[0].direction, cc.excursions[0].peak_c), (Direction::TooWarm, 7.0));

    // No person, phone or plate, and no buyer, in what the public gets.
    let mut to_buyer = pickup(IN_VILLAGE, &warehouse);
    to_buyer.trace_codes = vec![LABEL.into()];
    to_buyer.destination = Place { site_id: None, name: Some("张记水果店".into()), lon: Some(115.95), lat: Some(28.66), region_code: None };
    shipments::book(&db, &farmer, &actor(&farmer), to_buyer).await.unwrap();
    let journeys = journey::journeys_for_trace_code(&db, &held, LABEL).await.unwrap();
    assert_eq!(journeys.len(), 2);
    assert_eq!((journeys[1].destination.kind, journeys[1].destination.lon), ("buyer", None));
    let public = serde_json::to_string(&journeys).unwrap();
    for private in ["李四", "王五", "赵六", "王师傅", "张三", "13912345678", "赣A12345", "张记", "115.95", "村口冷棚", "booked_by", "signature", "receiver", "plate"] {
        assert!(!public.contains(private), "the journey reveals {private}: {public}");
    }
});

db_test!([&LOGISTICS_MIGRATIONS] async fn without_a_logger_the_handover_temperatures_are_the_basis(db) {
    let warehouse = site(&db, "东湖云仓", IN_COUNTY).await;
    let a = admin();
    let mut nv = new_vehicle("赣A54321", &warehouse, TemperatureClass::Chilled);
    nv.logger_device_id = None;
    let truck = network::create_vehicle(&db, &a, &actor(&a), nv).await.unwrap();
    let farmer = who(10, Role::Farmer, IN_VILLAGE);
    let mut new = pickup(IN_VILLAGE, &warehouse);
    new.trace_codes = vec![LABEL.into()];
    let s = shipments::book(&db, &farmer, &actor(&farmer), new).await.unwrap();

    // Not picked up: nothing measured yet.
    let cc = &journey::journeys_for_trace_code(&db, &ListSource::default(), LABEL).await.unwrap()[0].cold_chain;
    assert_eq!((cc.verdict, cc.basis, cc.applicable), (Verdict::NotStarted, Basis::None, true));

    shipments::assign(&db, &a, &actor(&a), s.id, truck.id).await.unwrap();
    shipments::change_status(&db, &a, &actor(&a), s.id, change(Status::PickedUp, Some(handover("农户", "司机", 30, 6.5))))
        .await
        .unwrap();
    let source = ListSource { series: vec![(LOGGER, vec![Reading { ts_ms: minutes_ago(10).timestamp_millis(), celsius: 3.0 }])] };
    let cc = &journey::journeys_for_trace_code(&db, &source, LABEL).await.unwrap()[0].cold_chain;
    assert_eq!((cc.verdict, cc.basis), (Verdict::NoLogger, Basis::HandoverTemperatures));
    assert_eq!((cc.readings, cc.handovers_measured, cc.handovers_out_of_band), (0, 1, 1));
});

#[test]
fn sqlite_and_postgres_migrations_have_the_same_versions() {
    let versions = |m: &sqlx::migrate::Migrator| m.iter().map(|m| m.version).collect::<Vec<_>>();
    let sqlite = versions(&LOGISTICS_MIGRATIONS.sqlite);
    assert!(sqlite.contains(&3), "{sqlite:?}");
    assert_eq!(sqlite, versions(&LOGISTICS_MIGRATIONS.postgres));
}
