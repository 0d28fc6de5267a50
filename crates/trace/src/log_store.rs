//! 追溯存证 the persisted trace log. The traceability requirement asks for
//! 区块链存证 (blockchain notarisation): evidence that a recorded event was
//! not changed or dropped afterwards. We meet it with an RFC 6962 Merkle log
//! (the structure of Certificate Transparency), which gives exactly that
//! guarantee without a consensus network: every trace event is appended as
//! the leaf `leaf_hash(<EPCIS hash ID>)`, the platform signs checkpoints
//! (C2SP signed notes, Ed25519) of the tree, and anyone holding a checkpoint
//! can check an inclusion proof for an event or a consistency proof that a
//! later tree extends it.
//!
//! Storage, on SQLite and PostgreSQL alike:
//! - `trace_log_leaves`: level 0, one row per hash ID;
//! - `trace_log_nodes`: every complete perfect subtree of two or more leaves,
//!   written once when its last leaf arrives, so a root or proof at any size
//!   is folded from O(log n) rows read by primary key in one query;
//! - `trace_log_head`: the size and the compact range (right-edge subtree
//!   hashes), so appending needs one row read, not a walk of the tree;
//! - `trace_checkpoints`: the signed notes as published.
//!
//! A row changed behind the platform's back is found by
//! [`audit_log_integrity`], which recomputes the tree from the stored hash
//! IDs and checks every checkpoint against it and against its signature.

use std::collections::{BTreeSet, HashMap, HashSet};

use sea_query::{
    Condition, Expr, ExprTrait, Func, Iden, IntoIden, IntoTableRef, LockType, Order, Query, SelectStatement, TableRef,
    UnionType, ValueTuple,
};
use shuxiang_core::CoreError;
use shuxiang_core::db::{Db, SliceMigrations, Tx};
use shuxiang_core::time::{Timestamp, now};
use thiserror::Error;

use crate::checkpoint::{Checkpoint, CheckpointError, Signer, Verifier, open_checkpoint};
use crate::merkle::{CompactRange, Hash, NodeId, NodePlan, ProofError, leaf_hash, node_hash, range_nodes};

/// The trace slice's tables.
pub static TRACE_MIGRATIONS: SliceMigrations = SliceMigrations {
    slice: "trace",
    sqlite: sqlx::migrate!("./migrations/sqlite"),
    postgres: sqlx::migrate!("./migrations/postgres"),
};

#[derive(Iden)]
enum TraceLogLeaves {
    Table,
    LeafIndex,
    HashId,
    LeafHash,
    AppendedAt,
}

#[derive(Iden)]
enum TraceLogNodes {
    Table,
    Level,
    Idx,
    Hash,
}

#[derive(Iden)]
enum TraceLogHead {
    Table,
    Id,
    Size,
    Frontier,
}

#[derive(Iden)]
enum TraceCheckpoints {
    Table,
    TreeSize,
    RootHash,
    Note,
    CreatedAt,
}

/// Rows per multi-row INSERT or IN list: at most 4 binds a row keeps a
/// statement under SQLite's 32,766-parameter limit and PostgreSQL's 65,535.
const CHUNK: usize = 5_000;

/// Rows per page while the integrity audit scans.
const AUDIT_PAGE: u64 = 10_000;

/// Mismatches an audit lists; beyond that it only counts them, so a wholly
/// corrupted log cannot exhaust memory.
const MAX_REPORTED: usize = 1_000;

