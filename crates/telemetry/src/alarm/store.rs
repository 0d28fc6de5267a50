//! Storage of alarm rules, alarms (告警) with their transition history,
//! devices' last-seen times and webhooks, with who may read and change
//! them. User-facing writes are audited in their own transaction; every
//! transition enqueues its webhook notifications in the same transaction.
//!
//! Who may do what:
//! - rules and webhooks: administrators and officials (政府工作人员) whose
//!   scope covers the rule's or webhook's region create, change and delete
//!   them; village staff read rules too. A rule set for a wider region than
//!   the caller's (a province rule) is listed to them, since it applies in
//!   their region, but they cannot change it.
//! - alarms: administrators, officials and village staff see, acknowledge
//!   and clear the alarms of devices in their scope; farmers see the alarms
//!   of the devices they own (ownership as the ingest path reported it) and
//!   nothing else; other roles are refused.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sea_query::{Condition as Where, Expr, ExprTrait, Iden, IntoColumnRef, OnConflict, Order, Query, SimpleExpr};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shuxiang_core::audit::{self, AuditEvent};
use shuxiang_core::auth::{Actor, Principal, Role, Scope};
use shuxiang_core::db::{Db, Tx};
use shuxiang_core::{CoreError, RegionCode, cache, regions};

use super::DeviceRef;
use super::notify;
use super::rules::{Condition, DEVICE_TYPES, Rule, Severity, Target};

/// Who may create, change and delete rules and webhooks.
pub const EDITORS: &[Role] = &[Role::Admin, Role::Official];
/// Who may read rules and the alarms of their region, and act on alarms.
pub const STAFF: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff];

/// The generation counter (see `shuxiang_core::cache`) bumped by every
/// change the engines must notice: rules, webhooks, manual clears.
pub const GENERATION: &str = "alarms";

const MAX_NAME: usize = 100;
const MAX_URL: usize = 2_000;
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1_000;

/// Changes made by this process, so engines in it notice them at once
/// instead of at their next look at the shared generation counter.
static LOCAL_CHANGES: AtomicU64 = AtomicU64::new(0);

pub fn local_changes() -> u64 {
    LOCAL_CHANGES.load(Ordering::SeqCst)
}

fn changed_locally() {
    LOCAL_CHANGES.fetch_add(1, Ordering::SeqCst);
}

#[derive(Iden, Clone, Copy)]
enum AlarmRules {
    Table,
    Id,
    Name,
    Region,
    DeviceType,
    DeviceId,
    Severity,
    Kind,
    Metric,
    Condition,
    Enabled,
    Deleted,
    CreatedBy,
    CreatedMs,
    UpdatedMs,
}

#[derive(Iden, Clone, Copy)]
enum AlarmAlarms {
    Table,
    Id,
    RuleId,
    DeviceId,
    DeviceName,
    DeviceType,
    Village,
    OwnerUserId,
    Kind,
    Metric,
    Severity,
    Status,
    Message,
    Value,
    RaisedMs,
    AcknowledgedMs,
    AcknowledgedBy,
    ClearedMs,
    ClearedBy,
}

#[derive(Iden, Clone, Copy)]
enum AlarmHistory {
    Table,
    Id,
    AlarmId,
    AtMs,
    Transition,
    ByUserId,
    ByName,
    Value,
    Note,
}

#[derive(Iden, Clone, Copy)]
enum AlarmDeviceSeen {
    Table,
    DeviceId,
    DeviceName,
    DeviceType,
    Village,
    OwnerUserId,
    LastSeenMs,
}

#[derive(Iden, Clone, Copy)]
pub(super) enum AlarmWebhooks {
    Table,
    Id,
    Region,
    Url,
    Enabled,
    Deleted,
    CreatedBy,
    CreatedMs,
}

pub(super) fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The half-open code range of a region and everything below it.
fn within<C: IntoColumnRef + Clone>(col: C, code: &RegionCode) -> SimpleExpr {
    let (lo, hi) = code.subtree_range();
    Expr::col(col.clone()).gte(lo).and(Expr::col(col).lt(hi))
}

fn never() -> SimpleExpr {
    Expr::val(1).eq(0)
}

fn parse_region(raw: &str) -> Result<RegionCode, CoreError> {
    RegionCode::parse(raw)
}

/// A region code as written, resolved against the stored tree.
async fn known_region(db: &Db, raw: &str) -> Result<RegionCode, CoreError> {
    let code = parse_region(raw)?;
    match regions::resolve(db, &code).await? {
        Some(r) => Ok(r.code()),
        None => Err(CoreError::invalid(
            "unknown_region",
            format!("region {raw} is not a known region"),
        )),
    }
}

fn validate_name(raw: &str) -> Result<String, CoreError> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > MAX_NAME || s.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            "invalid_name",
            format!("the name must be 1 to {MAX_NAME} characters without control characters"),
        ));
    }
    Ok(s.to_string())
}

fn clamp_limit(limit: Option<u64>) -> u64 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

// ---- rules ----

