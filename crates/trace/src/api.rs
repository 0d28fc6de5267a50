//! The trace log's public tamper-evidence API: the latest signed checkpoint,
//! the verifier key, inclusion proofs of events and consistency proofs
//! between checkpoints. All routes are public, because consumers verify a
//! product's history without an account; they reveal only hashes.
//!
//! Every proof comes with the signed checkpoint it was computed for, so a
//! client never has to match a proof to a tree size itself, and
//! [`InclusionProofBody::verify`] checks one offline (as `shuxiang trace
//! verify` does).

use axum::Json;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use shuxiang_core::CoreError;
use shuxiang_http::extract::ApiQuery;
use shuxiang_http::{Access, ApiResult, ApiRoute, AppError, AppState};
use thiserror::Error;

use crate::checkpoint::{Checkpoint, NoteError, Verifier, open_checkpoint};
use crate::keys::TraceLogKeys;
use crate::log_store::{self, LogError, StoredCheckpoint};
use crate::merkle::{Hash, ProofError, leaf_hash, verify_inclusion};

/// Lets handlers use `?` on log operations, with the kernel's error codes.
impl From<LogError> for AppError {
    fn from(err: LogError) -> Self {
        AppError(err.into())
    }
}

pub fn routes() -> Vec<ApiRoute> {
    vec![
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/trace/checkpoint",
            summary: "The latest signed checkpoint of the trace log (C2SP signed note, text/plain); 404 before the first",
            tag: "trace",
            access: Access::Public,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(checkpoint),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/trace/public-key",
            summary: "The verifier key of the trace log's checkpoints (C2SP note verifier key, text/plain)",
            tag: "trace",
            access: Access::Public,
            body: None,
            query: &[],
            ok_status: 200,
            handler: get(public_key),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/trace/proof",
            summary: "Inclusion proof of an event in the tree of the latest checkpoint (or of the checkpoint of the given size), with that checkpoint",
            tag: "trace",
            access: Access::Public,
            body: None,
            query: &[
                ("event", "the EPCIS event hash ID (ni:///sha-256;…?ver=CBV2.0)"),
                ("size", "tree size of a published checkpoint (default: the latest)"),
            ],
            ok_status: 200,
            handler: get(proof),
        },
        ApiRoute {
            method: Method::GET,
            path: "/api/v1/trace/consistency",
            summary: "Consistency proof between two published checkpoints, with both",
            tag: "trace",
            access: Access::Public,
            body: None,
            query: &[
                ("from", "tree size of the older checkpoint"),
                ("to", "tree size of the newer checkpoint"),
            ],
            ok_status: 200,
            handler: get(consistency),
        },
    ]
}

/// Signed notes and keys are text formats; clients hash and parse them
/// byte for byte, so they are served as is, not wrapped in JSON.
fn plain_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

async fn checkpoint(State(state): State<AppState>) -> ApiResult<Response> {
    let latest = log_store::latest_checkpoint(&state.db).await?;
    let cp = latest.ok_or_else(|| AppError::not_found("no checkpoint of the trace log has been published yet"))?;
    Ok(plain_text(cp.note))
}

async fn public_key(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.slice::<TraceLogKeys>().ok_or_else(|| {
        // Logged by AppError: an assembly mistake, not a client's.
        AppError(CoreError::Internal(
            "the trace log keys are missing from AppState (build it with shuxiang_web::new_state)".into(),
        ))
    })?;
    Ok(plain_text(keys.signer.verifier_key_string()))
}

/// The body of `GET /api/v1/trace/proof`, and the input of
/// `shuxiang trace verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProofBody {
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Audit path, lowercase hex hashes.
    pub proof: Vec<String>,
    /// The signed checkpoint of `tree_size` the proof leads to.
    pub checkpoint: String,
}

/// Why a proof body failed offline verification.
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("the checkpoint does not open with the given key: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("the proof is for tree size {proof}, but the checkpoint is of size {checkpoint}")]
    SizeMismatch { proof: u64, checkpoint: u64 },
    #[error("proof hash #{position} is not a hex SHA-256 hash")]
    ProofHash { position: usize },
    #[error("the event is not leaf {index} of the checkpointed tree: {source}")]
    Inclusion { index: u64, source: ProofError },
}

