//! Signed checkpoint tests: round trips, tampering, malformed notes, key
//! strings, and interoperability vectors from the Go `sumdb/note` package and
//! the live sum.golang.org log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use shuxiang_trace::checkpoint::{
    Checkpoint, CheckpointError, NoteError, Signer, Verifier, open_checkpoint, open_note,
};
use shuxiang_trace::merkle::{Hash, leaf_hash};

const ORIGIN: &str = "shuxiang.example/trace";

fn checkpoint() -> Checkpoint {
    Checkpoint::new(ORIGIN, 20_852_163, leaf_hash(b"root")).unwrap()
}

fn signer(seed: u8) -> Signer {
    Signer::from_seed(ORIGIN, [seed; 32]).unwrap()
}

#[test]
fn sign_and_open_round_trip() {
    let signer = Signer::generate(ORIGIN).unwrap();
    let note = signer.sign_checkpoint(&checkpoint());
    let body = checkpoint().to_body();
    assert!(note.starts_with(&format!("{body}\n\u{2014} {ORIGIN} ")));
    assert!(note.ends_with('\n'));
    assert_eq!(open_checkpoint(&note, &signer.verifier()).unwrap(), checkpoint());
    assert_eq!(open_note(note.as_bytes(), &signer.verifier()).unwrap(), body);
}

