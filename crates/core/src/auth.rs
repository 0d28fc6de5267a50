//! People and access: users with roles scoped to regions (管辖范围), sessions
//! and API tokens (random, stored only as SHA-256), argon2 passwords,
//! sign-in rate limiting, and the bootstrap administrator.
//!
//! A scope is a region code and covers that region and everything below it;
//! `*` is the whole country, given to the first administrator.

use std::fmt;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use chrono::Duration;
use rand::RngCore;
use sea_query::{Expr, ExprTrait, Iden, Order, Query};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditEvent};
use crate::cache;
use crate::db::{Db, Tx, on_unique};
use crate::error::{CoreError, Result};
use crate::region::RegionCode;
use crate::regions;
use crate::time::{Timestamp, now};

#[derive(Iden)]
enum Users {
    Table,
    Id,
    Username,
    DisplayName,
    PasswordHash,
    Phone,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden)]
enum UserRoles {
    Table,
    UserId,
    Role,
    Scope,
}

#[derive(Iden)]
enum Sessions {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    Ip,
}

#[derive(Iden)]
enum ApiTokens {
    Table,
    Id,
    UserId,
    Name,
    TokenHash,
    Prefix,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(Iden)]
enum LoginAttempts {
    Table,
    Username,
    Ip,
    At,
    Success,
}

/// The roles of MISSION.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Official,
    VillageStaff,
    Dealer,
    Farmer,
    Carrier,
    Expert,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Self::Admin,
        Self::Official,
        Self::VillageStaff,
        Self::Dealer,
        Self::Farmer,
        Self::Carrier,
        Self::Expert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Official => "official",
            Self::VillageStaff => "village_staff",
            Self::Dealer => "dealer",
            Self::Farmer => "farmer",
            Self::Carrier => "carrier",
            Self::Expert => "expert",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            CoreError::invalid(
                "invalid_role",
                format!("role {s:?} is not one of admin, official, village_staff, dealer, farmer, carrier, expert"),
            )
        })
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Admin => "管理员",
            Self::Official => "政府工作人员",
            Self::VillageStaff => "村干部/信息员",
            Self::Dealer => "农资经营店",
            Self::Farmer => "农户/合作社",
            Self::Carrier => "物流/冷链",
            Self::Expert => "专家",
        }
    }
}

/// 管辖范围 the region a role applies to, covering everything below it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    All,
    Region(RegionCode),
}

impl Scope {
    pub fn covers(&self, code: &RegionCode) -> bool {
        match self {
            Self::All => true,
            Self::Region(s) => s.covers(code),
        }
    }

    /// True when every region this scope covers is also covered by `outer`.
    pub fn within(&self, outer: &Scope) -> bool {
        match (outer, self) {
            (Scope::All, _) => true,
            (Scope::Region(_), Scope::All) => false,
            (Scope::Region(o), Scope::Region(s)) => o.covers(s),
        }
    }

    fn parse_stored(s: &str) -> Self {
        if s == "*" {
            Self::All
        } else {
            RegionCode::parse(s).map(Self::Region).unwrap_or(Self::All)
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Region(c) => write!(f, "{c}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One role held over one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    Session,
    ApiToken,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub grants: Vec<Grant>,
    pub credential: Credential,
    /// When the session or token stops working (`None`: never).
    pub expires_at: Option<Timestamp>,
}

impl Principal {
    /// Whether one of `roles` is held over a scope covering `region`.
    pub fn can(&self, roles: &[Role], region: &RegionCode) -> bool {
        self.grants
            .iter()
            .any(|g| roles.contains(&g.role) && g.scope.covers(region))
    }

    /// 403 unless one of `roles` is held over a scope covering `region`.
    pub fn require(&self, roles: &[Role], region: &RegionCode) -> Result<()> {
        if self.can(roles, region) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!(
                "region {region} is outside your role's scope"
            )))
        }
    }

    /// 403 unless one of `roles` is held at all (for actions not tied to a region).
    pub fn require_role(&self, roles: &[Role]) -> Result<()> {
        if self.grants.iter().any(|g| roles.contains(&g.role)) {
            Ok(())
        } else {
            Err(CoreError::Forbidden("your roles do not allow this".into()))
        }
    }

    /// Whether the caller may read `region` under any of their roles.
    pub fn can_see(&self, region: &RegionCode) -> bool {
        self.grants.iter().any(|g| g.scope.covers(region))
    }

