//! Administration pages: users (list for administrators and officials,
//! creation and editing for administrators), the audit log, and the
//! viewer's own API tokens. Each calls the same kernel functions as the API, so the scope
//! rules are the same ones.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use shuxiang_core::auth::{self, Grant, GrantInput, NewUser, Role, Scope, User, UserUpdate};
use shuxiang_core::{CoreError, RegionCode, regions};

use super::common::{
    Chrome, PageError, PageForm, PageQuery, PageResult, Signed, encode_query_value, local_time, non_empty, render,
};
use crate::api::audit::{AuditParams, entries};
use crate::error::AppError;
use crate::extract::ClientIp;
use crate::i18n::Lang;
use crate::state::AppState;

/// Status of a form shown again with its error: the error's own status,
/// except that a malformed field is a validation failure like any other.
pub(super) fn form_status(e: &AppError) -> StatusCode {
    match e.status() {
        StatusCode::BAD_REQUEST => StatusCode::UNPROCESSABLE_ENTITY,
        s => s,
    }
}

/// Errors a form shows inline; anything else (a fault) becomes a page.
pub(super) fn inline(e: AppError) -> Result<(StatusCode, String), PageError> {
    let status = form_status(&e);
    if status.is_server_error() || status == StatusCode::UNAUTHORIZED {
        return Err(e.into());
    }
    Ok((status, e.public_message()))
}

// ---- users ----

pub struct UserRow {
    pub id: i64,
    /// The viewer may change this user: the name links to the edit page.
    pub editable: bool,
    pub username: String,
    pub display_name: String,
    pub phone: String,
    pub grants: Vec<String>,
    pub disabled: bool,
}

pub struct RoleOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
    phone: Option<String>,
    #[serde(default)]
    role: String,
    #[serde(default)]
    scope: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    c: Chrome,
    users: Vec<UserRow>,
    can_create: bool,
    roles: Vec<RoleOption>,
    form: UserForm,
    error: Option<String>,
    /// "用户已创建：liuyang" after a redirect from a form.
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    created: Option<String>,
    updated: Option<String>,
}

/// "政府工作人员 · 东湖区 (360102)" for each grant, names looked up at once.
async fn grant_labels(state: &AppState, lang: Lang, users: &[User]) -> Result<HashMap<i64, Vec<String>>, CoreError> {
    let mut codes: Vec<RegionCode> = users
        .iter()
        .flat_map(|u| &u.roles)
        .filter_map(|g| match &g.scope {
            Scope::Region(c) => Some(c.clone()),
            Scope::All => None,
        })
        .collect();
    codes.sort();
    codes.dedup();
    let names: HashMap<String, String> = regions::names(&state.db, &codes).await?.into_iter().collect();
    let label = |g: &Grant| {
        let scope = match &g.scope {
            Scope::All => "*".to_string(),
            Scope::Region(c) => match names.get(c.as_str()) {
                Some(n) => format!("{n} ({c})"),
                None => c.to_string(),
            },
        };
        format!("{} · {scope}", lang.role_label(g.role))
    };
    Ok(users
        .iter()
        .map(|u| (u.id, u.roles.iter().map(label).collect()))
        .collect())
}

async fn users_page(
    state: &AppState,
    s: &Signed,
    form: UserForm,
    error: Option<String>,
    notice: Option<String>,
) -> Result<UsersPage, PageError> {
    let p = &s.auth.principal;
    let users = auth::list_users(&state.db, p).await?;
    let mut labels = grant_labels(state, s.lang, &users).await?;
    let rows = users
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            editable: auth::may_administer(p, &u),
            grants: labels.remove(&u.id).unwrap_or_default(),
            username: u.username,
            display_name: u.display_name,
            phone: u.phone.unwrap_or_default(),
            disabled: u.disabled,
        })
        .collect();
    let roles = Role::ALL
        .into_iter()
        .map(|r| RoleOption {
            value: r.as_str(),
            label: s.lang.role_label(r),
            selected: r.as_str() == form.role,
        })
        .collect();
    Ok(UsersPage {
        c: s.chrome(),
        users: rows,
        can_create: p.require_role(&[Role::Admin]).is_ok(),
        roles,
        form,
        error,
        notice,
    })
}

