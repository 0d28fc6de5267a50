//! 追溯 traceability: the building blocks of the trace slice.
//!
//! - `label_code`: the 32-digit pesticide label code of MOA announcement
//!   No. 2579 and the QR content carrying it
//! - `epcis_hash`: the standard EPCIS 2.0 event hash ID (CBV 2.0 canonical
//!   pre-hash, `ni:///sha-256;…?ver=CBV2.0`)
//! - `merkle`: RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and
//!   consistency proofs
//! - `checkpoint`: signed checkpoints in the C2SP signed-note format (Ed25519)
//! - `log_store`: the persisted log on SQLite / PostgreSQL: appends, proofs,
//!   published checkpoints and the integrity audit
//! - `keys`: the log's signing key and origin as a node loads them
//! - `api`: the public tamper-evidence routes (checkpoint, verifier key,
//!   inclusion and consistency proofs) and offline proof verification
//! - `input_api`: pesticide label-code validation for dealers and inspectors
//! - `products`: the 农资 registry of pesticide and fertilizer products
//! - `epcis`: EPCIS 2.0 capture and query of trace events
//! - `produce`: produce batches, trace codes, QR labels and the consumer scan
//! - `ledger`: dealers' stock and real-name sales ledgers and their supervision

pub mod api;
pub mod checkpoint;
pub mod epcis;
pub mod epcis_hash;
pub mod input_api;
pub mod keys;
pub mod label_code;
pub mod ledger;
pub mod log_store;
pub mod merkle;
pub mod produce;
pub mod products;