    pub fn require_see(&self, region: &RegionCode) -> Result<()> {
        if self.can_see(region) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!("region {region} is outside your scope")))
        }
    }

    /// Scopes held under any of `roles`; `None` when one of them is national.
    pub fn scopes(&self, roles: Option<&[Role]>) -> Option<Vec<RegionCode>> {
        let mut out = Vec::new();
        for g in &self.grants {
            if roles.is_some_and(|r| !r.contains(&g.role)) {
                continue;
            }
            match &g.scope {
                Scope::All => return None,
                Scope::Region(c) => out.push(c.clone()),
            }
        }
        Some(out)
    }

    /// An administrator of the whole country (the only one who may manage
    /// every user).
    pub fn is_national_admin(&self) -> bool {
        self.grants
            .iter()
            .any(|g| g.role == Role::Admin && g.scope == Scope::All)
    }

    /// The highest region the caller works in, for landing pages.
    pub fn home_scope(&self) -> Scope {
        let mut best: Option<&Scope> = None;
        for g in &self.grants {
            best = match (best, &g.scope) {
                (_, Scope::All) => return Scope::All,
                (None, s) => Some(s),
                (Some(Scope::Region(b)), Scope::Region(c)) if c.as_str().len() < b.as_str().len() => Some(&g.scope),
                (b, _) => b,
            };
        }
        best.cloned().unwrap_or(Scope::All)
    }

    pub fn actor(&self, ip: Option<String>) -> Actor {
        Actor {
            user_id: Some(self.user_id),
            name: self.username.clone(),
            ip,
        }
    }
}

/// Who did something, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn system(name: &str) -> Self {
        Self {
            user_id: None,
            name: name.to_string(),
            ip: None,
        }
    }
}

// ---- secrets ----

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a bearer secret; only this is stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

const SESSION_PREFIX: &str = "sxs_";
const TOKEN_PREFIX: &str = "sxt_";

/// A new random password of 20 URL-safe characters.
pub fn generate_password() -> String {
    b64(&random_bytes::<15>())
}

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| CoreError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(format!("password hashing failed: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Verifies against a throwaway hash, so an unknown username costs as much
/// time as a wrong password and does not reveal which usernames exist.
fn burn_verify(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password(&generate_password()).expect("argon2 with default params"));
    verify_password(password, hash);
}

/// 138****5678: phone numbers shown to roles that do not need them.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

// ---- users ----

/// A user as listed, with their grants.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub phone: Option<String>,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub roles: Vec<Grant>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    display_name: String,
    password_hash: String,
    phone: Option<String>,
    disabled: bool,
    created_at: Timestamp,
}

/// A grant as requested (`{"role": "official", "scope": "360102"}`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GrantInput {
    pub role: String,
    pub scope: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub display_name: String,
    #[serde(default)]
    pub phone: Option<String>,
    pub roles: Vec<GrantInput>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub password: Option<String>,
    pub phone: Option<String>,
    pub disabled: Option<bool>,
    pub roles: Option<Vec<GrantInput>>,
}

fn validate_username(u: &str) -> Result<()> {
    let ok = (3..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        && u.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "invalid_username",
            "username must be 3–32 characters of a–z, 0–9, '_', '.', '-', starting with a letter or digit",
        ))
    }
}

pub fn validate_password(username: &str, password: &str) -> Result<()> {
    if password.chars().count() < 10 {
        return Err(CoreError::invalid(
            "weak_password",
            "password must be at least 10 characters",
        ));
    }
    if password.len() > 256 {
        return Err(CoreError::invalid(
            "invalid_password",
            "password must be at most 256 bytes",
        ));
    }
    if password.to_lowercase().contains(&username.to_lowercase()) {
        return Err(CoreError::invalid(
            "weak_password",
            "password must not contain the username",
        ));
    }
    Ok(())
}

fn validate_display_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(CoreError::invalid(
            "invalid_display_name",
            "display_name must be 1–64 characters",
        ));
    }
    Ok(name.to_string())
}

fn validate_phone(phone: Option<&str>) -> Result<Option<String>> {
    match phone.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) if (5..=20).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'+') => {
            Ok(Some(p.to_string()))
        }
        Some(_) => Err(CoreError::invalid("invalid_phone", "phone must be 5–20 digits")),
    }
}

/// Turns requested grants into stored ones: roles known, scopes resolved to
/// existing regions (or `*` for a national administrator), and each within
/// what `granter` may hand out.
async fn resolve_grants(db: &Db, granter: &Principal, input: &[GrantInput]) -> Result<Vec<Grant>> {
    if input.is_empty() {
        return Err(CoreError::invalid("no_roles", "a user needs at least one role"));
    }
    let mut out: Vec<Grant> = Vec::new();
    for g in input {
        let role = Role::parse(&g.role)?;
        let scope = if g.scope == "*" {
            Scope::All
        } else {
            let code = RegionCode::parse(&g.scope)?;
            let region = regions::resolve(db, &code).await?.ok_or_else(|| {
                CoreError::invalid("unknown_region", format!("scope {} is not a known region", g.scope))
            })?;
            Scope::Region(region.code())
        };
        let allowed = granter
            .grants
            .iter()
            .any(|mine| mine.role == Role::Admin && scope.within(&mine.scope));
        if !allowed {
            return Err(CoreError::Forbidden(format!("you may not grant scope {scope}")));
        }
        let grant = Grant { role, scope };
        if !out.contains(&grant) {
            out.push(grant);
        }
    }
    Ok(out)
}