pub async fn users(State(state): State<AppState>, s: Signed, PageQuery(q): PageQuery<UsersQuery>) -> PageResult {
    let t = s.lang.texts();
    let notice = non_empty(&q.created)
        .map(|n| format!("{}{n}", t.user_created))
        .or_else(|| non_empty(&q.updated).map(|n| format!("{}{n}", t.user_updated)));
    let page = users_page(&state, &s, UserForm::default(), None, notice).await?;
    render(StatusCode::OK, &page)
}

pub async fn create_user(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    PageForm(form): PageForm<UserForm>,
) -> PageResult {
    s.auth.principal.require_role(&[Role::Admin])?;
    let new = NewUser {
        username: form.username.trim().to_string(),
        password: form.password.clone(),
        display_name: form.display_name.clone(),
        phone: non_empty(&form.phone).map(str::to_string),
        roles: vec![GrantInput {
            role: form.role.clone(),
            scope: form.scope.trim().to_string(),
        }],
    };
    match auth::create_user(&state.db, &s.auth.principal, &s.auth.actor(&ip), new).await {
        Ok(user) => {
            Ok(Redirect::to(&format!("/admin/users?created={}", encode_query_value(&user.username))).into_response())
        }
        Err(e) => {
            let (status, message) = inline(e.into())?;
            let form = UserForm {
                password: String::new(),
                ..form
            };
            let page = users_page(&state, &s, form, Some(message), None).await?;
            render(status, &page)
        }
    }
}

// ---- editing a user ----

/// The edit form as posted, and as shown again after an error.
#[derive(Deserialize)]
pub struct UserEditForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
    /// One `role:scope` per line.
    #[serde(default)]
    roles: String,
    /// A checkbox: browsers send it only when ticked.
    disabled: Option<String>,
}

impl UserEditForm {
    fn of(user: &User) -> Self {
        let roles: Vec<String> = user
            .roles
            .iter()
            .map(|g| format!("{}:{}", g.role.as_str(), g.scope))
            .collect();
        Self {
            display_name: user.display_name.clone(),
            phone: user.phone.clone().unwrap_or_default(),
            password: String::new(),
            roles: roles.join("\n"),
            disabled: user.disabled.then(|| "on".to_string()),
        }
    }

    fn disabled(&self) -> bool {
        self.disabled.is_some()
    }

    /// Only what differs from `user` is sent, so the audit entry names the
    /// real changes. An emptied phone field clears a stored number; left
    /// empty when there was none, it changes nothing. The roles are always
    /// sent: the field lists them all.
    fn changes(&self, user: &User, roles: Vec<GrantInput>) -> UserUpdate {
        let display_name = self.display_name.trim();
        let phone = self.phone.trim();
        UserUpdate {
            display_name: (display_name != user.display_name).then(|| display_name.to_string()),
            password: (!self.password.is_empty()).then(|| self.password.clone()),
            phone: (phone != user.phone.as_deref().unwrap_or("")).then(|| phone.to_string()),
            disabled: (self.disabled() != user.disabled).then_some(self.disabled()),
            roles: Some(roles),
        }
    }
}

/// The roles field: one `role:scope` per line, blank lines ignored. Role
/// names and code shapes are checked here to name the line at fault; the
/// kernel then checks that regions exist and lie within the editor's scope.
fn parse_roles(lang: Lang, text: &str) -> Result<Vec<GrantInput>, CoreError> {
    let t = lang.texts();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at_line = |message: &str| {
            CoreError::invalid(
                "invalid_role_line",
                format!("{}{message}", t.role_line.replace("{line}", &(i + 1).to_string())),
            )
        };
        // A Chinese input method types the full-width colon.
        let Some((role, scope)) = line.split_once(':').or_else(|| line.split_once('：')) else {
            return Err(at_line(t.role_line_format));
        };
        let (role, scope) = (role.trim(), scope.trim());
        Role::parse(role).map_err(|e| at_line(&e.to_string()))?;
        if scope != "*" {
            RegionCode::parse(scope).map_err(|e| at_line(&e.to_string()))?;
        }
        out.push(GrantInput {
            role: role.to_string(),
            scope: scope.to_string(),
        });
    }
    Ok(out)
}

