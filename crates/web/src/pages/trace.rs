//! `/t/{code}`: what a consumer sees after scanning a label — the crop, its
//! producer, its village on a map, the inputs applied, harvest and tests,
//! and a badge saying whether every line was verified against the signed
//! trace log. Public, small, no JavaScript: it opens on any phone.
//!
//! The facts are read from the logged events themselves (not from side
//! tables), so the badge vouches for exactly what the page shows. Below
//! them, set apart and labelled as such, the logistics slice's records of
//! the shipments that carried the code: the path, the times, handover
//! temperatures and a cold-chain badge. Those are not in the signed log, so
//! the page says so rather than let the log's badge seem to cover them.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use shuxiang_core::region::RegionCode;
use shuxiang_core::regions;
use shuxiang_logistics::coldchain::{Band, Direction, ListSource, TemperatureSource};
use shuxiang_logistics::journey::{self, Basis, ColdChain, Endpoint, Journey};
use shuxiang_logistics::report::{ColdChainSource, Verdict};
use shuxiang_logistics::shipments::Status;
use shuxiang_trace::keys::TraceLogKeys;
use shuxiang_trace::produce::store::{self, Scanned};
use shuxiang_trace::produce::verify::{Verification, verify_scan};
use shuxiang_trace::produce::{BIZSTEP_APPLYING_INPUT, BIZSTEP_HARVESTING, TraceCode};

use super::common::{Chrome, PageError, PageResult, Visitor, encode_query_value, local_time, render, texts_in};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::svgmap;

/// The page's own texts, in the two languages of the UI.
pub struct TraceTexts {
    pub title: &'static str,
    pub producer: &'static str,
    pub origin: &'static str,
    pub history: &'static str,
    pub planted: &'static str,
    pub input: &'static str,
    pub harvest: &'static str,
    pub test: &'static str,
    pub passed: &'static str,
    pub failed: &'static str,
    pub packed: &'static str,
    pub verified: &'static str,
    pub pending: &'static str,
    pub not_verified: &'static str,
    pub code: &'static str,
    pub package_of: &'static str,
    pub check_yourself: &'static str,
    pub unknown: &'static str,
    pub logistics: &'static str,
    pub logistics_note: &'static str,
    pub buyer: &'static str,
    pub band: &'static str,
    pub booked: &'static str,
    pub picked_up: &'static str,
    pub transfer: &'static str,
    pub delivered: &'static str,
    pub on_time: &'static str,
    pub late: &'static str,
    pub in_transit: &'static str,
    pub waiting: &'static str,
    pub out_of_band: &'static str,
    pub cc_held: &'static str,
    pub cc_excursions: &'static str,
    pub cc_gaps: &'static str,
    pub cc_no_data: &'static str,
    pub cc_not_started: &'static str,
    pub cc_handovers_ok: &'static str,
    pub cc_handovers_bad: &'static str,
    pub cc_unmeasured: &'static str,
    pub cc_ambient: &'static str,
    pub too_warm: &'static str,
    pub too_cold: &'static str,
    pub peak: &'static str,
    pub minutes: &'static str,
    pub ongoing: &'static str,
    pub gap: &'static str,
}

