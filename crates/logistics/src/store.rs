//! (being written)

use shuxiang_core::db::SliceMigrations;

/// The logistics slice's tables.
pub static LOGISTICS_MIGRATIONS: SliceMigrations = SliceMigrations {
    slice: "logistics",
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};