/// A rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleView {
    pub id: i64,
    pub name: String,
    pub region: String,
    pub device_type: Option<String>,
    pub device_id: Option<i64>,
    pub severity: Severity,
    pub condition: Condition,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RuleView {
    pub fn to_rule(&self) -> Result<Rule, CoreError> {
        let target = match (&self.device_type, self.device_id) {
            (Some(t), None) => Target::DeviceType(t.clone()),
            (None, Some(id)) => Target::Device(id),
            _ => return Err(CoreError::Internal(format!("rule {} has no single target", self.id))),
        };
        Ok(Rule {
            id: self.id,
            name: self.name.clone(),
            region: RegionCode::parse(&self.region)
                .map_err(|_| CoreError::Internal(format!("rule {} has region {:?}", self.id, self.region)))?,
            target,
            severity: self.severity,
            condition: self.condition.clone(),
            enabled: self.enabled,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    name: String,
    region: String,
    device_type: Option<String>,
    device_id: Option<i64>,
    severity: String,
    condition: String,
    enabled: bool,
    created_ms: i64,
    updated_ms: i64,
}

impl TryFrom<RuleRow> for RuleView {
    type Error = CoreError;

    fn try_from(r: RuleRow) -> Result<Self, CoreError> {
        Ok(Self {
            id: r.id,
            name: r.name,
            region: r.region,
            device_type: r.device_type,
            device_id: r.device_id,
            severity: Severity::parse_stored(&r.severity)?,
            condition: serde_json::from_str(&r.condition)
                .map_err(|e| CoreError::Internal(format!("condition of rule {}: {e}", r.id)))?,
            enabled: r.enabled,
            created_at: ms_to_time(r.created_ms),
            updated_at: ms_to_time(r.updated_ms),
        })
    }
}

fn rule_columns() -> [AlarmRules; 10] {
    [
        AlarmRules::Id,
        AlarmRules::Name,
        AlarmRules::Region,
        AlarmRules::DeviceType,
        AlarmRules::DeviceId,
        AlarmRules::Severity,
        AlarmRules::Condition,
        AlarmRules::Enabled,
        AlarmRules::CreatedMs,
        AlarmRules::UpdatedMs,
    ]
}

/// A rule to create: for every device of `device_type` in `region`, or for
/// the one device `device_id` (which must lie in `region` to be watched).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub name: String,
    pub region: String,
    #[serde(default)]
    pub device_type: Option<String>,
    #[serde(default)]
    pub device_id: Option<i64>,
    pub severity: Severity,
    pub condition: Condition,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Fields to change; absent ones stay. Region and target never change: a
/// different target is a different rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleUpdate {
    pub name: Option<String>,
    pub severity: Option<Severity>,
    pub condition: Option<Condition>,
    pub enabled: Option<bool>,
}

fn validate_target(device_type: Option<&str>, device_id: Option<i64>) -> Result<(), CoreError> {
    match (device_type, device_id) {
        (Some(t), None) if DEVICE_TYPES.contains(&t) => Ok(()),
        (Some(t), None) => Err(CoreError::invalid(
            "invalid_device_type",
            format!("device_type {t:?} is not one of {}", DEVICE_TYPES.join(", ")),
        )),
        (None, Some(id)) if id > 0 => Ok(()),
        (None, Some(_)) => Err(CoreError::invalid("invalid_device_id", "device_id must be positive")),
        _ => Err(CoreError::invalid(
            "invalid_target",
            "give exactly one of device_type and device_id",
        )),
    }
}

/// Marks the engines' view as stale, inside the changing transaction.
async fn bump(tx: &mut Tx) -> Result<(), CoreError> {
    cache::bump(tx, GENERATION).await
}

pub async fn create_rule(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    new: NewRule,
    now_ms: i64,
) -> Result<RuleView, CoreError> {
    caller.require_role(EDITORS)?;
    let name = validate_name(&new.name)?;
    validate_target(new.device_type.as_deref(), new.device_id)?;
    new.condition.validate()?;
    let region = known_region(db, &new.region).await?;
    caller.require(EDITORS, &region)?;
    let enabled = new.enabled.unwrap_or(true);
    let condition = serde_json::to_string(&new.condition).map_err(|e| CoreError::Internal(e.to_string()))?;
    let mut tx = db.begin().await?;
    let q = Query::insert()
        .into_table(AlarmRules::Table)
        .columns([
            AlarmRules::Name,
            AlarmRules::Region,
            AlarmRules::DeviceType,
            AlarmRules::DeviceId,
            AlarmRules::Severity,
            AlarmRules::Kind,
            AlarmRules::Metric,
            AlarmRules::Condition,
            AlarmRules::Enabled,
            AlarmRules::Deleted,
            AlarmRules::CreatedBy,
            AlarmRules::CreatedMs,
            AlarmRules::UpdatedMs,
        ])
        .values_panic([
            name.as_str().into(),
            region.as_str().into(),
            new.device_type.clone().into(),
            new.device_id.into(),
            new.severity.as_str().into(),
            new.condition.kind().into(),
            new.condition.metric().map(str::to_string).into(),
            condition.into(),
            enabled.into(),
            false.into(),
            caller.user_id.into(),
            now_ms.into(),
            now_ms.into(),
        ])
        .returning_col(AlarmRules::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "alarm_rule.create",
            target: format!("alarm_rule:{id}"),
            region: Some(region.to_string()),
            detail: json!({"name": name, "severity": new.severity, "device_type": new.device_type,
                "device_id": new.device_id, "condition": new.condition, "enabled": enabled}),
        },
    )
    .await?;
    bump(&mut tx).await?;
    tx.commit().await?;
    changed_locally();
    Ok(RuleView {
        id,
        name,
        region: region.to_string(),
        device_type: new.device_type,
        device_id: new.device_id,
        severity: new.severity,
        condition: new.condition,
        enabled,
        created_at: ms_to_time(now_ms),
        updated_at: ms_to_time(now_ms),
    })
}

async fn rule_by_id(db: &Db, id: i64) -> Result<RuleView, CoreError> {
    let q = Query::select()
        .columns(rule_columns())
        .from(AlarmRules::Table)
        .and_where(Expr::col(AlarmRules::Id).eq(id))
        .and_where(Expr::col(AlarmRules::Deleted).eq(false))
        .to_owned();
    let row: Option<RuleRow> = db.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no alarm rule {id}")))?
        .try_into()
}

/// Rules that matter in one of `scopes`: set inside it or above it.
fn rules_in_scopes(scopes: &[RegionCode]) -> Where {
    let mut any = Where::any().add(never());
    for s in scopes {
        let mut above: Vec<String> = s.ancestors().iter().map(ToString::to_string).collect();
        above.push(s.to_string());
        any = any
            .add(within(AlarmRules::Region, s))
            .add(Expr::col(AlarmRules::Region).is_in(above));
    }
    any
}

fn rule_visible(caller: &Principal, region: &RegionCode) -> bool {
    match caller.scopes(Some(STAFF)) {
        None => true,
        Some(scopes) => scopes.iter().any(|s| s.covers(region) || region.covers(s)),
    }
}

pub async fn get_rule(db: &Db, caller: &Principal, id: i64) -> Result<RuleView, CoreError> {
    caller.require_role(STAFF)?;
    let rule = rule_by_id(db, id).await?;
    let region = parse_region(&rule.region)?;
    if !rule_visible(caller, &region) {
        return Err(CoreError::Forbidden(format!("region {region} is outside your scope")));
    }
    Ok(rule)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuleQuery {
    pub region: Option<String>,
    pub limit: Option<u64>,
}

/// Rules that apply in the caller's scope (or in `region` within it).
pub async fn list_rules(db: &Db, caller: &Principal, filter: &RuleQuery) -> Result<Vec<RuleView>, CoreError> {
    caller.require_role(STAFF)?;
    let mut q = Query::select();
    q.columns(rule_columns())
        .from(AlarmRules::Table)
        .and_where(Expr::col(AlarmRules::Deleted).eq(false))
        .order_by(AlarmRules::Id, Order::Asc)
        .limit(clamp_limit(filter.limit));
    if let Some(raw) = &filter.region {
        let region = parse_region(raw)?;
        caller.require(STAFF, &region)?;
        q.cond_where(rules_in_scopes(&[region]));
    }
    if let Some(scopes) = caller.scopes(Some(STAFF)) {
        q.cond_where(rules_in_scopes(&scopes));
    }
    let rows: Vec<RuleRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(RuleView::try_from).collect()
}

/// Every enabled rule, for the engines.
pub async fn active_rules(db: &Db) -> Result<Vec<Rule>, CoreError> {
    let q = Query::select()
        .columns(rule_columns())
        .from(AlarmRules::Table)
        .and_where(Expr::col(AlarmRules::Deleted).eq(false))
        .and_where(Expr::col(AlarmRules::Enabled).eq(true))
        .to_owned();
    let rows: Vec<RuleRow> = db.fetch_all(&q).await?;
    rows.into_iter()
        .map(|r| RuleView::try_from(r).and_then(|v| v.to_rule()))
        .collect()
}

async fn editable_rule(db: &Db, caller: &Principal, id: i64) -> Result<RuleView, CoreError> {
    caller.require_role(EDITORS)?;
    let rule = rule_by_id(db, id).await?;
    caller.require(EDITORS, &parse_region(&rule.region)?)?;
    Ok(rule)
}

/// Changes a rule; disabling it clears its open alarms.
pub async fn update_rule(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    upd: RuleUpdate,
    now_ms: i64,
) -> Result<RuleView, CoreError> {
    caller.require_role(EDITORS)?;
    let name = upd.name.as_deref().map(validate_name).transpose()?;
    if let Some(c) = &upd.condition {
        c.validate()?;
    }
    if name.is_none() && upd.severity.is_none() && upd.condition.is_none() && upd.enabled.is_none() {
        return Err(CoreError::invalid("missing_field", "give at least one field to change"));
    }
    let old = editable_rule(db, caller, id).await?;
    let new = RuleView {
        name: name.unwrap_or_else(|| old.name.clone()),
        severity: upd.severity.unwrap_or(old.severity),
        condition: upd.condition.unwrap_or_else(|| old.condition.clone()),
        enabled: upd.enabled.unwrap_or(old.enabled),
        updated_at: ms_to_time(now_ms),
        ..old.clone()
    };
    let condition = serde_json::to_string(&new.condition).map_err(|e| CoreError::Internal(e.to_string()))?;
    let mut tx = db.begin().await?;
    let q = Query::update()
        .table(AlarmRules::Table)
        .values([
            (AlarmRules::Name, new.name.as_str().into()),
            (AlarmRules::Severity, new.severity.as_str().into()),
            (AlarmRules::Kind, new.condition.kind().into()),
            (AlarmRules::Metric, new.condition.metric().map(str::to_string).into()),
            (AlarmRules::Condition, condition.into()),
            (AlarmRules::Enabled, new.enabled.into()),
            (AlarmRules::UpdatedMs, now_ms.into()),
        ])
        .and_where(Expr::col(AlarmRules::Id).eq(id))
        .and_where(Expr::col(AlarmRules::Deleted).eq(false))
        .to_owned();
    if tx.execute(&q).await? == 0 {
        return Err(CoreError::NotFound(format!("no alarm rule {id}")));
    }
    if old.enabled && !new.enabled {
        clear_rule_alarms(&mut tx, id, &By::user(caller), "rule disabled", now_ms).await?;
    }
    let mut changes = serde_json::Map::new();
    let mut note = |field: &str, from: serde_json::Value, to: serde_json::Value| {
        if from != to {
            changes.insert(field.into(), json!({"from": from, "to": to}));
        }
    };
    note("name", json!(old.name), json!(new.name));
    note("severity", json!(old.severity), json!(new.severity));
    note("condition", json!(old.condition), json!(new.condition));
    note("enabled", json!(old.enabled), json!(new.enabled));
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "alarm_rule.update",
            target: format!("alarm_rule:{id}"),
            region: Some(new.region.clone()),
            detail: serde_json::Value::Object(changes),
        },
    )
    .await?;
    bump(&mut tx).await?;
    tx.commit().await?;
    changed_locally();
    Ok(new)
}

