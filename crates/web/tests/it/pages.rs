//! The web UI over HTTP as a browser without JavaScript uses it: sign-in
//! through the form and its cookie, the province map, region pages at each
//! level, village types by role and scope, search, the English switch, the
//! administration pages and the HTML error pages.

use std::collections::BTreeSet;

use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Method, Response};
use serde_json::Value;

use crate::server_test;
use crate::support::{ADMIN_PASSWORD, TestServer, USER_PASSWORD, client};

/// A signed-in browser: the session cookie to send with each request.
struct Session {
    cookie: String,
}

fn location(r: &Response) -> String {
    r.headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn session_cookie(r: &Response) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sx_session=") && !c.starts_with("sx_session=;"))
        .map(|c| c.split(';').next().unwrap().to_string())
}

async fn post_login(srv: &TestServer, username: &str, password: &str, next: &str) -> Response {
    client()
        .post(srv.url("/login"))
        .form(&[("username", username), ("password", password), ("next", next)])
        .send()
        .await
        .unwrap()
}

/// Signs in through the HTML form, as a browser would.
async fn sign_in(srv: &TestServer, username: &str, password: &str) -> Session {
    let r = post_login(srv, username, password, "/").await;
    assert_eq!(r.status(), 303, "sign-in of {username}: {}", r.text().await.unwrap());
    let cookie = session_cookie(&r).expect("sign-in sets the session cookie");
    Session { cookie }
}