/// Value and name of each role, for the hint beside the roles field.
pub struct RoleHint {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "user_edit.html")]
struct UserEditPage {
    c: Chrome,
    id: i64,
    username: String,
    created: String,
    form: UserEditForm,
    role_hints: Vec<RoleHint>,
    error: Option<String>,
}

fn user_edit_page(s: &Signed, user: &User, form: UserEditForm, error: Option<String>) -> UserEditPage {
    let role_hints = Role::ALL
        .into_iter()
        .map(|r| RoleHint {
            value: r.as_str(),
            label: s.lang.role_label(r),
        })
        .collect();
    UserEditPage {
        c: s.chrome(),
        id: user.id,
        username: user.username.clone(),
        created: local_time(&user.created_at),
        form,
        role_hints,
        error,
    }
}

/// The user behind `/admin/users/{id}`, if the viewer may change them:
/// 400 for an id that is not a number, 404 for no such user, 403 otherwise.
async fn user_to_edit(state: &AppState, s: &Signed, id: &str) -> Result<User, PageError> {
    let p = &s.auth.principal;
    p.require_role(&[Role::Admin])?;
    let id: i64 = id
        .parse()
        .map_err(|_| CoreError::malformed("invalid_id", format!("user id {id:?} is not a number")))?;
    let user = auth::get_user(&state.db, p, id).await?;
    if !auth::may_administer(p, &user) {
        return Err(CoreError::Forbidden(format!("user {id} is outside your scope")).into());
    }
    Ok(user)
}

