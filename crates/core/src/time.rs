//! One clock for the platform, so every stored timestamp is UTC with the same
//! precision on both backends (PostgreSQL keeps microseconds).

use chrono::{DateTime, SubsecRound, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}