/// Clears every open alarm of a rule that will no longer be evaluated, so
/// none stays open with nothing left to clear it; returns their ids.
async fn clear_rule_alarms(tx: &mut Tx, rule_id: i64, by: &By, note: &str, now_ms: i64) -> Result<Vec<i64>, CoreError> {
    let q = Query::select()
        .column(AlarmAlarms::Id)
        .from(AlarmAlarms::Table)
        .and_where(Expr::col(AlarmAlarms::RuleId).eq(rule_id))
        .and_where(Expr::col(AlarmAlarms::Status).ne(Status::Cleared.as_str()))
        .to_owned();
    let open: Vec<(i64,)> = tx.fetch_all(&q).await?;
    for (alarm_id,) in &open {
        set_status(tx, *alarm_id, Status::Cleared, now_ms, by).await?;
        record_transition(tx, *alarm_id, Status::Cleared, now_ms, by, None, Some(note)).await?;
    }
    Ok(open.into_iter().map(|(id,)| id).collect())
}

/// Deletes a rule; its open alarms are cleared (with the deleting user in
/// their history). The row stays so those alarms keep naming their rule.
pub async fn delete_rule(db: &Db, caller: &Principal, actor: &Actor, id: i64, now_ms: i64) -> Result<(), CoreError> {
    let rule = editable_rule(db, caller, id).await?;
    let mut tx = db.begin().await?;
    let q = Query::update()
        .table(AlarmRules::Table)
        .values([
            (AlarmRules::Deleted, true.into()),
            (AlarmRules::UpdatedMs, now_ms.into()),
        ])
        .and_where(Expr::col(AlarmRules::Id).eq(id))
        .and_where(Expr::col(AlarmRules::Deleted).eq(false))
        .to_owned();
    if tx.execute(&q).await? == 0 {
        return Err(CoreError::NotFound(format!("no alarm rule {id}")));
    }
    let open = clear_rule_alarms(&mut tx, id, &By::user(caller), "rule deleted", now_ms).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "alarm_rule.delete",
            target: format!("alarm_rule:{id}"),
            region: Some(rule.region.clone()),
            detail: json!({"name": rule.name, "cleared_alarms": open}),
        },
    )
    .await?;
    bump(&mut tx).await?;
    tx.commit().await?;
    changed_locally();
    Ok(())
}

