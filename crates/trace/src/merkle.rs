//! RFC 6962 / RFC 9162 Merkle tree of the trace log: leaf and node hashing,
//! tree roots, the compact right-edge form used while appending, inclusion and
//! consistency proof generation from stored subtree hashes, and verification
//! of both proof kinds.
//!
//! Nodes are addressed by [`NodeId`]: `(level, index)` is the perfect subtree
//! of `2^level` leaves covering leaves `[index·2^level, (index+1)·2^level)`,
//! level 0 being the leaves themselves. Perfect subtrees never change once
//! complete, so they are the only hashes a log store has to keep; the
//! remaining ("ephemeral") nodes of a tree whose size is not a power of two
//! are recomputed from them, and every root or proof needs O(log n) of them.

use std::ops::Range;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Length in bytes of a [`Hash`](type@Hash).
pub const HASH_LEN: usize = 32;

/// Why a proof could not be generated, or failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old tree size {size1} is larger than new tree size {size2}")]
    SizesOutOfOrder { size1: u64, size2: u64 },
    #[error("the old tree size is 0: every tree extends the empty tree, so there is nothing to prove")]
    EmptyOldTree,
    #[error("the proof has {got} hashes, expected {want}")]
    WrongProofLength { got: usize, want: usize },
    #[error("the leaf hash is {len} bytes, expected {HASH_LEN}")]
    LeafHashLength { len: usize },
    #[error("proof hash #{position} is {len} bytes, expected {HASH_LEN}")]
    ProofHashLength { position: usize, len: usize },
    #[error("a root hash is {len} bytes, expected {HASH_LEN}")]
    RootHashLength { len: usize },
    #[error("the proof leads to a different root hash")]
    RootMismatch,
    #[error("the consistency proof does not lead to the old root hash")]
    OldRootMismatch,
    #[error("the consistency proof does not lead to the new root hash")]
    NewRootMismatch,
    #[error("{got} node hashes were supplied, expected {want}")]
    WrongHashCount { got: usize, want: usize },
}

/// `SHA-256(0x00 || data)`: the hash of a log entry.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The Merkle tree hash (RFC 6962 §2.1) of a list of leaf hashes, in O(n)
/// time and O(log n) memory.
pub fn root_of_leaves(leaf_hashes: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaf_hashes {
        range.append(*leaf);
    }
    range.root()
}

/// The perfect subtree of `2^level` leaves starting at leaf `index·2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

/// The perfect subtrees that exactly cover leaves `[begin, end)`, left to
/// right, each as large as its alignment allows. For `begin = 0` these are the
/// subtrees whose hashes a [`CompactRange`] of size `end` holds.
pub fn range_nodes(begin: u64, end: u64) -> Vec<NodeId> {
    let mut ids = Vec::new();
    let mut at = begin;
    while at < end {
        let fits = u64::BITS - 1 - (end - at).leading_zeros();
        let level = at.trailing_zeros().min(fits);
        ids.push(NodeId {
            level: level as u8,
            index: at >> level,
        });
        at += 1 << level;
    }
    ids
}

/// Hash of a range of leaves from the hashes of its [`range_nodes`]. Valid for
/// the ranges this module builds: their subtrees shrink from left to right,
/// so RFC 6962's split at the largest power of two puts the first subtree on
/// the left and the rest on the right at every step.
fn fold_range(hashes: &[Hash]) -> Hash {
    match hashes.split_last() {
        None => empty_root(),
        Some((last, rest)) => rest.iter().rev().fold(*last, |right, left| node_hash(left, &right)),
    }
}