/// Why a trace log operation failed.
#[derive(Debug, Error)]
pub enum LogError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{0:?} is not an EPCIS event hash ID (ni:///sha-256;<64 lowercase hex>?ver=CBV2.0)")]
    InvalidHashId(String),
    #[error("no event with hash ID {0} is in the trace log")]
    NotFound(String),
    #[error("tree size {requested} exceeds the {size} leaves of the trace log")]
    BeyondTree { requested: u64, size: u64 },
    /// Stored rows contradict each other; [`audit_log_integrity`] says where.
    #[error("the stored trace log is inconsistent: {0}")]
    Corrupt(String),
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// Lets API routes answer with the kernel's error codes.
impl From<LogError> for CoreError {
    fn from(err: LogError) -> Self {
        match err {
            LogError::Core(e) => e,
            LogError::InvalidHashId(_) => CoreError::malformed("invalid_hash_id", err.to_string()),
            LogError::NotFound(_) => CoreError::NotFound(err.to_string()),
            LogError::Proof(_) | LogError::BeyondTree { .. } => {
                CoreError::invalid("invalid_tree_size", err.to_string())
            }
            LogError::Checkpoint(_) => CoreError::invalid("invalid_origin", err.to_string()),
            LogError::Corrupt(_) => CoreError::Internal(err.to_string()),
        }
    }
}

/// Accepts exactly the form [`crate::epcis_hash::event_hash_id`] produces, so
/// one event can never be logged under two spellings of its ID.
fn check_hash_id(hash_id: &str) -> Result<()> {
    let digest = hash_id
        .strip_prefix("ni:///sha-256;")
        .and_then(|rest| rest.strip_suffix("?ver=CBV2.0"));
    match digest {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => Ok(()),
        _ => Err(LogError::InvalidHashId(hash_id.to_owned())),
    }
}

fn parse_hash(hex_text: &str) -> Option<Hash> {
    let mut hash = [0; 32];
    hex::decode_to_slice(hex_text, &mut hash).ok().map(|()| hash)
}

fn stored_hash(hex_text: &str, what: impl FnOnce() -> String) -> Result<Hash> {
    parse_hash(hex_text).ok_or_else(|| LogError::Corrupt(format!("{} is not a hex SHA-256 hash", what())))
}

/// Tree sizes and indexes are BIGINT columns; a log of 2^63 leaves is out of
/// reach, so the conversion cannot fail for anything this module wrote.
fn db_int(n: u64) -> i64 {
    i64::try_from(n).expect("trace log positions stay below 2^63")
}

fn stored_u64(n: i64, what: &str) -> Result<u64> {
    u64::try_from(n).map_err(|_| LogError::Corrupt(format!("{what} {n} is negative")))
}

fn decode_frontier(size: i64, frontier: &str) -> Result<CompactRange> {
    let size = stored_u64(size, "head size")?;
    let corrupt = || LogError::Corrupt("the head's frontier is not a list of hex hashes".to_owned());
    if !frontier.len().is_multiple_of(64) || !frontier.is_ascii() {
        return Err(corrupt());
    }
    let hashes = (0..frontier.len())
        .step_by(64)
        .map(|at| parse_hash(&frontier[at..at + 64]).ok_or_else(corrupt))
        .collect::<Result<Vec<_>>>()?;
    Ok(CompactRange::from_parts(size, hashes)?)
}

fn encode_frontier(range: &CompactRange) -> String {
    range.hashes().iter().map(hex::encode).collect()
}

fn head_query() -> SelectStatement {
    Query::select()
        .columns([TraceLogHead::Size, TraceLogHead::Frontier])
        .from(TraceLogHead::Table)
        .and_where(Expr::col(TraceLogHead::Id).eq(1))
        .to_owned()
}

/// Reads the head and, on PostgreSQL, locks it until `tx` ends.
///
/// Appends are serialised on this one row (`SELECT … FOR UPDATE`): a second
/// appender waits for the first to commit or roll back and then reads the
/// head it left, so leaf indexes are handed out without gaps or duplicates
/// and every node is computed from the frontier it belongs to. (That is
/// READ COMMITTED, PostgreSQL's default; a REPEATABLE READ caller gets a
/// serialisation error instead and has to retry its transaction.) Unlike
/// `LOCK TABLE`, this leaves readers and proof generation untouched. SQLite
/// needs no lock: `Db` writes through a single connection, so a write
/// transaction already runs alone (sea-query omits `FOR UPDATE` there).
pub(crate) async fn lock_head(tx: &mut Tx) -> Result<CompactRange> {
    let (size, frontier): (i64, String) = tx.fetch_one(head_query().lock(LockType::Update)).await?;
    decode_frontier(size, &frontier)
}

async fn read_head(db: &Db) -> Result<CompactRange> {
    let (size, frontier): (i64, String) = db.fetch_one(&head_query()).await?;
    decode_frontier(size, &frontier)
}

/// Appends one event hash ID to the log in the caller's transaction, so the
/// event and its leaf commit or roll back together; returns its leaf index.
/// Appending an ID already in the log returns the index it has.
pub async fn append(tx: &mut Tx, hash_id: &str) -> Result<u64> {
    let indexes = append_batch(tx, &[hash_id]).await?;
    Ok(indexes[0])
}

/// Appends many hash IDs in the caller's transaction with multi-row inserts
/// (EPCIS capture of a large document); returns each one's leaf index, in
/// the order given. IDs already logged, or repeated in `hash_ids`, keep the
/// index they first got.
pub async fn append_batch<S: AsRef<str>>(tx: &mut Tx, hash_ids: &[S]) -> Result<Vec<u64>> {
    for id in hash_ids {
        check_hash_id(id.as_ref())?;
    }
    if hash_ids.is_empty() {
        return Ok(Vec::new());
    }
    // Lock first, look up second: an ID a concurrent appender committed
    // while we waited for the lock is then seen, not logged twice.
    let mut range = lock_head(tx).await?;
    let mut assigned = existing_indexes(tx, hash_ids).await?;

    let at = now();
    let mut leaves = Vec::new();
    let mut nodes = Vec::new();
    let mut indexes = Vec::with_capacity(hash_ids.len());
    for id in hash_ids {
        let id = id.as_ref();
        if let Some(&index) = assigned.get(id) {
            indexes.push(index);
            continue;
        }
        let index = range.size();
        range.append_with(leaf_hash(id.as_bytes()), |node, hash| {
            if node.level == 0 {
                leaves.push((index, id, *hash));
            } else {
                nodes.push((node, *hash));
            }
        });
        assigned.insert(id.to_owned(), index);
        indexes.push(index);
    }
    if leaves.is_empty() {
        return Ok(indexes);
    }

    for chunk in leaves.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(TraceLogLeaves::Table).columns([
            TraceLogLeaves::LeafIndex,
            TraceLogLeaves::HashId,
            TraceLogLeaves::LeafHash,
            TraceLogLeaves::AppendedAt,
        ]);
        for (index, id, hash) in chunk {
            q.values_panic([db_int(*index).into(), (*id).into(), hex::encode(hash).into(), at.into()]);
        }
        tx.execute(&q).await?;
    }
    for chunk in nodes.chunks(CHUNK) {
        let mut q = Query::insert();
        q.into_table(TraceLogNodes::Table)
            .columns([TraceLogNodes::Level, TraceLogNodes::Idx, TraceLogNodes::Hash]);
        for (node, hash) in chunk {
            q.values_panic([
                i32::from(node.level).into(),
                db_int(node.index).into(),
                hex::encode(hash).into(),
            ]);
        }
        tx.execute(&q).await?;
    }
    let q = Query::update()
        .table(TraceLogHead::Table)
        .values([
            (TraceLogHead::Size, db_int(range.size()).into()),
            (TraceLogHead::Frontier, encode_frontier(&range).into()),
        ])
        .and_where(Expr::col(TraceLogHead::Id).eq(1))
        .to_owned();
    tx.execute(&q).await?;
    Ok(indexes)
}

