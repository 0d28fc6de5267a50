//! Merkle tree tests: the transparency-dev RFC 6962 proof vectors in
//! `data/merkle-vectors`, the RFC 6962 reference tree roots, and property
//! tests of generated proofs against an independent MTH.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use serde::Deserialize;
use shuxiang_trace::merkle::{
    CompactRange, Hash, MemoryTree, NodeId, NodePlan, NodeSource, ProofError, TreeError, consistency_proof, empty_root,
    inclusion_proof, leaf_hash, node_hash, range_nodes, root_at, root_of_leaves, verify_consistency, verify_inclusion,
};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/merkle-vectors/testdata")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn b64(text: &str) -> Vec<u8> {
    BASE64.decode(text).unwrap()
}

fn b64_all(proof: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    proof.iter().flatten().map(|p| b64(p)).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn load<T: for<'de> Deserialize<'de>>(kind: &str) -> Vec<(PathBuf, T)> {
    json_files(&vectors_dir().join(kind))
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let vector = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, vector)
        })
        .collect()
}

#[test]
fn inclusion_vectors() {
    let vectors = load::<InclusionVector>("inclusion");
    assert_eq!(vectors.len(), 98, "the vector set changed; recheck the counts");
    let mut valid = 0;
    for (path, v) in &vectors {
        let result = verify_inclusion(
            &b64(&v.leaf_hash),
            v.leaf_idx,
            v.tree_size,
            &b64_all(&v.proof),
            &b64(&v.root),
        );
        assert_eq!(
            result.is_err(),
            v.want_err,
            "{} ({}): {result:?}",
            path.display(),
            v.desc
        );
        valid += usize::from(!v.want_err);
    }
    assert_eq!(valid, 6);
}

#[test]
fn consistency_vectors() {
    let vectors = load::<ConsistencyVector>("consistency");
    assert_eq!(vectors.len(), 98, "the vector set changed; recheck the counts");
    let mut valid = 0;
    for (path, v) in &vectors {
        let result = verify_consistency(v.size1, v.size2, &b64_all(&v.proof), &b64(&v.root1), &b64(&v.root2));
        assert_eq!(
            result.is_err(),
            v.want_err,
            "{} ({}): {result:?}",
            path.display(),
            v.desc
        );
        valid += usize::from(!v.want_err);
    }
    assert_eq!(valid, 6);
}

/// The leaves of the RFC 6962 / certificate-transparency reference tree.
fn reference_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|data| leaf_hash(&hex::decode(data).unwrap()))
    .collect()
}

/// Published roots of the reference tree at sizes 1..=8.
const REFERENCE_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn tree_of(leaves: &[Hash]) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(tree.append(*leaf), i as u64);
    }
    tree
}