/// The largest power of two smaller than `n` (RFC 6962's `k`), for `n >= 2`.
fn split_point(n: u64) -> u64 {
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// A tree of `size` leaves reduced to the roots of its maximal perfect
/// subtrees along the right edge: one hash per set bit of `size`, largest
/// subtree first. Appending costs amortised O(1) hashes and the root
/// O(log n), which is all a growing log needs to keep in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a range from stored hashes, e.g. when a log store reopens:
    /// `hashes` are those of `range_nodes(0, size)`, in that order.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        let want = size.count_ones() as usize;
        if hashes.len() != want {
            return Err(ProofError::WrongHashCount {
                got: hashes.len(),
                want,
            });
        }
        Ok(Self { size, hashes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right-edge subtree hashes, largest subtree first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash.
    pub fn append(&mut self, leaf_hash: Hash) {
        self.append_with(leaf_hash, |_, _| {});
    }

    /// Appends one leaf hash, reporting to `completed` every perfect subtree
    /// this completes, bottom-up starting with the leaf itself, so that a
    /// store can persist exactly the hashes later proofs are built from.
    pub fn append_with(&mut self, leaf_hash: Hash, mut completed: impl FnMut(NodeId, &Hash)) {
        let mut id = NodeId {
            level: 0,
            index: self.size,
        };
        let mut hash = leaf_hash;
        completed(id, &hash);
        // Each trailing one bit of the old size is a same-sized left
        // neighbour that the new subtree now pairs up with.
        while id.index & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("a compact range keeps one hash per set bit of its size");
            hash = node_hash(&left, &hash);
            id = NodeId {
                level: id.level + 1,
                index: id.index >> 1,
            };
            completed(id, &hash);
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    /// The tree's root hash ([`empty_root`] for the empty tree).
    pub fn root(&self) -> Hash {
        fold_range(&self.hashes)
    }
}

/// Where proofs get their hashes from: the stored hash of a complete perfect
/// subtree. Implementations are asked only for subtrees that lie entirely
/// within the tree size a proof or root is requested for.
pub trait NodeSource {
    type Error;

    fn node(&self, id: NodeId) -> Result<Hash, Self::Error>;
}

/// The stored subtree hashes a proof is made of, and how to combine them.
///
/// Proof generation is split into planning and assembling so that a store
/// which cannot answer [`NodeSource`] calls synchronously (a database behind
/// an async driver) can fetch [`node_ids`](Self::node_ids) in one batch and
/// then call [`assemble`](Self::assemble).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    ids: Vec<NodeId>,
    /// For each proof element, bottom-up, the slice of `ids` it folds.
    parts: Vec<Range<usize>>,
}

impl NodePlan {
    /// Plan of the RFC 6962 audit path for leaf `index` in a tree of `size`.
    pub fn inclusion(index: u64, size: u64) -> Result<Self, ProofError> {
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        // RFC 6962 §2.1.1 PATH, walked from the root down; each step records
        // the sibling range of the half holding the leaf.
        let mut ranges = Vec::new();
        let (mut lo, mut hi) = (0, size);
        while hi - lo > 1 {
            let mid = lo + split_point(hi - lo);
            if index < mid {
                ranges.push((mid, hi));
                hi = mid;
            } else {
                ranges.push((lo, mid));
                lo = mid;
            }
        }
        Ok(Self::from_top_down(ranges))
    }

    /// Plan of the RFC 6962 consistency proof from tree size `size1` to
    /// `size2`. Empty when the sizes are equal.
    pub fn consistency(size1: u64, size2: u64) -> Result<Self, ProofError> {
        if size1 > size2 {
            return Err(ProofError::SizesOutOfOrder { size1, size2 });
        }
        if size1 == 0 {
            return Err(ProofError::EmptyOldTree);
        }
        // RFC 6962 §2.1.2 SUBPROOF, walked from the root down. `old_is_whole`
        // is its flag b: while the old tree is exactly the left part of the
        // current subtree, the verifier already knows that part's hash.
        let mut ranges = Vec::new();
        let (mut lo, mut hi, mut old_is_whole) = (0, size2, true);
        while size1 < hi {
            let mid = lo + split_point(hi - lo);
            if size1 <= mid {
                ranges.push((mid, hi));
                hi = mid;
            } else {
                ranges.push((lo, mid));
                lo = mid;
                old_is_whole = false;
            }
        }
        if !old_is_whole {
            ranges.push((lo, hi));
        }
        Ok(Self::from_top_down(ranges))
    }

    fn from_top_down(ranges: Vec<(u64, u64)>) -> Self {
        let mut ids = Vec::new();
        let mut parts = Vec::with_capacity(ranges.len());
        for (begin, end) in ranges.into_iter().rev() {
            let start = ids.len();
            ids.extend(range_nodes(begin, end));
            parts.push(start..ids.len());
        }
        Self { ids, parts }
    }

    /// The subtrees whose hashes [`assemble`](Self::assemble) needs, in order.
    pub fn node_ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The proof, given the hashes of [`node_ids`](Self::node_ids) in order.
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, ProofError> {
        if hashes.len() != self.ids.len() {
            return Err(ProofError::WrongHashCount {
                got: hashes.len(),
                want: self.ids.len(),
            });
        }
        Ok(self
            .parts
            .iter()
            .map(|part| fold_range(&hashes[part.clone()]))
            .collect())
    }

    fn fetch<S>(&self, source: &S) -> Result<Vec<Hash>, S::Error>
    where
        S: NodeSource + ?Sized,
        S::Error: From<ProofError>,
    {
        let hashes = fetch_nodes(source, &self.ids)?;
        Ok(self.assemble(&hashes)?)
    }
}

fn fetch_nodes<S: NodeSource + ?Sized>(source: &S, ids: &[NodeId]) -> Result<Vec<Hash>, S::Error> {
    ids.iter().map(|id| source.node(*id)).collect()
}

/// Root hash of the tree's first `size` leaves.
pub fn root_at<S>(source: &S, size: u64) -> Result<Hash, S::Error>
where
    S: NodeSource + ?Sized,
    S::Error: From<ProofError>,
{
    let hashes = fetch_nodes(source, &range_nodes(0, size))?;
    Ok(CompactRange::from_parts(size, hashes)?.root())
}

/// Inclusion proof (audit path) of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<S>(source: &S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error>
where
    S: NodeSource + ?Sized,
    S::Error: From<ProofError>,
{
    NodePlan::inclusion(index, size)?.fetch(source)
}

/// Consistency proof between the trees of `size1` and `size2` leaves.
pub fn consistency_proof<S>(source: &S, size1: u64, size2: u64) -> Result<Vec<Hash>, S::Error>
where
    S: NodeSource + ?Sized,
    S::Error: From<ProofError>,
{
    NodePlan::consistency(size1, size2)?.fetch(source)
}

/// Why a [`MemoryTree`] could not answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TreeError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("tree size {requested} exceeds the {size} leaves appended so far")]
    BeyondTree { requested: u64, size: u64 },
    #[error("no hash stored for the subtree at level {}, index {}", .0.level, .0.index)]
    MissingNode(NodeId),
}

/// An in-memory log keeping every perfect subtree hash (about two per leaf),
/// laid out the way a persistent store would keep them.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of `NodeId { level: l, index: i }`.
    levels: Vec<Vec<Hash>>,
    frontier: CompactRange,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash and returns its leaf index.
    pub fn append(&mut self, leaf_hash: Hash) -> u64 {
        let index = self.frontier.size();
        let levels = &mut self.levels;
        self.frontier.append_with(leaf_hash, |id, hash| {
            let level = usize::from(id.level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            // Subtrees of one level complete in index order, so a push lands
            // at position `id.index`.
            levels[level].push(*hash);
        });
        index
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Root hash at the current size.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Root hash at an earlier (or the current) size.
    pub fn root_at(&self, size: u64) -> Result<Hash, TreeError> {
        self.check_size(size)?;
        root_at(self, size)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_size(size)?;
        inclusion_proof(self, index, size)
    }

    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_size(size2)?;
        consistency_proof(self, size1, size2)
    }

    fn check_size(&self, requested: u64) -> Result<(), TreeError> {
        if requested > self.size() {
            return Err(TreeError::BeyondTree {
                requested,
                size: self.size(),
            });
        }
        Ok(())
    }
}

impl NodeSource for MemoryTree {
    type Error = TreeError;

    fn node(&self, id: NodeId) -> Result<Hash, TreeError> {
        usize::try_from(id.index)
            .ok()
            .and_then(|index| self.levels.get(usize::from(id.level))?.get(index))
            .copied()
            .ok_or(TreeError::MissingNode(id))
    }
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2): that `leaf_hash` is leaf
/// `index` of the tree of `size` leaves whose root is `root`.
///
/// Hashes are taken as raw bytes because they arrive decoded from untrusted
/// input; a wrong length is reported, never trusted. The proof does not bind
/// `size` on its own (an audit path can also fit a larger tree), so `size`
/// must come from the same signed checkpoint as `root`.
pub fn verify_inclusion<P: AsRef<[u8]>>(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    check_root(&computed, root, ProofError::RootMismatch)
}

/// The root an inclusion proof leads to, checking only its shape.
pub fn root_from_inclusion_proof<P: AsRef<[u8]>>(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[P],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let leaf: Hash = leaf_hash
        .try_into()
        .map_err(|_| ProofError::LeafHashLength { len: leaf_hash.len() })?;
    let (inner, border) = decompose_inclusion(index, size);
    check_proof_length(proof.len(), inner + border)?;
    let proof = proof_hashes(proof)?;
    let (inner_part, border_part) = proof.split_at(inner);
    Ok(chain_border_right(chain_inner(leaf, inner_part, index), border_part))
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): that the tree of `size2`
/// leaves with root `root2` extends the tree of `size1` leaves with root
/// `root1`.
///
/// Equal sizes need an empty proof and equal roots; as in RFC 9162 the roots
/// are then only compared, whatever their length. A zero `size1` is rejected:
/// the empty tree is a prefix of every tree, so such a "proof" shows nothing.
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    if size1 == size2 {
        check_proof_length(proof.len(), 0)?;
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // From here 0 < size1 < size2. The proof is the audit path of the old
    // tree's last leaf, started at the level of the largest perfect subtree
    // ending there (the old tree's rightmost one).
    let (inner, border) = decompose_inclusion(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    // size1 - 1 and size2 - 1 differ in some bit at or above `shift`
    // (otherwise size2 <= size1), so this cannot underflow.
    let inner = inner - shift;
    // A power-of-two old tree is itself a node of the new tree: the proof
    // omits its hash and root1 seeds the chains instead.
    let seeded_by_root1 = size1.is_power_of_two();
    check_proof_length(proof.len(), usize::from(!seeded_by_root1) + inner + border)?;
    let proof = proof_hashes(proof)?;
    let (seed, rest) = if seeded_by_root1 {
        let seed = Hash::try_from(root1).map_err(|_| ProofError::RootHashLength { len: root1.len() })?;
        (seed, &proof[..])
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(ProofError::WrongProofLength { got: 0, want: 1 }),
        }
    };
    let (inner_part, border_part) = rest.split_at(inner);
    let mask = (size1 - 1) >> shift;
    // The old root only uses the nodes left of the path; the new root uses all.
    let old = chain_border_right(chain_inner_right(seed, inner_part, mask), border_part);
    check_root(&old, root1, ProofError::OldRootMismatch)?;
    let new = chain_border_right(chain_inner(seed, inner_part, mask), border_part);
    check_root(&new, root2, ProofError::NewRootMismatch)
}

/// Splits an audit path into its inner part (below the point where the paths
/// to `index` and to the last leaf join) and its border part (left siblings
/// above it), as RFC 9162's verification loop implicitly does.
fn decompose_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    (inner, border)
}