/// The leaf indexes of those of `hash_ids` already in the log.
async fn existing_indexes<S: AsRef<str>>(tx: &mut Tx, hash_ids: &[S]) -> Result<HashMap<String, u64>> {
    let mut found = HashMap::new();
    for chunk in hash_ids.chunks(CHUNK) {
        let q = Query::select()
            .columns([TraceLogLeaves::HashId, TraceLogLeaves::LeafIndex])
            .from(TraceLogLeaves::Table)
            .and_where(Expr::col(TraceLogLeaves::HashId).is_in(chunk.iter().map(|id| id.as_ref())))
            .to_owned();
        let rows: Vec<(String, i64)> = tx.fetch_all(&q).await?;
        for (id, index) in rows {
            found.insert(id, stored_u64(index, "leaf index")?);
        }
    }
    Ok(found)
}

/// The number of leaves in the log.
pub async fn size(db: &Db) -> Result<u64> {
    Ok(read_head(db).await?.size())
}

/// The root hash of the log at its current size.
pub async fn root(db: &Db) -> Result<Hash> {
    Ok(read_head(db).await?.root())
}

/// The root hash of the log's first `size` leaves.
pub async fn root_at(db: &Db, size: u64) -> Result<Hash> {
    check_size(db, size).await?;
    let hashes = fetch_nodes(db, &range_nodes(0, size)).await?;
    Ok(CompactRange::from_parts(size, hashes)?.root())
}

/// Errs unless the log has at least `requested` leaves; returns its size.
/// Stored subtrees never change, so nodes read after this are those of a
/// tree at least that large.
async fn check_size(db: &Db, requested: u64) -> Result<u64> {
    let size = size(db).await?;
    if requested > size {
        return Err(LogError::BeyondTree { requested, size });
    }
    Ok(size)
}

/// The stored hash of `id` among those fetched; a node a tree of the size
/// asked for must have is corruption when missing.
fn node_from(found: &HashMap<NodeId, Hash>, id: NodeId) -> Result<Hash> {
    found.get(&id).copied().ok_or_else(|| {
        LogError::Corrupt(format!(
            "the subtree at level {}, index {} is missing",
            id.level, id.index
        ))
    })
}

/// The stored hashes of `ids`, in order, one round trip per [`CHUNK`]
/// distinct ids: interior nodes and leaves (level 0) are read by primary
/// key and joined with `UNION ALL`. Nodes are matched by `(level = ? AND
/// idx = ?) OR …` rather than a row-value `IN` list, which SQLite answers
/// with a full table scan.
async fn fetch_nodes(db: &Db, ids: &[NodeId]) -> Result<Vec<Hash>> {
    let unique: Vec<NodeId> = ids.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let mut found = HashMap::with_capacity(unique.len());
    for chunk in unique.chunks(CHUNK) {
        let (leaf_ids, node_ids): (Vec<NodeId>, Vec<NodeId>) = chunk.iter().partition(|id| id.level == 0);
        let leaves = (!leaf_ids.is_empty()).then(|| {
            Query::select()
                .expr(Expr::cust("0"))
                .columns([TraceLogLeaves::LeafIndex, TraceLogLeaves::LeafHash])
                .from(TraceLogLeaves::Table)
                .and_where(Expr::col(TraceLogLeaves::LeafIndex).is_in(leaf_ids.iter().map(|id| db_int(id.index))))
                .to_owned()
        });
        let nodes = (!node_ids.is_empty()).then(|| {
            Query::select()
                .columns([TraceLogNodes::Level, TraceLogNodes::Idx, TraceLogNodes::Hash])
                .from(TraceLogNodes::Table)
                .cond_where(node_ids.iter().fold(Condition::any(), |any, id| {
                    any.add(
                        Expr::col(TraceLogNodes::Level)
                            .eq(i32::from(id.level))
                            .and(Expr::col(TraceLogNodes::Idx).eq(db_int(id.index))),
                    )
                }))
                .to_owned()
        });
        let q = match (leaves, nodes) {
            (Some(mut leaves), Some(nodes)) => leaves.union(UnionType::All, nodes).to_owned(),
            (Some(q), None) | (None, Some(q)) => q,
            (None, None) => continue,
        };
        let rows: Vec<(i32, i64, String)> = db.fetch_all(&q).await?;
        for (level, idx, hash) in rows {
            // Only rows of the (non-negative) positions asked for come back.
            let (Ok(level), Ok(index)) = (u8::try_from(level), u64::try_from(idx)) else {
                continue;
            };
            let id = NodeId { level, index };
            let hash = stored_hash(&hash, || format!("the subtree at level {level}, index {index}"))?;
            found.insert(id, hash);
        }
    }
    ids.iter().map(|id| node_from(&found, *id)).collect()
}