// ---- alarms ----

/// 告警状态 where an alarm is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Acknowledged,
    Cleared,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Acknowledged => "acknowledged",
            Self::Cleared => "cleared",
        }
    }

    fn parse_stored(s: &str) -> Result<Self, CoreError> {
        match s {
            "active" => Ok(Self::Active),
            "acknowledged" => Ok(Self::Acknowledged),
            "cleared" => Ok(Self::Cleared),
            other => Err(CoreError::Internal(format!("stored alarm status {other:?} is unknown"))),
        }
    }

    /// The transition that leads into this status, as history and webhooks
    /// name it.
    pub fn transition(self) -> &'static str {
        match self {
            Self::Active => "raised",
            Self::Acknowledged => "acknowledged",
            Self::Cleared => "cleared",
        }
    }
}

/// An alarm as the API and webhooks show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub device_id: i64,
    pub device_name: String,
    pub device_type: String,
    pub village: String,
    pub kind: String,
    pub metric: Option<String>,
    pub severity: Severity,
    pub status: Status,
    pub message: String,
    /// The value that raised it (none for "not reporting").
    pub value: Option<f64>,
    pub raised_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub cleared_by: Option<String>,
    #[serde(skip)]
    pub owner_user_id: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct AlarmRow {
    id: i64,
    rule_id: i64,
    rule_name: String,
    device_id: i64,
    device_name: String,
    device_type: String,
    village: String,
    owner_user_id: Option<i64>,
    kind: String,
    metric: Option<String>,
    severity: String,
    status: String,
    message: String,
    value: Option<f64>,
    raised_ms: i64,
    acknowledged_ms: Option<i64>,
    acknowledged_by: Option<String>,
    cleared_ms: Option<i64>,
    cleared_by: Option<String>,
}

impl TryFrom<AlarmRow> for Alarm {
    type Error = CoreError;

    fn try_from(r: AlarmRow) -> Result<Self, CoreError> {
        Ok(Self {
            id: r.id,
            rule_id: r.rule_id,
            rule_name: r.rule_name,
            device_id: r.device_id,
            device_name: r.device_name,
            device_type: r.device_type,
            village: r.village,
            kind: r.kind,
            metric: r.metric,
            severity: Severity::parse_stored(&r.severity)?,
            status: Status::parse_stored(&r.status)?,
            message: r.message,
            value: r.value,
            raised_at: ms_to_time(r.raised_ms),
            acknowledged_at: r.acknowledged_ms.map(ms_to_time),
            acknowledged_by: r.acknowledged_by,
            cleared_at: r.cleared_ms.map(ms_to_time),
            cleared_by: r.cleared_by,
            owner_user_id: r.owner_user_id,
        })
    }
}

fn alarm_select() -> sea_query::SelectStatement {
    let a = |c: AlarmAlarms| (AlarmAlarms::Table, c);
    Query::select()
        .columns([a(AlarmAlarms::Id), a(AlarmAlarms::RuleId)])
        .expr_as(Expr::col((AlarmRules::Table, AlarmRules::Name)), RuleName)
        .columns([
            a(AlarmAlarms::DeviceId),
            a(AlarmAlarms::DeviceName),
            a(AlarmAlarms::DeviceType),
            a(AlarmAlarms::Village),
            a(AlarmAlarms::OwnerUserId),
            a(AlarmAlarms::Kind),
            a(AlarmAlarms::Metric),
            a(AlarmAlarms::Severity),
            a(AlarmAlarms::Status),
            a(AlarmAlarms::Message),
            a(AlarmAlarms::Value),
            a(AlarmAlarms::RaisedMs),
            a(AlarmAlarms::AcknowledgedMs),
            a(AlarmAlarms::AcknowledgedBy),
            a(AlarmAlarms::ClearedMs),
            a(AlarmAlarms::ClearedBy),
        ])
        .from(AlarmAlarms::Table)
        .inner_join(
            AlarmRules::Table,
            Expr::col((AlarmRules::Table, AlarmRules::Id)).equals((AlarmAlarms::Table, AlarmAlarms::RuleId)),
        )
        .to_owned()
}