impl Session {
    async fn get(&self, srv: &TestServer, path: &str) -> Response {
        client()
            .get(srv.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// A page that must answer `status`; returns its HTML.
    async fn page(&self, srv: &TestServer, path: &str, status: u16) -> String {
        let r = self.get(srv, path).await;
        let got = r.status().as_u16();
        let is_html = r
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        let body = r.text().await.unwrap();
        assert_eq!(got, status, "GET {path}: {body}");
        assert!(is_html, "GET {path} is not HTML: {body}");
        body
    }

    async fn post(&self, srv: &TestServer, path: &str, form: &[(&str, &str)]) -> Response {
        client()
            .post(srv.url(path))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

/// The HTML of an error page with `status`, checked to be our page.
async fn error_page(r: Response, status: u16) -> String {
    assert_eq!(r.status().as_u16(), status);
    assert!(
        r.headers()
            .get(CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<!doctype html>") && body.contains(&format!("({status})")),
        "{body}"
    );
    body
}

/// The contents of the element that has `id`, up to its closing tag.
fn element<'a>(html: &'a str, id: &str, close: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in {html}"));
    let rest = &html[start..];
    &rest[..rest.find(close).unwrap_or(rest.len())]
}

/// Every value of `attr="..."` in `html`.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| html[i + needle.len()..].split('"').next().unwrap().to_string())
        .collect()
}

server_test!(async fn sign_in_out_and_redirects(srv) {
    // Not signed in: pages send the browser to the sign-in form and back.
    let r = client().get(srv.url("/regions/36")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?next=/regions/36");
    let r = client().get(srv.url("/search?q=a b")).send().await.unwrap();
    assert_eq!(location(&r), "/login?next=/search%3Fq%3Da%2520b");
    let r = client().get(srv.url("/")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/login".to_string()));
    let r = client().post(srv.url("/logout")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/login".to_string()));

    // The form carries `next` only when it is a local path.
    let form = client().get(srv.url("/login?next=/regions/3601")).send().await.unwrap().text().await.unwrap();
    assert!(form.contains("<form method=\"post\" action=\"/login\">") && form.contains("name=\"next\" value=\"/regions/3601\""), "{form}");
    for evil in ["//evil.example/x", "https://evil.example/", "/\\evil.example"] {
        let url = format!("{}/login?next={}", srv.base, percent_encoding::utf8_percent_encode(evil, percent_encoding::NON_ALPHANUMERIC));
        let form = client().get(url).send().await.unwrap().text().await.unwrap();
        assert!(form.contains("name=\"next\" value=\"/\""), "{evil}: {form}");
        let r = post_login(srv, "admin", ADMIN_PASSWORD, evil).await;
        assert_eq!((r.status().as_u16(), location(&r)), (303, "/".to_string()), "{evil}");
    }

    // A wrong password shows the form again with the error, status 401.
    let r = post_login(srv, "admin", "not the password", "/regions/3601").await;
    assert_eq!(r.status(), 401);
    assert!(session_cookie(&r).is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("用户名或密码错误") && body.contains("value=\"admin\"") && body.contains("value=\"/regions/3601\""), "{body}");

    // Success: the session cookie and a 303 to `next`.
    let r = post_login(srv, "admin", ADMIN_PASSWORD, "/regions/3601").await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/regions/3601".to_string()));
    let set = r.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>().join("\n");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
    let admin = Session { cookie: session_cookie(&r).unwrap() };

    // The start page is the user's widest region.
    let r = admin.get(srv, "/").await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/regions/36".to_string()));
    let home = admin.page(srv, "/regions/36", 200).await;
    assert!(home.contains("系统管理员 Administrator") && home.contains("<form method=\"post\" action=\"/logout\">"), "{home}");

    // Signing out ends the session server-side, not just the cookie.
    let r = admin.post(srv, "/logout", &[]).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/login".to_string()));
    assert!(r.headers().get_all(SET_COOKIE).iter().any(|c| c.to_str().unwrap().starts_with("sx_session=;")));
    let r = admin.get(srv, "/regions/36").await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/login?next=/regions/36".to_string()));

    // Repeated failures are throttled with the text and Retry-After.
    for _ in 0..5 {
        assert_eq!(post_login(srv, "nobody", "wrong password!", "/").await.status(), 401);
    }
    let r = post_login(srv, "nobody", "wrong password!", "/").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert!(r.text().await.unwrap().contains("登录失败次数过多"));
});

server_test!(async fn province_map_draws_every_county(srv) {
    let admin = sign_in(srv, "admin", ADMIN_PASSWORD).await;
    let html = admin.page(srv, "/regions/36", 200).await;
    eprintln!("/regions/36 HTML: {} bytes", html.len());
    assert!(html.contains("<svg id=\"region-map\""), "no map");
    assert!(html.contains("<h1>江西省</h1>"));
    assert!(html.contains("11 市 · 100 县（区） · 1767 乡镇（街道） · 22080 村（社区）"), "counts missing");

    // 100 county shapes, each inside a link to its own county page.
    let svg = element(&html, "region-map", "</svg>");
    let codes: BTreeSet<String> = attr_values(svg, "data-code").into_iter().collect();
    assert_eq!(codes.len(), 100, "{codes:?}");
    for code in &codes {
        assert!(code.len() == 6 && code.starts_with("36"), "{code} is not a Jiangxi county");
        let at = svg.find(&format!("data-code=\"{code}\"")).unwrap();
        let link_start = svg[..at].rfind("<a href=\"").unwrap();
        assert_eq!(&svg[link_start..at].split('"').nth(1).unwrap(), &format!("/regions/{code}"), "path {code} links elsewhere");
    }
    assert!(svg.contains("<title>东湖区</title>") && svg.contains(">东湖区</text>"));
    assert!(svg.contains("<path class=\"borders\""), "city borders are drawn");

    // Below the map: the 11 cities.
    let children = element(&html, "children", "</ul>");
    let cities = attr_values(children, "href");
    assert_eq!(cities.len(), 11, "{children}");
    assert!(cities.iter().all(|h| h.starts_with("/regions/36") && h.len() == "/regions/3601".len()));
    assert!(children.contains(">南昌市</a>"));

    // Padded codes resolve; unknown and malformed codes are 404 pages.
    assert!(admin.page(srv, "/regions/360000", 200).await.contains("<h1>江西省</h1>"));
    assert!(error_page(admin.get(srv, "/regions/369999").await, 404).await.contains("页面不存在"));
    error_page(admin.get(srv, "/regions/abc").await, 404).await;

    // A city page maps its counties and links back up.
    let city = admin.page(srv, "/regions/3601", 200).await;
    let city_codes = attr_values(element(&city, "region-map", "</svg>"), "data-code");
    assert!(city_codes.contains(&"360102".to_string()) && city_codes.iter().all(|c| c.starts_with("3601")), "{city_codes:?}");
    assert!(city.contains("<li><a href=\"/regions/36\">江西省</a></li>"));
});

server_test!(async fn county_township_and_village_pages(srv) {
    let admin = sign_in(srv, "admin", ADMIN_PASSWORD).await;
    let county = admin.page(srv, "/regions/360102", 200).await;
    let list = element(&county, "children", "</ul>");
    assert!(list.contains("<a href=\"/regions/360102002\">滕王阁街道</a> <span class=\"note\">12 村（社区）</span>"), "{list}");
    assert!(county.contains("<svg id=\"region-outline\""), "county outline");
    assert!(county.contains("<a href=\"/regions/3601\">南昌市</a>"));

    let township = admin.page(srv, "/regions/360102002", 200).await;
    let villages = element(&township, "children", "</ul>");
    assert_eq!(attr_values(villages, "href").len(), 12, "{villages}");
    assert!(villages.contains("未分类"));
    assert!(!township.contains("<svg"), "no map below counties");

    let village = admin.page(srv, "/regions/360102002001", 200).await;
    assert!(village.contains("<h2>村庄类型</h2>") && village.contains("未分类"));
    assert!(village.contains("<form method=\"post\" action=\"/regions/360102002001/village-type\""), "admins may classify");
});

server_test!(async fn village_type_follows_role_and_scope(srv) {
    srv.user_with("donghu", "official", "360102").await;
    srv.user_with("xihu", "official", "360103").await;
    srv.user_with("nonghu", "farmer", "360102").await;
    let admin_token = srv.admin_token().await;
    let village = "360102002001";
    let page = format!("/regions/{village}");
    let action = format!("/regions/{village}/village-type");
    let form_tag = format!("<form method=\"post\" action=\"{action}\"");

    // The farmer sees the type but no form, and a POST is a 403 page.
    let farmer = sign_in(srv, "nonghu", USER_PASSWORD).await;
    let html = farmer.page(srv, &page, 200).await;
    assert!(html.contains("未分类") && !html.contains(&form_tag), "{html}");
    let denied = error_page(farmer.post(srv, &action, &[("village_type", "characteristic")]).await, 403).await;
    assert!(denied.contains("超出您的权限或管辖范围"), "{denied}");
    let stored = srv.json(Method::GET, &format!("/api/v1/regions/{village}"), Some(&admin_token), None, 200).await;
    assert_eq!(stored["village_type"], Value::Null);

    // The county official sees the form, and saving changes the type.
    let official = sign_in(srv, "donghu", USER_PASSWORD).await;
    let html = official.page(srv, &page, 200).await;
    assert!(html.contains(&form_tag) && html.contains("<option value=\"characteristic\">特色保护类</option>"), "{html}");
    let r = official.post(srv, &action, &[("village_type", "characteristic")]).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, format!("{page}?saved=1")));
    let saved = official.page(srv, &format!("{page}?saved=1"), 200).await;
    assert!(saved.contains("已保存") && saved.contains("<p class=\"vt\">特色保护类</p>"), "{saved}");
    assert!(saved.contains("<option value=\"characteristic\" selected>"));
    let stored = srv.json(Method::GET, &format!("/api/v1/regions/{village}"), Some(&admin_token), None, 200).await;
    assert_eq!(stored["village_type"], "characteristic");
    // The township list shows it too; an empty choice clears it.
    assert!(official.page(srv, "/regions/360102002", 200).await.contains("特色保护类"));
    assert_eq!(official.post(srv, &action, &[("village_type", "")]).await.status(), 303);
    let stored = srv.json(Method::GET, &format!("/api/v1/regions/{village}"), Some(&admin_token), None, 200).await;
    assert_eq!(stored["village_type"], Value::Null);

    // Bad values, non-villages and other counties are refused as pages.
    error_page(official.post(srv, &action, &[("village_type", "urban")]).await, 422).await;
    error_page(official.post(srv, "/regions/360102002/village-type", &[("village_type", "suburban")]).await, 422).await;
    error_page(official.post(srv, "/regions/360103001001/village-type", &[("village_type", "suburban")]).await, 403).await;

    // A cross-site form post with the cookie is refused.
    let forged = client()
        .post(srv.url(&action))
        .header("cookie", &official.cookie)
        .header("origin", "http://evil.example")
        .form(&[("village_type", "relocation")])
        .send()
        .await
        .unwrap();
    error_page(forged, 403).await;

    // The official's map ends at the county: other counties and the
    // province are 403 pages, and ancestors are named, not linked.
    let r = official.get(srv, "/").await;
    assert_eq!(location(&r), "/regions/360102");
    error_page(official.get(srv, "/regions/360103").await, 403).await;
    error_page(official.get(srv, "/regions/36").await, 403).await;
    let county = official.page(srv, "/regions/360102", 200).await;
    assert!(county.contains("<li>江西省</li>") && county.contains("<li>南昌市</li>"), "{county}");
    assert!(!county.contains("href=\"/regions/36\"") && !county.contains("href=\"/regions/3601\""));

    // The other county's official cannot see this village at all.
    let xihu = sign_in(srv, "xihu", USER_PASSWORD).await;
    error_page(xihu.get(srv, &page).await, 403).await;
});

server_test!(async fn english_on_request_and_remembered(srv) {
    let admin = sign_in(srv, "admin", ADMIN_PASSWORD).await;
    let zh = admin.page(srv, "/regions/36", 200).await;
    assert!(zh.contains("<html lang=\"zh-CN\">") && zh.contains("下级区划") && zh.contains("href=\"/regions/36?lang=en\""), "switch link");

    let r = admin.get(srv, "/regions/36?lang=en").await;
    let lang_cookie = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sx_lang=en"))
        .expect("the choice is remembered in a cookie");
    let en = r.text().await.unwrap();
    assert!(en.contains("<html lang=\"en\">") && en.contains("Subdivisions · City") && en.contains("Sign out"), "{en}");
    assert!(en.contains("11 cities · 100 counties") && en.contains("href=\"/regions/36?lang=zh\" hreflang=\"zh-CN\">中文</a>"));

    // Later pages follow the cookie, error pages included.
    let both = format!("{}; {}", admin.cookie, lang_cookie.split(';').next().unwrap());
    let later = client().get(srv.url("/regions/360102002001")).header("cookie", &both).send().await.unwrap().text().await.unwrap();
    assert!(later.contains("Village type") && later.contains("Not classified") && later.contains("Characteristic protection"), "{later}");
    let missing = client().get(srv.url("/regions/369999")).header("cookie", &both).send().await.unwrap();
    assert!(error_page(missing, 404).await.contains("Page not found"));

    // The sign-in page switches too.
    let login = client().get(srv.url("/login?lang=en")).send().await.unwrap().text().await.unwrap();
    assert!(login.contains("<h1>Sign in</h1>") && login.contains("Username"), "{login}");
});

server_test!(async fn search_stays_in_scope(srv) {
    srv.user_with("donghu", "official", "360102").await;
    srv.user_with("xihu", "official", "360103").await;
    let admin = sign_in(srv, "admin", ADMIN_PASSWORD).await;
    let region = admin.page(srv, "/regions/3601", 200).await;
    assert!(region.contains("<form class=\"search\" method=\"get\" action=\"/search\""), "search box on region pages");

    let html = admin.page(srv, "/search?q=滕王阁", 200).await;
    let results = element(&html, "results", "</ol>");
    assert!(results.contains("<a href=\"/regions/360102002\">滕王阁街道</a>"), "{results}");
    assert!(results.contains("江西省 › 南昌市 › 东湖区"), "ancestor path: {results}");
    assert!(html.contains("value=\"滕王阁\""), "the query stays in the box");

    let donghu = sign_in(srv, "donghu", USER_PASSWORD).await;
    assert!(donghu.page(srv, "/search?q=滕王阁", 200).await.contains("/regions/360102002\""));
    let xihu = sign_in(srv, "xihu", USER_PASSWORD).await;
    let outside = xihu.page(srv, "/search?q=滕王阁", 200).await;
    assert!(!outside.contains("/regions/360102002\""), "{outside}");
    let nothing = xihu.page(srv, "/search?q=no-such-place", 200).await;
    assert!(nothing.contains("没有找到匹配的地区"));
});

server_test!(async fn users_page_by_role(srv) {
    srv.user_with("donghu", "official", "360102").await;
    srv.user_with("nonghu", "farmer", "360102").await;
    let admin = sign_in(srv, "admin", ADMIN_PASSWORD).await;
    let html = admin.page(srv, "/admin/users", 200).await;
    assert!(html.contains("<form method=\"post\" action=\"/admin/users\""), "admins get the create form");
    let table = element(&html, "users", "</table>");
    assert!(table.contains(">donghu</a></td>") && table.contains("政府工作人员 · 东湖区 (360102)"), "{table}");

    // Invalid input comes back inline with 422, keeping what was typed.
    let weak = [("username", "liuyang"), ("display_name", "刘洋"), ("password", "short"), ("phone", ""), ("role", "official"), ("scope", "360102")];
    let r = admin.post(srv, "/admin/users", &weak).await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("class=\"alert\"") && body.contains("at least 10 characters") && body.contains("value=\"刘洋\""), "{body}");
    let bad_scope = [("username", "liuyang"), ("display_name", "刘洋"), ("password", USER_PASSWORD), ("phone", ""), ("role", "official"), ("scope", "36x")];
    assert_eq!(admin.post(srv, "/admin/users", &bad_scope).await.status(), 422);

    let good = [("username", "liuyang"), ("display_name", "刘洋"), ("password", USER_PASSWORD), ("phone", "13900001111"), ("role", "village_staff"), ("scope", "360102002001")];
    let r = admin.post(srv, "/admin/users", &good).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/admin/users?created=liuyang".to_string()));
    let after = admin.page(srv, "/admin/users?created=liuyang", 200).await;
    assert!(after.contains("用户已创建：liuyang") && after.contains("村干部/信息员 · 民巷社区居委会 (360102002001)"), "{after}");
    let again = admin.post(srv, "/admin/users", &good).await;
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("already taken"));
    // The new user can sign in with the password given on the form.
    sign_in(srv, "liuyang", USER_PASSWORD).await;

    // Officials read the list of their county without the form; farmers
    // get the 403 page and no staff links.
    let official = sign_in(srv, "donghu", USER_PASSWORD).await;
    let list = official.page(srv, "/admin/users", 200).await;
    assert!(list.contains("<td>liuyang</td>") && !list.contains("<td>admin</td>"), "{list}");
    assert!(!list.contains("action=\"/admin/users\""));
    assert!(list.contains("139****1111"), "phones are masked for officials");
    error_page(official.post(srv, "/admin/users", &good).await, 403).await;
    let farmer = sign_in(srv, "nonghu", USER_PASSWORD).await;
    error_page(farmer.get(srv, "/admin/users").await, 403).await;
    error_page(farmer.get(srv, "/admin/audit").await, 403).await;
    let farmer_home = farmer.page(srv, "/regions/360102", 200).await;
    assert!(!farmer_home.contains("href=\"/admin/users\"") && farmer_home.contains("href=\"/tokens\""));
    assert!(list.contains("href=\"/admin/users\"") && list.contains("href=\"/admin/audit\""));
});

/// The id of `username`, as the API lists it to the national administrator.
async fn user_id(srv: &TestServer, admin_token: &str, username: &str) -> i64 {
    let list = srv
        .json(Method::GET, "/api/v1/users", Some(admin_token), None, 200)
        .await;
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("no user {username}"))["id"]
        .as_i64()
        .unwrap()
}

/// The edit form's fields as a browser posts them (the checkbox only when
/// ticked).
fn edit_form<'a>(
    display_name: &'a str,
    phone: &'a str,
    password: &'a str,
    roles: &'a str,
    disabled: bool,
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("display_name", display_name),
        ("phone", phone),
        ("password", password),
        ("roles", roles),
    ];
    if disabled {
        form.push(("disabled", "on"));
    }
    form
}