pub async fn edit_user(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> PageResult {
    let user = user_to_edit(&state, &s, &id).await?;
    render(
        StatusCode::OK,
        &user_edit_page(&s, &user, UserEditForm::of(&user), None),
    )
}

pub async fn save_user(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path(id): Path<String>,
    PageForm(form): PageForm<UserEditForm>,
) -> PageResult {
    let user = user_to_edit(&state, &s, &id).await?;
    let saved = match parse_roles(s.lang, &form.roles) {
        Ok(roles) => {
            auth::update_user(
                &state.db,
                &s.auth.principal,
                &s.auth.actor(&ip),
                user.id,
                form.changes(&user, roles),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match saved {
        Ok(user) => {
            Ok(Redirect::to(&format!("/admin/users?updated={}", encode_query_value(&user.username))).into_response())
        }
        Err(e) => {
            let e = AppError(e);
            // Scopes the editor may not grant, or a user gone meanwhile, are
            // refusals like the edit page's own, not slips in the form.
            if matches!(e.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
                return Err(e.into());
            }
            let (status, message) = inline(e)?;
            let form = UserEditForm {
                password: String::new(),
                ..form
            };
            render(status, &user_edit_page(&s, &user, form, Some(message)))
        }
    }
}

// ---- audit log ----

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub region: String,
    pub region_link: bool,
    pub ip: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    rows: Vec<AuditRow>,
    action: String,
    actor: String,
    paged: bool,
    next_href: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditQueryForm {
    before: Option<String>,
    action: Option<String>,
    actor: Option<String>,
}

const AUDIT_PAGE: u64 = 50;

pub async fn audit(State(state): State<AppState>, s: Signed, PageQuery(q): PageQuery<AuditQueryForm>) -> PageResult {
    let before = non_empty(&q.before)
        .map(|b| {
            b.parse::<i64>()
                .map_err(|_| CoreError::malformed("invalid_before", format!("before {b:?} is not a number")))
        })
        .transpose()?;
    let action = non_empty(&q.action).map(str::to_string);
    let actor = non_empty(&q.actor).map(str::to_string);
    let params = AuditParams {
        action: action.clone(),
        actor: actor.clone(),
        before,
        limit: Some(AUDIT_PAGE),
    };
    let found = entries(&state, &s.auth.principal, params).await?;
    let p = &s.auth.principal;
    let next_href = (found.len() as u64 == AUDIT_PAGE)
        .then(|| found.last().map(|e| e.id))
        .flatten()
        .map(|last| {
            let mut href = format!("/admin/audit?before={last}");
            for (k, v) in [("action", &action), ("actor", &actor)] {
                if let Some(v) = v {
                    href.push_str(&format!("&{k}={}", encode_query_value(v)));
                }
            }
            href
        });
    let rows = found
        .into_iter()
        .map(|e| {
            let region_link = e
                .region
                .as_deref()
                .and_then(|r| RegionCode::parse(r).ok())
                .is_some_and(|r| p.can_see(&r));
            AuditRow {
                at: local_time(&e.at),
                detail: e.detail_json().to_string(),
                actor: e.actor,
                action: e.action,
                target: e.target,
                region: e.region.unwrap_or_default(),
                region_link,
                ip: e.ip.unwrap_or_default(),
            }
        })
        .collect();
    let page = AuditPage {
        c: s.chrome(),
        rows,
        action: action.unwrap_or_default(),
        actor: actor.unwrap_or_default(),
        paged: before.is_some(),
        next_href,
    };
    render(StatusCode::OK, &page)
}

// ---- API tokens ----

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub user_id: i64,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub revoked: bool,
}

#[derive(Default, Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    expires_in_days: Option<String>,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    c: Chrome,
    tokens: Vec<TokenRow>,
    /// A national administrator lists everyone's tokens: show the owner.
    show_owner: bool,
    secret: Option<String>,
    error: Option<String>,
    name: String,
    days: String,
}

async fn tokens_page(
    state: &AppState,
    s: &Signed,
    form: TokenForm,
    secret: Option<String>,
    error: Option<String>,
) -> Result<TokensPage, PageError> {
    let t = s.lang.texts();
    let p = &s.auth.principal;
    let rows = auth::list_tokens(&state.db, p)
        .await?
        .into_iter()
        .map(|k| TokenRow {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            user_id: k.user_id,
            created: local_time(&k.created_at),
            expires: k.expires_at.as_ref().map_or_else(|| t.never.to_string(), local_time),
            last_used: k.last_used_at.as_ref().map(local_time).unwrap_or_default(),
            revoked: k.revoked_at.is_some(),
        })
        .collect();
    Ok(TokensPage {
        c: s.chrome(),
        tokens: rows,
        show_owner: p.is_national_admin(),
        secret,
        error,
        name: form.name,
        days: form.expires_in_days.unwrap_or_default(),
    })
}

pub async fn tokens(State(state): State<AppState>, s: Signed) -> PageResult {
    let page = tokens_page(&state, &s, TokenForm::default(), None, None).await?;
    render(StatusCode::OK, &page)
}

/// Creates a token and shows its secret on this one response, which must
/// not be stored by the browser or any cache.
pub async fn create_token(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    PageForm(form): PageForm<TokenForm>,
) -> PageResult {
    let days = match non_empty(&form.expires_in_days).map(str::parse::<i64>).transpose() {
        Ok(d) => d,
        Err(_) => {
            let message =
                CoreError::invalid("invalid_expiry", "expires_in_days must be a whole number of days").to_string();
            let page = tokens_page(&state, &s, form, None, Some(message)).await?;
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    match auth::create_token(&state.db, &s.auth.principal, &s.auth.actor(&ip), &form.name, days).await {
        Ok((_, secret)) => {
            let page = tokens_page(&state, &s, TokenForm::default(), Some(secret), None).await?;
            let mut resp = render(StatusCode::CREATED, &page)?;
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(resp)
        }
        Err(e) => {
            let (status, message) = inline(e.into())?;
            let page = tokens_page(&state, &s, form, None, Some(message)).await?;
            render(status, &page)
        }
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    s: Signed,
    ip: ClientIp,
    Path(id): Path<String>,
) -> PageResult {
    let id: i64 = id.parse().map_err(|_| PageError::not_found(format!("no token {id}")))?;
    auth::revoke_token(&state.db, &s.auth.principal, &s.auth.actor(&ip), id).await?;
    Ok(Redirect::to("/tokens").into_response())
}