/// An audit path: proves that the leaf of an event is leaf `leaf_index` of
/// the tree of `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub proof: Vec<Hash>,
}

/// The inclusion proof of the event `hash_id` in the tree of `tree_size`
/// leaves (default: the current size). Clients verify against a signed
/// checkpoint, so they should ask for that checkpoint's size.
///
/// One round trip: see [`inclusion_proofs`].
pub async fn inclusion_proof(db: &Db, hash_id: &str, tree_size: Option<u64>) -> Result<InclusionProof> {
    let mut proofs = inclusion_proofs(db, &[hash_id], tree_size).await?;
    proofs.pop().expect("one proof is made for each hash ID")
}

/// The inclusion proofs of many events in the tree of `tree_size` leaves
/// (default: the current size), in the order of `hash_ids`, in one round
/// trip per [`CHUNK`] events (a scan page proves all its events at the size
/// of one checkpoint in one). Each proof fails on its own when its event is
/// not logged ([`LogError::NotFound`]) or lies beyond `tree_size`
/// ([`ProofError::IndexOutOfRange`]); an invalid hash ID, a `tree_size`
/// beyond the log or a database error fails the whole call.
pub async fn inclusion_proofs<S: AsRef<str>>(
    db: &Db,
    hash_ids: &[S],
    tree_size: Option<u64>,
) -> Result<Vec<Result<InclusionProof>>> {
    for id in hash_ids {
        check_hash_id(id.as_ref())?;
    }
    let mut indexes = HashMap::with_capacity(hash_ids.len());
    let mut found = HashMap::new();
    // Without a size asked for, the first chunk's log size is pinned for
    // the later chunks, so the proofs of one call share one tree.
    let mut proven_size = tree_size;
    for chunk in hash_ids.chunks(CHUNK) {
        let rows: Vec<ProofRow> = db.fetch_all(&proof_query(chunk, proven_size)).await?;
        for (id, index, log_size, level, position, hash) in rows {
            let log_size = stored_u64(log_size, "head size")?;
            // The statement read the nodes of the snapshot it read the head
            // from, so every node of a tree up to `log_size` came back.
            if let Some(requested) = tree_size
                && requested > log_size
            {
                return Err(LogError::BeyondTree {
                    requested,
                    size: log_size,
                });
            }
            proven_size.get_or_insert(log_size);
            // The leaf's own row (level -1) carries its index; node rows
            // are only ever of non-negative positions.
            let (Ok(level), Ok(position)) = (u8::try_from(level), u64::try_from(position)) else {
                indexes.insert(id, stored_u64(index, "leaf index")?);
                continue;
            };
            let hash = stored_hash(&hash, || format!("the subtree at level {level}, index {position}"))?;
            found.insert(NodeId { level, index: position }, hash);
        }
    }
    let tree_size = proven_size.unwrap_or(0);
    let mut proofs = Vec::with_capacity(hash_ids.len());
    for id in hash_ids {
        let id = id.as_ref();
        let Some(&leaf_index) = indexes.get(id) else {
            proofs.push(Err(LogError::NotFound(id.to_owned())));
            continue;
        };
        let plan = match NodePlan::inclusion(leaf_index, tree_size) {
            Ok(plan) => plan,
            Err(e) => {
                proofs.push(Err(e.into()));
                continue;
            }
        };
        // A node missing from a tree the log holds is corruption, not a
        // failure of this one proof.
        let hashes = plan
            .node_ids()
            .iter()
            .map(|node| node_from(&found, *node))
            .collect::<Result<Vec<_>>>()?;
        proofs.push(Ok(InclusionProof {
            leaf_index,
            tree_size,
            proof: plan.assemble(&hashes)?,
        }));
    }
    Ok(proofs)
}

/// Hash ID, leaf index, log size, then a node's level, index and hash; the
/// leaf's own row has level -1 and no hash.
type ProofRow = (String, i64, i64, i32, i64, String);

/// Levels a node of a log below 2^63 leaves can have.
const MAX_LEVEL: u32 = 62;

/// The two nodes a proof may fold at one level, each as its position and
/// the condition under which the proof needs it, in SQL over `i`, the
/// proven leaf's index, and `n`, the tree size, both shifted down to the
/// level. The sibling of node `i` is `i XOR 1` (SQLite has no XOR); the
/// proof needs it while it lies inside the tree, which also makes it the
/// left subtrees of the path above the leaf's own perfect subtree. Below
/// that subtree's level the proof folds the tree's right-edge subtrees:
/// `n - 1` at each level whose bit of `n` is set, while it lies right of
/// the leaf's ancestor.
fn proof_positions(i: &str, n: &str) -> [(String, String); 2] {
    let sibling = format!("({i} + 1 - 2 * ({i} & 1))");
    [
        (sibling.clone(), format!("{sibling} < {n}")),
        (format!("{n} - 1"), format!("({n} & 1) = 1 AND {i} + 1 < {n}")),
    ]
}

