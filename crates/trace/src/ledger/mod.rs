//! 农资经营台账 dealers' stock and real-name sales ledgers, and their
//! supervision (化肥农药减量).
//!
//! - `model`: entries, quantities and units, 居民身份证 numbers, the product
//!   rules of a sale; validation without I/O
//! - `store`: the SQL for shops, append-only ledger entries, sold label
//!   codes and anomalies (migration 0004 of the trace slice)
//! - `service`: who may do what, refusals that raise anomalies, reversals,
//!   the audited buyer reveal
//! - `import`: all-or-nothing CSV import of an existing ledger
//! - `stats`: sales quantities per region or month for supervision
//! - `api`: the JSON routes

pub mod api;
pub mod import;
pub mod model;
pub mod service;
pub mod stats;
pub mod store;