impl InclusionProofBody {
    /// Checks, without the log, that the event `hash_id` is leaf
    /// `leaf_index` of the tree of the checkpoint signed by `verifier`;
    /// returns the checkpoint.
    pub fn verify(&self, hash_id: &str, verifier: &Verifier) -> Result<Checkpoint, VerifyError> {
        let checkpoint = open_checkpoint(&self.checkpoint, verifier)?;
        // An audit path can also fit a larger tree, so the size must be the
        // signed one (see `verify_inclusion`).
        if self.tree_size != checkpoint.size() {
            return Err(VerifyError::SizeMismatch {
                proof: self.tree_size,
                checkpoint: checkpoint.size(),
            });
        }
        let proof = self
            .proof
            .iter()
            .enumerate()
            .map(|(position, h)| {
                let mut hash: Hash = [0; 32];
                hex::decode_to_slice(h, &mut hash)
                    .map(|()| hash)
                    .map_err(|_| VerifyError::ProofHash { position })
            })
            .collect::<Result<Vec<_>, _>>()?;
        verify_inclusion(
            &leaf_hash(hash_id.as_bytes()),
            self.leaf_index,
            self.tree_size,
            &proof,
            checkpoint.root(),
        )
        .map_err(|source| VerifyError::Inclusion {
            index: self.leaf_index,
            source,
        })?;
        Ok(checkpoint)
    }
}

#[derive(Deserialize)]
struct ProofQuery {
    event: String,
    size: Option<u64>,
}

async fn proof(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ProofQuery>,
) -> ApiResult<Json<InclusionProofBody>> {
    let db = &state.db;
    let cp = match q.size {
        Some(size) => log_store::checkpoint_at(db, size).await?,
        None => log_store::latest_checkpoint(db).await?,
    };
    let Some(cp) = cp else {
        // A malformed or unknown event is reported as such first; only then
        // is the missing checkpoint the answer.
        log_store::inclusion_proof(db, &q.event, None).await?;
        return Err(match q.size {
            Some(size) => AppError::not_found(format!("no checkpoint was published for tree size {size}")),
            None => not_yet_checkpointed(),
        });
    };
    // The proof is computed for the checkpoint's size, so the two match even
    // while the log keeps growing.
    let p = match log_store::inclusion_proof(db, &q.event, Some(cp.tree_size)).await {
        Err(LogError::Proof(ProofError::IndexOutOfRange { .. })) => {
            return Err(not_yet_checkpointed());
        }
        other => other?,
    };
    Ok(Json(InclusionProofBody {
        leaf_index: p.leaf_index,
        tree_size: p.tree_size,
        proof: p.proof.iter().map(hex::encode).collect(),
        checkpoint: cp.note,
    }))
}

fn not_yet_checkpointed() -> AppError {
    AppError(CoreError::missing(
        "not_yet_checkpointed",
        "the event is logged but no checkpoint covers it yet; retry after the next checkpoint",
    ))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: u64,
}

#[derive(Debug, Serialize)]
struct ConsistencyBody {
    from: u64,
    to: u64,
    proof: Vec<String>,
    from_checkpoint: String,
    to_checkpoint: String,
}

async fn consistency(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyBody>> {
    if q.from > q.to {
        return Err(AppError(CoreError::invalid(
            "sizes_out_of_order",
            format!("from ({}) must not exceed to ({})", q.from, q.to),
        )));
    }
    let from = published(&state, q.from).await?;
    let to = published(&state, q.to).await?;
    let proof = log_store::consistency_proof(&state.db, from.tree_size, to.tree_size).await?;
    Ok(Json(ConsistencyBody {
        from: from.tree_size,
        to: to.tree_size,
        proof: proof.iter().map(hex::encode).collect(),
        from_checkpoint: from.note,
        to_checkpoint: to.note,
    }))
}

/// Proofs are only served between signed tree sizes: a proof to an
/// unsigned size would show nothing a client can hold the log to.
async fn published(state: &AppState, size: u64) -> ApiResult<StoredCheckpoint> {
    log_store::checkpoint_at(&state.db, size)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no checkpoint was published for tree size {size}")))
}
