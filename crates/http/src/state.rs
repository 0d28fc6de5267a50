//! What every handler can reach: the database, the web settings, metrics
//! and the state of capability slices.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::Duration;
use shuxiang_core::Db;
use shuxiang_core::auth::Principal;
use shuxiang_core::cache::{self, TtlCache};
use shuxiang_core::db::SliceMigrations;
use shuxiang_core::regions::Region;

use crate::metrics::Metrics;

/// Settings of the HTTP layer (see docs/configuration.md).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
    /// Mark cookies `Secure` (set when served behind HTTPS).
    pub secure_cookies: bool,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy
    /// you control; otherwise clients could forge it to dodge rate limits).
    pub trust_forwarded_for: bool,
    /// How long a node may reuse what it read about a bearer token or a
    /// region at most; zero disables caching. Changes are noticed sooner,
    /// through the generation counters (see [`CACHE_SYNC_INTERVAL`]).
    pub cache_ttl: std::time::Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::hours(12),
            secure_cookies: false,
            trust_forwarded_for: false,
            cache_ttl: std::time::Duration::from_secs(60),
        }
    }
}

/// A region as the API serves it, with its ancestors' (code, name).
#[derive(Clone)]
pub struct CachedRegion {
    pub region: Region,
    pub ancestors: Vec<(String, String)>,
}

/// Entries each cache holds at most (all of China has 665,276 regions; the
/// hot set of a province fits many times over).
const CACHE_CAPACITY: usize = 200_000;

/// How often a node asks whether another node changed cached data: the
/// longest a sign-out, revocation or edit elsewhere goes unnoticed here.
pub const CACHE_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The generation counters this node last saw, and when it looked.
struct SeenGenerations {
    checked: Instant,
    seen: HashMap<String, i64>,
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<Metrics>,
    /// Every slice's migrations, for `/readyz`.
    pub migrations: Arc<Vec<&'static SliceMigrations>>,
    /// Principals by SHA-256 of their bearer secret.
    pub auth_cache: Arc<TtlCache<String, Principal>>,
    /// Regions by the code as requested.
    pub region_cache: Arc<TtlCache<String, Arc<CachedRegion>>>,
    /// Each slice's own state, one value per type (e.g. the trace log's
    /// signing key). A type map because this crate cannot name slice types:
    /// slices depend on it, not the other way round. Set while assembling
    /// the app with [`with_slice`](Self::with_slice), read with
    /// [`slice`](Self::slice).
    pub slices: Arc<axum::http::Extensions>,
    generations: Arc<tokio::sync::Mutex<SeenGenerations>>,
}

impl AppState {
    /// `migrations`: every slice's, in the order they run (for `/readyz`).
    pub fn new(db: Db, config: WebConfig, migrations: Vec<&'static SliceMigrations>) -> Self {
        let ttl = config.cache_ttl;
        Self {
            db,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            migrations: Arc::new(migrations),
            auth_cache: Arc::new(TtlCache::new(ttl, CACHE_CAPACITY)),
            region_cache: Arc::new(TtlCache::new(ttl, CACHE_CAPACITY)),
            slices: Arc::new(axum::http::Extensions::new()),
            generations: Arc::new(tokio::sync::Mutex::new(SeenGenerations {
                checked: Instant::now() - CACHE_SYNC_INTERVAL,
                seen: HashMap::new(),
            })),
        }
    }

    /// Adds a slice's state, replacing any earlier value of the same type.
    pub fn with_slice<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.slices).insert(value);
        self
    }

    /// The slice state of type `T`; `None` if the app was assembled without
    /// it, which handlers report as an internal error.
    pub fn slice<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.slices.get::<T>()
    }

    /// Drops cached data that another node changed: at most once per
    /// [`CACHE_SYNC_INTERVAL`] one request reads the generation counters;
    /// requests arriving meanwhile do not wait for it.
    pub async fn sync_caches(&self) {
        let Ok(mut g) = self.generations.try_lock() else { return };
        if g.checked.elapsed() < CACHE_SYNC_INTERVAL {
            return;
        }
        let current = match cache::generations(&self.db).await {
            Ok(c) => c,
            Err(e) => {
                // Without the counters nothing cached can be trusted.
                tracing::warn!(error = %e, "cache generations unreadable; clearing caches");
                self.auth_cache.clear();
                self.region_cache.clear();
                return;
            }
        };
        if current.get(cache::AUTH) != g.seen.get(cache::AUTH) {
            self.auth_cache.clear();
        }
        if current.get(cache::REGIONS) != g.seen.get(cache::REGIONS) {
            self.region_cache.clear();
        }
        g.seen = current;
        g.checked = Instant::now();
    }
}

/// Put into a response's extensions by a write that cannot touch cached
/// users, tokens or regions (a device's telemetry), so device traffic does
/// not empty the caches every user request relies on.
#[derive(Debug, Clone, Copy)]
pub struct KeepCaches;

/// Clears this node's caches after every successful write, whatever route
/// made it: sign-out, revocation, role or village-type changes take effect
/// here at once, and no write path can forget to invalidate. Only a
/// response marked [`KeepCaches`] leaves them.
pub async fn forget_on_write(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let resp = next.run(req).await;
    let keep = resp.extensions().get::<KeepCaches>().is_some();
    if write && !keep && (resp.status().is_success() || resp.status().is_redirection()) {
        state.auth_cache.clear();
        state.region_cache.clear();
    }
    resp
}