/// The one statement an inclusion proof takes, for the proofs of `hash_ids`
/// in the tree of `tree_size` leaves (default: the log's size as the
/// statement reads it): per leaf found, its own row, then the leaves and
/// nodes its proof folds (a few twice where proofs share them), each read
/// by primary key at a position computed in SQL from the leaf index. Each
/// position is a plain equality, which both planners turn into an index
/// search per outer row (PostgreSQL scans the whole nodes table for an `IN`
/// list of computed values). One statement reads one snapshot, so the
/// head's size and the nodes agree. It names `hash_ids` five times: a
/// [`CHUNK`] of them stays within both engines' bind limits.
fn proof_query<S: AsRef<str>>(hash_ids: &[S], tree_size: Option<u64>) -> SelectStatement {
    let proven = || {
        Query::select()
            .column((TraceLogLeaves::Table, TraceLogLeaves::HashId))
            .column((TraceLogLeaves::Table, TraceLogLeaves::LeafIndex))
            .expr_as(Expr::col((TraceLogHead::Table, TraceLogHead::Size)), "log_size")
            .expr_as(
                Func::coalesce([
                    Expr::val(tree_size.map(db_int)),
                    Expr::col((TraceLogHead::Table, TraceLogHead::Size)),
                ]),
                "tree_size",
            )
            .from(TraceLogLeaves::Table)
            .from(TraceLogHead::Table)
            .and_where(Expr::col((TraceLogHead::Table, TraceLogHead::Id)).eq(1))
            .and_where(
                Expr::col((TraceLogLeaves::Table, TraceLogLeaves::HashId)).is_in(hash_ids.iter().map(|id| id.as_ref())),
            )
            .to_owned()
    };
    let leaf_part = || {
        Query::select()
            .column(("f", TraceLogLeaves::HashId))
            .column(("f", TraceLogLeaves::LeafIndex))
            .column(("f", "log_size"))
            .from_subquery(proven(), "f")
            .to_owned()
    };
    let mut q = leaf_part();
    q.expr(Expr::cust("-1")).expr(Expr::cust("-1")).expr(Expr::cust("''"));

    for (position, when) in proof_positions("f.leaf_index", "f.tree_size") {
        let mut leaves = leaf_part();
        leaves
            .expr(Expr::cust("0"))
            .column(("x", TraceLogLeaves::LeafIndex))
            .column(("x", TraceLogLeaves::LeafHash))
            .cross_join(TraceLogLeaves::Table.into_table_ref().alias("x"))
            .and_where(Expr::cust(when))
            .and_where(Expr::cust(format!("x.leaf_index = {position}")));
        q.union(UnionType::All, leaves);
    }

    // Levels in the loop between the leaf and the node table (CROSS JOIN
    // fixes SQLite's join order): the leaf is looked up once per proof,
    // not once per level. Both engines name a VALUES column `column1`.
    let top = tree_size.map_or(MAX_LEVEL, |n| n.checked_ilog2().unwrap_or(0));
    let levels: Vec<ValueTuple> = (1..=Ord::max(top, 1))
        .map(|level| ValueTuple::One((level as i32).into()))
        .collect();
    let at_level = |column: &str| format!("(f.{column} >> lv.column1)");
    for (position, when) in proof_positions(&at_level("leaf_index"), &at_level("tree_size")) {
        let mut nodes = leaf_part();
        nodes
            .column(("lv", "column1"))
            .column(("x", TraceLogNodes::Idx))
            .column(("x", TraceLogNodes::Hash))
            .cross_join(TableRef::ValuesList(levels.clone(), "lv".into_iden()))
            .cross_join(TraceLogNodes::Table.into_table_ref().alias("x"))
            .and_where(Expr::cust(when))
            .and_where(Expr::cust("x.level = lv.column1"))
            .and_where(Expr::cust(format!("x.idx = {position}")));
        q.union(UnionType::All, nodes);
    }
    q
}

/// The consistency proof that the tree of `size2` leaves extends the tree of
/// `size1` leaves (empty when the sizes are equal).
pub async fn consistency_proof(db: &Db, size1: u64, size2: u64) -> Result<Vec<Hash>> {
    let plan = NodePlan::consistency(size1, size2)?;
    check_size(db, size2).await?;
    Ok(plan.assemble(&fetch_nodes(db, plan.node_ids()).await?)?)
}

/// A checkpoint as published: its tree size and root, and the signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root: Hash,
    pub note: String,
    pub created_at: Timestamp,
}

type CheckpointRow = (i64, String, String, Timestamp);

impl StoredCheckpoint {
    fn from_row((tree_size, root, note, created_at): CheckpointRow) -> Result<Self> {
        Ok(Self {
            tree_size: stored_u64(tree_size, "checkpoint size")?,
            root: stored_hash(&root, || format!("the root of checkpoint {tree_size}"))?,
            note,
            created_at,
        })
    }
}

