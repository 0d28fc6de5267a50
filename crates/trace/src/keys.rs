//! The trace log's signing key and origin, as a node loads them at start:
//! from `SHUXIANG_TRACE_SIGNING_KEY` if set, else from
//! `<data_dir>/trace-signing.key`, which the first start creates (mode 0600)
//! with a fresh key. Every node serving one database must sign with the same
//! key, so on PostgreSQL with several nodes give them all the variable or
//! the same file.
//!
//! The private key is a secret: it never appears in errors or debug output.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::checkpoint::{Checkpoint, CheckpointError, NoteError, Signer};
use crate::merkle::empty_root;

/// The environment variable that may hold the `PRIVATE+KEY+…` string.
pub const SIGNING_KEY_ENV: &str = "SHUXIANG_TRACE_SIGNING_KEY";

/// Name of the key file inside the data directory.
pub const SIGNING_KEY_FILE: &str = "trace-signing.key";

/// Why the signing key could not be loaded. Messages name the source, never
/// the key.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{SIGNING_KEY_ENV} does not hold a valid signing key: {0}")]
    Env(#[source] NoteError),
    #[error("{} does not hold a valid signing key: {source}", path.display())]
    File { path: PathBuf, source: NoteError },
    #[error("cannot read or create {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot generate a signing key named after the origin {origin:?}: {source}")]
    Generate { origin: String, source: NoteError },
    #[error("trace_log_origin {origin:?} cannot head a checkpoint: {source}")]
    Origin { origin: String, source: CheckpointError },
}

/// What the checkpoint publisher and the API need: the signer (shared, as
/// it is not `Clone` so the secret is not copied around) and the origin
/// line of the checkpoints.
#[derive(Debug, Clone)]
pub struct TraceLogKeys {
    pub signer: Arc<Signer>,
    pub origin: String,
}

impl TraceLogKeys {
    /// Loads the key from the environment or `data_dir`, creating the key
    /// file (named after `origin`) on first start.
    pub fn load(data_dir: &Path, origin: &str) -> Result<Self, KeyError> {
        // Fail at start rather than at every publishing attempt.
        Checkpoint::new(origin, 0, empty_root()).map_err(|source| KeyError::Origin {
            origin: origin.to_owned(),
            source,
        })?;
        let signer = match std::env::var(SIGNING_KEY_ENV).ok().filter(|k| !k.is_empty()) {
            Some(text) => Signer::from_private_key_str(&text).map_err(KeyError::Env)?,
            None => load_or_create(&data_dir.join(SIGNING_KEY_FILE), origin)?,
        };
        Ok(Self {
            signer: Arc::new(signer),
            origin: origin.to_owned(),
        })
    }
}

fn load_or_create(path: &Path, origin: &str) -> Result<Signer, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return Signer::from_private_key_str(&text).map_err(|source| KeyError::File {
                path: path.to_owned(),
                source,
            });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let signer = Signer::generate(origin).map_err(|source| KeyError::Generate {
        origin: origin.to_owned(),
        source,
    })?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{}\n", signer.to_private_key_str()).as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(signer)
        }
        // Another node sharing the directory created it first: use theirs.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            Signer::from_private_key_str(&text).map_err(|source| KeyError::File {
                path: path.to_owned(),
                source,
            })
        }
        Err(e) => Err(io(e)),
    }
}