#[derive(Iden)]
struct RuleName;

/// One step of an alarm's life.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    #[serde(skip)]
    pub at_ms: i64,
    pub transition: String,
    #[serde(rename = "by")]
    pub by_name: String,
    #[serde(skip)]
    pub by_user_id: Option<i64>,
    pub value: Option<f64>,
    pub note: Option<String>,
}

impl HistoryEntry {
    pub fn at(&self) -> DateTime<Utc> {
        ms_to_time(self.at_ms)
    }
}

/// Who made a transition: the engine or a signed-in user.
#[derive(Debug, Clone)]
pub struct By {
    pub user_id: Option<i64>,
    pub name: String,
}

impl By {
    pub fn system() -> Self {
        Self {
            user_id: None,
            name: "system".into(),
        }
    }

    pub fn user(p: &Principal) -> Self {
        Self {
            user_id: Some(p.user_id),
            name: p.username.clone(),
        }
    }
}

/// Whether the caller may see this alarm: staff over its village, or the
/// farmer who owns the device.
fn may_see(caller: &Principal, alarm: &Alarm) -> bool {
    let Ok(village) = parse_region(&alarm.village) else {
        return false;
    };
    caller.can(STAFF, &village)
        || (caller.can(&[Role::Farmer], &village) && alarm.owner_user_id == Some(caller.user_id))
}

async fn alarm_by_id(db: &Db, id: i64) -> Result<Alarm, CoreError> {
    let q = alarm_select()
        .and_where(Expr::col((AlarmAlarms::Table, AlarmAlarms::Id)).eq(id))
        .to_owned();
    let row: Option<AlarmRow> = db.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no alarm {id}")))?
        .try_into()
}

pub(super) async fn alarm_in_tx(tx: &mut Tx, id: i64) -> Result<Alarm, CoreError> {
    let q = alarm_select()
        .and_where(Expr::col((AlarmAlarms::Table, AlarmAlarms::Id)).eq(id))
        .to_owned();
    let row: Option<AlarmRow> = tx.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no alarm {id}")))?
        .try_into()
}

/// An alarm with its history, oldest step first.
pub async fn get_alarm(db: &Db, caller: &Principal, id: i64) -> Result<(Alarm, Vec<HistoryEntry>), CoreError> {
    caller.require_role(&[Role::Admin, Role::Official, Role::VillageStaff, Role::Farmer])?;
    let alarm = alarm_by_id(db, id).await?;
    if !may_see(caller, &alarm) {
        return Err(CoreError::Forbidden(format!("alarm {id} is outside your scope")));
    }
    let q = Query::select()
        .columns([
            AlarmHistory::AtMs,
            AlarmHistory::Transition,
            AlarmHistory::ByName,
            AlarmHistory::ByUserId,
            AlarmHistory::Value,
            AlarmHistory::Note,
        ])
        .from(AlarmHistory::Table)
        .and_where(Expr::col(AlarmHistory::AlarmId).eq(id))
        .order_by(AlarmHistory::Id, Order::Asc)
        .to_owned();
    let history = db.fetch_all(&q).await?;
    Ok((alarm, history))
}

/// Filter for the alarm list (the worklist is `status=active`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlarmQuery {
    pub region: Option<String>,
    pub status: Option<Status>,
    pub device: Option<i64>,
    /// Only alarms with a smaller id (paging, newest first).
    pub before: Option<i64>,
    pub limit: Option<u64>,
}

/// Alarms the caller may see, newest first.
pub async fn list_alarms(db: &Db, caller: &Principal, filter: &AlarmQuery) -> Result<Vec<Alarm>, CoreError> {
    caller.require_role(&[Role::Admin, Role::Official, Role::VillageStaff, Role::Farmer])?;
    let col = |c: AlarmAlarms| Expr::col((AlarmAlarms::Table, c));
    let mut q = alarm_select();
    q.order_by((AlarmAlarms::Table, AlarmAlarms::Id), Order::Desc)
        .limit(clamp_limit(filter.limit));
    if let Some(raw) = &filter.region {
        let region = parse_region(raw)?;
        caller.require(
            &[Role::Admin, Role::Official, Role::VillageStaff, Role::Farmer],
            &region,
        )?;
        q.and_where(within((AlarmAlarms::Table, AlarmAlarms::Village), &region));
    }
    let mut visible = Where::any().add(never());
    match caller.scopes(Some(STAFF)) {
        None => visible = visible.add(Expr::val(1).eq(1)),
        Some(scopes) => {
            for s in &scopes {
                visible = visible.add(within((AlarmAlarms::Table, AlarmAlarms::Village), s));
            }
        }
    }
    let own = col(AlarmAlarms::OwnerUserId).eq(caller.user_id);
    for g in caller.grants.iter().filter(|g| g.role == Role::Farmer) {
        visible = visible.add(match &g.scope {
            Scope::All => own.clone(),
            Scope::Region(s) => own.clone().and(within((AlarmAlarms::Table, AlarmAlarms::Village), s)),
        });
    }
    q.cond_where(visible);
    if let Some(status) = filter.status {
        q.and_where(col(AlarmAlarms::Status).eq(status.as_str()));
    }
    if let Some(device) = filter.device {
        q.and_where(col(AlarmAlarms::DeviceId).eq(device));
    }
    if let Some(before) = filter.before {
        q.and_where(col(AlarmAlarms::Id).lt(before));
    }
    let rows: Vec<AlarmRow> = db.fetch_all(&q).await?;
    rows.into_iter().map(Alarm::try_from).collect()
}