async fn write_grants(tx: &mut Tx, user_id: i64, grants: &[Grant]) -> Result<()> {
    let del = Query::delete()
        .from_table(UserRoles::Table)
        .and_where(Expr::col(UserRoles::UserId).eq(user_id))
        .to_owned();
    tx.execute(&del).await?;
    let mut ins = Query::insert();
    ins.into_table(UserRoles::Table)
        .columns([UserRoles::UserId, UserRoles::Role, UserRoles::Scope]);
    for g in grants {
        ins.values_panic([user_id.into(), g.role.as_str().into(), g.scope.to_string().into()]);
    }
    tx.execute(&ins).await?;
    Ok(())
}

/// The region an audit entry about these grants belongs to: the narrowest
/// common scope, so officials of that region can read it.
fn grants_region(grants: &[Grant]) -> Option<String> {
    let codes: Vec<&str> = grants
        .iter()
        .map(|g| match &g.scope {
            Scope::All => "",
            Scope::Region(c) => c.as_str(),
        })
        .collect();
    let first = *codes.first()?;
    let mut common = first.len();
    for c in &codes[1..] {
        common = common.min(first.bytes().zip(c.bytes()).take_while(|(a, b)| a == b).count());
    }
    let prefix = &first[..common];
    let level_len = [12, 9, 6, 4, 2].into_iter().find(|&l| l <= prefix.len())?;
    Some(prefix[..level_len].to_string())
}

/// Creates a user with argon2-hashed password; `granter` must be an
/// administrator whose scope covers every requested scope.
pub async fn create_user(db: &Db, granter: &Principal, actor: &Actor, new: NewUser) -> Result<User> {
    granter.require_role(&[Role::Admin])?;
    let username = new.username.trim().to_string();
    validate_username(&username)?;
    validate_password(&username, &new.password)?;
    let display_name = validate_display_name(&new.display_name)?;
    let phone = validate_phone(new.phone.as_deref())?;
    let grants = resolve_grants(db, granter, &new.roles).await?;
    let hash = hash_password(&new.password)?;
    insert_user(db, actor, &username, &display_name, &hash, phone, grants).await
}

async fn insert_user(
    db: &Db,
    actor: &Actor,
    username: &str,
    display_name: &str,
    hash: &str,
    phone: Option<String>,
    grants: Vec<Grant>,
) -> Result<User> {
    let at = now();
    let mut tx = db.begin().await?;
    let ins = Query::insert()
        .into_table(Users::Table)
        .columns([
            Users::Username,
            Users::DisplayName,
            Users::PasswordHash,
            Users::Phone,
            Users::Disabled,
            Users::CreatedAt,
            Users::UpdatedAt,
        ])
        .values_panic([
            username.into(),
            display_name.into(),
            hash.into(),
            phone.clone().into(),
            false.into(),
            at.into(),
            at.into(),
        ])
        .returning_col(Users::Id)
        .to_owned();
    let (id,): (i64,) = tx
        .fetch_one(&ins)
        .await
        .map_err(|e| on_unique(e, "username_taken", format!("username {username:?} is already taken")))?;
    write_grants(&mut tx, id, &grants).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "user.create",
            target: format!("user:{id}"),
            region: grants_region(&grants),
            detail: serde_json::json!({"username": username, "roles": grants}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(User {
        id,
        username: username.to_string(),
        display_name: display_name.to_string(),
        phone,
        disabled: false,
        created_at: at,
        roles: grants,
    })
}

async fn grants_of(db: &Db, user_ids: &[i64]) -> Result<Vec<(i64, Grant)>> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let q = Query::select()
        .columns([UserRoles::UserId, UserRoles::Role, UserRoles::Scope])
        .from(UserRoles::Table)
        .and_where(Expr::col(UserRoles::UserId).is_in(user_ids.iter().copied()))
        .order_by(UserRoles::Role, Order::Asc)
        .order_by(UserRoles::Scope, Order::Asc)
        .to_owned();
    let rows: Vec<(i64, String, String)> = db.fetch_all(&q).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, role, scope)| {
            Some((
                id,
                Grant {
                    role: Role::parse(&role).ok()?,
                    scope: Scope::parse_stored(&scope),
                },
            ))
        })
        .collect())
}

fn user_columns() -> [Users; 7] {
    [
        Users::Id,
        Users::Username,
        Users::DisplayName,
        Users::PasswordHash,
        Users::Phone,
        Users::Disabled,
        Users::CreatedAt,
    ]
}

fn to_user(row: UserRow, grants: &[(i64, Grant)]) -> User {
    User {
        id: row.id,
        username: row.username,
        display_name: row.display_name,
        phone: row.phone,
        disabled: row.disabled,
        created_at: row.created_at,
        roles: grants
            .iter()
            .filter(|(id, _)| *id == row.id)
            .map(|(_, g)| g.clone())
            .collect(),
    }
}

