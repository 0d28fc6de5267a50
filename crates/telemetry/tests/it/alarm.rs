//! Alarms on each backend with a hand-moved clock: every rule kind raising
//! and clearing through the engine, the lifecycle and its history, rules by
//! type and by device, scoping of the alarm list, rule changes reaching the
//! engine, offline detection across a restart, and webhooks delivered to a
//! local listener with a retry after a 500.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use shuxiang_core::auth::{Actor, Credential, Grant, Principal, Role, Scope};
use shuxiang_core::{CoreError, Db, RegionCode};
use shuxiang_telemetry::alarm::rules::{Condition, Direction, Severity};
use shuxiang_telemetry::alarm::store::{self, AlarmQuery, NewRule, NewWebhook, RuleUpdate, Status};
use shuxiang_telemetry::alarm::{AlarmEngine, DeviceRef, ManualClock, Reading, notify, run_offline_detector};
use shuxiang_telemetry::store::TELEMETRY_MIGRATIONS;

const T0: i64 = 1_790_000_000_000;
const IN_VILLAGE: &str = "360102002001";
const OUT_VILLAGE: &str = "360103001001";

fn principal(user_id: i64, role: Role, scope: &str) -> Principal {
    Principal {
        user_id,
        username: format!("{}{user_id}", role.as_str()),
        display_name: "测试".into(),
        grants: vec![Grant {
            role,
            scope: if scope == "*" {
                Scope::All
            } else {
                Scope::Region(RegionCode::parse(scope).unwrap())
            },
        }],
        credential: Credential::Session,
        expires_at: None,
    }
}

fn admin() -> Principal {
    principal(1, Role::Admin, "*")
}

fn actor(p: &Principal) -> Actor {
    p.actor(Some("127.0.0.1".into()))
}

fn device(id: i64, device_type: &str, village: &str, owner: Option<i64>) -> DeviceRef {
    DeviceRef {
        id,
        device_type: device_type.into(),
        village: RegionCode::parse(village).unwrap(),
        name: format!("设备{id}"),
        owner_user_id: owner,
    }
}

fn reading(metric: &str, ts_ms: i64, value: f64) -> Reading {
    Reading {
        metric: metric.into(),
        ts_ms,
        value,
    }
}

async fn rule(db: &Db, region: &str, target: Result<&str, i64>, condition: Condition) -> i64 {
    let (device_type, device_id) = match target {
        Ok(t) => (Some(t.to_string()), None),
        Err(id) => (None, Some(id)),
    };
    let new = NewRule {
        name: format!("rule {}", condition.kind()),
        region: region.into(),
        device_type,
        device_id,
        severity: Severity::Major,
        condition,
        enabled: None,
    };
    store::create_rule(db, &admin(), &actor(&admin()), new, T0)
        .await
        .unwrap()
        .id
}

fn above(metric: &str, limit: f64, hysteresis: f64, for_seconds: u32) -> Condition {
    Condition::Threshold {
        metric: metric.into(),
        direction: Direction::Above,
        limit,
        hysteresis,
        for_seconds,
    }
}

async fn start(db: &Db) -> (AlarmEngine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = AlarmEngine::start(db.clone(), clock.clone()).await.unwrap();
    (engine, clock)
}

async fn alarms(db: &Db, status: Option<Status>) -> Vec<store::Alarm> {
    let q = AlarmQuery {
        status,
        ..AlarmQuery::default()
    };
    store::list_alarms(db, &admin(), &q).await.unwrap()
}