static ZH: TraceTexts = TraceTexts {
    title: "产品追溯",
    producer: "生产者",
    origin: "产地",
    history: "生产记录",
    planted: "种植登记",
    input: "投入品使用",
    harvest: "采收",
    test: "质量检测",
    passed: "合格",
    failed: "不合格",
    packed: "包装贴码",
    verified: "✓ 已验证：以下每条记录都在平台签名的防篡改日志中，内容未被改动",
    pending: "… 待确认：最新记录将在下一次签名（数秒内）后可验证",
    not_verified: "✗ 验证失败：以下记录与签名日志不符，请联系当地农业农村部门",
    code: "追溯码",
    package_of: "本包装属于批次",
    check_yourself: "自行验证（公钥与证明）",
    unknown: "未找到该追溯码。请核对标签上的16位码。",
    logistics: "物流",
    logistics_note: "物流信息来自物流系统记录，不在上方的签名日志中。",
    buyer: "采购方",
    band: "温度要求",
    booked: "预约揽收",
    picked_up: "揽收",
    transfer: "中转交接",
    delivered: "送达",
    on_time: "准时",
    late: "晚于约定时间",
    in_transit: "运输中",
    waiting: "待揽收",
    out_of_band: "超出温度要求",
    cc_held: "✓ 冷链全程达标：温度记录仪全程读数均在要求范围内",
    cc_excursions: "✗ 冷链曾超标：",
    cc_gaps: "… 冷链读数均达标，但记录有数据缺口：",
    cc_no_data: "… 车辆温度记录仪在途中没有数据，无法证明冷链",
    cc_not_started: "… 尚未揽收",
    cc_handovers_ok: "… 车辆无温度记录仪；交接时测温均在要求范围内（仅为交接时刻）",
    cc_handovers_bad: "✗ 车辆无温度记录仪；交接时测温超出要求范围",
    cc_unmeasured: "… 车辆无温度记录仪，交接时也未测温，无法证明冷链",
    cc_ambient: "常温货物，无需冷链",
    too_warm: "偏高",
    too_cold: "偏低",
    peak: "峰值",
    minutes: "分钟",
    ongoing: "仍在超标",
    gap: "数据缺口",
};

static EN: TraceTexts = TraceTexts {
    title: "Product trace",
    producer: "Producer",
    origin: "Origin",
    history: "Production record",
    planted: "Batch registered",
    input: "Farm input applied",
    harvest: "Harvest",
    test: "Quality test",
    passed: "passed",
    failed: "failed",
    packed: "Packed and labelled",
    verified: "✓ Verified: every record below is in the platform's signed tamper-evident log, unchanged",
    pending: "… Pending: the newest records become verifiable at the next signature, seconds away",
    not_verified: "✗ Verification failed: the records below do not match the signed log; contact the local agriculture bureau",
    code: "Trace code",
    package_of: "This package belongs to batch",
    check_yourself: "Verify it yourself (public key and proofs)",
    unknown: "No such trace code. Check the 16 characters on the label.",
    logistics: "Logistics",
    logistics_note: "From the logistics system's records, not part of the signed log above.",
    buyer: "Buyer",
    band: "Required temperature",
    booked: "Pickup booked",
    picked_up: "Picked up",
    transfer: "Handed over",
    delivered: "Delivered",
    on_time: "on time",
    late: "late",
    in_transit: "in transit",
    waiting: "awaiting pickup",
    out_of_band: "outside the required range",
    cc_held: "✓ Cold chain held: every logger reading on the way was in range",
    cc_excursions: "✗ Cold chain broken:",
    cc_gaps: "… Logger readings were in range, but the record has data gaps:",
    cc_no_data: "… The vehicle's logger sent no data on the way; the cold chain cannot be shown",
    cc_not_started: "… Not picked up yet",
    cc_handovers_ok: "… No logger on the vehicle; temperatures measured at handovers were in range (those moments only)",
    cc_handovers_bad: "✗ No logger on the vehicle; a temperature measured at handover was out of range",
    cc_unmeasured: "… No logger on the vehicle and no temperature measured at handovers; the cold chain cannot be shown",
    cc_ambient: "Ambient goods: no cold chain needed",
    too_warm: "too warm",
    too_cold: "too cold",
    peak: "peak",
    minutes: "min",
    ongoing: "still out of range",
    gap: "data gap",
};

fn texts(lang: Lang) -> &'static TraceTexts {
    texts_in(lang, &ZH, &EN)
}

/// One line of the production record.
pub struct Step {
    pub date: String,
    pub label: &'static str,
    pub detail: String,
    /// The event's inclusion proof, for anyone verifying offline.
    pub proof_href: String,
}

