//! Signed checkpoints of the trace log, in the C2SP formats: the
//! tlog-checkpoint body (origin, tree size, root hash), the signed-note
//! envelope around it, and Ed25519 note keys in their text forms
//! (`<name>+<key id>+<key>` verifier keys, `PRIVATE+KEY+…` signer keys).
//!
//! Notes are untrusted input: opening one checks its shape strictly and
//! returns the text only once a signature by the given key has verified.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::merkle::Hash;

/// Signature type byte of Ed25519 note keys (C2SP signed-note).
const ALG_ED25519: u8 = 0x01;
/// Every signature line starts with an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Caps the work an oversized note can cause; the spec requires at least 16.
const MAX_SIGNATURES: usize = 100;

/// Why a checkpoint body is not a valid C2SP tlog-checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckpointError {
    #[error("the checkpoint origin is empty")]
    EmptyOrigin,
    #[error("the checkpoint origin contains a newline or another control character")]
    OriginControlCharacter,
    #[error("the checkpoint body does not end in a newline")]
    BodyNotNewlineTerminated,
    #[error("the checkpoint body lacks its origin, tree size or root hash line")]
    MissingLines,
    #[error("tree size {0:?} is not a decimal number without leading zeros")]
    BadTreeSize(String),
    #[error("the root hash line is not the base64 encoding of 32 bytes")]
    BadRootHash,
    #[error("checkpoint extension lines are not supported")]
    ExtensionLines,
}

/// Why a note could not be signed or opened, or a key string not parsed.
#[derive(Debug, Error)]
pub enum NoteError {
    #[error("the note is not valid UTF-8")]
    NotUtf8,
    #[error("the note contains an ASCII control character at byte {offset}")]
    ControlCharacter { offset: usize },
    #[error("no blank line separates the note text from its signatures")]
    MissingSeparator,
    #[error("the signature block is empty or does not end in a newline")]
    UnterminatedSignatures,
    #[error("signature line {line} is not `\u{2014} <key name> <base64 signature>`")]
    MalformedSignatureLine { line: usize },
    #[error("signature line {line} is not valid base64")]
    SignatureBase64 { line: usize },
    #[error("signature line {line} is too short to hold a key ID and a signature")]
    SignatureTooShort { line: usize },
    #[error("the note has more than {MAX_SIGNATURES} signature lines")]
    TooManySignatures,
    #[error("the note carries no signature by key {name}+{key_id}")]
    NoMatchingSignature { name: String, key_id: String },
    #[error("the signature by key {name}+{key_id} does not verify")]
    InvalidSignature { name: String, key_id: String },
    #[error("note text must not be empty")]
    EmptyText,
    #[error("note text must end in a newline")]
    TextNotNewlineTerminated,
    #[error("invalid key name {0:?}: it must be non-empty, without spaces, control characters or '+'")]
    InvalidKeyName(String),
    #[error("malformed key string: {0}")]
    MalformedKey(&'static str),
    #[error("the key string names key ID {stated}, but the key's ID is {computed}")]
    KeyIdMismatch { stated: String, computed: String },
    #[error("unsupported note signature algorithm {0:#04x}")]
    UnsupportedAlgorithm(u8),
    #[error("the public key is not a valid Ed25519 point")]
    InvalidPublicKey,
    #[error("could not read operating-system randomness for a new key: {0}")]
    Randomness(#[source] rand::rand_core::OsError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A tree head: the log's identity, its size and the root hash at that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
}

impl Checkpoint {
    /// Checks the origin so that the body it formats to always parses back.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        let origin = origin.into();
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if origin.chars().any(char::is_control) {
            return Err(CheckpointError::OriginControlCharacter);
        }
        Ok(Self { origin, size, root })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn to_body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root))
    }

    /// Parses a note text produced by [`to_body`](Self::to_body). Extension
    /// lines are rejected: this log never writes them, and accepting lines
    /// that nothing checks would only let unverified data ride along.
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let content = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::BodyNotNewlineTerminated)?;
        let mut lines = content.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(CheckpointError::MissingLines);
        };
        if lines.next().is_some() {
            return Err(CheckpointError::ExtensionLines);
        }
        let size = parse_tree_size(size)?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|bytes| Hash::try_from(bytes).ok())
            .ok_or(CheckpointError::BadRootHash)?;
        Self::new(origin, size, root)
    }
}