server_test!(async fn admin_edits_a_user(srv) {
    let donghu_token = srv.user_with("donghu", "official", "360102").await;
    let admin_token = srv.admin_token().await;
    let id = user_id(srv, &admin_token, "donghu").await;
    let edit = format!("/admin/users/{id}");
    let admin = sign_in(srv, "admin", ADMIN_PASSWORD).await;

    // The list links each name to its edit page.
    let list = admin.page(srv, "/admin/users", 200).await;
    assert!(element(&list, "users", "</table>").contains(&format!("<a href=\"{edit}\">donghu</a>")), "{list}");

    // The form comes filled in, roles one per line, with hints in both languages.
    let html = admin.page(srv, &edit, 200).await;
    let form = element(&html, "user-edit", "</form>");
    assert!(form.contains(&format!("action=\"{edit}\"")) && form.contains("name=\"display_name\" value=\"donghu\""), "{form}");
    assert!(form.contains("value=\"13912345678\"") && form.contains(">official:360102</textarea>"), "{form}");
    assert!(form.contains("<code>village_staff</code> 村干部/信息员") && form.contains("每行一个“角色:范围”"), "{form}");
    assert!(form.contains("name=\"disabled\" value=\"on\">"), "not ticked: {form}");
    let en = admin.page(srv, &format!("{edit}?lang=en"), 200).await;
    assert!(en.contains("One role:scope per line") && en.contains("<code>village_staff</code> Village staff"), "{en}");

    // New name and roles, disabled: the API shows it and the user's
    // session is over.
    let roles = "official:360102\r\n\r\nvillage_staff：360102002001\r\n";
    let r = admin.post(srv, &edit, &edit_form(" 王东湖 ", "13912345678", "", roles, true)).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/admin/users?updated=donghu".to_string()));
    let after = admin.page(srv, "/admin/users?updated=donghu", 200).await;
    assert!(after.contains("用户已更新：donghu") && after.contains("王东湖"), "{after}");
    let stored = srv.json(Method::GET, &format!("/api/v1/users/{id}"), Some(&admin_token), None, 200).await;
    assert_eq!(stored["display_name"], "王东湖");
    assert_eq!(stored["disabled"], true);
    assert_eq!(stored["phone"], "13912345678", "an unchanged phone stays");
    let grants: BTreeSet<String> = stored["roles"].as_array().unwrap().iter().map(|g| format!("{}:{}", g["role"].as_str().unwrap(), g["scope"].as_str().unwrap())).collect();
    assert_eq!(grants, BTreeSet::from(["official:360102".to_string(), "village_staff:360102002001".to_string()]));
    assert_eq!(srv.call(Method::GET, "/api/v1/auth/me", Some(&donghu_token), None).await.status(), 401);
    assert!(admin.page(srv, &edit, 200).await.contains("name=\"disabled\" value=\"on\" checked>"));

    // An unticked box enables the user again; an emptied phone is cleared;
    // a new password works at once.
    let form = edit_form("王东湖", "", "another long secret", "official:360102", false);
    assert_eq!(admin.post(srv, &edit, &form).await.status(), 303);
    let stored = srv.json(Method::GET, &format!("/api/v1/users/{id}"), Some(&admin_token), None, 200).await;
    assert_eq!((stored["disabled"].clone(), stored["phone"].clone()), (Value::Bool(false), Value::Null));
    assert_eq!(stored["roles"].as_array().unwrap().len(), 1);
    sign_in(srv, "donghu", "another long secret").await;

    // The edit is audited under the administrator, with the client address.
    let audit = admin.page(srv, "/admin/audit?action=user.update", 200).await;
    let table = element(&audit, "audit", "</table>");
    assert_eq!(table.matches("<code>user.update</code>").count(), 2, "{table}");
    assert!(table.contains(&format!("user:{id}")) && table.contains("127.0.0.1"), "{table}");
});