/// One line of a shipment's path.
pub struct PathStep {
    pub time: String,
    pub label: &'static str,
    pub detail: String,
}

/// One shipment that carried the code, as the page shows it.
pub struct JourneyView {
    pub from: String,
    pub to: String,
    pub band: Option<String>,
    pub steps: Vec<PathStep>,
    /// The cold-chain verdict (`held`, `excursions`, …) for tests and styles.
    pub verdict: &'static str,
    /// "verified", "pending" or "failed", as the log's badge is styled.
    pub badge: &'static str,
    pub badge_text: &'static str,
    /// Excursions and data gaps, one line each.
    pub findings: Vec<String>,
}

#[derive(Template)]
#[template(path = "trace.html")]
struct TracePage {
    c: Chrome,
    tt: &'static TraceTexts,
    code: String,
    batch_code: Option<String>,
    crop: String,
    producer: String,
    origin: String,
    map: Option<String>,
    steps: Vec<Step>,
    /// "verified", "pending" or "failed".
    badge: &'static str,
    badge_text: &'static str,
    problems: Vec<String>,
    journeys: Vec<JourneyView>,
}

#[derive(Template)]
#[template(path = "trace_unknown.html")]
struct UnknownPage {
    c: Chrome,
    tt: &'static TraceTexts,
    code: String,
}

fn text<'a>(body: &'a Map<String, Value>, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or("")
}

fn step_of(tt: &'static TraceTexts, body: &Map<String, Value>, hash_id: &str) -> Step {
    let date = text(body, "eventTime").get(..10).unwrap_or("").to_owned();
    let (label, detail) = match text(body, "bizStep") {
        "commissioning" => (tt.planted, text(body, "sx:parcel").to_owned()),
        BIZSTEP_APPLYING_INPUT => {
            let reg = text(body, "sx:registrationNumber");
            let product = if reg.is_empty() {
                text(body, "sx:product").to_owned()
            } else {
                format!("{} ({reg})", text(body, "sx:product"))
            };
            (tt.input, format!("{product} · {}", text(body, "sx:amount")))
        }
        BIZSTEP_HARVESTING => (
            tt.harvest,
            body.get("sx:quantityKg")
                .and_then(Value::as_f64)
                .map(|q| format!("{q} kg"))
                .unwrap_or_default(),
        ),
        "inspecting" => {
            let verdict = if text(body, "disposition") == "conformant" {
                tt.passed
            } else {
                tt.failed
            };
            (
                tt.test,
                format!("{} · {verdict} · {}", text(body, "sx:testItem"), text(body, "sx:lab")),
            )
        }
        "packing" => (
            tt.packed,
            body.get("childEPCs")
                .and_then(Value::as_array)
                .map(|c| format!("× {}", c.len()))
                .unwrap_or_default(),
        ),
        _ => (tt.history, String::new()),
    };
    Step {
        date,
        label,
        detail,
        proof_href: format!("/api/v1/trace/proof?event={}", encode_query_value(hash_id)),
    }
}

/// The origin's name path and its county's map, with a dot where the batch
/// grew and at each point of the logistics path inside the county.
async fn origin(
    state: &AppState,
    scanned: &Scanned,
    path_points: &[(f64, f64)],
) -> Result<(String, Option<String>), AppError> {
    let code = RegionCode::parse(&scanned.village)?;
    let Some((village, ancestors)) = regions::resolve_with_ancestors(&state.db, &code).await? else {
        return Ok((scanned.village.clone(), None));
    };
    let mut names: Vec<String> = ancestors.into_iter().map(|(_, name)| name).collect();
    names.push(village.name.clone());
    let county = RegionCode::parse(&scanned.village[..6])?;
    let map = regions::boundary(&state.db, &county)
        .await?
        .and_then(|b| svgmap::parse_boundary(&b.simplified))
        .and_then(|shape| {
            let markers: Vec<(f64, f64)> = scanned
                .lon
                .zip(scanned.lat)
                .into_iter()
                .chain(path_points.iter().copied())
                .collect();
            svgmap::outline("origin-map", &names.join(" "), &shape, &markers)
        });
    Ok((names.join(" › "), map))
}