fn check_proof_length(got: usize, want: usize) -> Result<(), ProofError> {
    if got == want {
        Ok(())
    } else {
        Err(ProofError::WrongProofLength { got, want })
    }
}

fn check_root(computed: &Hash, expected: &[u8], mismatch: ProofError) -> Result<(), ProofError> {
    if expected.len() != HASH_LEN {
        return Err(ProofError::RootHashLength { len: expected.len() });
    }
    if computed[..] == *expected {
        Ok(())
    } else {
        Err(mismatch)
    }
}

fn proof_hashes<P: AsRef<[u8]>>(proof: &[P]) -> Result<Vec<Hash>, ProofError> {
    proof
        .iter()
        .enumerate()
        .map(|(position, element)| {
            let bytes = element.as_ref();
            Hash::try_from(bytes).map_err(|_| ProofError::ProofHashLength {
                position,
                len: bytes.len(),
            })
        })
        .collect()
}

/// Climbs from `seed` through siblings on either side, as the bits of
/// `index` (lowest first) say which side the path is on.
fn chain_inner(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |acc, (i, sibling)| {
        if (index >> i) & 1 == 0 {
            node_hash(&acc, sibling)
        } else {
            node_hash(sibling, &acc)
        }
    })
}

/// Like [`chain_inner`] but only through left siblings: the hash of the part
/// of the tree ending at the path.
fn chain_inner_right(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |acc, (i, sibling)| {
        if (index >> i) & 1 == 1 {
            node_hash(sibling, &acc)
        } else {
            acc
        }
    })
}

fn chain_border_right(seed: Hash, proof: &[Hash]) -> Hash {
    proof.iter().fold(seed, |acc, sibling| node_hash(sibling, &acc))
}