server_test!(async fn user_edit_form_errors(srv) {
    srv.user_with("donghu", "official", "360102").await;
    let admin_token = srv.admin_token().await;
    let id = user_id(srv, &admin_token, "donghu").await;
    let edit = format!("/admin/users/{id}");
    let admin = sign_in(srv, "admin", ADMIN_PASSWORD).await;

    // Each slip shows the form again with 422 and what was typed, never
    // the password.
    let cases = [
        ("official:360102\nofficial 360103", "", "角色与范围第 2 行：应写作“角色:范围”"),
        ("official:360102\n\nboss:360102", "", "角色与范围第 3 行：role &#34;boss&#34; is not one of"),
        ("official:36x", "", "角色与范围第 1 行：region code &#34;36x&#34; must be"),
        ("official:369999", "", "scope 369999 is not a known region"),
        ("", "", "a user needs at least one role"),
        ("official:360102", "short", "at least 10 characters"),
    ];
    for (roles, password, message) in cases {
        let r = admin.post(srv, &edit, &edit_form("改过的名字", "13912345678", password, roles, false)).await;
        assert_eq!(r.status(), 422, "{roles:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains("class=\"alert\"") && body.contains(message), "{message}: {body}");
        assert!(body.contains("value=\"改过的名字\"") && body.contains(&format!(">{roles}</textarea>")), "{body}");
        assert!(!body.contains("value=\"short\""));
    }
    let stored = srv.json(Method::GET, &format!("/api/v1/users/{id}"), Some(&admin_token), None, 200).await;
    assert_eq!(stored["display_name"], "donghu", "nothing was saved");

    // In English the line is named in English.
    let r = admin.post(srv, &format!("{edit}?lang=en"), &edit_form("donghu", "", "", "official", false)).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("Roles and scopes, line 1: expected role:scope"));

    // The administrator cannot disable themselves or drop their own admin role.
    let me = srv.json(Method::GET, "/api/v1/auth/me", Some(&admin_token), None, 200).await;
    let mine = format!("/admin/users/{}", me["user_id"].as_i64().unwrap());
    let own = admin.page(srv, &mine, 200).await;
    assert!(own.contains(">admin:*</textarea>"), "{own}");
    for (roles, disabled) in [("admin:*", true), ("official:36", false)] {
        let r = admin.post(srv, &mine, &edit_form("系统管理员 Administrator", "", "", roles, disabled)).await;
        assert_eq!(r.status(), 422);
        let body = r.text().await.unwrap();
        assert!(body.contains("you cannot disable yourself or remove your own admin role"), "{body}");
    }
    srv.json(Method::GET, "/api/v1/auth/me", Some(&admin_token), None, 200).await;

    // Ids that are not numbers or not users are error pages.
    error_page(admin.get(srv, "/admin/users/donghu").await, 400).await;
    error_page(admin.post(srv, "/admin/users/donghu", &edit_form("x", "", "", "official:36", false)).await, 400).await;
    error_page(admin.get(srv, "/admin/users/999999").await, 404).await;
});

