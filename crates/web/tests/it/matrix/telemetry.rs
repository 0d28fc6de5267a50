//! The authorisation matrix's rows for devices, telemetry, series.

use std::collections::HashMap;

#[allow(unused_imports)]
use super::{ADMIN, ADMIN_OFFICIAL, ALL, Call, Fixture, Out, Row, Side, code};
use crate::support::TestServer;

/// Routes checked elsewhere (named with the reason).
pub(super) const SPECIAL: &[&str] = &[];

/// Creates what the rows below refer to, under names in `extra`.
pub(super) async fn fixture(_srv: &TestServer, _admin: &str, _extra: &mut HashMap<&'static str, String>) {}

pub(super) fn rows(_m: &mut HashMap<&'static str, Row>) {}
