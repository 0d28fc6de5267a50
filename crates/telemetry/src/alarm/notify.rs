//! 告警通知 alarm notifications. The worklist is the alarm list itself
//! (`GET /api/v1/alarms?status=active`: what the region's officials and
//! village staff have not yet acknowledged). Webhooks are configured per
//! region and receive every transition of alarms of devices in that region
//! (raised, acknowledged, cleared) as a JSON POST.
//!
//! Deliveries are an outbox: each transition inserts one delivery per
//! matching webhook in the transaction that makes the transition, so a
//! notification is never sent for a change that rolled back nor lost for one
//! that committed. A deliverer task sends due deliveries, retries failures
//! with exponential backoff (5 s, 10 s, 20 s … at most 1 h, 8 attempts) and
//! records each outcome. Several nodes may run it: a delivery is claimed
//! with a conditional update before it is sent. URLs may carry secrets, so
//! they are never logged and errors are recorded without them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_query::{Expr, ExprTrait, Iden, Order, Query};
use serde::Serialize;
use serde_json::json;
use shuxiang_core::auth::Principal;
use shuxiang_core::db::{Db, Tx};
use shuxiang_core::{CoreError, RegionCode};

use super::Clock;
use super::store::{self, AlarmWebhooks, By, Status, ms_to_time};

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// Wait before the first retry; doubled for each further one.
pub const FIRST_RETRY_MS: i64 = 5_000;
const MAX_RETRY_MS: i64 = 3_600_000;
/// How long a node holds a claimed delivery before another may take it.
const CLAIM_MS: i64 = 60_000;
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const BATCH: u64 = 50;
const TICK: Duration = Duration::from_secs(1);

#[derive(Iden)]
enum AlarmDeliveries {
    Table,
    Id,
    WebhookId,
    AlarmId,
    Payload,
    Status,
    Attempts,
    NextAttemptMs,
    LastStatus,
    LastError,
    CreatedMs,
    DeliveredMs,
}

const PENDING: &str = "pending";
const DELIVERED: &str = "delivered";
const FAILED: &str = "failed";
const ABANDONED: &str = "abandoned";

/// The wait after `attempts` failed attempts.
pub fn backoff_ms(attempts: i64) -> i64 {
    let doublings = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
    Ord::min(FIRST_RETRY_MS << doublings, MAX_RETRY_MS)
}

/// Enqueues the notifications of one transition, inside its transaction.
pub(super) async fn enqueue(
    tx: &mut Tx,
    alarm_id: i64,
    status: Status,
    at_ms: i64,
    by: &By,
    note: Option<&str>,
) -> Result<(), CoreError> {
    let alarm = store::alarm_in_tx(tx, alarm_id).await?;
    let village = RegionCode::parse(&alarm.village)
        .map_err(|_| CoreError::Internal(format!("alarm {alarm_id} has village {:?}", alarm.village)))?;
    let mut covering: Vec<String> = village.ancestors().iter().map(ToString::to_string).collect();
    covering.push(village.to_string());
    let q = Query::select()
        .column(AlarmWebhooks::Id)
        .from(AlarmWebhooks::Table)
        .and_where(Expr::col(AlarmWebhooks::Region).is_in(covering))
        .and_where(Expr::col(AlarmWebhooks::Enabled).eq(true))
        .and_where(Expr::col(AlarmWebhooks::Deleted).eq(false))
        .to_owned();
    let hooks: Vec<(i64,)> = tx.fetch_all(&q).await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let payload = json!({
        "event": format!("alarm.{}", status.transition()),
        "at": ms_to_time(at_ms),
        "by": by.name,
        "note": note,
        "alarm": alarm,
    })
    .to_string();
    let mut ins = Query::insert();
    ins.into_table(AlarmDeliveries::Table).columns([
        AlarmDeliveries::WebhookId,
        AlarmDeliveries::AlarmId,
        AlarmDeliveries::Payload,
        AlarmDeliveries::Status,
        AlarmDeliveries::Attempts,
        AlarmDeliveries::NextAttemptMs,
        AlarmDeliveries::CreatedMs,
    ]);
    for (hook,) in hooks {
        ins.values_panic([
            hook.into(),
            alarm_id.into(),
            payload.as_str().into(),
            PENDING.into(),
            0i64.into(),
            // Due at once, whatever clock the deliverer runs on.
            i64::MIN.into(),
            at_ms.into(),
        ]);
    }
    tx.execute(&ins).await?;
    Ok(())
}

/// Gives up the pending deliveries of a deleted webhook.
pub(super) async fn abandon_pending(tx: &mut Tx, webhook_id: i64) -> Result<(), CoreError> {
    let q = Query::update()
        .table(AlarmDeliveries::Table)
        .values([(AlarmDeliveries::Status, ABANDONED.into())])
        .and_where(Expr::col(AlarmDeliveries::WebhookId).eq(webhook_id))
        .and_where(Expr::col(AlarmDeliveries::Status).eq(PENDING))
        .to_owned();
    tx.execute(&q).await?;
    Ok(())
}

/// What one round of deliveries did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryRound {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    url: String,
    payload: String,
    attempts: i64,
    next_attempt_ms: i64,
}

/// An HTTP client for webhooks (no redirects: a webhook answers itself).
pub fn client() -> Result<reqwest::Client, CoreError> {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CoreError::Internal(format!("webhook client: {}", e.without_url())))
}

