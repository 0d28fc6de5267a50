//! 审计日志 the audit log: every write and every sign-in, with who, when,
//! what and from where. Entries are written in the same transaction as the
//! change they describe, so the log never claims a change that rolled back.

use sea_query::{Condition, Expr, ExprTrait, Iden, Order, Query};
use serde::Serialize;

use crate::auth::{Actor, Scope};
use crate::db::{Db, Tx};
use crate::error::Result;
use crate::time::{Timestamp, now};

#[derive(Iden)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorId,
    Actor,
    Action,
    Target,
    Region,
    Ip,
    Detail,
}

/// What happened, for one audit entry.
pub struct AuditEvent<'a> {
    /// Dotted verb, e.g. `user.create`, `region.update`, `auth.login`.
    pub action: &'a str,
    /// What was acted on, e.g. `user:42` or `region:360102`.
    pub target: String,
    /// The region the change belongs to, so scoped officials can read it.
    pub region: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub region: Option<String>,
    pub ip: Option<String>,
    #[serde(skip)]
    pub detail: String,
}

impl AuditEntry {
    pub fn detail_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.detail).unwrap_or(serde_json::Value::Null)
    }
}

/// Every column but the id, in insert order.
fn entry_columns() -> [AuditLog; 8] {
    [
        AuditLog::At,
        AuditLog::ActorId,
        AuditLog::Actor,
        AuditLog::Action,
        AuditLog::Target,
        AuditLog::Region,
        AuditLog::Ip,
        AuditLog::Detail,
    ]
}

pub async fn record(tx: &mut Tx, actor: &Actor, event: AuditEvent<'_>) -> Result<()> {
    let q = Query::insert()
        .into_table(AuditLog::Table)
        .columns(entry_columns())
        .values_panic([
            now().into(),
            actor.user_id.into(),
            actor.name.as_str().into(),
            event.action.into(),
            event.target.into(),
            event.region.into(),
            actor.ip.clone().into(),
            event.detail.to_string().into(),
        ])
        .to_owned();
    tx.execute(&q).await?;
    Ok(())
}

/// Filter for reading the log.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub before_id: Option<i64>,
    pub limit: u64,
}

/// Newest first, limited to entries whose region lies in one of `scopes`
/// (`None`: everything, for administrators of the whole country).
pub async fn list(db: &Db, scopes: Option<&[Scope]>, filter: &AuditQuery) -> Result<Vec<AuditEntry>> {
    let mut q = Query::select();
    q.column(AuditLog::Id)
        .columns(entry_columns())
        .from(AuditLog::Table)
        .order_by(AuditLog::Id, Order::Desc)
        .limit(filter.limit.clamp(1, 1000));
    if let Some(scopes) = scopes {
        let mut any = Condition::any();
        for s in scopes {
            any = any.add(match s {
                Scope::All => Expr::val(1).eq(1),
                Scope::Region(code) => {
                    let (lo, hi) = code.subtree_range();
                    Expr::col(AuditLog::Region)
                        .gte(lo)
                        .and(Expr::col(AuditLog::Region).lt(hi))
                }
            });
        }
        if scopes.is_empty() {
            any = any.add(Expr::val(1).eq(0));
        }
        q.cond_where(any);
    }
    if let Some(a) = &filter.action {
        q.and_where(Expr::col(AuditLog::Action).eq(a.as_str()));
    }
    if let Some(a) = &filter.actor {
        q.and_where(Expr::col(AuditLog::Actor).eq(a.as_str()));
    }
    if let Some(id) = filter.before_id {
        q.and_where(Expr::col(AuditLog::Id).lt(id));
    }
    db.fetch_all(&q).await
}
