//! The alarm engine: evaluates accepted readings against the rules that
//! apply to their device, keeps each (rule, device) pair's state in memory
//! and persists raises and clears (alarm row, history step, webhook
//! deliveries) in one transaction per batch. A background task raises
//! "not reporting" alarms.
//!
//! Rules are cached. The cache is reloaded, together with the set of open
//! alarms (the pairs' raised states), when this process changed a rule or
//! cleared an alarm by hand, and at most a second after another node did
//! (the `alarms` generation counter of `shuxiang_core::cache`). A reload
//! restarts debounce timers and rate windows; raised states come from the
//! database, where a unique index allows one open alarm per pair.
//!
//! Last-seen times are the times readings were received (the engine's
//! clock), not the devices' own timestamps: a device with a wrong clock or
//! replaying a buffer is still reporting. They are kept in memory and
//! persisted at most every [`SEEN_PERSIST_MS`] per device (and at shutdown
//! of the detector). At startup a device's last-seen time is its persisted
//! time plus [`SEEN_PERSIST_MS`] (never later than now): the true time lies
//! in between, so after a crash "not reporting" is raised at most that much
//! late, never early.
//!
//! With several nodes each engine sees the readings it ingests. When one
//! device's readings are split across nodes (shared MQTT subscriptions),
//! thresholds still work per reading, but debounce and rate windows see only
//! part of the series, and a node's offline detector consults the persisted
//! last-seen times (which every node advances) before raising.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shuxiang_core::{CoreError, Db, cache};
use tokio::sync::Mutex;

use super::rules::{self, Change, EvalState, Rule};
use super::store;
use super::{Clock, DeviceRef, Reading};

/// How often a device's last-seen time is written at most.
pub const SEEN_PERSIST_MS: i64 = 30_000;
/// How often the offline detector looks.
pub const OFFLINE_TICK: Duration = Duration::from_secs(1);
/// How often the engine asks whether another node changed rules.
const GENERATION_CHECK: Duration = Duration::from_secs(1);

type Pair = (i64, i64);

/// Evaluates readings and raises and clears alarms. Cheap to clone; clones
/// share their state.
#[derive(Clone)]
pub struct AlarmEngine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clock: Arc<dyn Clock>,
    cache: Mutex<RuleCache>,
    states: Mutex<HashMap<Pair, EvalState>>,
    /// Held while persisting, taken before the states are released, so
    /// changes reach the database in the order they were decided.
    persist: Mutex<()>,
    seen: std::sync::Mutex<HashMap<i64, Seen>>,
    /// Memory and database disagree (a write failed): reload before use.
    stale: AtomicBool,
}

struct RuleCache {
    rules: Arc<Vec<Rule>>,
    /// Pairs with an open alarm as of the last reload.
    open: Arc<HashSet<Pair>>,
    generation: Option<i64>,
    local: u64,
    checked: Instant,
}

struct Seen {
    device: DeviceRef,
    last_ms: i64,
    persisted_ms: Option<i64>,
}

/// One decided change, to persist.
struct Decided {
    rule: Rule,
    device: DeviceRef,
    change: Change,
    at_ms: i64,
}

