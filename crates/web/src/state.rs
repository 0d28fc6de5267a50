//! What every handler can reach: the database, the web settings and metrics.

use std::sync::Arc;

use chrono::Duration;
use shuxiang_core::db::{SliceMigrations, CORE_MIGRATIONS};
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
}

impl Default for WebConfig {
    fn default() -> Self {
        Self { session_ttl: Duration::hours(12), secure_cookies: false, trust_forwarded_for: false }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<WebConfig>,
    pub metrics: Arc<Metrics>,
    /// Every slice's migrations, for `/readyz`.
    pub migrations: Arc<Vec<&'static SliceMigrations>>,
}

impl AppState {
    pub fn new(db: Db, config: WebConfig) -> Self {
        Self { db, config: Arc::new(config), metrics: Arc::new(Metrics::default()), migrations: Arc::new(all_migrations()) }
    }
}

/// The migrations of the kernel and every slice, in the order they run.
pub fn all_migrations() -> Vec<&'static SliceMigrations> {
    vec![&CORE_MIGRATIONS]
}