fn checkpoint_query() -> SelectStatement {
    Query::select()
        .columns([
            TraceCheckpoints::TreeSize,
            TraceCheckpoints::RootHash,
            TraceCheckpoints::Note,
            TraceCheckpoints::CreatedAt,
        ])
        .from(TraceCheckpoints::Table)
        .to_owned()
}

/// Signs and stores a checkpoint of the current tree under `origin`, if the
/// log grew since the last one; `None` when there is nothing new to sign.
///
/// It holds the head lock while it signs, so checkpoints are stored in
/// tree-size order and two publishers never sign the same size; appenders
/// wait for one signature, well under a millisecond.
pub async fn publish_checkpoint(db: &Db, signer: &Signer, origin: &str) -> Result<Option<StoredCheckpoint>> {
    let mut tx = db.begin().await?;
    let range = lock_head(&mut tx).await?;
    let latest = Query::select()
        .expr(Expr::col(TraceCheckpoints::TreeSize).max())
        .from(TraceCheckpoints::Table)
        .to_owned();
    let (latest,): (Option<i64>,) = tx.fetch_one(&latest).await?;
    if db_int(range.size()) <= latest.unwrap_or(0) {
        return Ok(None);
    }
    let checkpoint = Checkpoint::new(origin, range.size(), range.root())?;
    let stored = StoredCheckpoint {
        tree_size: range.size(),
        root: range.root(),
        note: signer.sign_checkpoint(&checkpoint),
        created_at: now(),
    };
    let q = Query::insert()
        .into_table(TraceCheckpoints::Table)
        .columns([
            TraceCheckpoints::TreeSize,
            TraceCheckpoints::RootHash,
            TraceCheckpoints::Note,
            TraceCheckpoints::CreatedAt,
        ])
        .values_panic([
            db_int(stored.tree_size).into(),
            hex::encode(stored.root).into(),
            stored.note.as_str().into(),
            stored.created_at.into(),
        ])
        .to_owned();
    tx.execute(&q).await?;
    tx.commit().await?;
    Ok(Some(stored))
}

/// The checkpoint of the largest tree published, if any.
pub async fn latest_checkpoint(db: &Db) -> Result<Option<StoredCheckpoint>> {
    let q = checkpoint_query()
        .order_by(TraceCheckpoints::TreeSize, Order::Desc)
        .limit(1)
        .to_owned();
    let row: Option<CheckpointRow> = db.fetch_optional(&q).await?;
    row.map(StoredCheckpoint::from_row).transpose()
}

/// The checkpoint published for tree size `size`, if any.
pub async fn checkpoint_at(db: &Db, size: u64) -> Result<Option<StoredCheckpoint>> {
    let Ok(size) = i64::try_from(size) else {
        return Ok(None);
    };
    let q = checkpoint_query()
        .and_where(Expr::col(TraceCheckpoints::TreeSize).eq(size))
        .to_owned();
    let row: Option<CheckpointRow> = db.fetch_optional(&q).await?;
    row.map(StoredCheckpoint::from_row).transpose()
}

/// A stored row that contradicts the data it derives from. Stored values are
/// reported as text, exactly as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The leaf indexes do not run 0, 1, 2, …: a leaf was deleted or
    /// renumbered. Leaves from here on are not checked.
    LeafIndex {
        expected: u64,
        found: i64,
    },
    /// The stored leaf hash is not the leaf hash of the stored hash ID.
    Leaf {
        leaf_index: u64,
        hash_id: String,
        stored: String,
        computed: Hash,
    },
    /// A stored subtree hash that is missing or is not the hash of its two
    /// stored children. A node whose child is itself reported is not
    /// checked: its mismatch would follow from the child's.
    Node {
        level: u8,
        index: u64,
        stored: Option<String>,
        computed: Hash,
    },
    /// A node row where no complete subtree of the log lies.
    UnexpectedNode {
        level: i32,
        index: i64,
    },
    /// The head disagrees with the leaves (size) or with the stored
    /// right-edge subtrees (frontier).
    Head {
        stored_size: i64,
        leaves: u64,
        frontier_matches: bool,
    },
    Checkpoint {
        tree_size: i64,
        problem: CheckpointProblem,
    },
}

/// What is wrong with a stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointProblem {
    /// It covers more leaves than the log (up to its first gap) holds.
    BeyondLog { leaves: u64 },
    /// The stored root is not the root recomputed from the stored hash IDs:
    /// the events were changed after the checkpoint was signed.
    RootMismatch { stored: String, computed: Hash },
    /// The note does not open with the verifier key.
    Signature(String),
    /// The note verifies but names another size or root than its row.
    NoteMismatch,
}

/// The outcome of [`audit_log_integrity`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// Leaves found in order from index 0 (up to the first gap, if any).
    pub leaves: u64,
    pub nodes_checked: u64,
    pub checkpoints_checked: u64,
    /// Mismatches in the order found: leaves, nodes by level, the head,
    /// checkpoints by size. At most 1,000 are listed.
    pub mismatches: Vec<Mismatch>,
    /// Mismatches found beyond those listed.
    pub unlisted: u64,
}