async fn set_status(tx: &mut Tx, id: i64, status: Status, at_ms: i64, by: &By) -> Result<(), CoreError> {
    let (at_col, by_col) = match status {
        Status::Acknowledged => (AlarmAlarms::AcknowledgedMs, AlarmAlarms::AcknowledgedBy),
        Status::Cleared => (AlarmAlarms::ClearedMs, AlarmAlarms::ClearedBy),
        Status::Active => return Err(CoreError::Internal("alarms are raised, not set active".into())),
    };
    let q = Query::update()
        .table(AlarmAlarms::Table)
        .values([
            (AlarmAlarms::Status, status.as_str().into()),
            (at_col, at_ms.into()),
            (by_col, by.name.as_str().into()),
        ])
        .and_where(Expr::col(AlarmAlarms::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    Ok(())
}

/// Writes one history step and enqueues its webhook notifications.
async fn record_transition(
    tx: &mut Tx,
    alarm_id: i64,
    status: Status,
    at_ms: i64,
    by: &By,
    value: Option<f64>,
    note: Option<&str>,
) -> Result<(), CoreError> {
    let q = Query::insert()
        .into_table(AlarmHistory::Table)
        .columns([
            AlarmHistory::AlarmId,
            AlarmHistory::AtMs,
            AlarmHistory::Transition,
            AlarmHistory::ByUserId,
            AlarmHistory::ByName,
            AlarmHistory::Value,
            AlarmHistory::Note,
        ])
        .values_panic([
            alarm_id.into(),
            at_ms.into(),
            status.transition().into(),
            by.user_id.into(),
            by.name.as_str().into(),
            value.into(),
            note.map(str::to_string).into(),
        ])
        .to_owned();
    tx.execute(&q).await?;
    notify::enqueue(tx, alarm_id, status, at_ms, by, note).await
}

/// Acknowledges an active alarm (staff over its village).
pub async fn acknowledge(db: &Db, caller: &Principal, actor: &Actor, id: i64, now_ms: i64) -> Result<Alarm, CoreError> {
    change_status(db, caller, actor, id, Status::Acknowledged, now_ms).await
}

/// Clears an active or acknowledged alarm by hand (staff over its village).
/// If the condition still holds, the engine raises a new alarm.
pub async fn clear(db: &Db, caller: &Principal, actor: &Actor, id: i64, now_ms: i64) -> Result<Alarm, CoreError> {
    change_status(db, caller, actor, id, Status::Cleared, now_ms).await
}

async fn change_status(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    to: Status,
    now_ms: i64,
) -> Result<Alarm, CoreError> {
    caller.require_role(STAFF)?;
    let mut tx = db.begin().await?;
    // Lock the row first on PostgreSQL so two callers cannot both move it.
    if let Tx::Postgres(_) = tx {
        let lock = Query::select()
            .column(AlarmAlarms::Id)
            .from(AlarmAlarms::Table)
            .and_where(Expr::col(AlarmAlarms::Id).eq(id))
            .lock(sea_query::LockType::Update)
            .to_owned();
        let _: Option<(i64,)> = tx.fetch_optional(&lock).await?;
    }
    let alarm = alarm_in_tx(&mut tx, id).await?;
    caller.require(STAFF, &parse_region(&alarm.village)?)?;
    let allowed = match to {
        Status::Acknowledged => alarm.status == Status::Active,
        Status::Cleared => alarm.status != Status::Cleared,
        Status::Active => false,
    };
    if !allowed {
        return Err(CoreError::conflict(
            "alarm_state",
            format!(
                "alarm {id} is {} and cannot be {}",
                alarm.status.as_str(),
                to.transition()
            ),
        ));
    }
    let by = By::user(caller);
    set_status(&mut tx, id, to, now_ms, &by).await?;
    record_transition(&mut tx, id, to, now_ms, &by, None, None).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: if to == Status::Cleared {
                "alarm.clear"
            } else {
                "alarm.acknowledge"
            },
            target: format!("alarm:{id}"),
            region: Some(alarm.village.clone()),
            detail: json!({"from": alarm.status, "to": to, "rule_id": alarm.rule_id, "device_id": alarm.device_id}),
        },
    )
    .await?;
    if to == Status::Cleared {
        bump(&mut tx).await?;
    }
    let updated = alarm_in_tx(&mut tx, id).await?;
    tx.commit().await?;
    if to == Status::Cleared {
        changed_locally();
    }
    Ok(updated)
}

/// Raises an alarm for (rule, device) unless one is open already (raised
/// by another node); returns its id when this call raised it.
pub(super) async fn raise(
    tx: &mut Tx,
    rule: &Rule,
    device: &DeviceRef,
    value: Option<f64>,
    message: &str,
    at_ms: i64,
) -> Result<Option<i64>, CoreError> {
    let q = Query::insert()
        .into_table(AlarmAlarms::Table)
        .columns([
            AlarmAlarms::RuleId,
            AlarmAlarms::DeviceId,
            AlarmAlarms::DeviceName,
            AlarmAlarms::DeviceType,
            AlarmAlarms::Village,
            AlarmAlarms::OwnerUserId,
            AlarmAlarms::Kind,
            AlarmAlarms::Metric,
            AlarmAlarms::Severity,
            AlarmAlarms::Status,
            AlarmAlarms::Message,
            AlarmAlarms::Value,
            AlarmAlarms::RaisedMs,
        ])
        .values_panic([
            rule.id.into(),
            device.id.into(),
            device.name.as_str().into(),
            device.device_type.as_str().into(),
            device.village.as_str().into(),
            device.owner_user_id.into(),
            rule.condition.kind().into(),
            rule.condition.metric().map(str::to_string).into(),
            rule.severity.as_str().into(),
            Status::Active.as_str().into(),
            message.into(),
            value.into(),
            at_ms.into(),
        ])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .returning_col(AlarmAlarms::Id)
        .to_owned();
    let id: Option<(i64,)> = tx.fetch_optional(&q).await?;
    if let Some((id,)) = id {
        record_transition(tx, id, Status::Active, at_ms, &By::system(), value, Some(message)).await?;
    }
    Ok(id.map(|(id,)| id))
}

