//! Both backends must carry the same migration versions, or one of them drifts.

use shuxiang_core::db::CORE_MIGRATIONS;

#[test]
fn sqlite_and_postgres_migrations_have_the_same_versions() {
    let versions = |m: &sqlx::migrate::Migrator| {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect::<Vec<_>>()
    };
    let sqlite = versions(&CORE_MIGRATIONS.sqlite);
    let postgres = versions(&CORE_MIGRATIONS.postgres);
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres, "crates/core/migrations/sqlite and postgres differ");
}

shuxiang_core::db_test!(async fn readiness_reports_no_pending_migrations(db) {
    assert_eq!(db.pending_migrations(&[&CORE_MIGRATIONS]).await.unwrap(), 0);
    db.ping().await.unwrap();
});