impl AlarmEngine {
    /// Loads rules, open alarms and persisted last-seen times.
    pub async fn start(db: Db, clock: Arc<dyn Clock>) -> Result<Self, CoreError> {
        let now = clock.now_ms();
        let seen = store::load_seen(&db)
            .await?
            .into_iter()
            .map(|(device, persisted)| {
                let id = device.id;
                let seen = Seen {
                    device,
                    last_ms: (persisted + SEEN_PERSIST_MS).min(now.max(persisted)),
                    persisted_ms: Some(persisted),
                };
                (id, seen)
            })
            .collect();
        let engine = Self {
            inner: Arc::new(Inner {
                db,
                clock,
                cache: Mutex::new(RuleCache {
                    rules: Arc::new(Vec::new()),
                    open: Arc::default(),
                    generation: None,
                    local: 0,
                    checked: Instant::now(),
                }),
                stale: AtomicBool::new(true),
                states: Mutex::new(HashMap::new()),
                persist: Mutex::new(()),
                seen: std::sync::Mutex::new(seen),
            }),
        };
        engine.rules().await?;
        Ok(engine)
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The current rules, reloaded if they (or open alarms) changed.
    async fn rules(&self) -> Result<Arc<Vec<Rule>>, CoreError> {
        let db = &self.inner.db;
        let mut c = self.inner.cache.lock().await;
        let local = store::local_changes();
        let forced = self.inner.stale.swap(false, Ordering::SeqCst);
        let mut reload = forced || c.local != local;
        if !reload && c.checked.elapsed() >= GENERATION_CHECK {
            let generation = cache::generations(db).await?.get(store::GENERATION).copied();
            c.checked = Instant::now();
            reload = generation != c.generation;
        }
        if !reload {
            return Ok(c.rules.clone());
        }
        let loaded = async {
            let generation = cache::generations(db).await?.get(store::GENERATION).copied();
            let rules = store::active_rules(db).await?;
            let open: HashSet<Pair> = store::open_pairs(db).await?.into_iter().collect();
            Ok::<_, CoreError>((generation, rules, open))
        }
        .await;
        let (generation, rules, open) = match loaded {
            Ok(l) => l,
            Err(e) => {
                self.mark_stale();
                return Err(e);
            }
        };
        let mut states = self.inner.states.lock().await;
        if forced {
            // Memory may be ahead of the database: start over from it.
            states.clear();
        } else {
            // Something changed, perhaps another rule, or another database
            // of this process (the local counter is process-wide): what an
            // unchanged rule has seen of a device (a rate-of-change window,
            // a timer) stays, unless someone else opened or closed its alarm
            // (an operator's manual clear).
            let same_rule = |id: i64| c.rules.iter().find(|r| r.id == id) == rules.iter().find(|r| r.id == id);
            states.retain(|pair, state| same_rule(pair.0) && state.raised == open.contains(pair));
        }
        *c = RuleCache {
            rules: Arc::new(rules),
            open: Arc::new(open),
            generation,
            local,
            checked: Instant::now(),
        };
        drop(states);
        Ok(c.rules.clone())
    }

    fn mark_stale(&self) {
        self.inner.stale.store(true, Ordering::SeqCst);
    }

    /// Evaluates one device's accepted readings (in time order, whatever
    /// order they come in) and persists any raise or clear before
    /// returning.
    pub async fn observe(&self, device: &DeviceRef, readings: &[Reading]) -> Result<(), CoreError> {
        if readings.is_empty() {
            return Ok(());
        }
        let now = self.now_ms();
        let persist_seen = self.note_seen(device, now);
        let rules = self.rules().await?;
        let applicable: Vec<&Rule> = rules.iter().filter(|r| r.applies_to(device)).collect();
        if !applicable.is_empty() {
            let open = self.inner.cache.lock().await.open.clone();
            let mut ordered: Vec<&Reading> = readings.iter().collect();
            ordered.sort_by_key(|r| r.ts_ms);
            let mut decided = Vec::new();
            let mut states = self.inner.states.lock().await;
            for rule in applicable {
                let key = (rule.id, device.id);
                let st = states
                    .entry(key)
                    .or_insert_with(|| EvalState::raised(open.contains(&key)));
                for r in &ordered {
                    if let Some(change) = rules::evaluate(&rule.condition, st, r) {
                        decided.push(Decided {
                            rule: rule.clone(),
                            device: device.clone(),
                            change,
                            at_ms: r.ts_ms,
                        });
                    }
                }
            }
            if !decided.is_empty() {
                let _order = self.inner.persist.lock().await;
                drop(states);
                if let Err(e) = self.persist(&decided).await {
                    // Memory moved on but the database did not: start over from it.
                    self.mark_stale();
                    return Err(e);
                }
            }
        }
        if let Some(ms) = persist_seen {
            store::save_seen(&self.inner.db, &[(device.clone(), ms)]).await?;
        }
        Ok(())
    }

    /// Records that `device` reported at `now`; returns the time to persist
    /// if it is due.
    fn note_seen(&self, device: &DeviceRef, now: i64) -> Option<i64> {
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        let entry = seen.entry(device.id).or_insert_with(|| Seen {
            device: device.clone(),
            last_ms: now,
            persisted_ms: None,
        });
        if entry.device != *device {
            entry.device = device.clone();
            entry.persisted_ms = None;
        }
        entry.last_ms = entry.last_ms.max(now);
        let due = entry.persisted_ms.is_none_or(|p| now - p >= SEEN_PERSIST_MS);
        if due {
            entry.persisted_ms = Some(now);
        }
        due.then_some(now)
    }

    async fn persist(&self, decided: &[Decided]) -> Result<(), CoreError> {
        let mut tx = self.inner.db.begin().await?;
        for d in decided {
            match &d.change {
                Change::Raise { value, message } => {
                    store::raise(&mut tx, &d.rule, &d.device, *value, message, d.at_ms).await?;
                }
                Change::Clear { value } => {
                    store::clear_open(&mut tx, d.rule.id, d.device.id, *value, d.at_ms).await?;
                }
            }
        }
        tx.commit().await
    }

    /// Raises "not reporting" alarms for devices silent past their rules'
    /// timeouts; returns how many were raised. The offline detector calls
    /// this every second.
    pub async fn check_offline(&self) -> Result<usize, CoreError> {
        let now = self.now_ms();
        let rules = self.rules().await?;
        let silence_rules: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.condition.silence_limit_ms().is_some())
            .collect();
        if silence_rules.is_empty() {
            return Ok(0);
        }
        let devices: Vec<(DeviceRef, i64)> = {
            let seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.values().map(|s| (s.device.clone(), s.last_ms)).collect()
        };
        let open = self.inner.cache.lock().await.open.clone();
        let mut candidates = Vec::new();
        {
            let states = self.inner.states.lock().await;
            for (device, last) in &devices {
                for rule in silence_rules.iter().filter(|r| r.applies_to(device)) {
                    let key = (rule.id, device.id);
                    let raised = states.get(&key).map_or(open.contains(&key), |s| s.raised);
                    let limit = rule.condition.silence_limit_ms().unwrap_or(i64::MAX);
                    if !raised && now - last >= limit {
                        candidates.push(device.id);
                    }
                }
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        // Another node may have received readings this one did not.
        let persisted: HashMap<i64, i64> = store::load_seen(&self.inner.db)
            .await?
            .into_iter()
            .map(|(d, ms)| (d.id, ms))
            .collect();
        {
            let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
            for id in &candidates {
                if let (Some(s), Some(p)) = (seen.get_mut(id), persisted.get(id))
                    && *p > s.last_ms
                {
                    s.last_ms = *p;
                }
            }
        }
        let devices: Vec<(DeviceRef, i64)> = {
            let seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
            candidates
                .iter()
                .collect::<HashSet<_>>()
                .into_iter()
                .filter_map(|id| seen.get(id).map(|s| (s.device.clone(), s.last_ms)))
                .collect()
        };
        let mut states = self.inner.states.lock().await;
        let mut decided = Vec::new();
        for (device, last) in &devices {
            for rule in silence_rules.iter().filter(|r| r.applies_to(device)) {
                let key = (rule.id, device.id);
                let st = states
                    .entry(key)
                    .or_insert_with(|| EvalState::raised(open.contains(&key)));
                if let Some(change) = rules::check_silence(&rule.condition, st, *last, now) {
                    decided.push(Decided {
                        rule: (*rule).clone(),
                        device: device.clone(),
                        change,
                        at_ms: now,
                    });
                }
            }
        }
        if decided.is_empty() {
            return Ok(0);
        }
        let _order = self.inner.persist.lock().await;
        drop(states);
        let result = self.persist(&decided).await;
        if result.is_err() {
            self.mark_stale();
        }
        result.map(|()| decided.len())
    }

    /// Writes every device's in-memory last-seen time.
    pub async fn flush_seen(&self) -> Result<(), CoreError> {
        let all: Vec<(DeviceRef, i64)> = {
            let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.values_mut()
                .filter(|s| s.persisted_ms != Some(s.last_ms))
                .map(|s| {
                    s.persisted_ms = Some(s.last_ms);
                    (s.device.clone(), s.last_ms)
                })
                .collect()
        };
        store::save_seen(&self.inner.db, &all).await
    }
}

/// Raises "not reporting" alarms within a second of their timeout until
/// `shutdown` resolves, then writes the last-seen times so a restart starts
/// from them. Uses the engine's clock.
pub async fn run_offline_detector(engine: AlarmEngine, shutdown: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(OFFLINE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                if let Err(e) = engine.check_offline().await {
                    tracing::warn!(error = %e, "offline detection failed");
                }
            }
        }
    }
    if let Err(e) = engine.flush_seen().await {
        tracing::warn!(error = %e, "last-seen times not saved at shutdown");
    }
}