impl IntegrityReport {
    pub fn is_intact(&self) -> bool {
        self.mismatches.is_empty()
    }

    fn report(&mut self, mismatch: Mismatch) {
        if self.mismatches.len() < MAX_REPORTED {
            self.mismatches.push(mismatch);
        } else {
            self.unlisted += 1;
        }
    }
}

/// Checks every stored row of the log (an operator command: it scans, in
/// pages, with memory bounded by the number of checkpoints and mismatches):
/// each leaf hash against its hash ID, each node against its two children,
/// that no node row lies outside the tree, the head, and each checkpoint's
/// root against the tree recomputed from the hash IDs and its note against
/// `verifier`.
pub async fn audit_log_integrity(db: &Db, verifier: &Verifier) -> Result<IntegrityReport> {
    let mut report = IntegrityReport::default();
    let mut bad = HashSet::new();

    let sizes_query = Query::select()
        .column(TraceCheckpoints::TreeSize)
        .from(TraceCheckpoints::Table)
        .order_by(TraceCheckpoints::TreeSize, Order::Asc)
        .to_owned();
    let checkpoint_sizes: Vec<(i64,)> = db.fetch_all(&sizes_query).await?;
    let roots = audit_leaves(db, &checkpoint_sizes, &mut report, &mut bad).await?;
    let size = report.leaves;
    audit_nodes(db, size, &mut report, &mut bad).await?;
    audit_head(db, size, &mut report, &bad).await?;
    audit_checkpoints(db, verifier, size, &roots, &mut report).await?;
    Ok(report)
}

/// Scans the leaves in index order: checks each leaf hash and recomputes
/// the tree from the hash IDs, returning its roots at `checkpoint_sizes`.
async fn audit_leaves(
    db: &Db,
    checkpoint_sizes: &[(i64,)],
    report: &mut IntegrityReport,
    bad: &mut HashSet<NodeId>,
) -> Result<HashMap<i64, Hash>> {
    let mut tree = CompactRange::new();
    let mut roots = HashMap::new();
    let mut pending = checkpoint_sizes
        .iter()
        .map(|(size,)| *size)
        .filter(|&size| size > 0)
        .peekable();
    let mut after: Option<i64> = None;
    loop {
        let mut q = Query::select();
        q.columns([
            TraceLogLeaves::LeafIndex,
            TraceLogLeaves::HashId,
            TraceLogLeaves::LeafHash,
        ])
        .from(TraceLogLeaves::Table)
        .order_by(TraceLogLeaves::LeafIndex, Order::Asc)
        .limit(AUDIT_PAGE);
        if let Some(after) = after {
            q.and_where(Expr::col(TraceLogLeaves::LeafIndex).gt(after));
        }
        let rows: Vec<(i64, String, String)> = db.fetch_all(&q).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.0);
        for (found, hash_id, stored) in rows {
            let expected = tree.size();
            if found != db_int(expected) {
                report.report(Mismatch::LeafIndex { expected, found });
                return Ok(roots);
            }
            let computed = leaf_hash(hash_id.as_bytes());
            if parse_hash(&stored) != Some(computed) {
                bad.insert(NodeId {
                    level: 0,
                    index: expected,
                });
                report.report(Mismatch::Leaf {
                    leaf_index: expected,
                    hash_id,
                    stored,
                    computed,
                });
            }
            tree.append(computed);
            report.leaves = tree.size();
            while pending.next_if_eq(&db_int(tree.size())).is_some() {
                roots.insert(db_int(tree.size()), tree.root());
            }
        }
    }
    Ok(roots)
}

/// Stored hashes of level `level` with indexes in `[begin, end)`; level 0
/// reads the leaves.
async fn level_range(db: &Db, level: u8, begin: u64, end: u64) -> Result<HashMap<u64, String>> {
    let (begin, end) = (db_int(begin), db_int(end));
    let q = if level == 0 {
        Query::select()
            .columns([TraceLogLeaves::LeafIndex, TraceLogLeaves::LeafHash])
            .from(TraceLogLeaves::Table)
            .and_where(Expr::col(TraceLogLeaves::LeafIndex).gte(begin))
            .and_where(Expr::col(TraceLogLeaves::LeafIndex).lt(end))
            .to_owned()
    } else {
        Query::select()
            .columns([TraceLogNodes::Idx, TraceLogNodes::Hash])
            .from(TraceLogNodes::Table)
            .and_where(Expr::col(TraceLogNodes::Level).eq(i32::from(level)))
            .and_where(Expr::col(TraceLogNodes::Idx).gte(begin))
            .and_where(Expr::col(TraceLogNodes::Idx).lt(end))
            .to_owned()
    };
    let rows: Vec<(i64, String)> = db.fetch_all(&q).await?;
    // Only non-negative indexes are in the range asked for.
    Ok(rows.into_iter().map(|(index, hash)| (index as u64, hash)).collect())
}

