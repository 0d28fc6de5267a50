//! The verification badge of a scan: each event shown is checked the way an
//! independent verifier would — its body hashes to its hash ID, and that ID
//! is a leaf of the tree a signed checkpoint commits to.
//!
//! An event newer than the latest checkpoint is "pending" (the next
//! checkpoint, seconds away, will cover it), not failed. Anything else that
//! does not check out is a failure the page must show plainly.

use shuxiang_core::CoreError;
use shuxiang_core::db::Db;

use crate::checkpoint::{Verifier, open_checkpoint};
use crate::epcis_hash::{Context, event_hash_id};
use crate::log_store::{self, LogError};
use crate::merkle::{ProofError, leaf_hash, verify_inclusion};
use crate::produce::store::Scanned;

/// How the events of a scan checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Events whose content and inclusion in the signed tree were verified.
    pub verified: usize,
    /// Events logged after the latest checkpoint.
    pub pending: usize,
    /// Events that failed, with why.
    pub failed: Vec<(String, String)>,
    /// Size of the tree of the checkpoint verified against (0: none yet).
    pub checkpoint_size: u64,
}

impl Verification {
    pub fn all_verified(&self) -> bool {
        self.failed.is_empty() && self.pending == 0 && self.verified > 0
    }
}

/// Checks every event of `scanned` against the latest signed checkpoint.
pub async fn verify_scan(db: &Db, verifier: &Verifier, scanned: &Scanned) -> Result<Verification, CoreError> {
    let mut out = Verification {
        verified: 0,
        pending: 0,
        failed: Vec::new(),
        checkpoint_size: 0,
    };
    let checkpoint = match log_store::latest_checkpoint(db).await? {
        Some(stored) => match open_checkpoint(&stored.note, verifier) {
            Ok(cp) => Some(cp),
            Err(e) => {
                out.failed.push((
                    "checkpoint".into(),
                    format!("the latest checkpoint's signature fails: {e}"),
                ));
                None
            }
        },
        None => None,
    };
    // Rehash first, then prove every event that hashes in one batch at the
    // checkpoint's size; failures are listed in event order either way.
    let mut hashed = Vec::with_capacity(scanned.events.len());
    for event in &scanned.events {
        let body = serde_json::Value::Object(event.body.clone());
        hashed.push(match event_hash_id(&body, &Context::from_document(&body)) {
            Ok(h) if h == event.hash_id => Ok(()),
            Ok(_) => Err("the stored event no longer hashes to its ID".to_owned()),
            Err(e) => Err(format!("the stored event cannot be hashed: {e}")),
        });
    }
    let to_prove: Vec<&str> = scanned
        .events
        .iter()
        .zip(&hashed)
        .filter(|(_, h)| h.is_ok())
        .map(|(e, _)| e.hash_id.as_str())
        .collect();
    let mut proofs = match &checkpoint {
        Some(cp) if !to_prove.is_empty() => {
            out.checkpoint_size = cp.size();
            log_store::inclusion_proofs(db, &to_prove, Some(cp.size()))
                .await?
                .into_iter()
        }
        _ => Vec::new().into_iter(),
    };
    for (event, hashed) in scanned.events.iter().zip(hashed) {
        if let Err(why) = hashed {
            out.failed.push((event.hash_id.clone(), why));
            continue;
        }
        let (Some(cp), Some(proof)) = (&checkpoint, proofs.next()) else {
            out.pending += 1;
            continue;
        };
        match proof {
            Ok(p) => match verify_inclusion(
                &leaf_hash(event.hash_id.as_bytes()),
                p.leaf_index,
                p.tree_size,
                &p.proof,
                cp.root(),
            ) {
                Ok(()) => out.verified += 1,
                Err(e) => out
                    .failed
                    .push((event.hash_id.clone(), format!("inclusion proof fails: {e}"))),
            },
            Err(LogError::Proof(ProofError::IndexOutOfRange { .. })) => out.pending += 1,
            Err(LogError::NotFound(_)) => out
                .failed
                .push((event.hash_id.clone(), "the event is not in the log".into())),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}