/// Sends every delivery due at `now_ms`, concurrently, and records the
/// outcomes.
pub async fn deliver_due(db: &Db, client: &reqwest::Client, now_ms: i64) -> Result<DeliveryRound, CoreError> {
    let d = |c: AlarmDeliveries| (AlarmDeliveries::Table, c);
    let q = Query::select()
        .columns([
            d(AlarmDeliveries::Id),
            d(AlarmDeliveries::Payload),
            d(AlarmDeliveries::Attempts),
            d(AlarmDeliveries::NextAttemptMs),
        ])
        .column((AlarmWebhooks::Table, AlarmWebhooks::Url))
        .from(AlarmDeliveries::Table)
        .inner_join(
            AlarmWebhooks::Table,
            Expr::col((AlarmWebhooks::Table, AlarmWebhooks::Id))
                .equals((AlarmDeliveries::Table, AlarmDeliveries::WebhookId)),
        )
        .and_where(Expr::col(d(AlarmDeliveries::Status)).eq(PENDING))
        .and_where(Expr::col(d(AlarmDeliveries::NextAttemptMs)).lte(now_ms))
        .order_by(d(AlarmDeliveries::Id), Order::Asc)
        .limit(BATCH)
        .to_owned();
    let due: Vec<Due> = db.fetch_all(&q).await?;
    let mut sends = tokio::task::JoinSet::new();
    for item in due {
        let claim = Query::update()
            .table(AlarmDeliveries::Table)
            .values([(AlarmDeliveries::NextAttemptMs, (now_ms + CLAIM_MS).into())])
            .and_where(Expr::col(AlarmDeliveries::Id).eq(item.id))
            .and_where(Expr::col(AlarmDeliveries::Status).eq(PENDING))
            .and_where(Expr::col(AlarmDeliveries::NextAttemptMs).eq(item.next_attempt_ms))
            .to_owned();
        if db.execute(&claim).await? == 0 {
            continue;
        }
        let client = client.clone();
        sends.spawn(async move {
            let outcome = client
                .post(&item.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(item.payload.clone())
                .send()
                .await;
            (
                item,
                outcome
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.without_url().to_string()),
            )
        });
    }
    let mut round = DeliveryRound::default();
    while let Some(joined) = sends.join_next().await {
        let (item, outcome) = joined.map_err(|e| CoreError::Internal(format!("webhook send task: {e}")))?;
        let attempts = item.attempts + 1;
        let (status, code, error) = match outcome {
            Ok(code) if (200..300).contains(&code) => (DELIVERED, Some(code), None),
            Ok(code) => (PENDING, Some(code), Some(format!("HTTP {code}"))),
            Err(e) => (PENDING, None, Some(e)),
        };
        let status = if status == PENDING && attempts >= MAX_ATTEMPTS {
            FAILED
        } else {
            status
        };
        match status {
            DELIVERED => round.delivered += 1,
            FAILED => round.failed += 1,
            _ => round.retrying += 1,
        }
        if status != DELIVERED {
            tracing::warn!(delivery = item.id, attempts, error = ?error, "webhook delivery failed");
        }
        let q = Query::update()
            .table(AlarmDeliveries::Table)
            .values([
                (AlarmDeliveries::Status, status.into()),
                (AlarmDeliveries::Attempts, attempts.into()),
                (AlarmDeliveries::NextAttemptMs, (now_ms + backoff_ms(attempts)).into()),
                (AlarmDeliveries::LastStatus, code.map(i64::from).into()),
                (AlarmDeliveries::LastError, error.into()),
                (
                    AlarmDeliveries::DeliveredMs,
                    (status == DELIVERED).then_some(now_ms).into(),
                ),
            ])
            .and_where(Expr::col(AlarmDeliveries::Id).eq(item.id))
            .to_owned();
        db.execute(&q).await?;
    }
    Ok(round)
}

/// Sends due webhook deliveries every second until `shutdown` resolves.
pub async fn run_webhook_deliverer(db: Db, clock: Arc<dyn Clock>, shutdown: impl Future<Output = ()>) {
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alarm webhooks disabled");
            return;
        }
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                if let Err(e) = deliver_due(&db, &client, clock.now_ms()).await {
                    tracing::warn!(error = %e, "alarm webhook deliveries failed");
                }
            }
        }
    }
}

/// One delivery's outcome, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub alarm_id: i64,
    pub event: String,
    pub status: String,
    pub attempts: i64,
    /// The HTTP status of the last attempt.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    alarm_id: i64,
    payload: String,
    status: String,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_ms: i64,
    delivered_ms: Option<i64>,
}

/// The latest deliveries of a webhook the caller may manage, newest first.
pub async fn deliveries(db: &Db, caller: &Principal, webhook_id: i64) -> Result<Vec<Delivery>, CoreError> {
    store::get_webhook(db, caller, webhook_id).await?;
    let q = Query::select()
        .columns([
            AlarmDeliveries::Id,
            AlarmDeliveries::AlarmId,
            AlarmDeliveries::Payload,
            AlarmDeliveries::Status,
            AlarmDeliveries::Attempts,
            AlarmDeliveries::LastStatus,
            AlarmDeliveries::LastError,
            AlarmDeliveries::CreatedMs,
            AlarmDeliveries::DeliveredMs,
        ])
        .from(AlarmDeliveries::Table)
        .and_where(Expr::col(AlarmDeliveries::WebhookId).eq(webhook_id))
        .order_by(AlarmDeliveries::Id, Order::Desc)
        .limit(100)
        .to_owned();
    let rows: Vec<DeliveryRow> = db.fetch_all(&q).await?;
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            id: r.id,
            alarm_id: r.alarm_id,
            event: serde_json::from_str::<serde_json::Value>(&r.payload)
                .ok()
                .and_then(|v| v["event"].as_str().map(str::to_string))
                .unwrap_or_default(),
            status: r.status,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            created_at: ms_to_time(r.created_ms),
            delivered_at: r.delivered_ms.map(ms_to_time),
        })
        .collect())
}
