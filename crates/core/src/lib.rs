//! Shuxiang's kernel: what every capability slice stands on.
//!
//! Region codes and the administrative tree, the storage seam over SQLite and
//! PostgreSQL with its migration runner, people with region-scoped roles,
//! sessions and API tokens, and the audit log. Slices use these through the
//! public functions here and never touch each other's tables.

pub mod audit;
pub mod auth;
pub mod cache;
pub mod db;
pub mod error;
pub mod import;
pub mod region;
pub mod regions;
pub mod testing;
pub mod time;

pub use db::{Backend, Db, SliceMigrations, Tx};
pub use error::{CoreError, Result};
pub use region::{RegionCode, RegionLevel, VillageType};