/// Checks every node a tree of `size` leaves has against its stored
/// children, level by level, then looks for node rows outside the tree.
async fn audit_nodes(db: &Db, size: u64, report: &mut IntegrityReport, bad: &mut HashSet<NodeId>) -> Result<()> {
    let top = if size == 0 { 0 } else { size.ilog2() as u8 };
    for level in 1..=top {
        let count = size >> level;
        let mut begin = 0;
        while begin < count {
            let end = Ord::min(begin + AUDIT_PAGE, count);
            let stored = level_range(db, level, begin, end).await?;
            let children = level_range(db, level - 1, 2 * begin, 2 * end).await?;
            for index in begin..end {
                let (left, right) = (2 * index, 2 * index + 1);
                let child_bad = |i| {
                    bad.contains(&NodeId {
                        level: level - 1,
                        index: i,
                    })
                };
                if child_bad(left) || child_bad(right) {
                    continue;
                }
                // Unreported children exist and parse: they were checked.
                let child = |i| children.get(&i).and_then(|h| parse_hash(h));
                let (Some(l), Some(r)) = (child(left), child(right)) else {
                    continue;
                };
                let computed = node_hash(&l, &r);
                report.nodes_checked += 1;
                let found = stored.get(&index);
                if found.and_then(|h| parse_hash(h)) != Some(computed) {
                    bad.insert(NodeId { level, index });
                    report.report(Mismatch::Node {
                        level,
                        index,
                        stored: found.cloned(),
                        computed,
                    });
                }
            }
            begin = end;
        }
    }

    let mut outside = Condition::any()
        .add(Expr::col(TraceLogNodes::Level).lt(1))
        .add(Expr::col(TraceLogNodes::Level).gt(i32::from(top)))
        .add(Expr::col(TraceLogNodes::Idx).lt(0));
    for level in 1..=top {
        outside = outside.add(
            Expr::col(TraceLogNodes::Level)
                .eq(i32::from(level))
                .and(Expr::col(TraceLogNodes::Idx).gte(db_int(size >> level))),
        );
    }
    let q = Query::select()
        .columns([TraceLogNodes::Level, TraceLogNodes::Idx])
        .from(TraceLogNodes::Table)
        .cond_where(outside)
        .order_by(TraceLogNodes::Level, Order::Asc)
        .order_by(TraceLogNodes::Idx, Order::Asc)
        .limit(MAX_REPORTED as u64)
        .to_owned();
    let rows: Vec<(i32, i64)> = db.fetch_all(&q).await?;
    for (level, index) in rows {
        report.report(Mismatch::UnexpectedNode { level, index });
    }
    Ok(())
}

/// The head must count the leaves found and hold the stored right-edge
/// subtrees; subtrees already reported are not compared again.
async fn audit_head(db: &Db, size: u64, report: &mut IntegrityReport, bad: &HashSet<NodeId>) -> Result<()> {
    let (stored_size, frontier): (i64, String) = db.fetch_one(&head_query()).await?;
    let ids = range_nodes(0, size);
    let frontier_matches = if frontier.len() != 64 * ids.len() || !frontier.is_ascii() {
        false
    } else {
        let mut matches = true;
        for (k, id) in ids.iter().enumerate() {
            if bad.contains(id) {
                continue;
            }
            let stored = level_range(db, id.level, id.index, id.index + 1).await?;
            matches &= stored.get(&id.index).map(String::as_str) == Some(&frontier[64 * k..64 * (k + 1)]);
        }
        matches
    };
    if stored_size != db_int(size) || !frontier_matches {
        report.report(Mismatch::Head {
            stored_size,
            leaves: size,
            frontier_matches,
        });
    }
    Ok(())
}

/// Checks each checkpoint against the tree recomputed from the hash IDs and
/// against its signature.
async fn audit_checkpoints(
    db: &Db,
    verifier: &Verifier,
    size: u64,
    roots: &HashMap<i64, Hash>,
    report: &mut IntegrityReport,
) -> Result<()> {
    let mut after: Option<i64> = None;
    loop {
        let mut q = Query::select();
        q.columns([
            TraceCheckpoints::TreeSize,
            TraceCheckpoints::RootHash,
            TraceCheckpoints::Note,
        ])
        .from(TraceCheckpoints::Table)
        .order_by(TraceCheckpoints::TreeSize, Order::Asc)
        .limit(AUDIT_PAGE);
        if let Some(after) = after {
            q.and_where(Expr::col(TraceCheckpoints::TreeSize).gt(after));
        }
        let rows: Vec<(i64, String, String)> = db.fetch_all(&q).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.0);
        for (tree_size, stored_root, note) in rows {
            report.checkpoints_checked += 1;
            let problem = match roots.get(&tree_size) {
                None => Some(CheckpointProblem::BeyondLog { leaves: size }),
                Some(computed) if parse_hash(&stored_root).as_ref() != Some(computed) => {
                    Some(CheckpointProblem::RootMismatch {
                        stored: stored_root,
                        computed: *computed,
                    })
                }
                Some(computed) => match open_checkpoint(&note, verifier) {
                    Err(e) => Some(CheckpointProblem::Signature(e.to_string())),
                    Ok(cp) if db_int(cp.size()) != tree_size || cp.root() != computed => {
                        Some(CheckpointProblem::NoteMismatch)
                    }
                    Ok(_) => None,
                },
            };
            if let Some(problem) = problem {
                report.report(Mismatch::Checkpoint { tree_size, problem });
            }
        }
    }
    Ok(())
}
