//! EPCIS 2.0 采集与查询 capture and query of trace events (GS1 EPCIS 2.0,
//! JSON / JSON-LD binding, and the XML binding read into the JSON form).
//!
//! - `validate`: the GS1 EPCIS JSON schema; errors name JSON pointers
//! - `model`: an event as stored: hash ID, event ID, query fields, EPCs
//! - `store`: the event tables, idempotent storing with trace-log appends,
//!   the standard query with keyset paging
//! - `capture`: capture jobs for documents (rollback / proceed) and
//!   synchronous single events
//! - `xml`: XML documents and events into their JSON-LD form, so both
//!   syntaxes share validation, hashing and storage
//! - `api`: the `/api/v1/epcis/…` routes
//!
//! Identifiers: every stored event carries its standard event hash ID
//! (`ni:///sha-256;…?ver=CBV2.0`), which is also its leaf in the trace log.
//! Its `eventID` is that hash ID unless the capturer supplied one; then the
//! event is served with the hash ID under [`model::HASH_ID_KEY`]
//! (`x-shuxiang:hashID`; drop that key before recomputing the hash, which
//! would otherwise count it as an extension field). A served event carries
//! the `@context` of the document it came in, so it hashes alone. Re-capturing
//! an identical event (same hash ID) stores nothing and answers with the
//! stored event ID.
//!
//! Who may do what. An event's `readPoint` / `bizLocation` are GS1
//! locations, not region codes, so an event is filed under the region of
//! the capturer's scope (the `region` query parameter picks one when the
//! caller holds several; it must lie within a capturing role's scope):
//! - capture (documents and single events): administrators, officials,
//!   village staff, dealers, farmers and carriers ([`CAPTURERS`]); experts
//!   advise and do not record events;
//! - read: administrators, officials, village staff and experts read every
//!   event filed in their scope ([`SCOPE_READERS`]); dealers, farmers and
//!   carriers read the events they captured themselves ([`OWN_READERS`]),
//!   since another business's supply-chain records are its own;
//! - capture jobs are read by the user who submitted them only.

pub mod api;
pub mod capture;
pub mod model;
pub mod store;
pub mod validate;
pub mod xml;

use shuxiang_core::CoreError;
use shuxiang_core::auth::{Principal, Role, Scope};
use shuxiang_core::region::RegionCode;

/// Who may capture events.
pub const CAPTURERS: &[Role] = &[
    Role::Admin,
    Role::Official,
    Role::VillageStaff,
    Role::Dealer,
    Role::Farmer,
    Role::Carrier,
];

/// Who reads every event filed in their scope.
pub const SCOPE_READERS: &[Role] = &[Role::Admin, Role::Official, Role::VillageStaff, Role::Expert];

/// Who reads the events they captured.
pub const OWN_READERS: &[Role] = &[Role::Dealer, Role::Farmer, Role::Carrier];

/// The region a capture by `caller` is filed under: `requested` if given
/// (403 unless a capturing role's scope covers it), otherwise the scope of
/// the caller's capturing role (`*` for a national one); 422 when several
/// scopes leave the choice open.
pub fn capture_region(caller: &Principal, requested: Option<&str>) -> Result<String, CoreError> {
    caller.require_role(CAPTURERS)?;
    if let Some(raw) = requested.map(str::trim).filter(|r| !r.is_empty()) {
        let code = RegionCode::parse(raw)?;
        caller.require(CAPTURERS, &code)?;
        return Ok(code.to_string());
    }
    let mut scopes: Vec<String> = caller
        .grants
        .iter()
        .filter(|g| CAPTURERS.contains(&g.role))
        .map(|g| match &g.scope {
            Scope::All => "*".to_owned(),
            Scope::Region(code) => code.to_string(),
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    match scopes.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(CoreError::invalid(
            "region_required",
            format!(
                "you capture in several regions ({}); name one with ?region=",
                scopes.join(", ")
            ),
        )),
    }
}