#[test]
fn basic_hashes() {
    assert_eq!(
        hex::encode(empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(root_of_leaves(&[]), empty_root());
    assert_eq!(MemoryTree::new().root(), empty_root());
    // The first reference leaf is the empty string: SHA-256(0x00).
    assert_eq!(hex::encode(leaf_hash(b"")), REFERENCE_ROOTS[0]);
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert_eq!(root_of_leaves(&[a, b]), node_hash(&a, &b));
}

#[test]
fn reference_tree_roots() {
    let leaves = reference_leaves();
    let tree = tree_of(&leaves);
    for (i, want) in REFERENCE_ROOTS.iter().enumerate() {
        let size = i + 1;
        assert_eq!(hex::encode(root_of_leaves(&leaves[..size])), *want, "size {size}");
        assert_eq!(hex::encode(tree.root_at(size as u64).unwrap()), *want, "size {size}");
        assert_eq!(hex::encode(naive_root(&leaves[..size])), *want, "size {size}");
    }
    assert_eq!(hex::encode(tree.root()), REFERENCE_ROOTS[7]);
    assert_eq!(tree.root_at(0).unwrap(), empty_root());
    assert_eq!(tree.root_at(9), Err(TreeError::BeyondTree { requested: 9, size: 8 }));
}

/// `<kind>/<n>/happy-path.json`: the valid proofs made from the reference tree
/// (the other valid vectors are hand-made edge cases).
fn is_reference_happy_path(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == "happy-path.json")
        && path
            .parent()
            .and_then(Path::file_name)
            .and_then(|dir| dir.to_str())
            .is_some_and(|dir| dir.parse::<u32>().is_ok())
}

/// The vectors' valid proofs come from the reference tree, so generation must
/// reproduce them exactly.
#[test]
fn generated_proofs_match_vector_happy_paths() {
    let leaves = reference_leaves();
    let tree = tree_of(&leaves);
    let mut checked = 0;
    for (path, v) in load::<InclusionVector>("inclusion") {
        if !is_reference_happy_path(&path) {
            continue;
        }
        assert_eq!(b64(&v.leaf_hash), leaves[v.leaf_idx as usize], "{}", path.display());
        let proof: Vec<Vec<u8>> = tree
            .inclusion_proof(v.leaf_idx, v.tree_size)
            .unwrap()
            .iter()
            .map(|h| h.to_vec())
            .collect();
        assert_eq!(proof, b64_all(&v.proof), "{}", path.display());
        checked += 1;
    }
    for (path, v) in load::<ConsistencyVector>("consistency") {
        if !is_reference_happy_path(&path) {
            continue;
        }
        let proof: Vec<Vec<u8>> = tree
            .consistency_proof(v.size1, v.size2)
            .unwrap()
            .iter()
            .map(|h| h.to_vec())
            .collect();
        assert_eq!(proof, b64_all(&v.proof), "{}", path.display());
        assert_eq!(b64(&v.root2), tree.root_at(v.size2).unwrap(), "{}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 10);
}

#[test]
fn request_errors() {
    let tree = tree_of(&reference_leaves());
    assert_eq!(
        tree.inclusion_proof(8, 8),
        Err(TreeError::Proof(ProofError::IndexOutOfRange { index: 8, size: 8 }))
    );
    assert_eq!(
        tree.inclusion_proof(0, 9),
        Err(TreeError::BeyondTree { requested: 9, size: 8 })
    );
    assert_eq!(
        tree.consistency_proof(5, 4),
        Err(TreeError::Proof(ProofError::SizesOutOfOrder { size1: 5, size2: 4 }))
    );
    assert_eq!(
        tree.consistency_proof(0, 4),
        Err(TreeError::Proof(ProofError::EmptyOldTree))
    );
    assert_eq!(tree.consistency_proof(4, 4), Ok(vec![]));
    assert_eq!(
        NodePlan::inclusion(0, 2).unwrap().assemble(&[]),
        Err(ProofError::WrongHashCount { got: 0, want: 1 })
    );
    assert_eq!(
        CompactRange::from_parts(3, vec![[0; 32]]),
        Err(ProofError::WrongHashCount { got: 1, want: 2 })
    );
}

#[test]
fn verification_errors_are_precise() {
    let leaves = reference_leaves();
    let tree = tree_of(&leaves);
    let root = tree.root();
    let proof = tree.inclusion_proof(2, 8).unwrap();
    assert_eq!(verify_inclusion(&leaves[2], 2, 8, &proof, &root), Ok(()));
    assert_eq!(
        verify_inclusion(&leaves[2], 8, 8, &proof, &root),
        Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        verify_inclusion(&leaves[2], 2, 8, &proof[..2], &root),
        Err(ProofError::WrongProofLength { got: 2, want: 3 })
    );
    assert_eq!(
        verify_inclusion(&leaves[2][..31], 2, 8, &proof, &root),
        Err(ProofError::LeafHashLength { len: 31 })
    );
    let mut short = proof.iter().map(|h| h.to_vec()).collect::<Vec<_>>();
    short[1].pop();
    assert_eq!(
        verify_inclusion(&leaves[2], 2, 8, &short, &root),
        Err(ProofError::ProofHashLength { position: 1, len: 31 })
    );
    assert_eq!(
        verify_inclusion(&leaves[3], 2, 8, &proof, &root),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_inclusion(&leaves[2], 2, 8, &proof, &root[..16]),
        Err(ProofError::RootHashLength { len: 16 })
    );

    let (root3, root7) = (tree.root_at(3).unwrap(), tree.root_at(7).unwrap());
    let proof = tree.consistency_proof(3, 7).unwrap();
    assert_eq!(verify_consistency(3, 7, &proof, &root3, &root7), Ok(()));
    assert_eq!(
        verify_consistency(3, 7, &proof, &root7, &root7),
        Err(ProofError::OldRootMismatch)
    );
    assert_eq!(
        verify_consistency(3, 7, &proof, &root3, &root3),
        Err(ProofError::NewRootMismatch)
    );
    assert_eq!(
        verify_consistency(3, 7, &proof[1..], &root3, &root7),
        Err(ProofError::WrongProofLength {
            got: proof.len() - 1,
            want: proof.len()
        })
    );
    assert_eq!(
        verify_consistency(7, 3, &proof, &root3, &root7),
        Err(ProofError::SizesOutOfOrder { size1: 7, size2: 3 })
    );
    assert_eq!(
        verify_consistency(0, 3, &[] as &[Hash], &empty_root(), &root3),
        Err(ProofError::EmptyOldTree)
    );
    assert_eq!(
        verify_consistency(3, 3, &proof, &root3, &root3),
        Err(ProofError::WrongProofLength {
            got: proof.len(),
            want: 0
        })
    );
    assert_eq!(
        verify_consistency(3, 3, &[] as &[Hash], &root3, &root7),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn compact_range_reports_completed_subtrees_and_restores() {
    let leaves: Vec<Hash> = (0..37u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut range = CompactRange::new();
    let mut completed = Vec::new();
    for leaf in &leaves {
        range.append_with(*leaf, |id, hash| completed.push((id, *hash)));
    }
    // One report per perfect subtree: 37 leaves + 18 + 9 + 4 + 2 + 1.
    assert_eq!(completed.len(), 37 + 18 + 9 + 4 + 2 + 1);
    for (id, hash) in &completed {
        let begin = (id.index << id.level) as usize;
        let end = begin + (1 << id.level);
        assert_eq!(*hash, naive_root(&leaves[begin..end]), "{id:?}");
    }
    assert_eq!(range.size(), 37);
    assert_eq!(range.root(), naive_root(&leaves));
    assert_eq!(
        range_nodes(0, 37),
        vec![
            NodeId { level: 5, index: 0 },
            NodeId { level: 2, index: 8 },
            NodeId { level: 0, index: 36 },
        ]
    );
    let mut restored = CompactRange::from_parts(37, range.hashes().to_vec()).unwrap();
    assert_eq!(restored, range);
    let extra = leaf_hash(b"extra");
    restored.append(extra);
    let mut all = leaves.clone();
    all.push(extra);
    assert_eq!(restored.root(), naive_root(&all));
}

/// Every leaf identical: the hash of a perfect subtree then depends only on
/// its level, so a consistent tree of any size can be served without
/// materialising it, and reads can be counted.
struct UniformTree {
    level_hashes: Vec<Hash>,
    reads: std::cell::Cell<usize>,
}

impl UniformTree {
    fn new() -> Self {
        let mut level_hashes = vec![leaf_hash(b"same")];
        for level in 1..64 {
            let below = level_hashes[level - 1];
            level_hashes.push(node_hash(&below, &below));
        }
        Self {
            level_hashes,
            reads: std::cell::Cell::new(0),
        }
    }
}

impl NodeSource for UniformTree {
    type Error = ProofError;

    fn node(&self, id: NodeId) -> Result<Hash, ProofError> {
        self.reads.set(self.reads.get() + 1);
        Ok(self.level_hashes[usize::from(id.level)])
    }
}

#[test]
fn proofs_of_huge_trees_read_logarithmically_many_nodes() {
    let tree = UniformTree::new();
    for size in [10_000_000u64, (1 << 40) + 12_345, u64::MAX / 3] {
        let root = root_at(&tree, size).unwrap();
        for index in [0, size / 3, size - 1] {
            tree.reads.set(0);
            let proof = inclusion_proof(&tree, index, size).unwrap();
            assert!(tree.reads.get() <= 2 * 64, "{} reads", tree.reads.get());
            verify_inclusion(&tree.level_hashes[0], index, size, &proof, &root).unwrap();
        }
        for size1 in [1, size / 2 + 1, size - 1] {
            tree.reads.set(0);
            let proof = consistency_proof(&tree, size1, size).unwrap();
            assert!(tree.reads.get() <= 2 * 64, "{} reads", tree.reads.get());
            let root1 = root_at(&tree, size1).unwrap();
            verify_consistency(size1, size, &proof, &root1, &root).unwrap();
        }
    }
}

/// MTH straight from RFC 6962 §2.1, as an independent reference.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

const MAX_LEAVES: usize = 300;

fn shared() -> &'static (Vec<Hash>, MemoryTree) {
    static SHARED: OnceLock<(Vec<Hash>, MemoryTree)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let leaves: Vec<Hash> = (0..MAX_LEAVES as u32)
            .map(|i| leaf_hash(format!("event {i}").as_bytes()))
            .collect();
        let tree = tree_of(&leaves);
        (leaves, tree)
    })
}

fn size_and_index() -> impl Strategy<Value = (u64, u64)> {
    (1..=MAX_LEAVES as u64).prop_flat_map(|size| (Just(size), 0..size))
}

fn two_sizes() -> impl Strategy<Value = (u64, u64)> {
    (1..=MAX_LEAVES as u64).prop_flat_map(|size2| (1..=size2, Just(size2)))
}

fn flip(proof: &[Hash], element: usize, bit: usize) -> Vec<Hash> {
    let mut proof = proof.to_vec();
    let element = element % proof.len();
    proof[element][bit / 8 % 32] ^= 1 << (bit % 8);
    proof
}

proptest! {
    #[test]
    fn compact_root_matches_naive_mth(size in 0..=MAX_LEAVES) {
        let (leaves, tree) = shared();
        let want = naive_root(&leaves[..size]);
        prop_assert_eq!(root_of_leaves(&leaves[..size]), want);
        prop_assert_eq!(tree.root_at(size as u64).unwrap(), want);
    }

    #[test]
    fn inclusion_proofs_verify(
        (size, index) in size_and_index(),
        element in any::<usize>(),
        bit in 0..256usize,
        other in any::<u64>(),
    ) {
        let (leaves, tree) = shared();
        let root = naive_root(&leaves[..size as usize]);
        let leaf = leaves[index as usize];
        let proof = tree.inclusion_proof(index, size).unwrap();
        prop_assert!(proof.len() <= 9);
        prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

        let wrong_index = other % size;
        if wrong_index != index {
            prop_assert!(verify_inclusion(&leaf, wrong_index, size, &proof, &root).is_err());
        }
        if !proof.is_empty() {
            let flipped = flip(&proof, element, bit);
            prop_assert_eq!(
                verify_inclusion(&leaf, index, size, &flipped, &root),
                Err(ProofError::RootMismatch)
            );
        }
    }

    #[test]
    fn consistency_proofs_verify(
        (size1, size2) in two_sizes(),
        element in any::<usize>(),
        bit in 0..256usize,
    ) {
        let (leaves, tree) = shared();
        let root1 = naive_root(&leaves[..size1 as usize]);
        let root2 = naive_root(&leaves[..size2 as usize]);
        let proof = tree.consistency_proof(size1, size2).unwrap();
        prop_assert_eq!(verify_consistency(size1, size2, &proof, &root1, &root2), Ok(()));

        if size1 > 1 {
            prop_assert!(verify_consistency(size1 - 1, size2, &proof, &root1, &root2).is_err());
        }
        if size1 < size2 {
            prop_assert!(verify_consistency(size1 + 1, size2, &proof, &root1, &root2).is_err());
            prop_assert!(verify_consistency(size1, size2, &proof, &root2, &root2).is_err());
        }
        if !proof.is_empty() {
            let flipped = flip(&proof, element, bit);
            prop_assert!(verify_consistency(size1, size2, &flipped, &root1, &root2).is_err());
        }
    }

    #[test]
    fn verification_never_panics(
        index in any::<u64>(),
        size in any::<u64>(),
        size1 in any::<u64>(),
        proof in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..70),
        leaf in prop::collection::vec(any::<u8>(), 0..40),
        root in prop::collection::vec(any::<u8>(), 0..40),
        hashes in prop::collection::vec(any::<[u8; 32]>(), 0..70),
    ) {
        let _ = verify_inclusion(&leaf, index, size, &proof, &root);
        let _ = verify_consistency(size1, size, &proof, &leaf, &root);
        let _ = verify_inclusion(&leaf, index % size.max(1), size, &proof, &root);
        let _ = verify_consistency(size1 % size.max(1), size, &proof, &leaf, &root);
        let _ = verify_inclusion(&leaf, index, size, &hashes, &root);
        let _ = verify_consistency(size1, size, &hashes, &leaf, &root);
    }
}
