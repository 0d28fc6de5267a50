//! Region pages: one handler for all five levels (breadcrumbs, counts, a
//! map for provinces and cities, the subdivisions, a village's type and its
//! form), the village-type form's target, and name search.
//!
//! Scope checks are the API's: a region is shown when the viewer may see
//! it, and a village's type is editable exactly when the PATCH would be
//! allowed (`VILLAGE_TYPE_EDITORS` over a covering scope).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use shuxiang_core::regions::{self, Region};
use shuxiang_core::{CoreError, RegionCode, RegionLevel, VillageType};

use super::common::{Chrome, PageError, PageForm, PageQuery, PageResult, Signed, non_empty, render};
use crate::api::regions::{VILLAGE_TYPE_EDITORS, set_village_type, visible_region};
use crate::extract::ClientIp;
use crate::i18n::{Lang, Texts};
use crate::state::AppState;
use crate::svgmap::{self, Area};

/// A step of the breadcrumb trail; ancestors outside the viewer's scope
/// are named but not linked.
pub struct Crumb {
    pub name: String,
    pub href: Option<String>,
}

/// A subdivision in the list below the map.
pub struct ChildRow {
    pub code: String,
    pub name: String,
    pub note: String,
}

pub struct TypeOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

pub struct VillageView {
    pub type_label: &'static str,
    /// The edit form's choices, when the viewer may classify the village.
    pub options: Option<Vec<TypeOption>>,
}

#[derive(Template)]
#[template(path = "region.html")]
struct RegionPage {
    c: Chrome,
    query: String,
    name: String,
    code: String,
    level: &'static str,
    crumbs: Vec<Crumb>,
    counts: String,
    map: Option<String>,
    outline: Option<String>,
    children_heading: String,
    children: Vec<ChildRow>,
    village: Option<VillageView>,
    saved: bool,
}

#[derive(Deserialize)]
pub struct RegionQuery {
    saved: Option<String>,
}

/// Label size on the province map, whose 100 counties are small, and on a
/// city map, whose ten or so counties have room.
const PROVINCE_LABEL_PX: f64 = 7.0;
const CITY_LABEL_PX: f64 = 13.0;

pub async fn region_page(
    State(state): State<AppState>,
    s: Signed,
    Path(raw): Path<String>,
    PageQuery(q): PageQuery<RegionQuery>,
) -> PageResult {
    // A malformed code names no page, the same as an unknown one.
    let code = RegionCode::parse(&raw).map_err(|_| PageError::not_found(format!("no region with code {raw}")))?;
    let region = regions::require(&state.db, &code).await?;
    let p = &s.auth.principal;
    p.require_see(&region.code())?;
    let lang = s.lang;
    let t = lang.texts();
    let code = region.code();

    let mut crumbs: Vec<Crumb> = regions::names(&state.db, &code.ancestors())
        .await?
        .into_iter()
        .map(|(c, name)| {
            let href = RegionCode::parse(&c)
                .ok()
                .filter(|rc| p.can_see(rc))
                .map(|_| format!("/regions/{c}"));
            Crumb { name, href }
        })
        .collect();
    crumbs.push(Crumb {
        name: region.name.clone(),
        href: None,
    });

    let kids = regions::children(&state.db, &code).await?;
    let map = match region.level() {
        RegionLevel::Province => province_map(&state, &region, &kids, t).await?,
        RegionLevel::City => city_map(&state, &region, &kids, t).await?,
        _ => None,
    };
    let outline = match region.level() {
        RegionLevel::County => regions::boundary(&state.db, &code)
            .await?
            .and_then(|b| svgmap::parse_boundary(&b.simplified))
            .and_then(|shape| {
                svgmap::outline("region-outline", &format!("{} {}", region.name, t.outline), &shape, &[])
            }),
        _ => None,
    };
    let village = (region.level() == RegionLevel::Village).then(|| {
        let current = region.village_type();
        let options = p.can(VILLAGE_TYPE_EDITORS, &code).then(|| type_options(lang, current));
        VillageView {
            type_label: lang.village_type_label(current),
            options,
        }
    });
    let children_heading = match region.level().child() {
        Some(l) => format!("{} · {}", t.children, lang.level_label(l)),
        None => String::new(),
    };
    let page = RegionPage {
        c: s.chrome(),
        query: String::new(),
        name: region.name.clone(),
        code: region.code.clone(),
        level: lang.level_label(region.level()),
        crumbs,
        counts: counts_line(&region, t),
        map,
        outline,
        children_heading,
        children: kids.iter().map(|k| child_row(k, lang)).collect(),
        village,
        saved: q.saved.is_some(),
    };
    render(StatusCode::OK, &page)
}

/// "11 市 · 100 县（区） · …" for the levels below `r`.
fn counts_line(r: &Region, t: &Texts) -> String {
    let c = r.counts();
    let all = [
        (RegionLevel::City, c.city, t.cities),
        (RegionLevel::County, c.county, t.counties),
        (RegionLevel::Township, c.township, t.townships),
        (RegionLevel::Village, c.village, t.villages),
    ];
    let below: Vec<String> = all
        .iter()
        .filter(|(l, ..)| *l > r.level())
        .map(|(_, n, label)| format!("{n} {label}"))
        .collect();
    below.join(" · ")
}

