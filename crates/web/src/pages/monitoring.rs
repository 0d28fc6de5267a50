//! 物联网监测 dashboards: a region's devices on its county map with their
//! latest values and active alarms, the county overview of soil moisture
//! (墒情) and water quality across its villages, and a device's charts over
//! a chosen time range. Server-drawn SVG; works without JavaScript.
//!
//! Every list goes through the telemetry slice's own functions with the
//! viewer's principal, so what a page shows is what the API would allow.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use shuxiang_core::CoreError;
use shuxiang_core::auth::{Role, Scope};
use shuxiang_core::region::{RegionCode, RegionLevel};
use shuxiang_core::regions;
use shuxiang_telemetry::alarm::store::{self as alarms, Alarm, AlarmQuery, Status};
use shuxiang_telemetry::devices::{self, Device, DeviceQuery, Location, NewDevice};
use shuxiang_telemetry::model::DeviceType;
use shuxiang_telemetry::series::{self, Step};

use super::common::{Chrome, PageError, PageQuery, PageResult, Signed, local_time, render, texts_in};
use crate::error::AppError;
use crate::extract::ClientIp;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::svgchart::{self, Chart, ChartPoint};
use crate::svgmap;

/// Devices listed on one page.
const MAX_DEVICES: u64 = 300;
/// A device is shown offline when silent for longer than this.
const OFFLINE_AFTER_MS: i64 = 15 * 60_000;

pub struct MonitoringTexts {
    pub title: &'static str,
    pub devices: &'static str,
    pub device: &'static str,
    pub kind: &'static str,
    pub village: &'static str,
    pub latest: &'static str,
    pub last_seen: &'static str,
    pub online: &'static str,
    pub offline: &'static str,
    pub never: &'static str,
    pub alarms: &'static str,
    pub no_alarms: &'static str,
    pub no_devices: &'static str,
    pub acknowledge: &'static str,
    pub clear: &'static str,
    pub severity: &'static str,
    pub raised: &'static str,
    pub status: &'static str,
    pub overview: &'static str,
    pub soil_moisture: &'static str,
    pub water_quality: &'static str,
    pub range: &'static str,
    pub no_data: &'static str,
    pub rejected: &'static str,
    pub register: &'static str,
    pub name: &'static str,
    pub village_code: &'static str,
    pub lon: &'static str,
    pub lat: &'static str,
    pub submit: &'static str,
    pub import_csv: &'static str,
    pub import_hint: &'static str,
    pub token_once: &'static str,
}

static ZH: MonitoringTexts = MonitoringTexts {
    title: "物联网监测",
    devices: "设备",
    device: "设备",
    kind: "类型",
    village: "村",
    latest: "最新数据",
    last_seen: "最后上报",
    online: "在线",
    offline: "离线",
    never: "从未上报",
    alarms: "告警",
    no_alarms: "当前没有告警。",
    no_devices: "该区域没有可查看的设备。",
    acknowledge: "确认",
    clear: "解除",
    severity: "级别",
    raised: "发生时间",
    status: "状态",
    overview: "各村墒情与水质",
    soil_moisture: "土壤含水量 %",
    water_quality: "水质 pH / 浊度 NTU / 余氯 mg/L",
    range: "时间范围",
    no_data: "该时段无数据",
    rejected: "被拒收的数据点",
    register: "登记设备",
    name: "名称",
    village_code: "村代码（12位）",
    lon: "经度",
    lat: "纬度",
    submit: "登记",
    import_csv: "批量导入（CSV）",
    import_hint: "首行为 name,type,village,lon,lat；任一行有误则全部不导入。",
    token_once: "设备令牌只显示这一次，请立即写入设备（MQTT 用户名为设备编号，密码为令牌）：",
};

static EN: MonitoringTexts = MonitoringTexts {
    title: "IoT monitoring",
    devices: "Devices",
    device: "Device",
    kind: "Type",
    village: "Village",
    latest: "Latest values",
    last_seen: "Last report",
    online: "online",
    offline: "offline",
    never: "never reported",
    alarms: "Alarms",
    no_alarms: "No alarms right now.",
    no_devices: "No devices you may see in this region.",
    acknowledge: "Acknowledge",
    clear: "Clear",
    severity: "Severity",
    raised: "Raised",
    status: "Status",
    overview: "Soil moisture and water quality by village",
    soil_moisture: "Soil water content %",
    water_quality: "Water pH / turbidity NTU / chlorine mg/L",
    range: "Time range",
    no_data: "No data in this period",
    rejected: "Rejected points",
    register: "Register a device",
    name: "Name",
    village_code: "Village code (12 digits)",
    lon: "Longitude",
    lat: "Latitude",
    submit: "Register",
    import_csv: "Bulk import (CSV)",
    import_hint: "Header name,type,village,lon,lat; one bad line and nothing is imported.",
    token_once: "Device tokens are shown this once; put them on the devices now (MQTT username = device id, password = token):",
};