#[test]
fn body_format() {
    let root: Hash = BASE64
        .decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
        .unwrap()
        .try_into()
        .unwrap();
    let checkpoint = Checkpoint::new("example.com/behind-the-sofa", 20_852_163, root).unwrap();
    // The body of the example checkpoint in C2SP tlog-checkpoint.
    let body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert_eq!(checkpoint.to_body(), body);
    assert_eq!(Checkpoint::parse_body(body).unwrap(), checkpoint);
    assert_eq!(checkpoint.origin(), "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size(), 20_852_163);
    assert_eq!(checkpoint.root(), &root);
    let empty = Checkpoint::new(ORIGIN, 0, leaf_hash(b"")).unwrap();
    assert_eq!(Checkpoint::parse_body(&empty.to_body()).unwrap(), empty);
}

#[test]
fn malformed_bodies() {
    let root = BASE64.encode([7u8; 32]);
    let parse = |body: String| Checkpoint::parse_body(&body);
    assert_eq!(
        parse(format!("o\n5\n{root}")),
        Err(CheckpointError::BodyNotNewlineTerminated)
    );
    assert_eq!(parse("o\n5\n".into()), Err(CheckpointError::MissingLines));
    assert_eq!(
        parse(format!("o\n5\n{root}\next\n")),
        Err(CheckpointError::ExtensionLines)
    );
    assert_eq!(parse(format!("\n5\n{root}\n")), Err(CheckpointError::EmptyOrigin));
    for size in ["05", "+5", "-5", "", "5 ", "0x5", "18446744073709551616"] {
        assert_eq!(
            parse(format!("o\n{size}\n{root}\n")),
            Err(CheckpointError::BadTreeSize(size.into())),
            "{size:?}"
        );
    }
    let short = BASE64.encode([7u8; 31]);
    for root in [short.as_str(), "not base64!", "", &root[..43]] {
        assert_eq!(
            parse(format!("o\n5\n{root}\n")),
            Err(CheckpointError::BadRootHash),
            "{root:?}"
        );
    }
    assert_eq!(Checkpoint::new("", 1, [0; 32]), Err(CheckpointError::EmptyOrigin));
    assert_eq!(
        Checkpoint::new("a\nb", 1, [0; 32]),
        Err(CheckpointError::OriginControlCharacter)
    );
}

/// Replaces one line of the body and keeps the original signature.
fn tamper(note: &str, line: usize, replacement: &str) -> String {
    let mut lines: Vec<&str> = note.split('\n').collect();
    lines[line] = replacement;
    lines.join("\n")
}

#[test]
fn tampered_checkpoints_fail() {
    let signer = signer(1);
    let verifier = signer.verifier();
    let note = signer.sign_checkpoint(&checkpoint());
    let other_root = BASE64.encode(leaf_hash(b"other root"));
    for tampered in [
        tamper(&note, 0, "shuxiang.example/other"),
        tamper(&note, 1, "20852164"),
        tamper(&note, 2, &other_root),
    ] {
        assert!(
            matches!(
                open_checkpoint(&tampered, &verifier),
                Err(NoteError::InvalidSignature { .. })
            ),
            "{tampered}"
        );
    }
}

#[test]
fn signatures_by_other_keys() {
    let (ours, theirs) = (signer(1), signer(2));
    let body = checkpoint().to_body();
    let their_note = theirs.sign_checkpoint(&checkpoint());
    // Same name, different key ID: an unknown key, ignored.
    assert!(matches!(
        open_checkpoint(&their_note, &ours.verifier()),
        Err(NoteError::NoMatchingSignature { .. })
    ));
    // Their signature presented under our key ID must be checked and fail.
    let their_blob = BASE64
        .decode(their_note.rsplit(' ').next().unwrap().trim_end())
        .unwrap();
    let mut forged = ours.key_id().to_vec();
    forged.extend_from_slice(&their_blob[4..]);
    let forged_note = format!("{body}\n\u{2014} {ORIGIN} {}\n", BASE64.encode(forged));
    assert!(matches!(
        open_checkpoint(&forged_note, &ours.verifier()),
        Err(NoteError::InvalidSignature { .. })
    ));
    // Witness cosignatures before and after ours are skipped.
    let our_line = ours.sign_checkpoint(&checkpoint())[body.len() + 1..].to_owned();
    let witness = Signer::from_seed("witness.example", [3; 32]).unwrap();
    let witness_line = witness.sign_note(&body).unwrap()[body.len() + 1..].to_owned();
    let cosigned = format!("{body}\n{witness_line}{our_line}{witness_line}");
    assert_eq!(open_checkpoint(&cosigned, &ours.verifier()).unwrap(), checkpoint());
    assert_eq!(open_checkpoint(&cosigned, &witness.verifier()).unwrap(), checkpoint());
}

#[test]
fn malformed_notes() {
    let signer = signer(1);
    let verifier = signer.verifier();
    let note = signer.sign_checkpoint(&checkpoint());
    let (body, signature_line) = note.rsplit_once("\n\n").unwrap();
    let open = |text: &str| open_checkpoint(text, &verifier);

    assert!(matches!(
        open(&format!("{body}\n{signature_line}")),
        Err(NoteError::MissingSeparator)
    ));
    assert!(matches!(open(note.trim_end()), Err(NoteError::UnterminatedSignatures)));
    assert!(matches!(
        open(&format!("{body}\n\n")),
        Err(NoteError::MissingSeparator | NoteError::UnterminatedSignatures)
    ));
    assert!(matches!(
        open(&note.replace('\u{2014}', "-")),
        Err(NoteError::MalformedSignatureLine { line: 1 })
    ));
    assert!(matches!(
        open(&format!("{body}\n\n\u{2014} {ORIGIN}\n")),
        Err(NoteError::MalformedSignatureLine { line: 1 })
    ));
    assert!(matches!(
        open(&format!("{body}\n\n\u{2014} {ORIGIN} !!!!\n")),
        Err(NoteError::SignatureBase64 { line: 1 })
    ));
    assert!(matches!(
        open(&format!("{body}\n\n{signature_line}\u{2014} {ORIGIN} AAAAAA==\n")),
        Err(NoteError::SignatureTooShort { line: 2 })
    ));
    assert!(matches!(
        open(&note.replace("\n\n", "\r\n\n")),
        Err(NoteError::ControlCharacter { .. })
    ));
    let mut not_utf8 = note.clone().into_bytes();
    not_utf8[2] = 0xff;
    assert!(matches!(open_checkpoint(&not_utf8, &verifier), Err(NoteError::NotUtf8)));
    let many = signature_line.repeat(101);
    assert!(matches!(
        open(&format!("{body}\n\n{many}")),
        Err(NoteError::TooManySignatures)
    ));
    // A validly signed text that is not a checkpoint.
    let extended = signer.sign_note(&format!("{body}\nextension\n")).unwrap();
    assert!(matches!(
        open(&extended),
        Err(NoteError::Checkpoint(CheckpointError::ExtensionLines))
    ));

    assert!(matches!(signer.sign_note(""), Err(NoteError::EmptyText)));
    assert!(matches!(
        signer.sign_note("no newline"),
        Err(NoteError::TextNotNewlineTerminated)
    ));
    assert!(matches!(
        signer.sign_note("tab\there\n"),
        Err(NoteError::ControlCharacter { offset: 3 })
    ));
}

#[test]
fn key_strings_round_trip() {
    let signer = Signer::generate(ORIGIN).unwrap();
    let vkey = signer.verifier_key_string();
    let verifier = Verifier::from_verifier_key_str(&vkey).unwrap();
    assert_eq!(verifier, signer.verifier());
    assert_eq!(verifier.verifier_key_string(), vkey);
    assert_eq!(verifier.name(), ORIGIN);
    assert!(vkey.starts_with(&format!("{ORIGIN}+{}+", hex::encode(signer.key_id()))));

    let skey = signer.to_private_key_str();
    assert!(skey.starts_with(&format!("PRIVATE+KEY+{ORIGIN}+")));
    let restored = Signer::from_private_key_str(&skey).unwrap();
    assert_eq!(restored.verifier(), verifier);
    assert_eq!(restored.to_private_key_str(), skey);
    // Ed25519 signatures are deterministic, so the notes are identical.
    assert_eq!(
        restored.sign_checkpoint(&checkpoint()),
        signer.sign_checkpoint(&checkpoint())
    );
    assert!(!format!("{signer:?}").contains(&skey[skey.len() - 20..]));

    assert!(matches!(
        Signer::generate("has space"),
        Err(NoteError::InvalidKeyName(_))
    ));
    assert!(matches!(Signer::generate("a+b"), Err(NoteError::InvalidKeyName(_))));
    assert!(matches!(Signer::generate(""), Err(NoteError::InvalidKeyName(_))));
}

#[test]
fn key_id_known_answer() {
    // RFC 8032 §7.1 test 1: seed and its public key.
    let seed: [u8; 32] = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        .unwrap()
        .try_into()
        .unwrap();
    let public_key = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
    let signer = Signer::from_seed(ORIGIN, seed).unwrap();
    assert_eq!(signer.verifier().public_key().to_vec(), public_key);

    let mut preimage = ORIGIN.as_bytes().to_vec();
    preimage.push(b'\n');
    preimage.push(0x01);
    preimage.extend_from_slice(&public_key);
    let digest = Sha256::digest(&preimage);
    assert_eq!(signer.key_id(), digest[..4]);

    let mut typed = vec![0x01];
    typed.extend_from_slice(&public_key);
    assert_eq!(
        signer.verifier_key_string(),
        format!("{ORIGIN}+{}+{}", hex::encode(&digest[..4]), BASE64.encode(&typed))
    );
}

// golang.org/x/mod/sumdb/note's documented example key and note.
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n";
const PETER_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n\
                          \n\
                          \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn go_sumdb_note_vector() {
    let verifier = Verifier::from_verifier_key_str(PETER_VKEY).unwrap();
    assert_eq!(verifier.name(), "PeterNeumann");
    assert_eq!(hex::encode(verifier.key_id()), "c74f20a3");
    assert_eq!(verifier.verifier_key_string(), PETER_VKEY);
    assert_eq!(open_note(PETER_NOTE, &verifier).unwrap(), PETER_TEXT);
    // The text is not a checkpoint.
    assert!(matches!(
        open_checkpoint(PETER_NOTE, &verifier),
        Err(NoteError::Checkpoint(_))
    ));

    let signer = Signer::from_private_key_str(PETER_SKEY).unwrap();
    assert_eq!(signer.to_private_key_str(), PETER_SKEY);
    assert_eq!(signer.verifier(), verifier);
    assert_eq!(signer.sign_note(PETER_TEXT).unwrap(), PETER_NOTE);

    let tampered = PETER_NOTE.replacen("problem", "Problem", 1);
    assert!(matches!(
        open_note(&tampered, &verifier),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn go_sumdb_bad_keys() {
    // From the Go package's tests: wrong key length and unknown algorithm,
    // each with a key ID recomputed to match.
    assert!(matches!(
        Verifier::from_verifier_key_str("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="),
        Err(NoteError::MalformedKey(_))
    ));
    assert!(matches!(
        Verifier::from_verifier_key_str("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::UnsupportedAlgorithm(0x65))
    ));
    assert!(matches!(
        Verifier::from_verifier_key_str("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    assert!(matches!(
        Signer::from_private_key_str("PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    assert!(matches!(
        Signer::from_private_key_str(PETER_VKEY),
        Err(NoteError::MalformedKey(_))
    ));
}

/// As in the Go package's tests: no proper substring of a key string and no
/// single incremented byte may parse.
#[test]
fn mangled_key_strings_are_rejected() {
    fn check(key: &str, parses: impl Fn(&str) -> bool) {
        assert!(parses(key));
        let bytes = key.as_bytes();
        for start in 0..bytes.len() {
            for end in start + 1..=bytes.len() {
                if (start, end) != (0, bytes.len()) {
                    assert!(!parses(&key[start..end]), "{:?}", &key[start..end]);
                }
            }
        }
        for i in 0..bytes.len() {
            let mut mangled = bytes.to_vec();
            mangled[i] += 1;
            let mangled = String::from_utf8(mangled).unwrap();
            assert!(!parses(&mangled), "{mangled:?}");
        }
    }
    check(PETER_VKEY, |k| Verifier::from_verifier_key_str(k).is_ok());
    check(PETER_SKEY, |k| Signer::from_private_key_str(k).is_ok());
}

/// Checkpoints served by the Go checksum database (sum.golang.org), opened
/// with the verifier key built into the `go` command.
#[test]
fn sum_golang_org_checkpoints() {
    let verifier =
        Verifier::from_verifier_key_str("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8")
            .unwrap();
    let notes = [
        (
            15_368_405,
            "/g9am3I6YWNKaZX/jkne1fqd9zEyjss+JXyPXG0WfkY=",
            "Az3grqJGUaSGukG9p8nI2vKgiFn7qGHxn0W+mrwyI6Gz3F0t1J3LzmWk/p96Ybf295EjwdSwlzgijq5WA9d1Ded7owM=",
        ),
        (
            63_096_908,
            "8lHrQPRYe4KT4WQ9/Qk8/taKnD6IRHbFgfN7vQE2Y54=",
            "Az3gri/oVBN1jAhNZ/iS+W31psFAWRT20/GyrhpU6taFwulQGetBkH5S7wpGXdS935jiIGiUUAXBVHzT/P6fYhqAmAk=",
        ),
    ];
    for (size, root, signature) in notes {
        let note = format!("go.sum database tree\n{size}\n{root}\n\n\u{2014} sum.golang.org {signature}\n");
        let checkpoint = open_checkpoint(&note, &verifier).unwrap();
        assert_eq!(checkpoint.origin(), "go.sum database tree");
        assert_eq!(checkpoint.size(), size);
        assert_eq!(BASE64.encode(checkpoint.root()), root);
        let wrong_size = note.replace(&size.to_string(), &(size + 1).to_string());
        assert!(matches!(
            open_checkpoint(&wrong_size, &verifier),
            Err(NoteError::InvalidSignature { .. })
        ));
    }
}