/// The number that matters one level further down, or a village's type.
fn child_row(k: &Region, lang: Lang) -> ChildRow {
    let t = lang.texts();
    let c = k.counts();
    let note = match k.level() {
        RegionLevel::Province => format!("{} {}", c.city, t.cities),
        RegionLevel::City => format!("{} {}", c.county, t.counties),
        RegionLevel::County => format!("{} {}", c.township, t.townships),
        RegionLevel::Township => format!("{} {}", c.village, t.villages),
        RegionLevel::Village => lang.village_type_label(k.village_type()).to_string(),
    };
    ChildRow {
        code: k.code.clone(),
        name: k.name.clone(),
        note,
    }
}

fn type_options(lang: Lang, current: Option<VillageType>) -> Vec<TypeOption> {
    let mut out = vec![TypeOption {
        value: "",
        label: lang.village_type_label(None),
        selected: current.is_none(),
    }];
    out.extend(VillageType::ALL.into_iter().map(|v| TypeOption {
        value: v.as_str(),
        label: lang.village_type_label(Some(v)),
        selected: current == Some(v),
    }));
    out
}

/// Areas for the regions of `shapes` (code, GeoJSON), named from `named`.
fn areas(shapes: Vec<(String, String)>, named: &[Region], group: usize) -> Vec<Area> {
    let names: HashMap<&str, &str> = named.iter().map(|r| (r.code.as_str(), r.name.as_str())).collect();
    shapes
        .into_iter()
        .filter_map(|(code, text)| {
            let shape = svgmap::parse_boundary(&text)?;
            let name = names.get(code.as_str()).map_or_else(|| code.clone(), |n| n.to_string());
            Some(Area {
                code,
                name,
                shape,
                group,
            })
        })
        .collect()
}

/// The province drawn from its counties, each linking to its page, with the
/// city outlines over them, since the counties are where the work happens.
async fn province_map(
    state: &AppState,
    province: &Region,
    cities: &[Region],
    t: &Texts,
) -> Result<Option<String>, CoreError> {
    let mut all = Vec::new();
    for (i, city) in cities.iter().enumerate() {
        let counties = regions::children(&state.db, &city.code()).await?;
        all.extend(areas(
            regions::child_boundaries(&state.db, &city.code()).await?,
            &counties,
            i,
        ));
    }
    let borders: Vec<_> = regions::child_boundaries(&state.db, &province.code())
        .await?
        .into_iter()
        .filter_map(|(_, text)| svgmap::parse_boundary(&text))
        .collect();
    Ok(svgmap::region_map(
        "region-map",
        &format!("{} {}", province.name, t.map),
        &all,
        &borders,
        PROVINCE_LABEL_PX,
    ))
}

async fn city_map(
    state: &AppState,
    city: &Region,
    counties: &[Region],
    t: &Texts,
) -> Result<Option<String>, CoreError> {
    let mut all = areas(regions::child_boundaries(&state.db, &city.code()).await?, counties, 0);
    for (i, a) in all.iter_mut().enumerate() {
        a.group = i;
    }
    Ok(svgmap::region_map(
        "region-map",
        &format!("{} {}", city.name, t.map),
        &all,
        &[],
        CITY_LABEL_PX,
    ))
}

#[derive(Deserialize)]
pub struct VillageTypeForm {
    village_type: Option<String>,
}

/// Sets a village's type through the same function as the API's PATCH.
pub async fn set_type(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path(raw): Path<String>,
    PageForm(form): PageForm<VillageTypeForm>,
) -> PageResult {
    let region = visible_region(&state, &s.auth.principal, &raw).await?;
    let vt = non_empty(&form.village_type).map(VillageType::parse).transpose()?;
    set_village_type(&state, &s.auth, &ip, &region, vt).await?;
    Ok(Redirect::to(&format!("/regions/{}?saved=1", region.code)).into_response())
}

pub struct SearchRow {
    pub code: String,
    pub name: String,
    pub level: &'static str,
    /// Names of the ancestors, province first.
    pub path: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    c: Chrome,
    query: String,
    searched: bool,
    results: Vec<SearchRow>,
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

const SEARCH_LIMIT: u64 = 50;

/// Regions whose name contains the query, within the viewer's scopes.
pub async fn search(State(state): State<AppState>, s: Signed, PageQuery(q): PageQuery<SearchQuery>) -> PageResult {
    let query = non_empty(&q.q).unwrap_or("").to_string();
    let scopes = s.auth.principal.scopes(None);
    let found = regions::search(&state.db, &query, scopes.as_deref(), SEARCH_LIMIT).await?;
    // Every ancestor of every hit in one query, for the paths.
    let mut wanted: Vec<RegionCode> = found.iter().flat_map(|r| r.code().ancestors()).collect();
    wanted.sort();
    wanted.dedup();
    let names: HashMap<String, String> = regions::names(&state.db, &wanted).await?.into_iter().collect();
    let results = found
        .iter()
        .map(|r| SearchRow {
            code: r.code.clone(),
            name: r.name.clone(),
            level: s.lang.level_label(r.level()),
            path: r
                .code()
                .ancestors()
                .iter()
                .filter_map(|a| names.get(a.as_str()).cloned())
                .collect::<Vec<_>>()
                .join(" › "),
        })
        .collect();
    let page = SearchPage {
        c: s.chrome(),
        searched: !query.is_empty(),
        query,
        results,
    };
    render(StatusCode::OK, &page)
}