/// ASCII decimal without sign or leading zeros, so each size has exactly one
/// spelling (`u64::from_str` would also take `+5` and `007`).
fn parse_tree_size(text: &str) -> Result<u64, CheckpointError> {
    let bad = || CheckpointError::BadTreeSize(text.to_owned());
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// Key names must be non-empty and contain no Unicode spaces or '+' (the key
/// string separator); control characters cannot appear in a note at all.
fn check_key_name(name: &str) -> Result<(), NoteError> {
    let valid = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+');
    if valid {
        Ok(())
    } else {
        Err(NoteError::InvalidKeyName(name.to_owned()))
    }
}

/// `SHA-256(name || 0x0A || algorithm byte || public key)[:4]`.
fn key_id(name: &str, typed_public_key: &[u8]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n'])
        .chain_update(typed_public_key)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn ed25519_key_id(name: &str, public_key: &VerifyingKey) -> [u8; 4] {
    key_id(name, &typed_key(public_key.as_bytes()))
}

/// `0x01 || key`: the algorithm-tagged form used in key IDs and key strings.
fn typed_key(key: &[u8; 32]) -> [u8; 33] {
    let mut typed = [0; 33];
    typed[0] = ALG_ED25519;
    typed[1..].copy_from_slice(key);
    typed
}

/// Encodes `<name>+<hex key id>+<base64 typed key>`, the fields shared by
/// both key string formats (the private one adds a prefix).
fn key_fields(name: &str, key_id: [u8; 4], key: &[u8; 32]) -> String {
    format!("{name}+{}+{}", hex::encode(key_id), BASE64.encode(typed_key(key)))
}

/// Decodes the `<hex key id>` and `<base64 typed key>` fields shared by both
/// key string formats.
fn decode_key_fields(id_hex: &str, key_b64: &str) -> Result<([u8; 4], Vec<u8>), NoteError> {
    let mut id = [0; 4];
    if id_hex.len() != 8 || hex::decode_to_slice(id_hex, &mut id).is_err() {
        return Err(NoteError::MalformedKey("the key ID is not 8 hex digits"));
    }
    let key = BASE64
        .decode(key_b64)
        .map_err(|_| NoteError::MalformedKey("the key is not valid base64"))?;
    Ok((id, key))
}

/// The 32 key bytes behind an Ed25519 algorithm byte.
fn ed25519_key_bytes(typed: &[u8]) -> Result<[u8; 32], NoteError> {
    match typed.split_first() {
        None => Err(NoteError::MalformedKey("the key is empty")),
        Some((&ALG_ED25519, key)) => key
            .try_into()
            .map_err(|_| NoteError::MalformedKey("an Ed25519 key must be 32 bytes")),
        Some((&alg, _)) => Err(NoteError::UnsupportedAlgorithm(alg)),
    }
}

fn check_key_id(stated: [u8; 4], computed: [u8; 4]) -> Result<(), NoteError> {
    if stated == computed {
        Ok(())
    } else {
        Err(NoteError::KeyIdMismatch {
            stated: hex::encode(stated),
            computed: hex::encode(computed),
        })
    }
}

/// A note signing key: an Ed25519 key under a key name.
pub struct Signer {
    name: String,
    key_id: [u8; 4],
    key: SigningKey,
}

// Hand-written so that debug output can never reveal the private key.
impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0; 32];
        OsRng.try_fill_bytes(&mut seed).map_err(NoteError::Randomness)?;
        Self::from_seed(name, seed)
    }

    /// The key with the given RFC 8032 32-byte private key (seed).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        Ok(Self {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key.verifying_key()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`.
    pub fn from_private_key_str(text: &str) -> Result<Self, NoteError> {
        let mut fields = text.trim_end().splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id_hex), Some(key_b64)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(NoteError::MalformedKey("expected PRIVATE+KEY+<name>+<key id>+<key>"));
        };
        check_key_name(name)?;
        let (stated, typed) = decode_key_fields(id_hex, key_b64)?;
        let signer = Self::from_seed(name, ed25519_key_bytes(&typed)?)?;
        // The stated ID is of the public key, so it can only be checked once
        // that has been derived.
        check_key_id(stated, signer.key_id)?;
        Ok(signer)
    }

    /// The secret key string; whoever holds it can sign checkpoints.
    pub fn to_private_key_str(&self) -> String {
        format!(
            "PRIVATE+KEY+{}",
            key_fields(&self.name, self.key_id, self.key.as_bytes())
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The public verifier key string `<name>+<hex key id>+<base64 key>`.
    pub fn verifier_key_string(&self) -> String {
        self.verifier().verifier_key_string()
    }

    /// Signs `text`, which must be non-empty, end in a newline and contain
    /// no control characters other than newlines; returns the signed note.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() {
            return Err(NoteError::EmptyText);
        }
        if !text.ends_with('\n') {
            return Err(NoteError::TextNotNewlineTerminated);
        }
        if let Some(offset) = control_character(text) {
            return Err(NoteError::ControlCharacter { offset });
        }
        Ok(self.sign_text(text))
    }

    /// Signs the checkpoint's body; returns the signed note.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> String {
        // `Checkpoint::new` rules out everything `sign_note` would reject.
        self.sign_text(&checkpoint.to_body())
    }

    fn sign_text(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&signature.to_bytes());
        format!("{text}\n{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(blob))
    }
}

