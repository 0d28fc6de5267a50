//! What every handler can reach: the database, the web settings and metrics.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::Duration;
use shuxiang_core::auth::Principal;
use shuxiang_core::cache::TtlCache;
use shuxiang_core::db::{SliceMigrations, CORE_MIGRATIONS};
use shuxiang_core::regions::Region;
use shuxiang_core::Db;

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
    /// region before asking the database again; zero disables caching.
    pub cache_ttl: std::time::Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::hours(12),
            secure_cookies: false,
            trust_forwarded_for: false,
            cache_ttl: std::time::Duration::from_secs(5),
        }
    }
}

/// A region as the API serves it, with its ancestors' (code, name).
#[derive(Clone)]
pub struct CachedRegion {
    pub region: Region,
    pub ancestors: Vec<(String, String)>,
}

/// Entries each cache holds at most.
const CACHE_CAPACITY: usize = 50_000;

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
    pub region_cache: Arc<TtlCache<String, CachedRegion>>,
}

impl AppState {
    pub fn new(db: Db, config: WebConfig) -> Self {
        let ttl = config.cache_ttl;
        Self {
            db,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            migrations: Arc::new(all_migrations()),
            auth_cache: Arc::new(TtlCache::new(ttl, CACHE_CAPACITY)),
            region_cache: Arc::new(TtlCache::new(ttl, CACHE_CAPACITY)),
        }
    }
}

/// Clears this node's caches after every successful write, whatever route
/// made it: sign-out, revocation, role or village-type changes take effect
/// here at once, and no write path can forget to invalidate.
pub async fn forget_on_write(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let resp = next.run(req).await;
    if write && (resp.status().is_success() || resp.status().is_redirection()) {
        state.auth_cache.clear();
        state.region_cache.clear();
    }
    resp
}

/// The migrations of the kernel and every slice, in the order they run.
pub fn all_migrations() -> Vec<&'static SliceMigrations> {
    vec![&CORE_MIGRATIONS]
}
