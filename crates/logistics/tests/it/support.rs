//! Shared test data: callers with one role over one scope, and a small
//! network in 东湖区 (360102) and 西湖区 (360103) of Nanchang.

use chrono::{Duration, Utc};
use shuxiang_core::auth::{Actor, Credential, Grant, Principal, Role, Scope};
use shuxiang_core::{Db, RegionCode};
use shuxiang_logistics::coldchain::TemperatureClass;
use shuxiang_logistics::network::{self, NewSite, NewVehicle, Site, SiteKind, Tier, Vehicle};
use shuxiang_logistics::shipments::{self, NewShipment, Place, Shipment};

pub const IN_COUNTY: &str = "360102";
pub const OUT_COUNTY: &str = "360103";
pub const IN_VILLAGE: &str = "360102002001";
pub const OUT_VILLAGE: &str = "360103001001";

pub fn who(user_id: i64, role: Role, scope: &str) -> Principal {
    Principal {
        user_id,
        username: format!("{}{user_id}", role.as_str()),
        display_name: "tester".into(),
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

pub fn admin() -> Principal {
    who(1, Role::Admin, "*")
}

pub fn actor(p: &Principal) -> Actor {
    p.actor(Some("127.0.0.1".into()))
}

pub fn new_site(name: &str, county: &str) -> NewSite {
    NewSite {
        name: name.into(),
        kind: SiteKind::CloudWarehouse,
        tier: Tier::County,
        region_code: RegionCode::parse(county).unwrap(),
        lon: 115.89,
        lat: 28.68,
        capacity_kg: Some(50_000.0),
        cold_storage: true,
        opening_hours: Some("08:00-18:00".into()),
        logger_device_id: None,
    }
}

pub fn new_vehicle(plate: &str, depot: &Site, refrigeration: TemperatureClass) -> NewVehicle {
    NewVehicle {
        plate: plate.into(),
        capacity_kg: 1000.0,
        capacity_m3: 10.0,
        refrigeration,
        depot_site_id: depot.id,
        driver_user_id: None,
        shift_start: "06:00".into(),
        shift_end: "18:00".into(),
        logger_device_id: Some(42),
    }
}

pub async fn site(db: &Db, name: &str, county: &str) -> Site {
    let a = admin();
    network::create_site(db, &a, &actor(&a), new_site(name, county))
        .await
        .unwrap()
}

pub async fn vehicle(db: &Db, plate: &str, depot: &Site, refrigeration: TemperatureClass) -> Vehicle {
    let a = admin();
    network::create_vehicle(db, &a, &actor(&a), new_vehicle(plate, depot, refrigeration))
        .await
        .unwrap()
}

/// 200 kg of leafy vegetables from a village point to `to`, ready now,
/// due within a day.
pub fn pickup(village: &str, to: &Site) -> NewShipment {
    let now = Utc::now();
    NewShipment {
        goods: "白菜 20 箱".into(),
        commodity: "leafy_vegetables".into(),
        weight_kg: 200.0,
        volume_m3: 1.5,
        temperature_class: TemperatureClass::Chilled,
        band: None,
        ready_at: now - Duration::hours(1),
        deadline: now + Duration::hours(23),
        origin: Place {
            site_id: None,
            name: Some("村口冷棚".into()),
            lon: Some(115.9),
            lat: Some(28.7),
            region_code: Some(village.into()),
        },
        destination: Place {
            site_id: Some(to.id),
            name: None,
            lon: None,
            lat: None,
            region_code: None,
        },
        trace_codes: vec!["3601020020010001".into()],
    }
}

pub async fn book(db: &Db, booker: &Principal, village: &str, to: &Site) -> Shipment {
    shipments::book(db, booker, &actor(booker), pickup(village, to))
        .await
        .unwrap()
}