fn texts(lang: Lang) -> &'static MonitoringTexts {
    texts_in(lang, &ZH, &EN)
}

fn type_label(t: DeviceType, lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => t.label_zh(),
        Lang::En => match t {
            DeviceType::SoilMoisture => "Soil-moisture probe",
            DeviceType::Weather => "Weather station",
            DeviceType::WaterQuality => "Water-quality sensor",
            DeviceType::WaterMeter => "Water meter",
            DeviceType::ColdChain => "Cold-chain logger",
        },
    }
}

fn metric_label(t: DeviceType, key: &str, lang: Lang) -> String {
    match (lang, t.metric(key)) {
        (Lang::Zh, Some(m)) => m.name_zh.to_owned(),
        _ => key.replace('_', " "),
    }
}

fn format_value(t: DeviceType, key: &str, v: f64) -> String {
    let unit = t.metric(key).map(|m| m.unit).unwrap_or("");
    let v = if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    if unit.is_empty() { v } else { format!("{v} {unit}") }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn time_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| local_time(&t))
        .unwrap_or_default()
}

// ---- the region dashboard ----

pub struct DeviceRow {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
    pub village: String,
    pub latest: String,
    pub last_seen: String,
    pub online: bool,
}

pub struct AlarmRow {
    pub id: i64,
    pub device_id: i64,
    pub device: String,
    pub severity: &'static str,
    pub rule: String,
    pub message: String,
    pub raised: String,
    pub status: &'static str,
    pub can_act: bool,
    pub active: bool,
}

pub struct VillageRow {
    pub name: String,
    pub vwc: String,
    pub water: String,
}

#[derive(Template)]
#[template(path = "monitoring.html")]
struct DashboardPage {
    c: Chrome,
    mt: &'static MonitoringTexts,
    region_code: String,
    region_name: String,
    map: Option<String>,
    devices: Vec<DeviceRow>,
    alarms: Vec<AlarmRow>,
    villages: Vec<VillageRow>,
    /// The viewer manages devices here: the registration forms show.
    can_register: bool,
    types: Vec<(&'static str, &'static str)>,
    form: RegisterForm,
    error: Option<String>,
    /// Devices just registered, with their tokens (shown once).
    issued: Vec<(i64, String, String)>,
}

/// The registration form's fields, kept to show again with an error.
#[derive(Default, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    name: String,
    #[serde(default, rename = "type")]
    device_type: String,
    #[serde(default)]
    village: String,
    #[serde(default)]
    lon: String,
    #[serde(default)]
    lat: String,
    #[serde(default)]
    csv: String,
}

/// What a form post leaves on the page it renders.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    form: RegisterForm,
    error: Option<String>,
    issued: Vec<(i64, String, String)>,
}

#[derive(Deserialize)]
pub struct DashboardQuery {
    region: Option<String>,
}

/// The viewer's region when none is asked for: their narrowest scope.
fn default_region(s: &Signed) -> String {
    s.auth
        .principal
        .grants
        .iter()
        .filter_map(|g| match &g.scope {
            Scope::Region(c) => Some(c.to_string()),
            Scope::All => None,
        })
        .max_by_key(String::len)
        .unwrap_or_else(|| "36".to_owned())
}

fn alarm_row(a: &Alarm, may_act: bool) -> AlarmRow {
    AlarmRow {
        id: a.id,
        device_id: a.device_id,
        device: a.device_name.clone(),
        severity: a.severity.as_str(),
        rule: a.rule_name.clone(),
        message: a.message.clone(),
        raised: local_time(&a.raised_at),
        status: a.status.as_str(),
        can_act: may_act && a.status != Status::Cleared,
        active: a.status == Status::Active,
    }
}

/// Latest value per metric of each device, by device id.
async fn latest_of(
    state: &AppState,
    list: &[Device],
) -> Result<BTreeMap<i64, Vec<(String, series::RawPoint)>>, CoreError> {
    let mut out = BTreeMap::new();
    for d in list {
        out.insert(d.id, series::latest(&state.db, d.id).await?);
    }
    Ok(out)
}