server_test!(async fn user_edit_follows_role_and_scope(srv) {
    srv.user_with("donghu", "official", "360102").await;
    srv.user_with("nanchang", "admin", "3601").await;
    srv.user_with("fuliang", "official", "3602").await;
    let admin_token = srv.admin_token().await;
    let donghu = format!("/admin/users/{}", user_id(srv, &admin_token, "donghu").await);
    let fuliang = format!("/admin/users/{}", user_id(srv, &admin_token, "fuliang").await);
    let form = edit_form("改名", "", "", "official:360102", true);

    // Officials read the list without edit links, and cannot edit.
    let official = sign_in(srv, "donghu", USER_PASSWORD).await;
    let list = official.page(srv, "/admin/users", 200).await;
    assert!(list.contains("<td>donghu</td>") && !list.contains("href=\"/admin/users/"), "{list}");
    error_page(official.get(srv, &donghu).await, 403).await;
    assert!(error_page(official.post(srv, &donghu, &form).await, 403).await.contains("超出您的权限或管辖范围"));

    // The Nanchang administrator edits Nanchang users only, and grants
    // only within Nanchang.
    let city = sign_in(srv, "nanchang", USER_PASSWORD).await;
    let list = city.page(srv, "/admin/users", 200).await;
    assert!(list.contains(&format!("<a href=\"{donghu}\">donghu</a>")) && !list.contains("fuliang"), "{list}");
    error_page(city.get(srv, &fuliang).await, 403).await;
    error_page(city.post(srv, &fuliang, &form).await, 403).await;
    error_page(city.post(srv, &donghu, &edit_form("donghu", "", "", "official:3602", false)).await, 403).await;
    city.page(srv, &donghu, 200).await;

    let stored = srv.json(Method::GET, "/api/v1/users", Some(&admin_token), None, 200).await;
    for u in stored["users"].as_array().unwrap() {
        assert_eq!(u["disabled"], false, "{u}");
        assert_ne!(u["display_name"], "改名");
    }
    let r = city.post(srv, &donghu, &form).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/admin/users?updated=donghu".to_string()));
});

