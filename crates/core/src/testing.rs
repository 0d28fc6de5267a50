//! Test support: a fresh database per test on SQLite and, when
//! `SHUXIANG_TEST_PG` holds a PostgreSQL URL, on PostgreSQL in a schema of
//! its own. Both start with the kernel migrated and Jiangxi's regions and
//! boundaries loaded, copied from a template prepared once.

use std::path::PathBuf;

use rand::RngCore;
use sqlx::AssertSqlSafe;
use tokio::sync::OnceCell;

use crate::db::{Backend, CORE_MIGRATIONS, Db, SliceMigrations};
use crate::import::load_shipped_jiangxi;

/// The environment variable naming the PostgreSQL server for tests.
pub const PG_ENV: &str = "SHUXIANG_TEST_PG";

/// A database for one test; dropped (file or schema) by [`TestDb::finish`].
pub struct TestDb {
    pub db: Db,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Holds the directory until the test ends; dropping it deletes the file.
    Dir {
        _keep: tempfile::TempDir,
    },
    Schema {
        url: String,
        schema: String,
    },
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

static SQLITE_TEMPLATE: OnceCell<(tempfile::TempDir, PathBuf)> = OnceCell::const_new();

/// A content key for the template: it changes whenever the migrations or the
/// shipped data do, so a stale template schema is never reused.
fn template_key() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for m in CORE_MIGRATIONS.postgres.iter() {
        h.update(m.version.to_le_bytes());
        h.update(m.checksum.as_ref());
    }
    for f in crate::import::jiangxi_files() {
        h.update(&f.bytes);
    }
    hex::encode(&h.finalize()[..6])
}

impl TestDb {
    pub async fn new(backend: Backend, slices: &[&SliceMigrations]) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite(slices).await),
            Backend::Postgres => Self::postgres(slices).await,
        }
    }

    pub async fn sqlite(slices: &[&SliceMigrations]) -> Self {
        let (_, template) = SQLITE_TEMPLATE
            .get_or_init(|| async {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("template.db");
                let db = Db::open_sqlite_file(&path).await.expect("open template");
                db.migrate(&[&CORE_MIGRATIONS]).await.expect("migrate template");
                load_shipped_jiangxi(&db).await.expect("seed template");
                db.execute_raw("PRAGMA wal_checkpoint(TRUNCATE)")
                    .await
                    .expect("checkpoint");
                db.close().await;
                (dir, path)
            })
            .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.db");
        std::fs::copy(template, &path).expect("copy template");
        let db = Db::open_sqlite_file(&path).await.expect("open test db");
        let mut all = vec![&CORE_MIGRATIONS];
        all.extend_from_slice(slices);
        db.migrate(&all).await.expect("migrate");
        Self {
            db,
            cleanup: Cleanup::Dir { _keep: dir },
        }
    }

    /// `None` when `SHUXIANG_TEST_PG` is not set.
    pub async fn postgres(slices: &[&SliceMigrations]) -> Option<Self> {
        let url = std::env::var(PG_ENV).ok().filter(|u| !u.is_empty())?;
        let template = format!("sx_tpl_{}", template_key());
        prepare_pg_template(&url, &template).await;
        let schema = format!("sx_t_{}", random_suffix());
        let db = Db::open_postgres(&url, Some(&schema))
            .await
            .expect("connect to SHUXIANG_TEST_PG");
        let mut all = vec![&CORE_MIGRATIONS];
        all.extend_from_slice(slices);
        db.migrate(&all).await.expect("migrate");
        db.execute_raw(&format!(
            "INSERT INTO regions SELECT * FROM \"{template}\".regions; \
             INSERT INTO region_boundaries SELECT * FROM \"{template}\".region_boundaries;"
        ))
        .await
        .expect("copy template");
        Some(Self {
            db,
            cleanup: Cleanup::Schema { url, schema },
        })
    }

    pub async fn finish(self) {
        self.db.close().await;
        if let Cleanup::Schema { url, schema } = self.cleanup {
            let admin = Db::open_postgres(&url, None).await.expect("connect");
            admin
                .execute_raw(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .expect("drop schema");
            admin.close().await;
        }
    }
}

/// Builds the template schema once per server, under an advisory lock so
/// concurrent test processes do not race.
async fn prepare_pg_template(url: &str, template: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to SHUXIANG_TEST_PG");
    sqlx::query("SELECT pg_advisory_lock(7356298)")
        .execute(&mut conn)
        .await
        .expect("lock");
    let ready: Option<(i32,)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = '{template}' AND table_name = 'template_ready'"
    )))
    .fetch_optional(&mut conn)
    .await
    .expect("query template");
    if ready.is_none() {
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{template}\" CASCADE")))
            .execute(&mut conn)
            .await
            .expect("drop stale template");
        let db = Db::open_postgres(url, Some(template)).await.expect("template schema");
        db.migrate(&[&CORE_MIGRATIONS]).await.expect("migrate template");
        load_shipped_jiangxi(&db).await.expect("seed template");
        db.execute_raw("CREATE TABLE template_ready (x INT)")
            .await
            .expect("mark template");
        db.close().await;
    }
    sqlx::query("SELECT pg_advisory_unlock(7356298)")
        .execute(&mut conn)
        .await
        .expect("unlock");
    conn.close().await.ok();
}

/// Runs a test body once per configured backend: SQLite always, PostgreSQL
/// when `SHUXIANG_TEST_PG` is set. The body sees `db: Db`.
///
/// ```text
/// db_test!(async fn stores_things(db) { ... });
/// db_test!([&MY_SLICE_MIGRATIONS] async fn stores_more(db) { ... });
/// ```
#[macro_export]
macro_rules! db_test {
    ($(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        $crate::db_test!([] $(#[$meta])* async fn $name($db) $body);
    };
    ([$($slice:expr),*] $(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: $crate::Db) $body

            $(#[$meta])*
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::testing::TestDb::sqlite(&[$($slice),*]).await;
                body(t.db.clone()).await;
                t.finish().await;
            }

            $(#[$meta])*
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(t) = $crate::testing::TestDb::postgres(&[$($slice),*]).await else {
                    eprintln!("PostgreSQL leg skipped: {} is not set", $crate::testing::PG_ENV);
                    return;
                };
                body(t.db.clone()).await;
                t.finish().await;
            }
        }
    };
}