/// Whether `viewer` may see `user`: national administrators see everyone;
/// administrators and officials see users all of whose scopes lie in theirs.
fn may_view(viewer: &Principal, user: &User) -> bool {
    if viewer.user_id == user.id || viewer.is_national_admin() {
        return true;
    }
    let mine: Vec<&Scope> = viewer
        .grants
        .iter()
        .filter(|g| matches!(g.role, Role::Admin | Role::Official))
        .map(|g| &g.scope)
        .collect();
    !user.roles.is_empty() && user.roles.iter().all(|g| mine.iter().any(|m| g.scope.within(m)))
}

/// Users visible to `viewer`, phones masked unless the viewer administers them.
pub async fn list_users(db: &Db, viewer: &Principal) -> Result<Vec<User>> {
    viewer.require_role(&[Role::Admin, Role::Official])?;
    let q = Query::select()
        .columns(user_columns())
        .from(Users::Table)
        .order_by(Users::Id, Order::Asc)
        .to_owned();
    let rows: Vec<UserRow> = db.fetch_all(&q).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let grants = grants_of(db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| to_user(r, &grants))
        .filter(|u| may_view(viewer, u))
        .map(|u| mask_for(viewer, u))
        .collect())
}

/// Whether `viewer` may change `user`: an administrator whose scopes cover
/// every scope the user holds.
pub fn may_administer(viewer: &Principal, user: &User) -> bool {
    let mine: Vec<&Scope> = viewer
        .grants
        .iter()
        .filter(|g| g.role == Role::Admin)
        .map(|g| &g.scope)
        .collect();
    viewer.is_national_admin()
        || (!user.roles.is_empty() && user.roles.iter().all(|g| mine.iter().any(|m| g.scope.within(m))))
}

fn mask_for(viewer: &Principal, mut user: User) -> User {
    if !(may_administer(viewer, &user) || viewer.user_id == user.id) {
        user.phone = user.phone.as_deref().map(mask_phone);
    }
    user
}

async fn load_user(db: &Db, id: i64) -> Result<Option<(User, String)>> {
    let q = Query::select()
        .columns(user_columns())
        .from(Users::Table)
        .and_where(Expr::col(Users::Id).eq(id))
        .to_owned();
    let Some(row): Option<UserRow> = db.fetch_optional(&q).await? else {
        return Ok(None);
    };
    let grants = grants_of(db, &[id]).await?;
    let hash = row.password_hash.clone();
    Ok(Some((to_user(row, &grants), hash)))
}

pub async fn get_user(db: &Db, viewer: &Principal, id: i64) -> Result<User> {
    let (user, _) = load_user(db, id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no user {id}")))?;
    if !may_view(viewer, &user) {
        return Err(CoreError::Forbidden(format!("user {id} is outside your scope")));
    }
    Ok(mask_for(viewer, user))
}

/// Changes a user; only administrators whose scope covers all of the user's
/// scopes (before and after) may. Disabling a user ends their sessions.
pub async fn update_user(db: &Db, admin: &Principal, actor: &Actor, id: i64, upd: UserUpdate) -> Result<User> {
    admin.require_role(&[Role::Admin])?;
    let (user, _) = load_user(db, id)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no user {id}")))?;
    if !may_administer(admin, &user) {
        return Err(CoreError::Forbidden(format!("user {id} is outside your scope")));
    }
    let grants = match &upd.roles {
        Some(r) => Some(resolve_grants(db, admin, r).await?),
        None => None,
    };
    if id == admin.user_id
        && (upd.disabled == Some(true)
            || grants
                .as_ref()
                .is_some_and(|g| !g.iter().any(|g| g.role == Role::Admin)))
    {
        return Err(CoreError::invalid(
            "self_lockout",
            "you cannot disable yourself or remove your own admin role",
        ));
    }
    let display_name = upd.display_name.as_deref().map(validate_display_name).transpose()?;
    let phone = match upd.phone.as_deref() {
        Some(p) => Some(validate_phone(Some(p))?),
        None => None,
    };
    let hash = match upd.password.as_deref() {
        Some(p) => {
            validate_password(&user.username, p)?;
            Some(hash_password(p)?)
        }
        None => None,
    };
    let mut tx = db.begin().await?;
    let mut q = Query::update();
    q.table(Users::Table)
        .value(Users::UpdatedAt, now())
        .and_where(Expr::col(Users::Id).eq(id));
    if let Some(n) = &display_name {
        q.value(Users::DisplayName, n.as_str());
    }
    if let Some(p) = &phone {
        q.value(Users::Phone, p.clone());
    }
    if let Some(h) = &hash {
        q.value(Users::PasswordHash, h.as_str());
    }
    if let Some(d) = upd.disabled {
        q.value(Users::Disabled, d);
    }
    tx.execute(&q).await?;
    if let Some(g) = &grants {
        write_grants(&mut tx, id, g).await?;
    }
    if upd.disabled == Some(true) || hash.is_some() {
        let del = Query::delete()
            .from_table(Sessions::Table)
            .and_where(Expr::col(Sessions::UserId).eq(id))
            .to_owned();
        tx.execute(&del).await?;
    }
    let region = grants_region(grants.as_deref().unwrap_or(&user.roles));
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "user.update",
            target: format!("user:{id}"),
            region,
            detail: serde_json::json!({
                "display_name": display_name,
                "password_changed": hash.is_some(),
                "phone_changed": phone.is_some(),
                "disabled": upd.disabled,
                "roles": grants,
            }),
        },
    )
    .await?;
    cache::bump(&mut tx, cache::AUTH).await?;
    tx.commit().await?;
    get_user(db, admin, id).await
}