fn badge(v: &Verification, tt: &'static TraceTexts) -> (&'static str, &'static str) {
    if !v.failed.is_empty() {
        ("failed", tt.not_verified)
    } else if v.pending > 0 || v.verified == 0 {
        ("pending", tt.pending)
    } else {
        ("verified", tt.verified)
    }
}

fn temperature(t: f64) -> String {
    format!("{t:.1} °C")
}

fn band_text(b: &Band) -> Option<String> {
    match (b.min_c, b.max_c) {
        (Some(lo), Some(hi)) => Some(format!("{lo}–{hi} °C")),
        (None, Some(hi)) => Some(format!("≤ {hi} °C")),
        (Some(lo), None) => Some(format!("≥ {lo} °C")),
        (None, None) => None,
    }
}

fn endpoint_name(e: &Endpoint, tt: &'static TraceTexts) -> String {
    match (&e.name, e.kind) {
        (_, "buyer") => tt.buyer.to_owned(),
        (Some(n), _) => n.clone(),
        (None, _) => e.region_code.clone().unwrap_or_default(),
    }
}

fn cold_chain_badge(cc: &ColdChain, tt: &'static TraceTexts) -> (&'static str, &'static str) {
    if !cc.applicable {
        return ("verified", tt.cc_ambient);
    }
    match (cc.verdict, cc.basis) {
        (Verdict::Held, _) => ("verified", tt.cc_held),
        (Verdict::Excursions, _) => ("failed", tt.cc_excursions),
        (Verdict::Gaps, _) => ("pending", tt.cc_gaps),
        (Verdict::NoData, _) => ("pending", tt.cc_no_data),
        (Verdict::NotStarted, _) => ("pending", tt.cc_not_started),
        (Verdict::NoLogger, Basis::HandoverTemperatures) if cc.handovers_out_of_band > 0 => {
            ("failed", tt.cc_handovers_bad)
        }
        (Verdict::NoLogger, Basis::HandoverTemperatures) => ("pending", tt.cc_handovers_ok),
        (Verdict::NoLogger, _) => ("pending", tt.cc_unmeasured),
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Held => "held",
        Verdict::Excursions => "excursions",
        Verdict::Gaps => "gaps",
        Verdict::NoData => "no_data",
        Verdict::NoLogger => "no_logger",
        Verdict::NotStarted => "not_started",
    }
}

fn minutes(seconds: f64) -> String {
    format!("{:.0}", (seconds / 60.0).ceil())
}

