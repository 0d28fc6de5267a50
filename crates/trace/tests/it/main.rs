//! Integration tests of the trace slice: label codes, EPCIS hash IDs against
//! the GS1 reference vectors, Merkle proofs against the RFC 6962 vectors,
//! signed checkpoints, and the public proof API over a real server.

mod api;
mod checkpoint;
mod epcis_event_id;
mod epcis_hash;
mod epcis_store;
mod epcis_validate;
mod epcis_xml;
mod label_code;
mod ledger;
mod ledger_stats;
mod log_store;
mod merkle;
mod products;
