//! Caching of data read on nearly every request (who a bearer token belongs
//! to, region rows): a small time-bounded map, and generation counters that
//! every change bumps in its own transaction, so each node can notice with
//! one cheap query that its cache is stale.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_query::{Expr, ExprTrait, Iden, OnConflict, Query};

use crate::db::{Db, Tx};
use crate::error::Result;

#[derive(Iden)]
enum CacheGenerations {
    Table,
    Name,
    Generation,
}

/// Sessions, tokens, users and their roles.
pub const AUTH: &str = "auth";
/// Regions, village types and boundaries.
pub const REGIONS: &str = "regions";

/// Marks the cached data called `name` as changed; call inside the
/// transaction that changes it.
pub async fn bump(tx: &mut Tx, name: &str) -> Result<()> {
    let q = Query::insert()
        .into_table(CacheGenerations::Table)
        .columns([CacheGenerations::Name, CacheGenerations::Generation])
        .values_panic([name.into(), 1i64.into()])
        .on_conflict(
            OnConflict::column(CacheGenerations::Name)
                .value(
                    CacheGenerations::Generation,
                    Expr::col((CacheGenerations::Table, CacheGenerations::Generation)).add(1),
                )
                .to_owned(),
        )
        .to_owned();
    tx.execute(&q).await?;
    Ok(())
}

/// Every generation counter, by name.
pub async fn generations(db: &Db) -> Result<HashMap<String, i64>> {
    let q = Query::select()
        .columns([CacheGenerations::Name, CacheGenerations::Generation])
        .from(CacheGenerations::Table)
        .to_owned();
    let rows: Vec<(String, i64)> = db.fetch_all(&q).await?;
    Ok(rows.into_iter().collect())
}

pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    /// A TTL of zero disables the cache.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            // Dropping expired entries first keeps the hot set; if all are
            // fresh, starting over is cheaper than tracking recency.
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let c = TtlCache::new(Duration::from_millis(50), 10);
        c.insert("a", 1);
        assert_eq!(c.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&"a"), None);
        c.insert("b", 2);
        c.clear();
        assert_eq!(c.get(&"b"), None);
    }

    #[test]
    fn zero_ttl_disables() {
        let c = TtlCache::new(Duration::ZERO, 10);
        c.insert("a", 1);
        assert_eq!(c.get(&"a"), None);
    }

    #[test]
    fn capacity_is_bounded() {
        let c = TtlCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            c.insert(i, i);
        }
        assert!(c.map.lock().unwrap().len() <= 3);
        assert_eq!(c.get(&9), Some(9));
    }
}