fn journey_view(j: &Journey, tt: &'static TraceTexts) -> JourneyView {
    let mut steps = vec![PathStep {
        time: local_time(&j.booked_at),
        label: tt.booked,
        detail: String::new(),
    }];
    for h in &j.handovers {
        let mut detail = h.temperature_c.map(temperature).unwrap_or_default();
        if h.in_band == Some(false) {
            detail = format!("{detail} · {}", tt.out_of_band);
        }
        steps.push(PathStep {
            time: local_time(&h.at),
            label: if h.kind == "pickup" { tt.picked_up } else { tt.transfer },
            detail,
        });
    }
    match (j.delivered_at, j.status) {
        (Some(at), _) => steps.push(PathStep {
            time: local_time(&at),
            label: tt.delivered,
            detail: match j.on_time {
                Some(false) => tt.late.to_owned(),
                _ => tt.on_time.to_owned(),
            },
        }),
        (None, Status::PickedUp | Status::InTransit) => steps.push(PathStep {
            time: String::new(),
            label: tt.in_transit,
            detail: String::new(),
        }),
        (None, _) => steps.push(PathStep {
            time: String::new(),
            label: tt.waiting,
            detail: String::new(),
        }),
    }
    let cc = &j.cold_chain;
    let (badge, badge_text) = cold_chain_badge(cc, tt);
    let mut findings: Vec<String> = cc
        .excursions
        .iter()
        .map(|e| {
            let side = match e.direction {
                Direction::TooWarm => tt.too_warm,
                Direction::TooCold => tt.too_cold,
            };
            let mut line = format!(
                "{side} · {} {} · {} · {} {}",
                tt.peak,
                temperature(e.peak_c),
                local_time(&e.start),
                minutes(e.duration_s),
                tt.minutes
            );
            if e.ongoing {
                line = format!("{line} · {}", tt.ongoing);
            }
            line
        })
        .collect();
    findings.extend(cc.gaps.iter().map(|g| {
        format!(
            "{} · {} · {} {}",
            tt.gap,
            local_time(&g.from),
            minutes(g.duration_s),
            tt.minutes
        )
    }));
    JourneyView {
        from: endpoint_name(&j.origin, tt),
        to: endpoint_name(&j.destination, tt),
        band: band_text(&j.band),
        steps,
        verdict: verdict_name(cc.verdict),
        badge,
        badge_text,
        findings,
    }
}

/// The points of the shipments' paths that have coordinates.
fn path_points(journeys: &[Journey]) -> Vec<(f64, f64)> {
    journeys
        .iter()
        .flat_map(|j| [&j.origin, &j.destination])
        .filter_map(|e| e.lon.zip(e.lat))
        .collect()
}

pub async fn trace_page(State(state): State<AppState>, v: Visitor, Path(raw): Path<String>) -> PageResult {
    let tt = texts(v.lang);
    let unknown = || {
        render(
            StatusCode::NOT_FOUND,
            &UnknownPage {
                c: v.chrome(),
                tt,
                code: raw.clone(),
            },
        )
    };
    let Ok(code) = TraceCode::parse(&raw) else {
        return unknown();
    };
    let Some(scanned) = store::scan(&state.db, &code).await.map_err(AppError::from)? else {
        return unknown();
    };
    let keys = state.slice::<TraceLogKeys>().ok_or_else(|| {
        PageError::from(AppError(shuxiang_core::CoreError::Internal(
            "trace log keys missing".into(),
        )))
    })?;
    let verification = verify_scan(&state.db, &keys.signer.verifier(), &scanned)
        .await
        .map_err(AppError::from)?;
    let (badge, badge_text) = badge(&verification, tt);
    let commissioning = scanned.events.first().map(|e| &e.body);
    let empty = ListSource::default();
    let source: &dyn TemperatureSource = match state.slice::<ColdChainSource>() {
        Some(s) => s.0.as_ref(),
        None => &empty,
    };
    let journeys = journey::journeys_for_trace_code(&state.db, source, code.as_str())
        .await
        .map_err(AppError::from)?;
    let (origin, map) = origin(&state, &scanned, &path_points(&journeys)).await?;
    let page = TracePage {
        c: v.chrome(),
        tt,
        code: code.grouped(),
        batch_code: scanned.is_package.then(|| {
            TraceCode::parse(&scanned.batch_code)
                .map(|c| c.grouped())
                .unwrap_or_default()
        }),
        crop: commissioning.map(|b| text(b, "sx:crop").to_owned()).unwrap_or_default(),
        producer: commissioning
            .map(|b| text(b, "sx:producer").to_owned())
            .unwrap_or_default(),
        origin,
        map,
        steps: scanned
            .events
            .iter()
            .map(|e| step_of(tt, &e.body, &e.hash_id))
            .collect(),
        badge,
        badge_text,
        problems: verification
            .failed
            .iter()
            .map(|(id, why)| format!("{id}: {why}"))
            .collect(),
        journeys: journeys.iter().map(|j| journey_view(j, tt)).collect(),
    };
    render(StatusCode::OK, &page)
}