/// Creates the first administrator (national scope) when there are no users.
/// Returns the password when it was generated, so the caller can print it once.
pub async fn ensure_admin(db: &Db, password: Option<&str>) -> Result<Option<String>> {
    let q = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from(Users::Table)
        .to_owned();
    let (n,): (i64,) = db.fetch_one(&q).await?;
    if n > 0 {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) => (p.to_string(), false),
        None => (generate_password(), true),
    };
    let hash = hash_password(&password)?;
    let grants = vec![Grant {
        role: Role::Admin,
        scope: Scope::All,
    }];
    insert_user(
        db,
        &Actor::system("bootstrap"),
        "admin",
        "系统管理员 Administrator",
        &hash,
        None,
        grants,
    )
    .await?;
    Ok(generated.then_some(password))
}

// ---- sign-in, sessions, tokens ----

/// Sign-in throttling: failures counted over this window.
const ATTEMPT_WINDOW_MINUTES: i64 = 15;
/// Failures per username within the window before sign-in is refused.
const MAX_FAILURES_PER_USER: i64 = 5;
/// Failures per client address within the window (covers password spraying).
const MAX_FAILURES_PER_IP: i64 = 30;

async fn recent_failures(
    db: &Db,
    col: LoginAttempts,
    value: &str,
    since: Timestamp,
) -> Result<(i64, Option<Timestamp>)> {
    let q = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .expr(Expr::cust("MIN(at)"))
        .from(LoginAttempts::Table)
        .and_where(Expr::col(col).eq(value))
        .and_where(Expr::col(LoginAttempts::At).gte(since))
        .and_where(Expr::col(LoginAttempts::Success).eq(false))
        .to_owned();
    db.fetch_one(&q).await
}

/// A successful sign-in: the session token (shown once) and its expiry.
pub struct SignedIn {
    pub token: String,
    pub expires_at: Timestamp,
    pub principal: Principal,
}

