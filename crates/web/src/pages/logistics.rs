//! 物流监管 officials' logistics pages: a region's overview on its county
//! map (sites and the villages that shipped, shipments per village with the
//! on-time and handover-excursion rates, the network per tier, empty
//! running, drill-down to townships and villages) and a shipment's printable
//! cold-chain report in the manner of GB 31605 (logger, band, extremes, MKT,
//! excursions, gaps, chart, sign-off). Server-drawn SVG; no JavaScript.
//!
//! The numbers come from the logistics slice's own functions called with
//! the viewer's principal, so a page shows exactly what the API would.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::Deserialize;
use shuxiang_core::CoreError;
use shuxiang_core::auth::Scope;
use shuxiang_core::region::{RegionCode, RegionLevel};
use shuxiang_core::regions;
use shuxiang_logistics::coldchain::{BandSource, Direction, ListSource, TemperatureSource};
use shuxiang_logistics::network::{self, SiteQuery, Tier};
use shuxiang_logistics::report::{self, ColdChainSource, Verdict};
use shuxiang_logistics::shipments::{self, ShipmentQuery, Status};
use shuxiang_logistics::stats::{self, Period, RegionStats};

use super::common::{
    Chrome, PageError, PageQuery, PageResult, Signed, encode_query_value, local_time, render, temperature_class_label,
    texts_in,
};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::svgchart::{self, Chart, ChartPoint, ReferenceLine};
use crate::svgmap;

/// Shipments listed with links to their reports.
const MAX_SHIPMENTS: u64 = 100;
/// Sites drawn on the map.
const MAX_SITES: u64 = 500;
const STATUSES: [Status; 6] = [
    Status::Booked,
    Status::Planned,
    Status::PickedUp,
    Status::InTransit,
    Status::Delivered,
    Status::Cancelled,
];

pub struct LogisticsTexts {
    pub title: &'static str,
    pub period: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub apply: &'static str,
    pub legend_sites: &'static str,
    pub legend_villages: &'static str,
    pub totals: &'static str,
    pub by_village: &'static str,
    pub village: &'static str,
    pub shipments: &'static str,
    pub by_status: &'static str,
    pub on_time_rate: &'static str,
    pub excursion_rate: &'static str,
    pub no_shipments: &'static str,
    pub drill_down: &'static str,
    pub tiers: &'static str,
    pub tier: &'static str,
    pub sites: &'static str,
    pub cold_sites: &'static str,
    pub shipments_from: &'static str,
    pub shipments_to: &'static str,
    pub empty_running: &'static str,
    pub empty_hint: &'static str,
    pub plans: &'static str,
    pub routes: &'static str,
    pub empty_km: &'static str,
    pub total_km: &'static str,
    pub ratio: &'static str,
    pub recent: &'static str,
    pub shipment: &'static str,
    pub goods: &'static str,
    pub status: &'static str,
    pub ready: &'static str,
    pub on_time: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub report: &'static str,
    // the cold-chain report
    pub report_title: &'static str,
    pub print_hint: &'static str,
    pub commodity: &'static str,
    pub class: &'static str,
    pub trace_codes: &'static str,
    pub origin: &'static str,
    pub destination: &'static str,
    pub deadline: &'static str,
    pub delivered: &'static str,
    pub receiver: &'static str,
    pub logger: &'static str,
    pub vehicle: &'static str,
    pub device: &'static str,
    pub no_logger: &'static str,
    pub band: &'static str,
    pub band_source: &'static str,
    pub window: &'static str,
    pub readings: &'static str,
    pub min: &'static str,
    pub max: &'static str,
    pub mean: &'static str,
    pub mkt: &'static str,
    pub verdict: &'static str,
    pub chart: &'static str,
    pub excursions: &'static str,
    pub no_excursions: &'static str,
    pub start: &'static str,
    pub end: &'static str,
    pub duration: &'static str,
    pub peak: &'static str,
    pub direction: &'static str,
    pub leg: &'static str,
    pub gaps: &'static str,
    pub no_gaps: &'static str,
    pub no_data: &'static str,
    pub signoff: &'static str,
    pub shipper: &'static str,
    pub carrier: &'static str,
    pub consignee: &'static str,
    pub signature: &'static str,
    pub date: &'static str,
    pub ongoing: &'static str,
}