/// Clears the open alarm of (rule, device), if any, because its condition
/// ended; returns its id.
pub(super) async fn clear_open(
    tx: &mut Tx,
    rule_id: i64,
    device_id: i64,
    value: Option<f64>,
    at_ms: i64,
) -> Result<Option<i64>, CoreError> {
    let by = By::system();
    let q = Query::update()
        .table(AlarmAlarms::Table)
        .values([
            (AlarmAlarms::Status, Status::Cleared.as_str().into()),
            (AlarmAlarms::ClearedMs, at_ms.into()),
            (AlarmAlarms::ClearedBy, by.name.as_str().into()),
        ])
        .and_where(Expr::col(AlarmAlarms::RuleId).eq(rule_id))
        .and_where(Expr::col(AlarmAlarms::DeviceId).eq(device_id))
        .and_where(Expr::col(AlarmAlarms::Status).ne(Status::Cleared.as_str()))
        .returning_col(AlarmAlarms::Id)
        .to_owned();
    let id: Option<(i64,)> = tx.fetch_optional(&q).await?;
    if let Some((id,)) = id {
        record_transition(tx, id, Status::Cleared, at_ms, &by, value, Some("condition ended")).await?;
    }
    Ok(id.map(|(id,)| id))
}

/// The (rule, device) pairs with an open alarm: the raised states.
pub async fn open_pairs(db: &Db) -> Result<Vec<(i64, i64)>, CoreError> {
    let q = Query::select()
        .columns([AlarmAlarms::RuleId, AlarmAlarms::DeviceId])
        .from(AlarmAlarms::Table)
        .and_where(Expr::col(AlarmAlarms::Status).ne(Status::Cleared.as_str()))
        .to_owned();
    db.fetch_all(&q).await
}

// ---- last seen ----

#[derive(sqlx::FromRow)]
struct SeenRow {
    device_id: i64,
    device_name: String,
    device_type: String,
    village: String,
    owner_user_id: Option<i64>,
    last_seen_ms: i64,
}

/// Every device's persisted last-seen time.
pub async fn load_seen(db: &Db) -> Result<Vec<(DeviceRef, i64)>, CoreError> {
    let q = Query::select()
        .columns([
            AlarmDeviceSeen::DeviceId,
            AlarmDeviceSeen::DeviceName,
            AlarmDeviceSeen::DeviceType,
            AlarmDeviceSeen::Village,
            AlarmDeviceSeen::OwnerUserId,
            AlarmDeviceSeen::LastSeenMs,
        ])
        .from(AlarmDeviceSeen::Table)
        .to_owned();
    let rows: Vec<SeenRow> = db.fetch_all(&q).await?;
    rows.into_iter()
        .map(|r| {
            let village = RegionCode::parse(&r.village)
                .map_err(|_| CoreError::Internal(format!("device {} has village {:?}", r.device_id, r.village)))?;
            Ok((
                DeviceRef {
                    id: r.device_id,
                    device_type: r.device_type,
                    village,
                    name: r.device_name,
                    owner_user_id: r.owner_user_id,
                },
                r.last_seen_ms,
            ))
        })
        .collect()
}

/// Persists last-seen times; a time never moves backwards (another node may
/// have written a later one).
pub async fn save_seen(db: &Db, seen: &[(DeviceRef, i64)]) -> Result<(), CoreError> {
    if seen.is_empty() {
        return Ok(());
    }
    let mut q = Query::insert();
    q.into_table(AlarmDeviceSeen::Table).columns([
        AlarmDeviceSeen::DeviceId,
        AlarmDeviceSeen::DeviceName,
        AlarmDeviceSeen::DeviceType,
        AlarmDeviceSeen::Village,
        AlarmDeviceSeen::OwnerUserId,
        AlarmDeviceSeen::LastSeenMs,
    ]);
    for (d, ms) in seen {
        q.values_panic([
            d.id.into(),
            d.name.as_str().into(),
            d.device_type.as_str().into(),
            d.village.as_str().into(),
            d.owner_user_id.into(),
            (*ms).into(),
        ]);
    }
    q.on_conflict(
        OnConflict::column(AlarmDeviceSeen::DeviceId)
            .update_columns([
                AlarmDeviceSeen::DeviceName,
                AlarmDeviceSeen::DeviceType,
                AlarmDeviceSeen::Village,
                AlarmDeviceSeen::OwnerUserId,
            ])
            .value(
                AlarmDeviceSeen::LastSeenMs,
                Expr::cust(
                    "CASE WHEN excluded.last_seen_ms > alarm_device_seen.last_seen_ms \
                     THEN excluded.last_seen_ms ELSE alarm_device_seen.last_seen_ms END",
                ),
            )
            .to_owned(),
    );
    db.execute(&q).await?;
    Ok(())
}

// ---- webhooks ----

/// A webhook as the API shows it. The URL may hold a secret (a token in
/// its path or query), so only scheme, host and port are ever shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub id: i64,
    pub region: String,
    pub url: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    region: String,
    url: String,
    enabled: bool,
    created_ms: i64,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Self {
            id: r.id,
            region: r.region,
            url: mask_url(&r.url),
            enabled: r.enabled,
            created_at: ms_to_time(r.created_ms),
        }
    }
}

/// `http://hook.example:8080/…`: the origin only.
pub fn mask_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => "…".into(),
    }
}

fn validate_url(raw: &str) -> Result<String, CoreError> {
    let bad = |m: &str| Err(CoreError::invalid("invalid_url", m.to_string()));
    let s = raw.trim();
    if s.is_empty() || s.len() > MAX_URL {
        return bad("the URL must be 1 to 2,000 characters");
    }
    let Ok(u) = reqwest::Url::parse(s) else {
        return bad("the URL cannot be parsed");
    };
    if u.scheme() != "http" {
        return bad("only http:// webhook URLs are supported (this build has no TLS client)");
    }
    if u.host_str().is_none_or(str::is_empty) || !u.username().is_empty() || u.password().is_some() {
        return bad("the URL needs a host and no user name or password");
    }
    Ok(s.to_string())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub region: String,
    pub url: String,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub enabled: Option<bool>,
}