server_test!(async fn audit_log_pages_back(srv) {
    let admin_token = srv.admin_token().await;
    for i in 0..55 {
        srv.json(Method::POST, "/api/v1/tokens", Some(&admin_token), Some(serde_json::json!({"name": format!("t{i}")})), 201).await;
    }
    let admin = sign_in(srv, "admin", ADMIN_PASSWORD).await;
    let first = admin.page(srv, "/admin/audit", 200).await;
    let table = element(&first, "audit", "</table>");
    assert_eq!(table.matches("<tr><td").count(), 50, "one page of 50");
    assert!(table.contains("<code>auth.login</code>"), "newest first: the sign-in tops the list");
    let next = attr_values(&first, "href").into_iter().find(|h| h.starts_with("/admin/audit?before=")).expect("a next-page link");
    let second = admin.page(srv, &next.replace("&amp;", "&"), 200).await;
    let rows = element(&second, "audit", "</table>").matches("<tr><td").count();
    assert!(rows > 0 && rows <= 50, "{rows}");
    assert!(second.contains("<code>token.create</code>"));

    let filtered = admin.page(srv, "/admin/audit?action=auth.login", 200).await;
    let table = element(&filtered, "audit", "</table>");
    assert!(table.contains("auth.login") && !table.contains("token.create"), "{table}");
    error_page(admin.get(srv, "/admin/audit?before=soon").await, 400).await;
});

