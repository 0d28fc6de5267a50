//! The device registry and the ingest path on each backend: registration
//! with a token shown once, scope rules per role, validation, changes and
//! re-keying with their audit entries, all-or-nothing CSV import, and
//! ingest storing good points, counting refused ones and feeding alarms.

use std::collections::BTreeMap;
use std::sync::Arc;

use shuxiang_core::audit::{self, AuditQuery};
use shuxiang_core::auth::{self, Actor, GrantInput, NewUser, Principal};
use shuxiang_core::{CoreError, Db, db_test};
use shuxiang_telemetry::alarm::rules::{Condition, Direction, Severity};
use shuxiang_telemetry::alarm::store::{self as alarms, AlarmQuery, NewRule};
use shuxiang_telemetry::alarm::{AlarmEngine, ManualClock};
use shuxiang_telemetry::devices::{self, DeviceQuery, DeviceUpdate, Location, NewDevice};
use shuxiang_telemetry::ingest::{self, TelemetryConfig, TelemetryState};
use shuxiang_telemetry::model::RangeOverride;
use shuxiang_telemetry::series;
use shuxiang_telemetry::store::TELEMETRY_MIGRATIONS;

const IN_VILLAGE: &str = "360102002001";
const OTHER_IN_VILLAGE: &str = "360102002002";
const OUT_VILLAGE: &str = "360103001001";
/// Inside 东湖区 (360102).
const IN_LOC: Location = Location {
    lon: 115.92,
    lat: 28.70,
};
/// Inside 西湖区 (360103).
const OUT_LOC: Location = Location {
    lon: 115.87,
    lat: 28.63,
};

async fn user(db: &Db, username: &str, role: &str, scope: &str) -> Principal {
    auth::create_user(
        db,
        &auth::operator(),
        &Actor::system("test"),
        NewUser {
            username: username.into(),
            password: "a long secret phrase".into(),
            display_name: username.into(),
            phone: None,
            roles: vec![GrantInput {
                role: role.into(),
                scope: scope.into(),
            }],
        },
    )
    .await
    .expect("create user");
    auth::principal_for_username(db, username).await.unwrap()
}

fn actor(p: &Principal) -> Actor {
    p.actor(Some("127.0.0.1".into()))
}

fn new_device(name: &str, device_type: &str, village: &str, location: Location) -> NewDevice {
    NewDevice {
        name: name.into(),
        device_type: device_type.into(),
        village: village.into(),
        location,
        owner: None,
        ranges: BTreeMap::new(),
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, CoreError>) -> &'static str {
    r.expect_err("expected an error").code()
}