static ZH: LogisticsTexts = LogisticsTexts {
    title: "农村物流监管",
    period: "统计期间",
    from: "起始日",
    to: "截止日",
    apply: "查询",
    legend_sites: "● 物流站点",
    legend_villages: "● 有发货的村",
    totals: "全区合计",
    by_village: "各村发货",
    village: "村（乡镇）",
    shipments: "运单数",
    by_status: "状态分布",
    on_time_rate: "准时率",
    excursion_rate: "交接温度超标率",
    no_shipments: "该区域本期没有运单。",
    drill_down: "下级区域",
    tiers: "三级物流网络",
    tier: "层级",
    sites: "站点",
    cold_sites: "其中有冷库",
    shipments_from: "自该级站点发出",
    shipments_to: "送往该级站点",
    empty_running: "空驶率",
    empty_hint: "按调度计划：每条收集线路从场站空车驶往第一个揽收点的里程，占线路总里程的比例（计划里程）。",
    plans: "调度计划",
    routes: "线路",
    empty_km: "空驶里程 km",
    total_km: "总里程 km",
    ratio: "空驶率",
    recent: "运单与冷链报告",
    shipment: "运单",
    goods: "货物",
    status: "状态",
    ready: "备货时间",
    on_time: "准时",
    yes: "是",
    no: "否",
    report: "冷链报告",
    report_title: "冷链运输温度记录报告",
    print_hint: "打印：请使用浏览器的“打印”功能（Ctrl+P），可另存为 PDF。",
    commodity: "品类",
    class: "温度等级",
    trace_codes: "追溯码",
    origin: "起运地",
    destination: "目的地",
    deadline: "送达时限",
    delivered: "送达时间",
    receiver: "签收人",
    logger: "温度记录仪",
    vehicle: "车辆",
    device: "记录仪设备编号",
    no_logger: "该车辆未配备温度记录仪",
    band: "温度要求",
    band_source: "依据",
    window: "记录区间",
    readings: "读数个数",
    min: "最低",
    max: "最高",
    mean: "平均",
    mkt: "平均动力学温度 MKT",
    verdict: "结论",
    chart: "温度曲线",
    excursions: "温度超标记录",
    no_excursions: "无温度超标。",
    start: "开始",
    end: "结束",
    duration: "持续（分钟）",
    peak: "极值",
    direction: "方向",
    leg: "交接段",
    gaps: "数据缺失",
    no_gaps: "无数据缺失。",
    no_data: "无温度数据",
    signoff: "签字确认",
    shipper: "托运方",
    carrier: "承运方",
    consignee: "收货方",
    signature: "签字",
    date: "日期",
    ongoing: "（持续中）",
};

static EN: LogisticsTexts = LogisticsTexts {
    title: "Rural logistics overview",
    period: "Period",
    from: "From",
    to: "To",
    apply: "Show",
    legend_sites: "● logistics sites",
    legend_villages: "● villages that shipped",
    totals: "Region total",
    by_village: "Shipments by village",
    village: "Village (township)",
    shipments: "Shipments",
    by_status: "By status",
    on_time_rate: "On time",
    excursion_rate: "Handover excursions",
    no_shipments: "No shipments in this region and period.",
    drill_down: "Regions below",
    tiers: "Network by tier",
    tier: "Tier",
    sites: "Sites",
    cold_sites: "with cold storage",
    shipments_from: "Shipped from this tier",
    shipments_to: "Shipped to this tier",
    empty_running: "Empty running",
    empty_hint: "From dispatch plans: the depot-to-first-pickup leg each collection run drives empty, over the runs' total planned kilometres.",
    plans: "Plans",
    routes: "Routes",
    empty_km: "Empty km",
    total_km: "Total km",
    ratio: "Empty ratio",
    recent: "Shipments and cold-chain reports",
    shipment: "Shipment",
    goods: "Goods",
    status: "Status",
    ready: "Ready",
    on_time: "On time",
    yes: "yes",
    no: "no",
    report: "Cold-chain report",
    report_title: "Cold-chain temperature record",
    print_hint: "To print, use the browser's Print command (Ctrl+P); it can save a PDF.",
    commodity: "Commodity",
    class: "Temperature class",
    trace_codes: "Trace codes",
    origin: "Origin",
    destination: "Destination",
    deadline: "Deadline",
    delivered: "Delivered",
    receiver: "Received by",
    logger: "Temperature logger",
    vehicle: "Vehicle",
    device: "Logger device",
    no_logger: "The vehicle has no temperature logger",
    band: "Required range",
    band_source: "Basis",
    window: "Recorded from – to",
    readings: "Readings",
    min: "Minimum",
    max: "Maximum",
    mean: "Mean",
    mkt: "Mean kinetic temperature (MKT)",
    verdict: "Verdict",
    chart: "Temperature chart",
    excursions: "Excursions",
    no_excursions: "No excursions.",
    start: "Start",
    end: "End",
    duration: "Duration (min)",
    peak: "Peak",
    direction: "Direction",
    leg: "Leg",
    gaps: "Data gaps",
    no_gaps: "No data gaps.",
    no_data: "No temperature data",
    signoff: "Sign-off",
    shipper: "Shipper",
    carrier: "Carrier",
    consignee: "Receiver",
    signature: "Signature",
    date: "Date",
    ongoing: " (ongoing)",
};

