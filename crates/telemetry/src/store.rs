//! (being written)

use shuxiang_core::db::SliceMigrations;

/// The telemetry slice's tables.
pub static TELEMETRY_MIGRATIONS: SliceMigrations = SliceMigrations {
    slice: "telemetry",
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};