/// Checks the password and opens a session; every attempt is logged and audited.
pub async fn login(db: &Db, username: &str, password: &str, ip: &str, ttl: Duration) -> Result<SignedIn> {
    let username = username.trim().to_lowercase();
    let since = now() - Duration::minutes(ATTEMPT_WINDOW_MINUTES);
    let (by_user, first_user) = recent_failures(db, LoginAttempts::Username, &username, since).await?;
    let (by_ip, first_ip) = recent_failures(db, LoginAttempts::Ip, ip, since).await?;
    let limited = if by_user >= MAX_FAILURES_PER_USER {
        first_user
    } else if by_ip >= MAX_FAILURES_PER_IP {
        first_ip
    } else {
        None
    };
    if let Some(first) = limited {
        let retry = Ord::max(
            (first + Duration::minutes(ATTEMPT_WINDOW_MINUTES) - now()).num_seconds(),
            1,
        ) as u64;
        return Err(CoreError::TooManyAttempts {
            retry_after_secs: retry,
        });
    }

    let q = Query::select()
        .columns(user_columns())
        .from(Users::Table)
        .and_where(Expr::col(Users::Username).eq(username.as_str()))
        .to_owned();
    let row: Option<UserRow> = db.fetch_optional(&q).await?;
    let ok_user = match &row {
        Some(r) => verify_password(password, &r.password_hash) && !r.disabled,
        None => {
            burn_verify(password);
            false
        }
    };
    let at = now();
    let mut tx = db.begin().await?;
    let attempt = Query::insert()
        .into_table(LoginAttempts::Table)
        .columns([
            LoginAttempts::Username,
            LoginAttempts::Ip,
            LoginAttempts::At,
            LoginAttempts::Success,
        ])
        .values_panic([username.as_str().into(), ip.into(), at.into(), ok_user.into()])
        .to_owned();
    tx.execute(&attempt).await?;
    let actor = Actor {
        user_id: row.as_ref().map(|r| r.id),
        name: username.clone(),
        ip: Some(ip.to_string()),
    };
    let Some(row) = row.filter(|_| ok_user) else {
        audit::record(
            &mut tx,
            &actor,
            AuditEvent {
                action: "auth.login_failed",
                target: format!("username:{username}"),
                region: None,
                detail: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(CoreError::BadCredentials);
    };
    let token = format!("{SESSION_PREFIX}{}", b64(&random_bytes::<32>()));
    let expires_at = at + ttl;
    let ins = Query::insert()
        .into_table(Sessions::Table)
        .columns([
            Sessions::TokenHash,
            Sessions::UserId,
            Sessions::CreatedAt,
            Sessions::ExpiresAt,
            Sessions::Ip,
        ])
        .values_panic([
            hash_secret(&token).into(),
            row.id.into(),
            at.into(),
            expires_at.into(),
            ip.into(),
        ])
        .to_owned();
    tx.execute(&ins).await?;
    let grants: Vec<Grant> = grants_of(db, &[row.id]).await?.into_iter().map(|(_, g)| g).collect();
    audit::record(
        &mut tx,
        &actor,
        AuditEvent {
            action: "auth.login",
            target: format!("user:{}", row.id),
            region: grants_region(&grants),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    // Expired sessions of this user go with each sign-in, keeping the table small.
    let purge = Query::delete()
        .from_table(Sessions::Table)
        .and_where(Expr::col(Sessions::UserId).eq(row.id))
        .and_where(Expr::col(Sessions::ExpiresAt).lt(at))
        .to_owned();
    tx.execute(&purge).await?;
    tx.commit().await?;
    Ok(SignedIn {
        token,
        expires_at,
        principal: Principal {
            user_id: row.id,
            username: row.username,
            display_name: row.display_name,
            grants,
            credential: Credential::Session,
            expires_at: Some(expires_at),
        },
    })
}

/// Ends the session of `token` (no-op for API tokens, which are revoked instead).
pub async fn logout(db: &Db, principal: &Principal, token: &str, ip: Option<String>) -> Result<()> {
    let mut tx = db.begin().await?;
    let del = Query::delete()
        .from_table(Sessions::Table)
        .and_where(Expr::col(Sessions::TokenHash).eq(hash_secret(token)))
        .to_owned();
    tx.execute(&del).await?;
    audit::record(
        &mut tx,
        &principal.actor(ip),
        AuditEvent {
            action: "auth.logout",
            target: format!("user:{}", principal.user_id),
            region: None,
            detail: serde_json::json!({}),
        },
    )
    .await?;
    cache::bump(&mut tx, cache::AUTH).await?;
    tx.commit().await
}

/// One row of the sign-in lookup: the user with one of their grants.
#[derive(sqlx::FromRow)]
struct CredentialRow {
    user_id: i64,
    username: String,
    display_name: String,
    role: String,
    scope: String,
    last_used_at: Option<Timestamp>,
    token_id: Option<i64>,
    expires_at: Option<Timestamp>,
}

/// Resolves a bearer secret (session or API token) to its principal, in one
/// query: credential, active user and grants joined, as it runs on every request.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<Principal>> {
    let hash = hash_secret(secret);
    let at = now();
    let mut q = Query::select();
    q.expr_as(Expr::col((Users::Table, Users::Id)), "user_id")
        .column((Users::Table, Users::Username))
        .column((Users::Table, Users::DisplayName))
        .column((UserRoles::Table, UserRoles::Role))
        .column((UserRoles::Table, UserRoles::Scope))
        .and_where(Expr::col((Users::Table, Users::Disabled)).eq(false));
    let credential = if secret.starts_with(SESSION_PREFIX) {
        q.expr_as(Expr::cust("NULL"), "last_used_at")
            .expr_as(Expr::cust("NULL"), "token_id")
            .column((Sessions::Table, Sessions::ExpiresAt))
            .from(Sessions::Table)
            .inner_join(
                Users::Table,
                Expr::col((Users::Table, Users::Id)).equals((Sessions::Table, Sessions::UserId)),
            )
            .and_where(Expr::col((Sessions::Table, Sessions::TokenHash)).eq(hash.as_str()))
            .and_where(Expr::col((Sessions::Table, Sessions::ExpiresAt)).gt(at));
        Credential::Session
    } else if secret.starts_with(TOKEN_PREFIX) {
        q.column((ApiTokens::Table, ApiTokens::LastUsedAt))
            .expr_as(Expr::col((ApiTokens::Table, ApiTokens::Id)), "token_id")
            .column((ApiTokens::Table, ApiTokens::ExpiresAt))
            .from(ApiTokens::Table)
            .inner_join(
                Users::Table,
                Expr::col((Users::Table, Users::Id)).equals((ApiTokens::Table, ApiTokens::UserId)),
            )
            .and_where(Expr::col((ApiTokens::Table, ApiTokens::TokenHash)).eq(hash.as_str()))
            .and_where(Expr::col((ApiTokens::Table, ApiTokens::RevokedAt)).is_null())
            .and_where(
                Expr::col((ApiTokens::Table, ApiTokens::ExpiresAt))
                    .is_null()
                    .or(Expr::col((ApiTokens::Table, ApiTokens::ExpiresAt)).gt(at)),
            );
        Credential::ApiToken
    } else {
        return Ok(None);
    };
    // Joined after the credential table, so PostgreSQL sees `users` in scope.
    q.inner_join(
        UserRoles::Table,
        Expr::col((UserRoles::Table, UserRoles::UserId)).equals((Users::Table, Users::Id)),
    );
    let rows: Vec<CredentialRow> = db.fetch_all(&q).await?;
    let Some(first) = rows.first() else { return Ok(None) };
    if let Some(token_id) = first.token_id {
        // Last use is kept to the minute, not written on every request.
        if first.last_used_at.is_none_or(|l| at - l > Duration::minutes(1)) {
            let upd = Query::update()
                .table(ApiTokens::Table)
                .value(ApiTokens::LastUsedAt, at)
                .and_where(Expr::col(ApiTokens::Id).eq(token_id))
                .to_owned();
            db.execute(&upd).await?;
        }
    }
    let grants = rows
        .iter()
        .filter_map(|r| {
            Some(Grant {
                role: Role::parse(&r.role).ok()?,
                scope: Scope::parse_stored(&r.scope),
            })
        })
        .collect();
    Ok(Some(Principal {
        user_id: first.user_id,
        username: first.username.clone(),
        display_name: first.display_name.clone(),
        grants,
        credential,
        expires_at: first.expires_at,
    }))
}

/// The principal of an active user by username, for trusted operator tools
/// (the CLI) acting on a user's behalf.
pub async fn principal_for_username(db: &Db, username: &str) -> Result<Principal> {
    let q = Query::select()
        .columns(user_columns())
        .from(Users::Table)
        .and_where(Expr::col(Users::Username).eq(username))
        .and_where(Expr::col(Users::Disabled).eq(false))
        .to_owned();
    let row: UserRow = db
        .fetch_optional(&q)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no active user {username:?}")))?;
    let grants = grants_of(db, &[row.id]).await?.into_iter().map(|(_, g)| g).collect();
    Ok(Principal {
        user_id: row.id,
        username: row.username,
        display_name: row.display_name,
        grants,
        credential: Credential::ApiToken,
        expires_at: None,
    })
}

/// The platform operator at the console: a national administrator that is
/// not a stored user (id 0), used by the CLI.
pub fn operator() -> Principal {
    Principal {
        user_id: 0,
        username: "operator".into(),
        display_name: "console operator".into(),
        grants: vec![Grant {
            role: Role::Admin,
            scope: Scope::All,
        }],
        credential: Credential::ApiToken,
        expires_at: None,
    }
}

/// An API token as listed (never the secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

/// Creates an API token for the caller's own account, acting with the
/// caller's roles; the secret is returned once and only its hash is kept.
pub async fn create_token(
    db: &Db,
    owner: &Principal,
    actor: &Actor,
    name: &str,
    expires_in_days: Option<i64>,
) -> Result<(ApiToken, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(CoreError::invalid("invalid_token_name", "name must be 1–64 characters"));
    }
    if expires_in_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(CoreError::invalid(
            "invalid_expiry",
            "expires_in_days must be between 1 and 3650",
        ));
    }
    let secret = format!("{TOKEN_PREFIX}{}", b64(&random_bytes::<32>()));
    let prefix = secret[..TOKEN_PREFIX.len() + 6].to_string();
    let at = now();
    let expires_at = expires_in_days.map(|d| at + Duration::days(d));
    let mut tx = db.begin().await?;
    let ins = Query::insert()
        .into_table(ApiTokens::Table)
        .columns([
            ApiTokens::UserId,
            ApiTokens::Name,
            ApiTokens::TokenHash,
            ApiTokens::Prefix,
            ApiTokens::CreatedAt,
            ApiTokens::ExpiresAt,
        ])
        .values_panic([
            owner.user_id.into(),
            name.into(),
            hash_secret(&secret).into(),
            prefix.as_str().into(),
            at.into(),
            expires_at.into(),
        ])
        .returning_col(ApiTokens::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&ins).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "token.create",
            target: format!("token:{id}"),
            region: grants_region(&owner.grants),
            detail: serde_json::json!({"name": name, "prefix": prefix}),
        },
    )
    .await?;
    tx.commit().await?;
    let token = ApiToken {
        id,
        user_id: owner.user_id,
        name: name.to_string(),
        prefix,
        created_at: at,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    Ok((token, secret))
}