fn texts(lang: Lang) -> &'static LogisticsTexts {
    texts_in(lang, &ZH, &EN)
}

fn status_label(s: Status, lang: Lang) -> &'static str {
    match (lang, s) {
        (Lang::Zh, Status::Booked) => "已预约",
        (Lang::Zh, Status::Planned) => "已调度",
        (Lang::Zh, Status::PickedUp) => "已揽收",
        (Lang::Zh, Status::InTransit) => "运输中",
        (Lang::Zh, Status::Delivered) => "已送达",
        (Lang::Zh, Status::Cancelled) => "已取消",
        (Lang::En, s) => s.as_str(),
    }
}

fn tier_label(t: Tier, lang: Lang) -> &'static str {
    match (lang, t) {
        (Lang::Zh, Tier::Province) => "省级",
        (Lang::Zh, Tier::City) => "市级",
        (Lang::Zh, Tier::County) => "县级",
        (Lang::Zh, Tier::Village) => "乡村级",
        (Lang::En, t) => t.as_str(),
    }
}

fn band_source_label(s: BandSource, lang: Lang) -> &'static str {
    match (lang, s) {
        (Lang::Zh, BandSource::Shipment) => "托运时约定",
        (Lang::Zh, BandSource::Commodity) => "品类默认温度",
        (Lang::Zh, BandSource::Class) => "温度等级默认（GB/T 24616）",
        (Lang::En, BandSource::Shipment) => "set on the shipment",
        (Lang::En, BandSource::Commodity) => "the commodity's default",
        (Lang::En, BandSource::Class) => "the temperature class's default (GB/T 24616)",
    }
}

fn verdict_label(v: Verdict, lang: Lang) -> &'static str {
    match (lang, v) {
        (Lang::Zh, Verdict::Held) => "冷链完整",
        (Lang::Zh, Verdict::Excursions) => "有温度超标",
        (Lang::Zh, Verdict::Gaps) => "有数据缺失",
        (Lang::Zh, Verdict::NoData) => "无温度数据",
        (Lang::Zh, Verdict::NoLogger) => "无记录仪",
        (Lang::Zh, Verdict::NotStarted) => "尚未揽收",
        (Lang::En, Verdict::Held) => "cold chain held",
        (Lang::En, Verdict::Excursions) => "excursions",
        (Lang::En, Verdict::Gaps) => "data gaps",
        (Lang::En, Verdict::NoData) => "no data",
        (Lang::En, Verdict::NoLogger) => "no logger",
        (Lang::En, Verdict::NotStarted) => "not picked up yet",
    }
}

fn direction_label(d: Direction, lang: Lang) -> &'static str {
    match (lang, d) {
        (Lang::Zh, Direction::TooWarm) => "过高",
        (Lang::Zh, Direction::TooCold) => "过低",
        (Lang::En, Direction::TooWarm) => "too warm",
        (Lang::En, Direction::TooCold) => "too cold",
    }
}

fn percent(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "–".into())
}

fn celsius(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2} °C")).unwrap_or_else(|| "–".into())
}

// ---- the region overview ----

pub struct VillageStats {
    pub code: String,
    pub name: String,
    pub shipments: i64,
    pub by_status: String,
    pub on_time_rate: String,
    pub excursion_rate: String,
}

pub struct ChildLink {
    pub href: String,
    pub name: String,
    pub shipments: i64,
}

pub struct TierRow {
    pub label: &'static str,
    pub sites: i64,
    pub cold: i64,
    pub from: i64,
    pub to: i64,
}

pub struct ShipmentRow {
    pub id: i64,
    pub village: String,
    pub goods: String,
    pub status: &'static str,
    pub ready: String,
    pub on_time: &'static str,
}