fn webhook_columns() -> [AlarmWebhooks; 5] {
    [
        AlarmWebhooks::Id,
        AlarmWebhooks::Region,
        AlarmWebhooks::Url,
        AlarmWebhooks::Enabled,
        AlarmWebhooks::CreatedMs,
    ]
}

pub async fn create_webhook(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    new: NewWebhook,
    now_ms: i64,
) -> Result<Webhook, CoreError> {
    caller.require_role(EDITORS)?;
    let url = validate_url(&new.url)?;
    let region = known_region(db, &new.region).await?;
    caller.require(EDITORS, &region)?;
    let enabled = new.enabled.unwrap_or(true);
    let mut tx = db.begin().await?;
    let q = Query::insert()
        .into_table(AlarmWebhooks::Table)
        .columns([
            AlarmWebhooks::Region,
            AlarmWebhooks::Url,
            AlarmWebhooks::Enabled,
            AlarmWebhooks::Deleted,
            AlarmWebhooks::CreatedBy,
            AlarmWebhooks::CreatedMs,
        ])
        .values_panic([
            region.as_str().into(),
            url.as_str().into(),
            enabled.into(),
            false.into(),
            caller.user_id.into(),
            now_ms.into(),
        ])
        .returning_col(AlarmWebhooks::Id)
        .to_owned();
    let (id,): (i64,) = tx.fetch_one(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "alarm_webhook.create",
            target: format!("alarm_webhook:{id}"),
            region: Some(region.to_string()),
            detail: json!({"url": mask_url(&url), "enabled": enabled}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Webhook {
        id,
        region: region.to_string(),
        url: mask_url(&url),
        enabled,
        created_at: ms_to_time(now_ms),
    })
}

async fn webhook_row(db: &Db, id: i64) -> Result<WebhookRow, CoreError> {
    let q = Query::select()
        .columns(webhook_columns())
        .from(AlarmWebhooks::Table)
        .and_where(Expr::col(AlarmWebhooks::Id).eq(id))
        .and_where(Expr::col(AlarmWebhooks::Deleted).eq(false))
        .to_owned();
    let row: Option<WebhookRow> = db.fetch_optional(&q).await?;
    row.ok_or_else(|| CoreError::NotFound(format!("no webhook {id}")))
}

/// The webhook, if the caller may manage it.
pub async fn get_webhook(db: &Db, caller: &Principal, id: i64) -> Result<Webhook, CoreError> {
    caller.require_role(EDITORS)?;
    let row = webhook_row(db, id).await?;
    caller.require(EDITORS, &parse_region(&row.region)?)?;
    Ok(row.into())
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookQuery {
    pub region: Option<String>,
}

pub async fn list_webhooks(db: &Db, caller: &Principal, filter: &WebhookQuery) -> Result<Vec<Webhook>, CoreError> {
    caller.require_role(EDITORS)?;
    let mut q = Query::select();
    q.columns(webhook_columns())
        .from(AlarmWebhooks::Table)
        .and_where(Expr::col(AlarmWebhooks::Deleted).eq(false))
        .order_by(AlarmWebhooks::Id, Order::Asc);
    if let Some(raw) = &filter.region {
        let region = parse_region(raw)?;
        caller.require(EDITORS, &region)?;
        q.and_where(within(AlarmWebhooks::Region, &region));
    }
    if let Some(scopes) = caller.scopes(Some(EDITORS)) {
        let mut any = Where::any().add(never());
        for s in &scopes {
            any = any.add(within(AlarmWebhooks::Region, s));
        }
        q.cond_where(any);
    }
    let rows: Vec<WebhookRow> = db.fetch_all(&q).await?;
    Ok(rows.into_iter().map(Webhook::from).collect())
}

pub async fn update_webhook(
    db: &Db,
    caller: &Principal,
    actor: &Actor,
    id: i64,
    upd: WebhookUpdate,
) -> Result<Webhook, CoreError> {
    caller.require_role(EDITORS)?;
    let url = upd.url.as_deref().map(validate_url).transpose()?;
    if url.is_none() && upd.enabled.is_none() {
        return Err(CoreError::invalid("missing_field", "give url or enabled"));
    }
    let old = webhook_row(db, id).await?;
    caller.require(EDITORS, &parse_region(&old.region)?)?;
    let new = WebhookRow {
        url: url.unwrap_or_else(|| old.url.clone()),
        enabled: upd.enabled.unwrap_or(old.enabled),
        ..old
    };
    let mut tx = db.begin().await?;
    let q = Query::update()
        .table(AlarmWebhooks::Table)
        .values([
            (AlarmWebhooks::Url, new.url.as_str().into()),
            (AlarmWebhooks::Enabled, new.enabled.into()),
        ])
        .and_where(Expr::col(AlarmWebhooks::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "alarm_webhook.update",
            target: format!("alarm_webhook:{id}"),
            region: Some(new.region.clone()),
            detail: json!({"url_changed": upd.url.is_some(), "url": mask_url(&new.url), "enabled": new.enabled}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(new.into())
}

/// Deletes a webhook; deliveries still pending for it are abandoned.
pub async fn delete_webhook(db: &Db, caller: &Principal, actor: &Actor, id: i64) -> Result<(), CoreError> {
    let hook = get_webhook(db, caller, id).await?;
    let mut tx = db.begin().await?;
    let q = Query::update()
        .table(AlarmWebhooks::Table)
        .values([(AlarmWebhooks::Deleted, true.into())])
        .and_where(Expr::col(AlarmWebhooks::Id).eq(id))
        .to_owned();
    tx.execute(&q).await?;
    notify::abandon_pending(&mut tx, id).await?;
    audit::record(
        &mut tx,
        actor,
        AuditEvent {
            action: "alarm_webhook.delete",
            target: format!("alarm_webhook:{id}"),
            region: Some(hook.region.clone()),
            detail: json!({"url": hook.url}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
