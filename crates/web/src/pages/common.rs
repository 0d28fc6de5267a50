//! What every page shares: the signed-in viewer and language, the layout's
//! header data, HTML error pages, the sign-in redirect, the language cookie,
//! form extraction and the embedded stylesheet.
//!
//! Handlers return [`PageResult`]; an error leaves the handler as a marker
//! and [`shell`] renders it inside the layout, in the request's language and
//! with the viewer's header, so every error path yields the same page.

use std::sync::{Arc, OnceLock};

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;
use shuxiang_core::CoreError;
use shuxiang_core::auth::Role;
use shuxiang_logistics::coldchain::TemperatureClass;

use crate::error::AppError;
use crate::extract::{Auth, LANG_COOKIE};
use crate::i18n::{Lang, Texts};
use crate::state::AppState;

pub type PageResult<T = Response> = Result<T, PageError>;

/// Roles that see the administration pages (users, audit log).
pub const STAFF: &[Role] = &[Role::Admin, Role::Official];

/// Characters left as they are in a query value: unreserved ones and `/`,
/// so `next=/regions/36` stays readable.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

pub fn encode_query_value(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

// ---- the stylesheet ----

pub const CSS: &str = include_str!("../../static/app.css");

/// FNV-1a of the stylesheet, computed at compile time: the URL changes
/// whenever the file does, so it can be cached for a year.
const CSS_HASH: u32 = {
    let bytes = CSS.as_bytes();
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
};

pub fn css_href() -> &'static str {
    static HREF: OnceLock<String> = OnceLock::new();
    HREF.get_or_init(|| format!("/static/app.css?v={CSS_HASH:08x}"))
}

pub async fn stylesheet() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        CSS,
    )
        .into_response()
}

// ---- who is looking, in which language ----

/// The signed-in user as the layout shows them.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub display_name: String,
    /// Administrators and officials: the users and audit pages are theirs.
    pub staff: bool,
    /// Village staff, who watch their village's devices.
    pub village_staff: bool,
    /// Farm-input dealers, who keep their shop's ledger.
    pub dealer: bool,
    /// Carriers, who read their dispatch plans and run sheets.
    pub carrier: bool,
}

/// Filled by the page extractors, read by [`shell`] to render error pages
/// with the viewer's header.
#[derive(Clone, Default)]
struct ViewerSlot(Arc<OnceLock<Viewer>>);

/// The layout's data: language, texts, viewer and the links in the header.
pub struct Chrome {
    pub lang: Lang,
    pub t: &'static Texts,
    pub viewer: Option<Viewer>,
    /// The current page in the other language.
    pub switch_href: String,
    pub css_href: &'static str,
}

impl Chrome {
    pub fn new(lang: Lang, viewer: Option<Viewer>, uri: &Uri) -> Self {
        Self {
            lang,
            t: lang.texts(),
            viewer,
            switch_href: switch_href(uri, lang.other()),
            css_href: css_href(),
        }
    }
}

/// `uri` with `lang` set to `to` (other query parameters kept).
fn switch_href(uri: &Uri, to: Lang) -> String {
    let mut query: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("lang="))
        .collect();
    let lang = format!("lang={}", to.code());
    query.push(&lang);
    format!("{}?{}", uri.path(), query.join("&"))
}

/// The language asked for in the query (`?lang=en`), which is remembered.
fn query_lang(uri: &Uri) -> Option<Lang> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("lang="))
        .and_then(Lang::parse)
}

fn request_lang(uri: &Uri, headers: &HeaderMap) -> Lang {
    query_lang(uri)
        .or_else(|| {
            CookieJar::from_headers(headers)
                .get(LANG_COOKIE)
                .and_then(|c| Lang::parse(c.value()))
        })
        .unwrap_or_default()
}

/// A page for a signed-in user. Without a session the request is sent to
/// the sign-in page, which brings the user back here afterwards.
pub struct Signed {
    pub auth: Auth,
    pub lang: Lang,
    pub uri: Uri,
}

impl Signed {
    pub fn chrome(&self) -> Chrome {
        Chrome::new(self.lang, Some(viewer_of(&self.auth)), &self.uri)
    }
}

fn viewer_of(a: &Auth) -> Viewer {
    let p = &a.principal;
    Viewer {
        display_name: p.display_name.clone(),
        staff: p.grants.iter().any(|g| STAFF.contains(&g.role)),
        village_staff: p.grants.iter().any(|g| g.role == Role::VillageStaff),
        dealer: p.grants.iter().any(|g| g.role == Role::Dealer),
        carrier: p.grants.iter().any(|g| g.role == Role::Carrier),
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = request_lang(&parts.uri, &parts.headers);
        match Auth::from_request_parts(parts, state).await {
            Ok(auth) => {
                if let Some(slot) = parts.extensions.get::<ViewerSlot>() {
                    let _ = slot.0.set(viewer_of(&auth));
                }
                Ok(Self {
                    auth,
                    lang,
                    uri: parts.uri.clone(),
                })
            }
            Err(AppError(CoreError::Unauthenticated)) => Err(to_login(parts).into_response()),
            Err(e) => Err(PageError(e).into_response()),
        }
    }
}

/// 303 to the sign-in page; a page read comes back to where it was.
fn to_login(parts: &Parts) -> Redirect {
    let back = matches!(parts.method, Method::GET | Method::HEAD)
        .then(|| parts.uri.path_and_query().map(|pq| pq.as_str().to_string()))
        .flatten()
        .filter(|p| safe_next(p).is_some());
    match back {
        Some(p) if p != "/" => Redirect::to(&format!("/login?next={}", encode_query_value(&p))),
        _ => Redirect::to("/login"),
    }
}