#[derive(Template)]
#[template(path = "logistics_overview.html")]
struct OverviewPage {
    c: Chrome,
    lt: &'static LogisticsTexts,
    region_code: String,
    region_name: String,
    from: String,
    to: String,
    map: Option<String>,
    totals: VillageStats,
    villages: Vec<VillageStats>,
    children: Vec<ChildLink>,
    tiers: Vec<TierRow>,
    plans: i64,
    routes: i64,
    empty_km: String,
    total_km: String,
    empty_ratio: String,
    shipments: Vec<ShipmentRow>,
}

#[derive(Deserialize)]
pub struct OverviewQuery {
    region: Option<String>,
    from: Option<String>,
    to: Option<String>,
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

/// A day from the period form; an empty field is no bound.
fn day(raw: &Option<String>, what: &str) -> Result<Option<NaiveDate>, CoreError> {
    match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| CoreError::malformed("invalid_period", format!("{what} {s:?} is not a date YYYY-MM-DD"))),
    }
}

fn village_stats(r: &RegionStats, name: String, lang: Lang) -> VillageStats {
    VillageStats {
        code: r.region_code.clone(),
        name,
        shipments: r.shipments,
        by_status: r
            .by_status
            .iter()
            .map(|(k, n)| {
                let label = STATUSES
                    .into_iter()
                    .find(|s| s.as_str() == *k)
                    .map_or(*k, |s| status_label(s, lang));
                format!("{label} {n}")
            })
            .collect::<Vec<_>>()
            .join(" · "),
        on_time_rate: percent(r.on_time_rate),
        excursion_rate: percent(r.handover_excursion_rate),
    }
}

