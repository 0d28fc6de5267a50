//! Kernel integration tests, each run on SQLite and (with SHUXIANG_TEST_PG) PostgreSQL.

mod auth;
mod migrations;
mod regions;