/// A page anyone may open (the sign-in page).
pub struct Visitor {
    pub lang: Lang,
    pub uri: Uri,
}

impl Visitor {
    pub fn chrome(&self) -> Chrome {
        Chrome::new(self.lang, None, &self.uri)
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self {
            lang: request_lang(&parts.uri, &parts.headers),
            uri: parts.uri.clone(),
        })
    }
}

/// `next` if it is a path on this site: it must start with one `/`, since
/// `//host` and `/\host` would leave the site, and carry no control bytes.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control());
    ok.then_some(next)
}

// ---- errors ----

/// An error leaving a page handler; rendered as an HTML page by [`shell`].
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<CoreError> for PageError {
    fn from(e: CoreError) -> Self {
        Self(AppError(e))
    }
}

impl PageError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self(AppError::not_found(what))
    }
}

/// The marker [`shell`] turns into an error page.
#[derive(Clone)]
struct Fault {
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = self.0.public_message();
        let mut resp = (status, message.clone()).into_response();
        if let CoreError::TooManyAttempts { retry_after_secs } = self.0.0 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        resp.extensions_mut().insert(Fault { message });
        resp
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    status: u16,
    heading: &'static str,
    detail: String,
}

fn error_page(c: Chrome, status: StatusCode, message: String) -> String {
    let t = c.t;
    let (heading, detail) = match status {
        StatusCode::FORBIDDEN => (t.forbidden, String::new()),
        StatusCode::NOT_FOUND => (t.not_found, String::new()),
        StatusCode::TOO_MANY_REQUESTS => (t.too_many_attempts, String::new()),
        s if s.is_server_error() => (t.server_error, String::new()),
        _ => (t.bad_request, message),
    };
    ErrorPage {
        c,
        status: status.as_u16(),
        heading,
        detail,
    }
    .render()
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "error page failed to render");
        String::from("error")
    })
}

/// A page's text table in `lang`: every page keeps its texts as one `ZH`
/// and one `EN` table of its own struct, so a missing translation does not
/// compile.
pub fn texts_in<T>(lang: Lang, zh: &'static T, en: &'static T) -> &'static T {
    match lang {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

/// A cold-chain temperature class in words, as the shipment and dispatch
/// pages show it on shipments and vehicles alike.
pub fn temperature_class_label(class: TemperatureClass, lang: Lang) -> &'static str {
    match (lang, class) {
        (Lang::Zh, TemperatureClass::Ambient) => "常温",
        (Lang::Zh, TemperatureClass::Chilled) => "冷藏",
        (Lang::Zh, TemperatureClass::Frozen) => "冷冻",
        (Lang::En, c) => c.as_str(),
    }
}

/// A time as people in Jiangxi read it (China Standard Time).
pub fn local_time(at: &chrono::DateTime<chrono::Utc>) -> String {
    const CST: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
        Some(o) => o,
        None => panic!("UTC+8 is a valid offset"),
    };
    at.with_timezone(&CST).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Renders a template with a status, as UTF-8 HTML.
pub fn render(status: StatusCode, page: &impl Template) -> PageResult {
    let html = page
        .render()
        .map_err(|e| CoreError::Internal(format!("template: {e}")))?;
    Ok((status, Html(html)).into_response())
}

// ---- the middleware around every page ----

/// Wraps every page: remembers a language chosen with `?lang=`, turns
/// errors into pages in the layout, and sets headers that keep pages from
/// being framed or sniffed.
pub async fn shell(mut req: Request, next: Next) -> Response {
    let uri = req.uri().clone();
    let lang = request_lang(&uri, req.headers());
    let chosen = query_lang(&uri);
    let slot = ViewerSlot::default();
    req.extensions_mut().insert(slot.clone());

    let mut resp = next.run(req).await;
    if let Some(fault) = resp.extensions_mut().remove::<Fault>() {
        let status = resp.status();
        let html = error_page(Chrome::new(lang, slot.0.get().cloned(), &uri), status, fault.message);
        let mut page = (status, Html(html)).into_response();
        if let Some(retry) = resp.headers().get(header::RETRY_AFTER) {
            page.headers_mut().insert(header::RETRY_AFTER, retry.clone());
        }
        resp = page;
    }
    if let Some(l) = chosen {
        let cookie = Cookie::build((LANG_COOKIE, l.code()))
            .path("/")
            .same_site(SameSite::Lax)
            .max_age(time::Duration::days(365))
            .build();
        if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    let h = resp.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ));
    resp
}

// ---- forms ----

/// A urlencoded form whose rejection is an error page, not axum's text.
pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        match Form::<T>::from_request(req, state).await {
            Ok(Form(v)) => Ok(Self(v)),
            Err(e) => Err(CoreError::invalid("invalid_form", e.body_text()).into()),
        }
    }
}

/// Query parameters whose rejection is an error page.
pub struct PageQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(e) => Err(CoreError::malformed("invalid_query", e.body_text()).into()),
        }
    }
}

/// An empty form field counts as absent.
pub fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_this_site() {
        for ok in ["/", "/regions/36", "/search?q=%E6%BB%95"] {
            assert_eq!(safe_next(ok), Some(ok));
        }
        for bad in [
            "",
            "regions",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn switch_link_keeps_the_query_and_replaces_the_language() {
        let uri: Uri = "/search?q=abc&lang=zh".parse().unwrap();
        assert_eq!(switch_href(&uri, Lang::En), "/search?q=abc&lang=en");
        let plain: Uri = "/regions/36".parse().unwrap();
        assert_eq!(switch_href(&plain, Lang::Zh), "/regions/36?lang=zh");
    }

    #[test]
    fn next_is_encoded_but_readable() {
        assert_eq!(encode_query_value("/search?q=a b&x=1"), "/search%3Fq%3Da%20b%26x%3D1");
    }
}