db_test!([&TELEMETRY_MIGRATIONS] async fn registers_with_a_token_shown_once_and_audits(db) {
    let official = user(&db, "official1", "official", "360102").await;
    let reg = devices::create(&db, &official, &actor(&official), new_device("1号墒情站", "soil_moisture", IN_VILLAGE, IN_LOC))
        .await
        .unwrap();
    assert!(reg.token.starts_with(devices::TOKEN_PREFIX));
    let stored = devices::get(&db, reg.device.id).await.unwrap();
    assert_eq!(stored, reg.device);
    assert_eq!(stored.owner_id, official.user_id);
    // The token authenticates, a wrong one does not; neither reveals the other.
    assert_eq!(devices::by_token(&db, &reg.token).await.unwrap().unwrap().id, reg.device.id);
    assert!(devices::by_token(&db, &format!("{}x", reg.token)).await.unwrap().is_none());
    let id = reg.device.id.to_string();
    assert_eq!(ingest::authenticate_device(&db, &id, &reg.token).await.unwrap().id, reg.device.id);
    assert_eq!(code(ingest::authenticate_device(&db, &id, "sxd_wrong").await), "unauthenticated");
    assert_eq!(code(ingest::authenticate_device(&db, "999999", &reg.token).await), "unauthenticated");
    assert_eq!(code(ingest::authenticate_device(&db, "abc", &reg.token).await), "unauthenticated");
    let entries = audit::list(&db, None, &AuditQuery { action: Some("device.create".into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].target, format!("device:{}", reg.device.id));
    assert_eq!(entries[0].region.as_deref(), Some(IN_VILLAGE));
    assert!(!entries[0].detail.contains(&reg.token), "the token must not be audited");
});

db_test!([&TELEMETRY_MIGRATIONS] async fn scope_decides_who_registers_and_sees(db) {
    let official = user(&db, "official1", "official", "360102").await;
    let staff = user(&db, "staff1", "village_staff", IN_VILLAGE).await;
    let farmer = user(&db, "farmer1", "farmer", IN_VILLAGE).await;
    let other_farmer = user(&db, "farmer2", "farmer", IN_VILLAGE).await;
    let dealer = user(&db, "dealer1", "dealer", "360102").await;

    assert_eq!(code(devices::create(&db, &official, &actor(&official), new_device("x", "weather", OUT_VILLAGE, OUT_LOC)).await), "forbidden");
    assert_eq!(code(devices::create(&db, &farmer, &actor(&farmer), new_device("x", "weather", IN_VILLAGE, IN_LOC)).await), "forbidden");
    assert_eq!(code(devices::create(&db, &staff, &actor(&staff), new_device("x", "weather", OTHER_IN_VILLAGE, IN_LOC)).await), "forbidden");

    let mut owned = new_device("农户水表", "water_meter", IN_VILLAGE, IN_LOC);
    owned.owner = Some("farmer1".into());
    let farmer_dev = devices::create(&db, &staff, &actor(&staff), owned).await.unwrap().device;
    assert_eq!(farmer_dev.owner_id, farmer.user_id);
    let staff_dev = devices::create(&db, &staff, &actor(&staff), new_device("村气象站", "weather", IN_VILLAGE, IN_LOC)).await.unwrap().device;
    let other_dev = devices::create(&db, &official, &actor(&official), new_device("街道水质", "water_quality", OTHER_IN_VILLAGE, IN_LOC)).await.unwrap().device;

    let ids = |list: Vec<devices::Device>| list.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let all = DeviceQuery::default();
    assert_eq!(ids(devices::list(&db, &official, &all).await.unwrap()), [farmer_dev.id, staff_dev.id, other_dev.id]);
    assert_eq!(ids(devices::list(&db, &staff, &all).await.unwrap()), [farmer_dev.id, staff_dev.id]);
    assert_eq!(ids(devices::list(&db, &farmer, &all).await.unwrap()), [farmer_dev.id]);
    assert!(devices::list(&db, &other_farmer, &all).await.unwrap().is_empty());
    assert_eq!(code(devices::list(&db, &dealer, &all).await), "forbidden");
    let by_region = DeviceQuery { region: Some(OTHER_IN_VILLAGE.into()), ..Default::default() };
    assert_eq!(ids(devices::list(&db, &official, &by_region).await.unwrap()), [other_dev.id]);
    let by_type = DeviceQuery { device_type: Some("weather".into()), ..Default::default() };
    assert_eq!(ids(devices::list(&db, &official, &by_type).await.unwrap()), [staff_dev.id]);

    assert_eq!(devices::get_visible(&db, &farmer, farmer_dev.id).await.unwrap().id, farmer_dev.id);
    assert_eq!(code(devices::get_visible(&db, &farmer, staff_dev.id).await), "forbidden");
    assert_eq!(code(devices::get_visible(&db, &other_farmer, farmer_dev.id).await), "forbidden");
    assert_eq!(code(devices::get_visible(&db, &staff, other_dev.id).await), "forbidden");
    assert_eq!(code(devices::get_visible(&db, &dealer, farmer_dev.id).await), "forbidden");
    assert_eq!(code(devices::get_visible(&db, &official, 987_654).await), "not_found");
    assert_eq!(code(devices::get_visible(&db, &dealer, 987_654).await), "forbidden");
    // Owners see but do not manage.
    assert_eq!(code(devices::rotate_token(&db, &farmer, &actor(&farmer), farmer_dev.id).await), "forbidden");
    assert_eq!(code(devices::update(&db, &staff, &actor(&staff), other_dev.id, DeviceUpdate { name: Some("x".into()), ..Default::default() }).await), "forbidden");
});

db_test!([&TELEMETRY_MIGRATIONS] async fn refuses_bad_registrations(db) {
    let official = user(&db, "official1", "official", "360102").await;
    user(&db, "dealer1", "dealer", "360102").await;
    let a = actor(&official);
    let try_new = |n: NewDevice| devices::create(&db, &official, &a, n);
    assert_eq!(code(try_new(new_device("x", "radar", IN_VILLAGE, IN_LOC)).await), "invalid_type");
    assert_eq!(code(try_new(new_device("x", "weather", "360102002", IN_LOC)).await), "invalid_village");
    assert_eq!(code(try_new(new_device("x", "weather", "360102002999", IN_LOC)).await), "invalid_village");
    assert_eq!(code(try_new(new_device(" ", "weather", IN_VILLAGE, IN_LOC)).await), "invalid_name");
    // Beijing is not in 东湖区; NaN-free nonsense is not WGS84.
    assert_eq!(code(try_new(new_device("x", "weather", IN_VILLAGE, Location { lon: 116.40, lat: 39.90 })).await), "invalid_location");
    assert_eq!(code(try_new(new_device("x", "weather", IN_VILLAGE, Location { lon: 215.0, lat: 28.7 })).await), "invalid_location");
    let mut n = new_device("x", "soil_moisture", IN_VILLAGE, IN_LOC);
    n.ranges.insert("vwc".into(), RangeOverride { min: 10.0, max: 120.0 });
    assert_eq!(code(try_new(n).await), "invalid_range");
    let mut n = new_device("x", "soil_moisture", IN_VILLAGE, IN_LOC);
    n.owner = Some("nobody".into());
    assert_eq!(code(try_new(n).await), "invalid_owner");
    let mut n = new_device("x", "soil_moisture", IN_VILLAGE, IN_LOC);
    n.owner = Some("dealer1".into());
    assert_eq!(code(try_new(n).await), "invalid_owner");
    assert!(devices::list(&db, &official, &DeviceQuery::default()).await.unwrap().is_empty());
});

db_test!([&TELEMETRY_MIGRATIONS] async fn updates_and_rotates_with_audit(db) {
    let official = user(&db, "official1", "official", "360102").await;
    let a = actor(&official);
    let reg = devices::create(&db, &official, &a, new_device("旧名", "soil_moisture", IN_VILLAGE, IN_LOC)).await.unwrap();
    let id = reg.device.id;
    let changed = devices::update(&db, &official, &a, id, DeviceUpdate {
        name: Some("新名".into()),
        ranges: Some(BTreeMap::from([("vwc".into(), RangeOverride { min: 5.0, max: 60.0 })])),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(changed.name, "新名");
    assert_eq!(devices::get(&db, id).await.unwrap(), changed);
    assert_eq!(code(devices::update(&db, &official, &a, id, DeviceUpdate::default()).await), "missing_field");
    assert_eq!(code(devices::update(&db, &official, &a, id, DeviceUpdate { village: Some(OUT_VILLAGE.into()), ..Default::default() }).await), "forbidden");
    let entries = audit::list(&db, None, &AuditQuery { action: Some("device.update".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(entries.len(), 1);
    let detail = entries[0].detail_json();
    assert_eq!(detail["name"]["from"], "旧名");
    assert_eq!(detail["name"]["to"], "新名");
    assert!(detail.get("location").is_none(), "{detail}");

    let new_token = devices::rotate_token(&db, &official, &a, id).await.unwrap();
    assert_ne!(new_token, reg.token);
    assert!(devices::by_token(&db, &reg.token).await.unwrap().is_none());
    assert_eq!(devices::by_token(&db, &new_token).await.unwrap().unwrap().id, id);
    let rotations = audit::list(&db, None, &AuditQuery { action: Some("device.rotate_token".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(rotations.len(), 1);
});

db_test!([&TELEMETRY_MIGRATIONS] async fn csv_import_is_all_or_nothing(db) {
    let official = user(&db, "official1", "official", "360102").await;
    let a = actor(&official);
    let good = format!(
        "name,type,village,lon,lat\n1号墒情,soil_moisture,{IN_VILLAGE},115.92,28.70\n\"气象站, 东\",weather,{OTHER_IN_VILLAGE},115.93,28.71\n"
    );
    let imported = devices::import_csv(&db, &official, &a, &good).await.unwrap();
    assert_eq!(imported.iter().map(|i| i.line).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(imported[1].device.name, "气象站, 东");
    for i in &imported {
        assert_eq!(devices::by_token(&db, &i.token).await.unwrap().unwrap().id, i.device.id);
    }
    let before = devices::list(&db, &official, &DeviceQuery::default()).await.unwrap().len();
    assert_eq!(before, 2);

    let bad = format!(
        "name,type,village,lon,lat\nok,weather,{IN_VILLAGE},115.92,28.70\nbad,weather,{IN_VILLAGE},115.92,north\nworse,radar,{IN_VILLAGE},116.4,39.9\n"
    );
    let err = devices::import_csv(&db, &official, &a, &bad).await.unwrap_err();
    assert_eq!(err.code(), "invalid_csv");
    let msg = err.to_string();
    assert!(msg.contains("line 3, field lat"), "{msg}");
    assert!(msg.contains("line 4, field type"), "{msg}");
    assert!(!msg.contains("line 2"), "{msg}");
    assert_eq!(devices::list(&db, &official, &DeviceQuery::default()).await.unwrap().len(), before);

    let far = format!("name,type,village,lon,lat\nfar,weather,{IN_VILLAGE},116.4,39.9\n");
    let msg = devices::import_csv(&db, &official, &a, &far).await.unwrap_err().to_string();
    assert!(msg.contains("line 2, field lon/lat"), "{msg}");
    let outside = format!("name,type,village,lon,lat\nout,weather,{OUT_VILLAGE},115.87,28.63\n");
    assert_eq!(code(devices::import_csv(&db, &official, &a, &outside).await), "forbidden");
    assert_eq!(code(devices::import_csv(&db, &official, &a, "名称,类型\nx,y\n").await), "invalid_csv");
    assert_eq!(code(devices::import_csv(&db, &official, &a, "name,type,village,lon,lat\n").await), "invalid_csv");
    assert_eq!(devices::list(&db, &official, &DeviceQuery::default()).await.unwrap().len(), before);
});

db_test!([&TELEMETRY_MIGRATIONS] async fn ingest_stores_good_points_counts_refusals_and_raises_alarms(db) {
    let official = user(&db, "official1", "official", "360102").await;
    let a = actor(&official);
    let reg = devices::create(&db, &official, &a, new_device("1号墒情站", "soil_moisture", IN_VILLAGE, IN_LOC)).await.unwrap();
    let device = reg.device;
    let now = chrono::Utc::now().timestamp_millis();
    let clock = Arc::new(ManualClock::new(now));
    let state = TelemetryState::new(db.clone(), TelemetryConfig::default());
    state.set_alarm_engine(AlarmEngine::start(db.clone(), clock.clone()).await.unwrap()).unwrap();
    alarms::create_rule(&db, &official, &a, NewRule {
        name: "过湿".into(),
        region: IN_VILLAGE.into(),
        device_type: Some("soil_moisture".into()),
        device_id: None,
        severity: Severity::Major,
        condition: Condition::Threshold { metric: "vwc".into(), direction: Direction::Above, limit: 50.0, hysteresis: 2.0, for_seconds: 0 },
        enabled: None,
    }, now)
    .await
    .unwrap();

    let t1 = now - 60_000;
    let payload = format!(r#"[{{"ts": {t1}, "values": {{"vwc": 31.5, "soil_temperature": 18.25}}}}, {{"vwc": 150}}, {{"leaf": 1}}, {{"vwc": 55}}]"#);
    let report = ingest::ingest(&state, &device, payload.as_bytes(), now).await.unwrap();
    assert_eq!(report.accepted, 3);
    let refused: Vec<(usize, &str)> = report.rejected.iter().map(|r| (r.index, r.error.code())).collect();
    assert_eq!(refused, [(2, "value_out_of_range"), (3, "unknown_metric")]);
    let vwc = series::raw(&db, device.id, "vwc", now - 3_600_000, now + 1, 100).await.unwrap();
    assert_eq!(vwc.iter().map(|p| (p.ts_ms, p.value)).collect::<Vec<_>>(), [(t1, 31.5), (now, 55.0)]);
    let temp = series::raw(&db, device.id, "soil_temperature", now - 3_600_000, now + 1, 100).await.unwrap();
    assert_eq!(temp.iter().map(|p| (p.ts_ms, p.value)).collect::<Vec<_>>(), [(t1, 18.25)]);

    // A second message adds to the counters.
    ingest::ingest(&state, &device, br#"{"vwc": -3}"#, now).await.unwrap();
    let counts = devices::rejections(&db, device.id).await.unwrap();
    let by_code: Vec<(&str, i64)> = counts.iter().map(|c| (c.error.as_str(), c.count)).collect();
    assert_eq!(by_code, [("unknown_metric", 1), ("value_out_of_range", 2)]);
    assert!(counts[1].last_message.contains("-3"), "{:?}", counts[1]);

    // The 55 % reading raised the rule's alarm through the engine.
    let raised = alarms::list_alarms(&db, &official, &AlarmQuery { device: Some(device.id), ..Default::default() }).await.unwrap();
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].value, Some(55.0));

    // Malformed JSON stores nothing and is counted once per message.
    assert_eq!(code(ingest::ingest(&state, &device, b"{\"vwc\": ", now).await), "malformed_json");
    let counts = devices::rejections(&db, device.id).await.unwrap();
    let by_code: Vec<(&str, i64)> = counts.iter().map(|c| (c.error.as_str(), c.count)).collect();
    assert_eq!(by_code, [("malformed_json", 1), ("unknown_metric", 1), ("value_out_of_range", 2)]);
    // The MQTT path finds the device by the id in its topic.
    let by_id = state.ingest_by_id(&device.id.to_string(), br#"{"soil_temperature": 9}"#, now).await.unwrap();
    assert_eq!(by_id.accepted, 1);
    assert_eq!(code(state.ingest_by_id("424242", br#"{"vwc": 1}"#, now).await), "not_found");

    // A disabled device is refused, over HTTP and MQTT alike.
    let disabled = devices::update(&db, &official, &a, device.id, DeviceUpdate { disabled: Some(true), ..Default::default() }).await.unwrap();
    assert_eq!(code(ingest::ingest(&state, &disabled, br#"{"vwc": 20}"#, now).await), "forbidden");
    assert_eq!(code(ingest::authenticate_device(&db, &device.id.to_string(), &reg.token).await), "forbidden");
    assert_eq!(code(ingest::authenticate_token(&db, &reg.token).await), "forbidden");
    state.forget_devices();
    assert_eq!(code(state.ingest_by_id(&device.id.to_string(), br#"{"vwc": 20}"#, now).await), "forbidden");
    let after = series::raw(&db, device.id, "vwc", now - 3_600_000, now + 1, 100).await.unwrap();
    assert_eq!(after.len(), 2);
});