fn transitions(history: &[store::HistoryEntry]) -> Vec<(String, String)> {
    history
        .iter()
        .map(|h| (h.transition.clone(), h.by_name.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn threshold_with_hysteresis_raises_once_and_clears_past_the_band(db) {
    let rule_id = rule(&db, "360102", Ok("soil_moisture"), above("soil_temperature", 30.0, 2.0, 0)).await;
    let (engine, _clock) = start(&db).await;
    let probe = device(10, "soil_moisture", IN_VILLAGE, None);
    let at = |s: i64| T0 + s * 1000;

    engine.observe(&probe, &[reading("soil_temperature", at(0), 29.0)]).await.unwrap();
    assert!(alarms(&db, None).await.is_empty());
    engine.observe(&probe, &[reading("soil_temperature", at(1), 31.0)]).await.unwrap();
    let raised = alarms(&db, None).await;
    assert_eq!(raised.len(), 1);
    let a = &raised[0];
    assert_eq!((a.rule_id, a.device_id, a.status, a.value), (rule_id, 10, Status::Active, Some(31.0)));
    assert_eq!((a.village.as_str(), a.kind.as_str(), a.metric.as_deref()), (IN_VILLAGE, "threshold", Some("soil_temperature")));
    assert_eq!(a.raised_at.timestamp_millis(), at(1));

    // Inside the band (28 < v ≤ 30) and above again: still the same one alarm.
    engine.observe(&probe, &[reading("soil_temperature", at(2), 29.5), reading("soil_temperature", at(3), 28.1)]).await.unwrap();
    engine.observe(&probe, &[reading("soil_temperature", at(4), 35.0)]).await.unwrap();
    let still = alarms(&db, None).await;
    assert_eq!(still.len(), 1);
    assert_eq!(still[0].status, Status::Active);

    // Back past limit − hysteresis: cleared by the engine.
    engine.observe(&probe, &[reading("soil_temperature", at(5), 28.0)]).await.unwrap();
    let (cleared, history) = store::get_alarm(&db, &admin(), a.id).await.unwrap();
    assert_eq!(cleared.status, Status::Cleared);
    assert_eq!(cleared.cleared_by.as_deref(), Some("system"));
    assert_eq!(cleared.cleared_at.unwrap().timestamp_millis(), at(5));
    assert_eq!(transitions(&history), pairs(&[("raised", "system"), ("cleared", "system")]));
    assert_eq!(history[1].value, Some(28.0));

    // A later excursion is a new alarm.
    engine.observe(&probe, &[reading("soil_temperature", at(6), 30.5)]).await.unwrap();
    let all = alarms(&db, None).await;
    assert_eq!(all.len(), 2);
    assert_ne!(all[0].id, a.id);
    assert_eq!(all[0].status, Status::Active);
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn debounce_waits_for_the_duration_and_readings_are_taken_in_time_order(db) {
    rule(&db, "360102", Ok("weather"), above("air_temperature", 35.0, 0.0, 60)).await;
    let (engine, _clock) = start(&db).await;
    let station = device(11, "weather", IN_VILLAGE, None);
    // Sent out of order in one batch: 0 s, 30 s, 45 s (dips), 50 s, 100 s.
    engine.observe(&station, &[
        reading("air_temperature", T0 + 30_000, 36.0),
        reading("air_temperature", T0, 36.0),
        reading("air_temperature", T0 + 50_000, 36.0),
        reading("air_temperature", T0 + 45_000, 34.0),
    ]).await.unwrap();
    assert!(alarms(&db, None).await.is_empty(), "the dip at 45 s restarts the minute");
    engine.observe(&station, &[reading("air_temperature", T0 + 100_000, 36.0)]).await.unwrap();
    assert!(alarms(&db, None).await.is_empty(), "50 s past the limit is not yet a minute");
    engine.observe(&station, &[reading("air_temperature", T0 + 110_000, 36.5)]).await.unwrap();
    let raised = alarms(&db, None).await;
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].raised_at.timestamp_millis(), T0 + 110_000);
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn another_rule_changing_keeps_what_a_rule_has_seen(db) {
    let roc = rule(&db, "360102", Ok("water_meter"), Condition::RateOfChange {
        metric: "flow".into(),
        limit_per_minute: 10.0,
        window_seconds: 120,
    }).await;
    let (engine, _clock) = start(&db).await;
    let meter = device(20, "water_meter", IN_VILLAGE, None);
    engine.observe(&meter, &[reading("flow", T0, 100.0), reading("flow", T0 + 60_000, 105.0)]).await.unwrap();
    // An unrelated rule is added: the engine reloads its rules, but the
    // meter's window still holds the readings above.
    rule(&db, "360102", Ok("water_quality"), Condition::ValidRange {
        metric: "ph".into(),
        min: 6.5,
        max: 8.5,
    }).await;
    engine.observe(&meter, &[reading("flow", T0 + 120_000, 135.0)]).await.unwrap();
    let raised = alarms(&db, Some(Status::Active)).await;
    assert_eq!(raised.iter().map(|a| a.rule_id).collect::<Vec<_>>(), [roc]);
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn rate_of_change_and_valid_range(db) {
    let roc = rule(&db, "360102", Ok("water_meter"), Condition::RateOfChange {
        metric: "flow".into(),
        limit_per_minute: 10.0,
        window_seconds: 120,
    }).await;
    let range = rule(&db, "360102", Ok("water_quality"), Condition::ValidRange {
        metric: "ph".into(),
        min: 6.5,
        max: 8.5,
    }).await;
    let (engine, _clock) = start(&db).await;
    let meter = device(20, "water_meter", IN_VILLAGE, None);
    let sonde = device(21, "water_quality", IN_VILLAGE, None);

    // 5 m³/h per minute: fine; then a jump of 30 in a minute (burst main).
    engine.observe(&meter, &[reading("flow", T0, 100.0), reading("flow", T0 + 60_000, 105.0)]).await.unwrap();
    assert!(alarms(&db, None).await.is_empty());
    engine.observe(&meter, &[reading("flow", T0 + 120_000, 135.0)]).await.unwrap();
    let raised = alarms(&db, Some(Status::Active)).await;
    assert_eq!(raised.iter().map(|a| a.rule_id).collect::<Vec<_>>(), [roc]);
    // Flat for two minutes: the window no longer holds the jump.
    engine.observe(&meter, &[reading("flow", T0 + 180_000, 135.0), reading("flow", T0 + 240_000, 135.0)]).await.unwrap();
    assert!(alarms(&db, Some(Status::Active)).await.is_empty());

    engine.observe(&sonde, &[reading("ph", T0, 7.2), reading("ph", T0 + 1, 8.6)]).await.unwrap();
    let out = alarms(&db, Some(Status::Active)).await;
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].rule_id, out[0].value), (range, Some(8.6)));
    assert!(out[0].message.contains("6.5–8.5"), "{}", out[0].message);
    engine.observe(&sonde, &[reading("ph", T0 + 2, 8.5)]).await.unwrap();
    assert!(alarms(&db, Some(Status::Active)).await.is_empty());
    assert_eq!(alarms(&db, Some(Status::Cleared)).await.len(), 2);
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn not_reporting_is_raised_at_the_timeout_and_cleared_by_the_next_reading(db) {
    rule(&db, "360102", Ok("cold_chain"), Condition::NotReporting { minutes: 5 }).await;
    let (engine, clock) = start(&db).await;
    let truck = device(30, "cold_chain", IN_VILLAGE, None);
    let other = device(31, "weather", IN_VILLAGE, None);
    engine.observe(&truck, &[reading("temperature", T0 - 3_600_000, -18.0)]).await.unwrap();
    engine.observe(&other, &[reading("humidity", T0, 80.0)]).await.unwrap();

    // Silence is measured from when the reading arrived, not its timestamp.
    clock.set(T0 + 300_000 - 1);
    assert_eq!(engine.check_offline().await.unwrap(), 0);
    clock.set(T0 + 300_000);
    assert_eq!(engine.check_offline().await.unwrap(), 1);
    assert_eq!(engine.check_offline().await.unwrap(), 0, "raised once");
    let raised = alarms(&db, Some(Status::Active)).await;
    assert_eq!(raised.len(), 1);
    assert_eq!((raised[0].device_id, raised[0].kind.as_str(), raised[0].value), (30, "not_reporting", None));
    assert_eq!(raised[0].raised_at.timestamp_millis(), T0 + 300_000);

    clock.set(T0 + 400_000);
    engine.observe(&truck, &[reading("door", T0 + 399_000, 0.0)]).await.unwrap();
    assert!(alarms(&db, Some(Status::Active)).await.is_empty());
    let (_, history) = store::get_alarm(&db, &admin(), raised[0].id).await.unwrap();
    assert_eq!(transitions(&history), pairs(&[("raised", "system"), ("cleared", "system")]));
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn the_offline_detector_raises_within_seconds_and_a_restart_remembers_devices(db) {
    rule(&db, "360102", Ok("soil_moisture"), Condition::NotReporting { minutes: 1 }).await;
    let (engine, clock) = start(&db).await;
    let probe = device(40, "soil_moisture", IN_VILLAGE, None);
    engine.observe(&probe, &[reading("vwc", T0, 30.0)]).await.unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_offline_detector(engine.clone(), async move {
        let _ = stopped.await;
    }));
    clock.set(T0 + 60_000);
    let started = std::time::Instant::now();
    while alarms(&db, Some(Status::Active)).await.is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "not raised within the detector's tick");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap();
    let first = alarms(&db, Some(Status::Active)).await;
    clock.set(T0 + 61_000);
    engine.observe(&probe, &[reading("vwc", T0 + 61_000, 30.0)]).await.unwrap();
    assert!(alarms(&db, Some(Status::Active)).await.is_empty());

    // A new process: the count starts at the persisted last-seen time (of
    // the reading at T0 + 61 s) plus the persistence interval, so the alarm
    // comes at most that much late and never early.
    let from = T0 + 61_000 + shuxiang_telemetry::alarm::engine::SEEN_PERSIST_MS;
    let clock2 = Arc::new(ManualClock::new(T0 + 100_000));
    let restarted = AlarmEngine::start(db.clone(), clock2.clone()).await.unwrap();
    clock2.set(from + 60_000 - 1);
    assert_eq!(restarted.check_offline().await.unwrap(), 0, "never raised early after a restart");
    clock2.set(from + 60_000);
    assert_eq!(restarted.check_offline().await.unwrap(), 1);
    let now_active = alarms(&db, Some(Status::Active)).await;
    assert_eq!(now_active.len(), 1);
    assert_ne!(now_active[0].id, first[0].id);
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn lifecycle_active_acknowledged_cleared_with_history_and_audit(db) {
    rule(&db, "360102", Ok("water_quality"), above("turbidity", 5.0, 1.0, 0)).await;
    let (engine, _clock) = start(&db).await;
    let sonde = device(50, "water_quality", IN_VILLAGE, None);
    engine.observe(&sonde, &[reading("turbidity", T0, 9.0)]).await.unwrap();
    let id = alarms(&db, None).await[0].id;

    let official = principal(7, Role::Official, "360102");
    let staff_out = principal(8, Role::VillageStaff, "360103");
    let farmer = principal(9, Role::Farmer, "360102");
    let forbidden = store::acknowledge(&db, &staff_out, &actor(&staff_out), id, T0 + 1).await.unwrap_err();
    assert!(matches!(forbidden, CoreError::Forbidden(_)), "{forbidden:?}");
    let forbidden = store::acknowledge(&db, &farmer, &actor(&farmer), id, T0 + 1).await.unwrap_err();
    assert!(matches!(forbidden, CoreError::Forbidden(_)), "{forbidden:?}");

    let acked = store::acknowledge(&db, &official, &actor(&official), id, T0 + 1_000).await.unwrap();
    assert_eq!((acked.status, acked.acknowledged_by.as_deref()), (Status::Acknowledged, Some("official7")));
    let again = store::acknowledge(&db, &official, &actor(&official), id, T0 + 2_000).await.unwrap_err();
    assert_eq!(again.code(), "alarm_state");
    // The worklist holds only unacknowledged alarms.
    assert!(alarms(&db, Some(Status::Active)).await.is_empty());

    // Acknowledged does not stop the automatic clear.
    engine.observe(&sonde, &[reading("turbidity", T0 + 3_000, 3.9)]).await.unwrap();
    let (done, history) = store::get_alarm(&db, &official, id).await.unwrap();
    assert_eq!(done.status, Status::Cleared);
    assert_eq!(transitions(&history), pairs(&[("raised", "system"), ("acknowledged", "official7"), ("cleared", "system")]));
    assert_eq!(history[1].at().timestamp_millis(), T0 + 1_000);
    let late = store::clear(&db, &official, &actor(&official), id, T0 + 4_000).await.unwrap_err();
    assert_eq!(late.code(), "alarm_state");

    // A manual clear while the condition holds: the next reading raises anew.
    engine.observe(&sonde, &[reading("turbidity", T0 + 5_000, 8.0)]).await.unwrap();
    let second = alarms(&db, Some(Status::Active)).await[0].id;
    let cleared = store::clear(&db, &official, &actor(&official), second, T0 + 6_000).await.unwrap();
    assert_eq!((cleared.status, cleared.cleared_by.as_deref()), (Status::Cleared, Some("official7")));
    engine.observe(&sonde, &[reading("turbidity", T0 + 7_000, 8.0)]).await.unwrap();
    let third = alarms(&db, Some(Status::Active)).await;
    assert_eq!(third.len(), 1);
    assert!(third[0].id > second);

    let log = shuxiang_core::audit::list(&db, None, &shuxiang_core::audit::AuditQuery { limit: 100, ..Default::default() }).await.unwrap();
    let actions: Vec<(&str, &str)> = log.iter().filter(|e| e.action.starts_with("alarm.")).map(|e| (e.action.as_str(), e.target.as_str())).collect();
    assert_eq!(actions, [("alarm.clear", format!("alarm:{second}").as_str()), ("alarm.acknowledge", format!("alarm:{id}").as_str())]);
    assert!(log.iter().filter(|e| e.action.starts_with("alarm.")).all(|e| e.region.as_deref() == Some(IN_VILLAGE)));
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn rules_by_type_and_by_device_within_their_region(db) {
    let by_type = rule(&db, "360102", Ok("weather"), above("wind_speed", 20.0, 0.0, 0)).await;
    let by_device = rule(&db, "3601", Err(61), above("wind_speed", 10.0, 0.0, 0)).await;
    // A device rule whose region does not hold the device never fires.
    let elsewhere = rule(&db, "360103", Err(61), above("wind_speed", 0.0, 0.0, 0)).await;
    let (engine, _clock) = start(&db).await;
    let a = device(60, "weather", IN_VILLAGE, None);
    let b = device(61, "weather", IN_VILLAGE, None);
    let c = device(62, "weather", OUT_VILLAGE, None);
    let d = device(63, "soil_moisture", IN_VILLAGE, None);
    for dev in [&a, &b, &c, &d] {
        engine.observe(dev, &[reading("wind_speed", T0, 15.0)]).await.unwrap();
    }
    let got: Vec<(i64, i64)> = alarms(&db, None).await.iter().map(|x| (x.rule_id, x.device_id)).collect();
    assert_eq!(got, [(by_device, 61)]);
    for dev in [&a, &b, &c, &d] {
        engine.observe(dev, &[reading("wind_speed", T0 + 1, 25.0)]).await.unwrap();
    }
    let mut got: Vec<(i64, i64)> = alarms(&db, None).await.iter().map(|x| (x.rule_id, x.device_id)).collect();
    got.sort();
    let mut want = vec![(by_type, 60), (by_type, 61), (by_device, 61)];
    want.sort();
    assert_eq!(got, want);
    assert!(got.iter().all(|(r, _)| *r != elsewhere));
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn the_alarm_list_is_scoped_and_filtered(db) {
    rule(&db, "3601", Ok("weather"), above("humidity", 90.0, 0.0, 0)).await;
    let (engine, _clock) = start(&db).await;
    let farmer = principal(70, Role::Farmer, "360102");
    let mine = device(71, "weather", IN_VILLAGE, Some(70));
    let theirs = device(72, "weather", IN_VILLAGE, Some(99));
    let west = device(73, "weather", OUT_VILLAGE, None);
    for dev in [&mine, &theirs, &west] {
        engine.observe(dev, &[reading("humidity", T0, 95.0)]).await.unwrap();
    }
    let ids = |list: Vec<store::Alarm>| list.iter().map(|a| a.device_id).collect::<Vec<_>>();
    let q = |region: Option<&str>, device: Option<i64>| AlarmQuery {
        region: region.map(str::to_string),
        device,
        ..AlarmQuery::default()
    };
    assert_eq!(ids(store::list_alarms(&db, &admin(), &q(None, None)).await.unwrap()), [73, 72, 71]);
    assert_eq!(ids(store::list_alarms(&db, &admin(), &q(Some("360102"), None)).await.unwrap()), [72, 71]);
    assert_eq!(ids(store::list_alarms(&db, &admin(), &q(Some("360103"), None)).await.unwrap()), [73]);
    assert_eq!(ids(store::list_alarms(&db, &admin(), &q(None, Some(72))).await.unwrap()), [72]);
    let official = principal(74, Role::Official, "360102");
    assert_eq!(ids(store::list_alarms(&db, &official, &q(None, None)).await.unwrap()), [72, 71]);
    let err = store::list_alarms(&db, &official, &q(Some("360103"), None)).await.unwrap_err();
    assert!(matches!(err, CoreError::Forbidden(_)));
    assert_eq!(ids(store::list_alarms(&db, &farmer, &q(None, None)).await.unwrap()), [71]);
    let theirs_id = alarms(&db, None).await.iter().find(|a| a.device_id == 72).unwrap().id;
    assert!(matches!(store::get_alarm(&db, &farmer, theirs_id).await.unwrap_err(), CoreError::Forbidden(_)));
    let dealer = principal(75, Role::Dealer, "360102");
    assert!(matches!(store::list_alarms(&db, &dealer, &q(None, None)).await.unwrap_err(), CoreError::Forbidden(_)));
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn rule_changes_reach_the_engine_and_deleting_clears(db) {
    let id = rule(&db, "360102", Ok("soil_moisture"), above("vwc", 80.0, 0.0, 0)).await;
    let (engine, _clock) = start(&db).await;
    let probe = device(80, "soil_moisture", IN_VILLAGE, None);
    engine.observe(&probe, &[reading("vwc", T0, 70.0)]).await.unwrap();
    assert!(alarms(&db, None).await.is_empty());
    let upd = RuleUpdate {
        condition: Some(above("vwc", 60.0, 0.0, 0)),
        severity: Some(Severity::Critical),
        ..RuleUpdate::default()
    };
    store::update_rule(&db, &admin(), &actor(&admin()), id, upd, T0).await.unwrap();
    engine.observe(&probe, &[reading("vwc", T0 + 1, 70.0)]).await.unwrap();
    let raised = alarms(&db, Some(Status::Active)).await;
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].severity, Severity::Critical);

    // Disabled: its alarm is cleared and nothing new is raised until enabled.
    let switch = |enabled: bool| RuleUpdate {
        enabled: Some(enabled),
        ..RuleUpdate::default()
    };
    store::update_rule(&db, &admin(), &actor(&admin()), id, switch(false), T0 + 2).await.unwrap();
    let (off, history) = store::get_alarm(&db, &admin(), raised[0].id).await.unwrap();
    assert_eq!((off.status, history.last().unwrap().note.as_deref()), (Status::Cleared, Some("rule disabled")));
    engine.observe(&probe, &[reading("vwc", T0 + 3, 90.0)]).await.unwrap();
    assert!(alarms(&db, Some(Status::Active)).await.is_empty());
    store::update_rule(&db, &admin(), &actor(&admin()), id, switch(true), T0 + 4).await.unwrap();
    engine.observe(&probe, &[reading("vwc", T0 + 5, 90.0)]).await.unwrap();
    let raised = alarms(&db, Some(Status::Active)).await;
    assert_eq!(raised.len(), 1);

    let official_out = principal(81, Role::Official, "360103");
    assert!(matches!(store::delete_rule(&db, &official_out, &actor(&official_out), id, T0).await.unwrap_err(), CoreError::Forbidden(_)));
    store::delete_rule(&db, &admin(), &actor(&admin()), id, T0 + 6).await.unwrap();
    let (gone, history) = store::get_alarm(&db, &admin(), raised[0].id).await.unwrap();
    assert_eq!(gone.status, Status::Cleared);
    assert_eq!(history.last().unwrap().note.as_deref(), Some("rule deleted"));
    engine.observe(&probe, &[reading("vwc", T0 + 7, 99.0)]).await.unwrap();
    assert!(alarms(&db, Some(Status::Active)).await.is_empty(), "a deleted rule raises nothing");
    assert!(matches!(store::get_rule(&db, &admin(), id).await.unwrap_err(), CoreError::NotFound(_)));
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn rules_and_webhooks_are_validated(db) {
    let official = principal(90, Role::Official, "360102");
    let base = || NewRule {
        name: "干旱".into(),
        region: "360102".into(),
        device_type: Some("soil_moisture".into()),
        device_id: None,
        severity: Severity::Minor,
        condition: above("vwc", 10.0, 1.0, 0),
        enabled: None,
    };
    let by = actor(&official);
    let create = |n: NewRule| store::create_rule(&db, &official, &by, n, T0);
    assert!(create(base()).await.is_ok());
    let code = |r: Result<store::RuleView, CoreError>| r.unwrap_err().code();
    assert_eq!(code(create(NewRule { condition: above("vwc", f64::INFINITY, 0.0, 0), ..base() }).await), "invalid_condition");
    assert_eq!(code(create(NewRule { device_id: Some(3), ..base() }).await), "invalid_target");
    assert_eq!(code(create(NewRule { device_type: Some("tractor".into()), ..base() }).await), "invalid_device_type");
    assert_eq!(code(create(NewRule { region: "369999".into(), ..base() }).await), "unknown_region");
    assert_eq!(code(create(NewRule { region: "36x".into(), ..base() }).await), "invalid_region_code");
    assert_eq!(code(create(NewRule { name: " ".into(), ..base() }).await), "invalid_name");
    assert_eq!(code(create(NewRule { region: "360103".into(), ..base() }).await), "forbidden");
    let farmer = principal(91, Role::Farmer, "360102");
    assert_eq!(store::create_rule(&db, &farmer, &actor(&farmer), base(), T0).await.unwrap_err().code(), "forbidden");

    let hook = |url: &str| NewWebhook { region: "360102".into(), url: url.into(), enabled: None };
    let make = |h: NewWebhook| store::create_webhook(&db, &official, &by, h, T0);
    assert_eq!(make(hook("https://hook.example/x")).await.unwrap_err().code(), "invalid_url");
    assert_eq!(make(hook("not a url")).await.unwrap_err().code(), "invalid_url");
    assert_eq!(make(hook("http://user:pw@hook.example/x")).await.unwrap_err().code(), "invalid_url");
    assert_eq!(make(NewWebhook { region: "360103".into(), ..hook("http://hook.example/x") }).await.unwrap_err().code(), "forbidden");
    let ok = make(hook("http://hook.example:8080/in?token=s3cret")).await.unwrap();
    assert_eq!(ok.url, "http://hook.example:8080/…");
});

/// A webhook receiver: answers 500 to the first `fail_first` posts, then 200.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    use axum::http::{StatusCode, Uri};
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/{*rest}",
        axum::routing::post(move |uri: Uri, body: String| {
            let seen = seen.clone();
            async move {
                let mut g = seen.lock().unwrap();
                g.push((uri.to_string(), serde_json::from_str(&body).unwrap_or(Value::Null)));
                if g.len() <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn webhooks_are_delivered_and_retried_after_a_500(db) {
    let (base, got) = receiver(1).await;
    let (other_base, other_got) = receiver(0).await;
    let official = principal(100, Role::Official, "3601");
    let hook = store::create_webhook(&db, &official, &actor(&official), NewWebhook {
        region: "360102".into(),
        url: format!("{base}/hook?token=s3cret"),
        enabled: None,
    }, T0).await.unwrap();
    assert!(!hook.url.contains("s3cret"));
    store::create_webhook(&db, &official, &actor(&official), NewWebhook {
        region: "360103".into(),
        url: format!("{other_base}/west"),
        enabled: None,
    }, T0).await.unwrap();

    rule(&db, "360102", Ok("cold_chain"), above("temperature", -15.0, 2.0, 0)).await;
    let (engine, _clock) = start(&db).await;
    let truck = device(101, "cold_chain", IN_VILLAGE, None);
    engine.observe(&truck, &[reading("temperature", T0, -10.0)]).await.unwrap();
    let alarm_id = alarms(&db, None).await[0].id;

    let client = notify::client().unwrap();
    let now = T0 + 1_000;
    let first = notify::deliver_due(&db, &client, now).await.unwrap();
    assert_eq!(first, notify::DeliveryRound { delivered: 0, retrying: 1, failed: 0 });
    assert_eq!(got.lock().unwrap().len(), 1);
    // Not due again before the backoff.
    let early = notify::deliver_due(&db, &client, now + notify::FIRST_RETRY_MS - 1).await.unwrap();
    assert_eq!(early, notify::DeliveryRound::default());
    let retried = notify::deliver_due(&db, &client, now + notify::FIRST_RETRY_MS).await.unwrap();
    assert_eq!(retried.delivered, 1);
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, "/hook?token=s3cret");
        assert_eq!(got[1].1["event"], "alarm.raised");
        assert_eq!(got[1].1["by"], "system");
        assert_eq!(got[1].1["alarm"]["id"], json!(alarm_id));
        assert_eq!(got[1].1["alarm"]["status"], "active");
        assert_eq!(got[1].1["alarm"]["village"], IN_VILLAGE);
        assert_eq!(got[0].1, got[1].1, "a retry sends the same payload");
    }
    let log = notify::deliveries(&db, &official, hook.id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].status.as_str(), log[0].attempts, log[0].last_status, log[0].event.as_str()), ("delivered", 2, Some(200), "alarm.raised"));

    // The acknowledgement and the clear follow; nothing goes to the other county.
    store::acknowledge(&db, &official, &actor(&official), alarm_id, T0 + 10_000).await.unwrap();
    engine.observe(&truck, &[reading("temperature", T0 + 20_000, -18.0)]).await.unwrap();
    let round = notify::deliver_due(&db, &client, T0 + 30_000).await.unwrap();
    assert_eq!(round.delivered, 2);
    // Sent concurrently, so in either order.
    let mut events: Vec<(String, String)> = got.lock().unwrap().iter().skip(2).map(|(_, v)| {
        (v["event"].as_str().unwrap().to_string(), v["by"].as_str().unwrap().to_string())
    }).collect();
    events.sort();
    assert_eq!(events, pairs(&[("alarm.acknowledged", "official100"), ("alarm.cleared", "system")]));
    assert!(other_got.lock().unwrap().is_empty());

    // A receiver that never answers 2xx: given up after the last attempt.
    let (bad_base, bad_got) = receiver(usize::MAX).await;
    store::update_webhook(&db, &official, &actor(&official), hook.id, store::WebhookUpdate {
        url: Some(format!("{bad_base}/down")),
        enabled: None,
    }).await.unwrap();
    engine.observe(&truck, &[reading("temperature", T0 + 40_000, 0.0)]).await.unwrap();
    let mut at = T0 + 50_000;
    let mut failed = 0;
    for _ in 0..notify::MAX_ATTEMPTS {
        failed += notify::deliver_due(&db, &client, at).await.unwrap().failed;
        at += 4 * 3_600_000;
    }
    assert_eq!(failed, 1);
    assert_eq!(bad_got.lock().unwrap().len(), notify::MAX_ATTEMPTS as usize);
    let log = notify::deliveries(&db, &official, hook.id).await.unwrap();
    assert_eq!((log[0].status.as_str(), log[0].last_status, log[0].last_error.as_deref()), ("failed", Some(500), Some("HTTP 500")));
});

shuxiang_core::db_test!([&TELEMETRY_MIGRATIONS] async fn two_nodes_never_open_the_same_alarm_twice(db) {
    rule(&db, "360102", Ok("water_quality"), above("residual_chlorine", 2.0, 0.5, 0)).await;
    let (node_a, _) = start(&db).await;
    let (node_b, _) = start(&db).await;
    let sonde = device(110, "water_quality", IN_VILLAGE, None);
    node_a.observe(&sonde, &[reading("residual_chlorine", T0, 2.5)]).await.unwrap();
    // Node B has not seen the alarm node A raised; the database refuses a second one.
    node_b.observe(&sonde, &[reading("residual_chlorine", T0 + 1, 2.6)]).await.unwrap();
    let open = alarms(&db, Some(Status::Active)).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].value, Some(2.5));
    let (_, history) = store::get_alarm(&db, &admin(), open[0].id).await.unwrap();
    assert_eq!(history.len(), 1);
    // Either node's clear ends it.
    node_b.observe(&sonde, &[reading("residual_chlorine", T0 + 2, 1.0)]).await.unwrap();
    assert!(alarms(&db, Some(Status::Active)).await.is_empty());
});