pub async fn dashboard(
    State(state): State<AppState>,
    s: Signed,
    PageQuery(q): PageQuery<DashboardQuery>,
) -> PageResult {
    let region_code = q.region.unwrap_or_else(|| default_region(&s));
    render_dashboard(&state, &s, region_code, Outcome::default()).await
}

/// Registers one device from the form, or every device of the pasted CSV,
/// and shows the region's dashboard with the new tokens, once.
pub async fn register(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    PageQuery(q): PageQuery<DashboardQuery>,
    super::common::PageForm(form): super::common::PageForm<RegisterForm>,
) -> PageResult {
    let region_code = q.region.unwrap_or_else(|| default_region(&s));
    let p = &s.auth.principal;
    let actor = s.auth.actor(&ip);
    let registered = if form.csv.trim().is_empty() {
        register_one(&state, p, &actor, &form).await
    } else {
        devices::import_csv(&state.db, p, &actor, &form.csv).await.map(|list| {
            list.into_iter()
                .map(|i| (i.device.id, i.device.name, i.token))
                .collect()
        })
    };
    let outcome = match registered {
        Ok(issued) => Outcome {
            issued,
            ..Outcome::default()
        },
        Err(e) => {
            let (status, message) = super::admin::inline(AppError::from(e))?;
            Outcome {
                status: Some(status),
                form,
                error: Some(message),
                issued: Vec::new(),
            }
        }
    };
    render_dashboard(&state, &s, region_code, outcome).await
}

async fn register_one(
    state: &AppState,
    p: &shuxiang_core::auth::Principal,
    actor: &shuxiang_core::auth::Actor,
    form: &RegisterForm,
) -> Result<Vec<(i64, String, String)>, CoreError> {
    let coordinate = |v: &str, what: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| CoreError::invalid("invalid_location", format!("{what} {v:?} is not a number")))
    };
    let new = NewDevice {
        name: form.name.clone(),
        device_type: form.device_type.clone(),
        village: form.village.trim().to_owned(),
        location: Location {
            lon: coordinate(&form.lon, "longitude")?,
            lat: coordinate(&form.lat, "latitude")?,
        },
        owner: None,
        ranges: Default::default(),
    };
    let r = devices::create(&state.db, p, actor, new).await?;
    Ok(vec![(r.device.id, r.device.name, r.token)])
}