server_test!(async fn tokens_page_shows_the_secret_once(srv) {
    srv.user_with("donghu", "official", "360102").await;
    let official = sign_in(srv, "donghu", USER_PASSWORD).await;
    assert!(official.page(srv, "/tokens", 200).await.contains("<form method=\"post\" action=\"/tokens\""));

    let r = official.post(srv, "/tokens", &[("name", "county gateway"), ("expires_in_days", "30")]).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let html = r.text().await.unwrap();
    let secret = element(&html, "new-token", "</code>").split('>').nth(1).unwrap().to_string();
    assert!(secret.starts_with("sxt_"), "{secret}");
    assert_eq!(srv.json(Method::GET, "/api/v1/auth/me", Some(&secret), None, 200).await["username"], "donghu");

    let listed = official.page(srv, "/tokens", 200).await;
    assert!(listed.contains("county gateway") && !listed.contains(&secret), "the secret is not shown again");
    let revoke = attr_values(&listed, "action").into_iter().find(|a| a.ends_with("/revoke")).expect("a revoke button");
    let r = official.post(srv, &revoke, &[]).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/tokens".to_string()));
    assert_eq!(srv.call(Method::GET, "/api/v1/auth/me", Some(&secret), None).await.status(), 401);
    assert!(official.page(srv, "/tokens", 200).await.contains("已吊销"));

    let bad = official.post(srv, "/tokens", &[("name", "x"), ("expires_in_days", "forever")]).await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("class=\"alert\""));
    error_page(official.post(srv, "/tokens/999999/revoke", &[]).await, 404).await;
});

server_test!(async fn stylesheet_is_embedded_and_cached(srv) {
    let login = client().get(srv.url("/login")).send().await.unwrap().text().await.unwrap();
    let href = attr_values(&login, "href").into_iter().find(|h| h.starts_with("/static/app.css?v=")).expect("stylesheet link");
    assert!(login.contains("<meta name=\"viewport\""));
    let r = client().get(srv.url(&href)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(CONTENT_TYPE).unwrap().to_str().unwrap().starts_with("text/css"));
    assert!(r.headers().get("cache-control").unwrap().to_str().unwrap().contains("max-age=31536000"));
    assert!(r.text().await.unwrap().contains("svg.map{"));
});
