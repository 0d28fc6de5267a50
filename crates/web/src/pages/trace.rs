//! `/t/{code}`: what a consumer sees after scanning a label — the crop, its
//! producer, its village on a map, the inputs applied, harvest and tests,
//! and a badge saying whether every line was verified against the signed
//! trace log. Public, small, no JavaScript: it opens on any phone.
//!
//! The facts are read from the logged events themselves (not from side
//! tables), so the badge vouches for exactly what the page shows.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use shuxiang_core::region::RegionCode;
use shuxiang_core::regions;
use shuxiang_trace::keys::TraceLogKeys;
use shuxiang_trace::produce::store::{self, Scanned};
use shuxiang_trace::produce::verify::{Verification, verify_scan};
use shuxiang_trace::produce::{BIZSTEP_APPLYING_INPUT, BIZSTEP_HARVESTING, TraceCode};

use super::common::{Chrome, PageError, PageResult, Visitor, encode_query_value, render};
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
};

fn texts(lang: Lang) -> &'static TraceTexts {
    match lang {
        Lang::Zh => &ZH,
        Lang::En => &EN,
    }
}

/// One line of the production record.
pub struct Step {
    pub date: String,
    pub label: &'static str,
    pub detail: String,
    /// The event's inclusion proof, for anyone verifying offline.
    pub proof_href: String,
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

async fn origin(state: &AppState, scanned: &Scanned) -> Result<(String, Option<String>), AppError> {
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
            let marker = scanned.lon.zip(scanned.lat);
            svgmap::outline("origin-map", &names.join(" "), &shape, marker.as_slice())
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
    let (origin, map) = origin(&state, &scanned).await?;
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
    };
    render(StatusCode::OK, &page)
}