/// A note verifier key: an Ed25519 public key under a key name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl Verifier {
    /// Parses `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn from_verifier_key_str(text: &str) -> Result<Self, NoteError> {
        // The base64 key may itself contain '+', hence at most three fields.
        let mut fields = text.trim_end().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(NoteError::MalformedKey("expected <name>+<key id>+<key>"));
        };
        check_key_name(name)?;
        let (stated, typed) = decode_key_fields(id_hex, key_b64)?;
        check_key_id(stated, key_id(name, &typed))?;
        let key = VerifyingKey::from_bytes(&ed25519_key_bytes(&typed)?).map_err(|_| NoteError::InvalidPublicKey)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: stated,
            key,
        })
    }

    pub fn verifier_key_string(&self) -> String {
        key_fields(&self.name, self.key_id, self.key.as_bytes())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    fn verify(&self, text: &str, signature: &[u8]) -> Result<(), NoteError> {
        let invalid = || NoteError::InvalidSignature {
            name: self.name.clone(),
            key_id: hex::encode(self.key_id),
        };
        let signature = Signature::from_slice(signature).map_err(|_| invalid())?;
        self.key
            .verify_strict(text.as_bytes(), &signature)
            .map_err(|_| invalid())
    }
}

fn control_character(text: &str) -> Option<usize> {
    text.bytes().position(|b| b < 0x20 && b != b'\n')
}

/// Opens a signed note: checks its format and that it carries a valid
/// signature by `verifier`, and returns the signed text (ending in its
/// newline). Signatures by other keys are skipped, as C2SP requires, so
/// notes cosigned by witnesses open too; a failing signature by `verifier`
/// rejects the whole note.
pub fn open_note<'a, T>(note: &'a T, verifier: &Verifier) -> Result<&'a str, NoteError>
where
    T: AsRef<[u8]> + ?Sized,
{
    let note = std::str::from_utf8(note.as_ref()).map_err(|_| NoteError::NotUtf8)?;
    if let Some(offset) = control_character(note) {
        return Err(NoteError::ControlCharacter { offset });
    }
    // The text may itself contain blank lines; the signatures follow the last.
    let split = note.rfind("\n\n").ok_or(NoteError::MissingSeparator)?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    let signatures = signatures
        .strip_suffix('\n')
        .filter(|block| !block.is_empty())
        .ok_or(NoteError::UnterminatedSignatures)?;

    let mut verified = false;
    for (i, line) in signatures.split('\n').enumerate() {
        let line_no = i + 1;
        if line_no > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let malformed = NoteError::MalformedSignatureLine { line: line_no };
        let Some((name, blob)) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
        else {
            return Err(malformed);
        };
        if check_key_name(name).is_err() || blob.is_empty() {
            return Err(malformed);
        }
        let blob = BASE64
            .decode(blob)
            .map_err(|_| NoteError::SignatureBase64 { line: line_no })?;
        if blob.len() < 5 {
            return Err(NoteError::SignatureTooShort { line: line_no });
        }
        let (id, signature) = blob.split_at(4);
        if name != verifier.name || id != verifier.key_id {
            continue;
        }
        verifier.verify(text, signature)?;
        verified = true;
    }
    if verified {
        Ok(text)
    } else {
        Err(NoteError::NoMatchingSignature {
            name: verifier.name.clone(),
            key_id: hex::encode(verifier.key_id),
        })
    }
}

/// Opens a signed checkpoint note (see [`open_note`]) and parses its body.
pub fn open_checkpoint<T>(note: &T, verifier: &Verifier) -> Result<Checkpoint, NoteError>
where
    T: AsRef<[u8]> + ?Sized,
{
    Ok(Checkpoint::parse_body(open_note(note, verifier)?)?)
}