async fn render_dashboard(state: &AppState, s: &Signed, region_code: String, outcome: Outcome) -> PageResult {
    let mt = texts(s.lang);
    let p = &s.auth.principal;
    let code = RegionCode::parse(&region_code).map_err(AppError::from)?;
    p.require_see(&code).map_err(AppError::from)?;
    let region = regions::require(&state.db, &code).await.map_err(AppError::from)?;
    let filter = DeviceQuery {
        region: Some(region.code.clone()),
        limit: Some(MAX_DEVICES),
        ..Default::default()
    };
    let list = devices::list(&state.db, p, &filter).await.map_err(AppError::from)?;
    let latest = latest_of(&state, &list).await.map_err(AppError::from)?;
    let now = now_ms();
    let mut village_codes: Vec<RegionCode> = list.iter().map(|d| d.village.clone()).collect();
    village_codes.sort();
    village_codes.dedup();
    let names: BTreeMap<String, String> = regions::names(&state.db, &village_codes)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .collect();
    let devices = list
        .iter()
        .map(|d| {
            let values = &latest[&d.id];
            let last = values.iter().map(|(_, p)| p.ts_ms).max();
            DeviceRow {
                id: d.id,
                name: d.name.clone(),
                kind: type_label(d.device_type, s.lang),
                village: names
                    .get(d.village.as_str())
                    .cloned()
                    .unwrap_or_else(|| d.village.to_string()),
                latest: values
                    .iter()
                    .map(|(m, v)| {
                        format!(
                            "{} {}",
                            metric_label(d.device_type, m, s.lang),
                            format_value(d.device_type, m, v.value)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" · "),
                last_seen: last.map(time_of).unwrap_or_else(|| mt.never.to_owned()),
                online: last.is_some_and(|t| now - t <= OFFLINE_AFTER_MS),
            }
        })
        .collect();

    // Alarms: staff see their region's; a farmer's list holds their devices'.
    let may_read_alarms = p
        .grants
        .iter()
        .any(|g| matches!(g.role, Role::Admin | Role::Official | Role::VillageStaff | Role::Farmer));
    let alarms = if may_read_alarms {
        let filter = AlarmQuery {
            region: p
                .can(&[Role::Admin, Role::Official, Role::VillageStaff, Role::Farmer], &code)
                .then(|| region.code.clone()),
            status: None,
            device: None,
            before: None,
            limit: Some(50),
        };
        alarms::list_alarms(&state.db, p, &filter)
            .await
            .map_err(AppError::from)?
            .iter()
            .filter(|a| a.status != Status::Cleared && a.village.starts_with(&region.code))
            .map(|a| {
                alarm_row(
                    a,
                    p.can(alarms::STAFF, &RegionCode::parse(&a.village).unwrap_or(code.clone())),
                )
            })
            .collect()
    } else {
        Vec::new()
    };

    // The county map with the devices on it, and the villages' overview.
    let county = (code.level() >= RegionLevel::County)
        .then(|| RegionCode::parse(&region.code[..6]))
        .transpose()
        .map_err(AppError::from)?;
    let map = match &county {
        Some(c) => regions::boundary(&state.db, c)
            .await
            .map_err(AppError::from)?
            .and_then(|b| svgmap::parse_boundary(&b.simplified))
            .and_then(|shape| {
                let markers: Vec<(f64, f64)> = list.iter().map(|d| (d.location.lon, d.location.lat)).collect();
                svgmap::outline("device-map", &region.name, &shape, &markers)
            }),
        None => None,
    };
    let villages = overview(&list, &latest, &names);
    let can_register = p.grants.iter().any(|g| devices::MANAGERS.contains(&g.role)) && p.can(devices::MANAGERS, &code);
    render(
        outcome.status.unwrap_or(StatusCode::OK),
        &DashboardPage {
            c: s.chrome(),
            mt,
            region_code: region.code.clone(),
            region_name: region.name.clone(),
            map,
            devices,
            alarms,
            villages,
            can_register,
            types: DeviceType::ALL
                .iter()
                .map(|t| (t.as_str(), type_label(*t, s.lang)))
                .collect(),
            form: outcome.form,
            error: outcome.error,
            issued: outcome.issued,
        },
    )
}

/// Per village: the mean of its soil probes' latest water content, and its
/// water-quality sensors' latest pH, turbidity and residual chlorine.
fn overview(
    list: &[Device],
    latest: &BTreeMap<i64, Vec<(String, series::RawPoint)>>,
    names: &BTreeMap<String, String>,
) -> Vec<VillageRow> {
    let mut by_village: BTreeMap<&str, (Vec<f64>, Vec<String>)> = BTreeMap::new();
    for d in list {
        let values = &latest[&d.id];
        let get = |k: &str| values.iter().find(|(m, _)| m == k).map(|(_, p)| p.value);
        let entry = by_village.entry(d.village.as_str()).or_default();
        match d.device_type {
            DeviceType::SoilMoisture => entry.0.extend(get("vwc")),
            DeviceType::WaterQuality => {
                let part = |k: &str| get(k).map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
                entry.1.push(format!(
                    "{} / {} / {}",
                    part("ph"),
                    part("turbidity"),
                    part("residual_chlorine")
                ));
            }
            _ => {}
        }
    }
    by_village
        .into_iter()
        .filter(|(_, (vwc, water))| !vwc.is_empty() || !water.is_empty())
        .map(|(code, (vwc, water))| VillageRow {
            name: names.get(code).cloned().unwrap_or_else(|| code.to_owned()),
            vwc: if vwc.is_empty() {
                "–".into()
            } else {
                format!("{:.1}", vwc.iter().sum::<f64>() / vwc.len() as f64)
            },
            water: if water.is_empty() {
                "–".into()
            } else {
                water.join("; ")
            },
        })
        .collect()
}

// ---- one device ----

pub struct MetricChart {
    pub label: String,
    pub latest: String,
    pub svg: String,
}

pub struct RangeLink {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "monitoring_device.html")]
struct DevicePage {
    c: Chrome,
    mt: &'static MonitoringTexts,
    name: String,
    kind: &'static str,
    village_code: String,
    village: String,
    ranges: Vec<RangeLink>,
    charts: Vec<MetricChart>,
    alarms: Vec<AlarmRow>,
    rejected: Vec<(String, i64, String)>,
}

#[derive(Deserialize)]
pub struct DeviceQueryParams {
    range: Option<String>,
}

/// The windows a device page offers and the roll-up each is drawn from.
const RANGES: [(&str, &str, i64, Step); 4] = [
    ("24h", "24 小时 / 24 h", 86_400_000, Step::Minute),
    ("7d", "7 天 / 7 d", 7 * 86_400_000, Step::Hour),
    ("30d", "30 天 / 30 d", 30 * 86_400_000, Step::Hour),
    ("1y", "1 年 / 1 y", 365 * 86_400_000, Step::Day),
];

pub async fn device_page(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<DeviceQueryParams>,
) -> PageResult {
    let mt = texts(s.lang);
    let p = &s.auth.principal;
    let id: i64 = id
        .parse()
        .map_err(|_| PageError::not_found(format!("no device {id}")))?;
    let device = devices::get_visible(&state.db, p, id).await.map_err(AppError::from)?;
    let range = q.range.as_deref().unwrap_or("24h");
    let (_, _, span, step) = RANGES.iter().find(|r| r.0 == range).copied().unwrap_or(RANGES[0]);
    let to = now_ms();
    let from = to - span;
    let latest = series::latest(&state.db, id).await.map_err(AppError::from)?;
    let mut charts = Vec::new();
    for m in device.device_type.metrics() {
        let points: Vec<ChartPoint> = series::rollup(&state.db, id, m.key, from, to, step)
            .await
            .map_err(AppError::from)?
            .into_iter()
            .map(|r| ChartPoint {
                ts_ms: r.ts_ms,
                value: r.avg,
                band: Some((r.min, r.max)),
            })
            .collect();
        let label = metric_label(device.device_type, m.key, s.lang);
        charts.push(MetricChart {
            svg: svgchart::render(&Chart {
                from_ms: from,
                to_ms: to,
                points: &points,
                references: &[],
                unit: m.unit,
                empty_text: mt.no_data,
            }),
            latest: latest
                .iter()
                .find(|(k, _)| k == m.key)
                .map(|(_, v)| {
                    format!(
                        "{} ({})",
                        format_value(device.device_type, m.key, v.value),
                        time_of(v.ts_ms)
                    )
                })
                .unwrap_or_default(),
            label,
        });
    }
    let alarms = if p
        .grants
        .iter()
        .any(|g| matches!(g.role, Role::Admin | Role::Official | Role::VillageStaff | Role::Farmer))
    {
        let filter = AlarmQuery {
            region: None,
            status: None,
            device: Some(id),
            before: None,
            limit: Some(20),
        };
        let may_act = p.can(alarms::STAFF, &device.village);
        alarms::list_alarms(&state.db, p, &filter)
            .await
            .map_err(AppError::from)?
            .iter()
            .map(|a| alarm_row(a, may_act))
            .collect()
    } else {
        Vec::new()
    };
    let rejected = devices::rejections(&state.db, id)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .map(|r| (r.error, r.count, r.last_message))
        .collect();
    let village = regions::names(&state.db, std::slice::from_ref(&device.village))
        .await
        .map_err(AppError::from)?
        .into_iter()
        .next()
        .map(|(_, n)| n)
        .unwrap_or_else(|| device.village.to_string());
    render(
        StatusCode::OK,
        &DevicePage {
            c: s.chrome(),
            mt,
            name: device.name.clone(),
            kind: type_label(device.device_type, s.lang),
            village_code: device.village.to_string(),
            village,
            ranges: RANGES
                .iter()
                .map(|(key, label, _, _)| RangeLink {
                    label,
                    href: format!("/monitoring/devices/{id}?range={key}"),
                    current: *key == range,
                })
                .collect(),
            charts,
            alarms,
            rejected,
        },
    )
}

// ---- alarm actions from the pages ----

#[derive(Deserialize)]
pub struct AlarmAction {
    /// Where to go back to (a path on this site).
    back: Option<String>,
}

pub async fn alarm_action(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path((id, action)): Path<(String, String)>,
    super::common::PageForm(form): super::common::PageForm<AlarmAction>,
) -> PageResult {
    let id: i64 = id.parse().map_err(|_| PageError::not_found(format!("no alarm {id}")))?;
    let actor = s.auth.actor(&ip);
    match action.as_str() {
        "acknowledge" => alarms::acknowledge(&state.db, &s.auth.principal, &actor, id, now_ms()).await,
        "clear" => alarms::clear(&state.db, &s.auth.principal, &actor, id, now_ms()).await,
        other => return Err(PageError::not_found(format!("no alarm action {other}"))),
    }
    .map_err(AppError::from)?;
    let back = form
        .back
        .as_deref()
        .and_then(super::common::safe_next)
        .unwrap_or("/monitoring")
        .to_owned();
    Ok(Redirect::to(&back).into_response())
}