pub async fn overview(State(state): State<AppState>, s: Signed, PageQuery(q): PageQuery<OverviewQuery>) -> PageResult {
    let lt = texts(s.lang);
    let p = &s.auth.principal;
    let region_code = q.region.clone().unwrap_or_else(|| default_region(&s));
    let code = RegionCode::parse(&region_code).map_err(AppError::from)?;
    let period = Period {
        from: day(&q.from, "from").map_err(AppError::from)?,
        to: day(&q.to, "to").map_err(AppError::from)?,
    };
    let st = stats::stats_in(&state.db, p, &code, &period)
        .await
        .map_err(AppError::from)?;
    let region = regions::require(&state.db, &code).await.map_err(AppError::from)?;

    let list = shipments::list(
        &state.db,
        p,
        &ShipmentQuery {
            region: Some(code.clone()),
            limit: Some(MAX_SHIPMENTS),
            ..Default::default()
        },
    )
    .await
    .map_err(AppError::from)?;
    let in_period = |d: NaiveDate| period.from.is_none_or(|f| d >= f) && period.to.is_none_or(|t| d <= t);
    let china = chrono::FixedOffset::east_opt(8 * 3600).ok_or_else(|| CoreError::Internal("UTC+8".into()))?;
    let list: Vec<_> = list
        .into_iter()
        .filter(|sh| in_period(sh.ready_at.with_timezone(&china).date_naive()))
        .collect();

    let mut codes: Vec<RegionCode> = st
        .by_region
        .iter()
        .filter_map(|r| RegionCode::parse(&r.region_code).ok())
        .collect();
    codes.extend(list.iter().filter_map(|sh| RegionCode::parse(&sh.region_code).ok()));
    codes.sort();
    codes.dedup();
    let names: BTreeMap<String, String> = regions::names(&state.db, &codes)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .collect();
    let name_of = |c: &str| names.get(c).cloned().unwrap_or_else(|| c.to_owned());

    let period_query = format!(
        "{}{}",
        period.from.map(|d| format!("&from={d}")).unwrap_or_default(),
        period.to.map(|d| format!("&to={d}")).unwrap_or_default()
    );
    let children = if code.level() < RegionLevel::Village {
        regions::children(&state.db, &code)
            .await
            .map_err(AppError::from)?
            .into_iter()
            .map(|k| ChildLink {
                href: format!("/logistics?region={}{period_query}", encode_query_value(&k.code)),
                shipments: st
                    .by_region
                    .iter()
                    .filter(|r| r.region_code.starts_with(&k.code))
                    .map(|r| r.shipments)
                    .sum(),
                name: k.name,
            })
            .collect()
    } else {
        Vec::new()
    };

    // The county's outline with its sites and the villages that shipped,
    // each village at the mean of its pickup points.
    let county = (code.level() >= RegionLevel::County)
        .then(|| RegionCode::parse(&region.code[..6]))
        .transpose()
        .map_err(AppError::from)?;
    let map = match &county {
        Some(c) => {
            let sites = network::list_sites(
                &state.db,
                &SiteQuery {
                    region: Some(c.clone()),
                    limit: Some(MAX_SITES),
                    ..Default::default()
                },
            )
            .await
            .map_err(AppError::from)?;
            let site_points: Vec<(f64, f64)> = sites.iter().map(|x| (x.lon, x.lat)).collect();
            let mut by_village: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
            for sh in &list {
                if let (Some(lon), Some(lat)) = (sh.origin.lon, sh.origin.lat) {
                    let e = by_village.entry(sh.region_code.as_str()).or_default();
                    *e = (e.0 + lon, e.1 + lat, e.2 + 1.0);
                }
            }
            let village_points: Vec<(f64, f64)> = by_village.values().map(|(x, y, n)| (x / n, y / n)).collect();
            regions::boundary(&state.db, c)
                .await
                .map_err(AppError::from)?
                .and_then(|b| svgmap::parse_boundary(&b.simplified))
                .and_then(|shape| {
                    svgmap::outline_layers(
                        "logistics-map",
                        &region.name,
                        &shape,
                        &[("site", &site_points), ("village", &village_points)],
                    )
                })
        }
        None => None,
    };

    let e = &st.empty_running;
    render(
        StatusCode::OK,
        &OverviewPage {
            c: s.chrome(),
            lt,
            region_code: region.code.clone(),
            region_name: region.name.clone(),
            from: period.from.map(|d| d.to_string()).unwrap_or_default(),
            to: period.to.map(|d| d.to_string()).unwrap_or_default(),
            map,
            totals: village_stats(&st.totals, lt.totals.to_owned(), s.lang),
            villages: st
                .by_region
                .iter()
                .map(|r| village_stats(r, name_of(&r.region_code), s.lang))
                .collect(),
            children,
            tiers: st
                .tiers
                .iter()
                .map(|t| TierRow {
                    label: tier_label(t.tier, s.lang),
                    sites: t.sites,
                    cold: t.cold_storage_sites,
                    from: t.shipments_from,
                    to: t.shipments_to,
                })
                .collect(),
            plans: e.plans,
            routes: e.routes,
            empty_km: format!("{:.1}", e.empty_km),
            total_km: format!("{:.1}", e.total_km),
            empty_ratio: percent(e.ratio),
            shipments: list
                .iter()
                .map(|sh| ShipmentRow {
                    id: sh.id,
                    village: name_of(&sh.region_code),
                    goods: sh.goods.clone(),
                    status: status_label(sh.status, s.lang),
                    ready: local_time(&sh.ready_at),
                    on_time: match sh.on_time {
                        Some(true) => lt.yes,
                        Some(false) => lt.no,
                        None => "–",
                    },
                })
                .collect(),
        },
    )
}

// ---- a shipment's cold-chain report ----

pub struct ExcursionRow {
    pub start: String,
    pub end: String,
    pub minutes: String,
    pub peak: String,
    pub direction: &'static str,
    pub leg: String,
    pub ongoing: bool,
}

pub struct GapRow {
    pub from: String,
    pub to: String,
    pub minutes: String,
}

#[derive(Template)]
#[template(path = "logistics_report.html")]
struct ReportPage {
    c: Chrome,
    lt: &'static LogisticsTexts,
    id: i64,
    region_code: String,
    goods: String,
    commodity: String,
    class: &'static str,
    trace_codes: String,
    origin: String,
    destination: String,
    ready: String,
    deadline: String,
    status: &'static str,
    delivered: String,
    receiver: String,
    plate: String,
    logger_device_id: Option<i64>,
    band: String,
    band_source: &'static str,
    window: String,
    readings: usize,
    min: String,
    max: String,
    mean: String,
    mkt: String,
    verdict: &'static str,
    held: bool,
    chart: String,
    excursions: Vec<ExcursionRow>,
    gaps: Vec<GapRow>,
    generated: String,
}

fn band_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("{lo}–{hi} °C"),
        (None, Some(hi)) => format!("≤ {hi} °C"),
        (Some(lo), None) => format!("≥ {lo} °C"),
        (None, None) => "–".into(),
    }
}