fn token_columns() -> [ApiTokens; 8] {
    [
        ApiTokens::Id,
        ApiTokens::UserId,
        ApiTokens::Name,
        ApiTokens::Prefix,
        ApiTokens::CreatedAt,
        ApiTokens::ExpiresAt,
        ApiTokens::RevokedAt,
        ApiTokens::LastUsedAt,
    ]
}

/// The caller's tokens; a national administrator sees everyone's.
pub async fn list_tokens(db: &Db, viewer: &Principal) -> Result<Vec<ApiToken>> {
    let mut q = Query::select();
    q.columns(token_columns())
        .from(ApiTokens::Table)
        .order_by(ApiTokens::Id, Order::Asc);
    if !viewer.is_national_admin() {
        q.and_where(Expr::col(ApiTokens::UserId).eq(viewer.user_id));
    }
    db.fetch_all(&q).await
}

/// Revokes a token of the caller's own (or any, for a national administrator).
pub async fn revoke_token(db: &Db, viewer: &Principal, actor: &Actor, id: i64) -> Result<()> {
    let q = Query::select()
        .columns(token_columns())
        .from(ApiTokens::Table)
        .and_where(Expr::col(ApiTokens::Id).eq(id))
        .to_owned();
    let token: ApiToken = db
        .fetch_optional(&q)
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no token {id}")))?;
    if token.user_id != viewer.user_id && !viewer.is_national_admin() {
        return Err(CoreError::Forbidden(format!("token {id} is not yours")));
    }
    let mut tx = db.begin().await?;
    let upd = Query::update()
        .table(ApiTokens::Table)
        .value(ApiTokens::RevokedAt, now())
        .and_where(Expr::col(ApiTokens::Id).eq(id))
        .and_where(Expr::col(ApiTokens::RevokedAt).is_null())
        .to_owned();
    tx.execute(&upd).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "token.revoke",
            target: format!("token:{id}"),
            region: None,
            detail: serde_json::json!({"name": token.name}),
        },
    )
    .await?;
    cache::bump(&mut tx, cache::AUTH).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(grants: &[(Role, &str)]) -> Principal {
        Principal {
            user_id: 1,
            username: "u".into(),
            display_name: "u".into(),
            grants: grants
                .iter()
                .map(|(r, s)| Grant {
                    role: *r,
                    scope: if *s == "*" {
                        Scope::All
                    } else {
                        Scope::Region(RegionCode::parse(s).unwrap())
                    },
                })
                .collect(),
            credential: Credential::Session,
            expires_at: None,
        }
    }

    fn rc(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    #[test]
    fn county_official_is_confined_to_the_county() {
        let o = p(&[(Role::Official, "360102")]);
        assert!(o.can(&[Role::Official], &rc("360102")));
        assert!(o.can(&[Role::Official], &rc("360102002001")));
        assert!(!o.can(&[Role::Official], &rc("360103")));
        assert!(!o.can(&[Role::Official], &rc("3601")));
        assert!(!o.can(&[Role::Admin], &rc("360102")));
        assert_eq!(
            o.require(&[Role::Official], &rc("3601")).unwrap_err().code(),
            "forbidden"
        );
        assert_eq!(o.scopes(None), Some(vec![rc("360102")]));
    }

    #[test]
    fn national_scope_covers_everything() {
        let a = p(&[(Role::Admin, "*")]);
        assert!(a.can(&[Role::Admin], &rc("110101001001")));
        assert!(a.is_national_admin());
        assert_eq!(a.scopes(None), None);
        assert_eq!(a.home_scope(), Scope::All);
    }

    #[test]
    fn home_scope_is_the_widest_grant() {
        let u = p(&[(Role::Farmer, "360102002001"), (Role::Official, "3601")]);
        assert_eq!(u.home_scope(), Scope::Region(rc("3601")));
    }

    #[test]
    fn scopes_nest() {
        let county = Scope::Region(rc("360102"));
        assert!(Scope::Region(rc("360102002")).within(&county));
        assert!(!Scope::Region(rc("3601")).within(&county));
        assert!(!Scope::All.within(&county));
        assert!(county.within(&Scope::All));
    }

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("123"), "***");
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
    }

    #[test]
    fn password_rules() {
        assert_eq!(validate_password("zhang", "short").unwrap_err().code(), "weak_password");
        assert_eq!(
            validate_password("zhang", "my-zhang-password").unwrap_err().code(),
            "weak_password"
        );
        assert!(validate_password("zhang", "a long enough secret").is_ok());
    }

    #[test]
    fn audit_region_of_grants_is_their_common_region() {
        let g = |s: &str| Grant {
            role: Role::Official,
            scope: Scope::Region(rc(s)),
        };
        assert_eq!(grants_region(&[g("360102"), g("360103")]).as_deref(), Some("3601"));
        assert_eq!(grants_region(&[g("360102002001")]).as_deref(), Some("360102002001"));
        assert_eq!(grants_region(&[g("360102"), g("110101")]), None);
        assert_eq!(
            grants_region(&[Grant {
                role: Role::Admin,
                scope: Scope::All
            }]),
            None
        );
    }

    #[test]
    fn secrets_are_stored_hashed() {
        let h = hash_secret("sxs_abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, "sxs_abc");
    }
}