pub async fn cold_chain_report(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> PageResult {
    let lt = texts(s.lang);
    let p = &s.auth.principal;
    let id: i64 = id
        .parse()
        .map_err(|_| PageError::not_found(format!("no shipment {id}")))?;
    // The report's source, or none when the IoT slice is not wired in (the
    // report then says there is no data, as the API does).
    let source: Arc<dyn TemperatureSource> = match state.slice::<ColdChainSource>() {
        Some(src) => src.0.clone(),
        None => Arc::new(ListSource::default()),
    };
    let r = report::report(&state.db, source.as_ref(), p, id, None)
        .await
        .map_err(AppError::from)?;
    let sh = shipments::get(&state.db, p, id).await.map_err(AppError::from)?;

    let readings = match (r.logger_device_id, r.window_from, r.window_to) {
        (Some(device), Some(from), Some(to)) => source
            .readings(device, from.timestamp_millis(), to.timestamp_millis())
            .await
            .map_err(AppError::from)?,
        _ => Vec::new(),
    };
    let points: Vec<ChartPoint> = readings
        .iter()
        .map(|x| ChartPoint {
            ts_ms: x.ts_ms,
            value: x.celsius,
            band: None,
        })
        .collect();
    let references: Vec<ReferenceLine> = [r.band.min_c, r.band.max_c]
        .into_iter()
        .flatten()
        .map(|v| ReferenceLine {
            value: v,
            label: format!("{v} °C"),
        })
        .collect();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let chart = svgchart::render(&Chart {
        from_ms: r.window_from.map_or(now_ms, |t| t.timestamp_millis()),
        to_ms: r.window_to.map_or(now_ms, |t| t.timestamp_millis()),
        points: &points,
        references: &references,
        unit: "°C",
        empty_text: lt.no_data,
    });

    let place = |pl: &shipments::Place| {
        let name = pl.name.clone().unwrap_or_default();
        match (pl.lon, pl.lat) {
            (Some(lon), Some(lat)) => format!("{name} ({lon:.4}, {lat:.4})"),
            _ => name,
        }
    };
    let excursions = r
        .excursions
        .iter()
        .map(|e| ExcursionRow {
            start: local_time(&e.start),
            end: local_time(&e.end),
            minutes: format!("{:.1}", e.duration_s / 60.0),
            peak: celsius(Some(match e.direction {
                Direction::TooWarm => e.max_c,
                Direction::TooCold => e.min_c,
            })),
            direction: direction_label(e.direction, s.lang),
            leg: e
                .leg
                .and_then(|i| r.legs.get(i))
                .map(|l| format!("{} → {}", l.from_party, l.to_party))
                .unwrap_or_else(|| "–".into()),
            ongoing: e.ongoing,
        })
        .collect();
    let gaps = r
        .gaps
        .iter()
        .map(|g| GapRow {
            from: local_time(&g.from),
            to: local_time(&g.to),
            minutes: format!("{:.1}", g.duration_s / 60.0),
        })
        .collect();
    render(
        StatusCode::OK,
        &ReportPage {
            c: s.chrome(),
            lt,
            id,
            region_code: sh.region_code.clone(),
            goods: sh.goods.clone(),
            commodity: sh.commodity.clone(),
            class: temperature_class_label(sh.temperature_class, s.lang),
            trace_codes: sh.trace_codes.join(", "),
            origin: place(&sh.origin),
            destination: place(&sh.destination),
            ready: local_time(&sh.ready_at),
            deadline: local_time(&sh.deadline),
            status: status_label(sh.status, s.lang),
            delivered: sh.delivered_at.as_ref().map(local_time).unwrap_or_else(|| "–".into()),
            receiver: sh.receiver_name.clone().unwrap_or_else(|| "–".into()),
            plate: r.plate.clone().unwrap_or_else(|| "–".into()),
            logger_device_id: r.logger_device_id,
            band: band_text(r.band.min_c, r.band.max_c),
            band_source: band_source_label(r.band_source, s.lang),
            window: match (r.window_from, r.window_to) {
                (Some(f), Some(t)) => format!("{} – {}", local_time(&f), local_time(&t)),
                _ => "–".into(),
            },
            readings: r.readings,
            min: celsius(r.min_c),
            max: celsius(r.max_c),
            mean: celsius(r.mean_c),
            mkt: celsius(r.mkt_c),
            verdict: verdict_label(r.verdict, s.lang),
            held: r.verdict == Verdict::Held,
            chart,
            excursions,
            gaps,
            generated: local_time(&chrono::Utc::now()),
        },
    )
}
