//! The persisted trace log on SQLite and PostgreSQL: roots and proofs against
//! the in-memory Merkle functions, idempotent and transactional appends,
//! checkpoints, detection of rows changed behind the log's back, and
//! concurrent appenders.

use std::collections::HashSet;

use sea_query::{Expr, Query};
use sha2::{Digest, Sha256};
use shuxiang_core::{CoreError, Db};
use shuxiang_trace::checkpoint::{Signer, open_checkpoint};
use shuxiang_trace::log_store::{self, CheckpointProblem, LogError, Mismatch, TRACE_MIGRATIONS};
use shuxiang_trace::merkle::{
    Hash, ProofError, leaf_hash, node_hash, root_of_leaves, verify_consistency, verify_inclusion,
};

const ORIGIN: &str = "shuxiang.example/trace";

fn signer() -> Signer {
    Signer::from_seed("shuxiang.example/trace", [7; 32]).unwrap()
}

/// A well-formed EPCIS hash ID, distinct for each `n`.
fn hash_id(n: u64) -> String {
    format!(
        "ni:///sha-256;{}?ver=CBV2.0",
        hex::encode(Sha256::digest(n.to_le_bytes()))
    )
}

fn leaves(ids: &[String]) -> Vec<Hash> {
    ids.iter().map(|id| leaf_hash(id.as_bytes())).collect()
}

async fn count(db: &Db, table: &'static str) -> i64 {
    let q = Query::select().expr(Expr::cust("COUNT(*)")).from(table).to_owned();
    let (n,): (i64,) = db.fetch_one(&q).await.unwrap();
    n
}

/// Appends `ids` in one committed transaction.
async fn append_all(db: &Db, ids: &[String]) -> Vec<u64> {
    let mut tx = db.begin().await.unwrap();
    let indexes = log_store::append_batch(&mut tx, ids).await.unwrap();
    tx.commit().await.unwrap();
    indexes
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_versions() {
    let versions = |m: &sqlx::migrate::Migrator| {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect::<Vec<_>>()
    };
    let sqlite = versions(&TRACE_MIGRATIONS.sqlite);
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite,
        versions(&TRACE_MIGRATIONS.postgres),
        "crates/trace/migrations/sqlite and postgres differ"
    );
}

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn roots_match_the_merkle_tree_hash(db) {
    let ids: Vec<String> = (0..300).map(hash_id).collect();
    assert_eq!(log_store::size(&db).await.unwrap(), 0);
    assert_eq!(log_store::root(&db).await.unwrap(), root_of_leaves(&[]));

    // Single appends, then batches of varied sizes, so nodes are completed
    // both one at a time and many per statement.
    let mut next = 0;
    for _ in 0..13 {
        let mut tx = db.begin().await.unwrap();
        assert_eq!(log_store::append(&mut tx, &ids[next]).await.unwrap(), next as u64);
        tx.commit().await.unwrap();
        next += 1;
    }
    for batch in [1, 2, 3, 16, 31, 64, 1, 100, 69] {
        let indexes = append_all(&db, &ids[next..next + batch]).await;
        assert_eq!(indexes, (next as u64..(next + batch) as u64).collect::<Vec<_>>());
        next += batch;
    }
    assert_eq!(next, 300);

    let hashes = leaves(&ids);
    assert_eq!(log_store::size(&db).await.unwrap(), 300);
    assert_eq!(log_store::root(&db).await.unwrap(), root_of_leaves(&hashes));
    for k in 0..=300 {
        assert_eq!(log_store::root_at(&db, k).await.unwrap(), root_of_leaves(&hashes[..k as usize]), "size {k}");
    }
    assert!(matches!(
        log_store::root_at(&db, 301).await,
        Err(LogError::BeyondTree { requested: 301, size: 300 })
    ));
    let report = log_store::audit_log_integrity(&db, &signer().verifier()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.leaves, 300);
    // 150 + 75 + 37 + 18 + 9 + 4 + 2 + 1 perfect subtrees of two or more leaves.
    assert_eq!(report.nodes_checked, 296);
    assert_eq!(count(&db, "trace_log_nodes").await, 296);
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn inclusion_proofs_verify(db) {
    let ids: Vec<String> = (0..133).map(hash_id).collect();
    append_all(&db, &ids[..70]).await;
    append_all(&db, &ids[70..]).await;
    let sizes = [1, 2, 3, 7, 8, 9, 64, 65, 70, 100, 128, 132, 133];
    let mut roots = Vec::new();
    for size in sizes {
        roots.push(log_store::root_at(&db, size).await.unwrap());
    }
    for (index, id) in ids.iter().enumerate() {
        let leaf = leaf_hash(id.as_bytes());
        let latest = log_store::inclusion_proof(&db, id, None).await.unwrap();
        assert_eq!((latest.leaf_index, latest.tree_size), (index as u64, 133));
        verify_inclusion(&leaf, index as u64, 133, &latest.proof, roots.last().unwrap()).unwrap();
        for (size, root) in sizes.iter().zip(&roots).filter(|(size, _)| **size > index as u64) {
            let p = log_store::inclusion_proof(&db, id, Some(*size)).await.unwrap();
            assert_eq!((p.leaf_index, p.tree_size), (index as u64, *size));
            verify_inclusion(&leaf, index as u64, *size, &p.proof, root)
                .unwrap_or_else(|e| panic!("leaf {index} in tree {size}: {e}"));
        }
    }

    let unknown = hash_id(10_000);
    let err = log_store::inclusion_proof(&db, &unknown, None).await.unwrap_err();
    assert!(matches!(&err, LogError::NotFound(id) if *id == unknown));
    assert_eq!(CoreError::from(err).code(), "not_found");
    let err = log_store::inclusion_proof(&db, "urn:uuid:42", None).await.unwrap_err();
    assert!(matches!(err, LogError::InvalidHashId(_)));
    assert_eq!(CoreError::from(err).code(), "invalid_hash_id");
    assert!(matches!(
        log_store::inclusion_proof(&db, &ids[0], Some(134)).await,
        Err(LogError::BeyondTree { requested: 134, size: 133 })
    ));
    assert!(matches!(
        log_store::inclusion_proof(&db, &ids[100], Some(100)).await,
        Err(LogError::Proof(ProofError::IndexOutOfRange { index: 100, size: 100 }))
    ));
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn consistency_proofs_verify(db) {
    let ids: Vec<String> = (0..130).map(hash_id).collect();
    let hashes = leaves(&ids);
    for chunk in ids.chunks(37) {
        append_all(&db, chunk).await;
    }
    let root = |k: u64| root_of_leaves(&hashes[..k as usize]);
    for size2 in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 64, 65, 100, 127, 128, 129, 130] {
        for size1 in 1..=size2 {
            let proof = log_store::consistency_proof(&db, size1, size2).await.unwrap();
            verify_consistency(size1, size2, &proof, &root(size1), &root(size2))
                .unwrap_or_else(|e| panic!("{size1} -> {size2}: {e}"));
        }
    }
    assert!(matches!(
        log_store::consistency_proof(&db, 0, 5).await,
        Err(LogError::Proof(ProofError::EmptyOldTree))
    ));
    assert!(matches!(
        log_store::consistency_proof(&db, 6, 5).await,
        Err(LogError::Proof(ProofError::SizesOutOfOrder { size1: 6, size2: 5 }))
    ));
    assert!(matches!(
        log_store::consistency_proof(&db, 1, 131).await,
        Err(LogError::BeyondTree { requested: 131, size: 130 })
    ));
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn appending_a_hash_id_again_keeps_its_index(db) {
    let [a, b, c, d] = [1, 2, 3, 4].map(hash_id);
    let mut tx = db.begin().await.unwrap();
    assert_eq!(log_store::append(&mut tx, &a).await.unwrap(), 0);
    assert_eq!(log_store::append(&mut tx, &b).await.unwrap(), 1);
    assert_eq!(log_store::append(&mut tx, &a).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(log_store::size(&db).await.unwrap(), 2);

    let indexes = append_all(&db, &[c.clone(), a.clone(), c.clone(), d.clone()]).await;
    assert_eq!(indexes, [2, 0, 2, 3]);
    assert_eq!(append_all(&db, &[b.clone(), d.clone()]).await, [1, 3]);
    assert_eq!(log_store::size(&db).await.unwrap(), 4);
    assert_eq!(count(&db, "trace_log_leaves").await, 4);
    assert_eq!(
        log_store::root(&db).await.unwrap(),
        root_of_leaves(&leaves(&[a, b, c, d]))
    );

    let mut tx = db.begin().await.unwrap();
    let bad = hash_id(5).to_uppercase();
    assert!(matches!(
        log_store::append(&mut tx, &bad).await,
        Err(LogError::InvalidHashId(id)) if id == bad
    ));
    assert_eq!(log_store::append_batch::<&str>(&mut tx, &[]).await.unwrap(), Vec::<u64>::new());
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn a_rolled_back_append_leaves_no_trace(db) {
    let ids: Vec<String> = (0..40).map(hash_id).collect();
    append_all(&db, &ids[..5]).await;
    let root = log_store::root(&db).await.unwrap();
    let nodes = count(&db, "trace_log_nodes").await;

    let mut tx = db.begin().await.unwrap();
    log_store::append_batch(&mut tx, &ids[5..30]).await.unwrap();
    log_store::append(&mut tx, &ids[30]).await.unwrap();
    drop(tx);

    assert_eq!(log_store::size(&db).await.unwrap(), 5);
    assert_eq!(log_store::root(&db).await.unwrap(), root);
    assert_eq!(count(&db, "trace_log_leaves").await, 5);
    assert_eq!(count(&db, "trace_log_nodes").await, nodes);
    assert!(matches!(
        log_store::inclusion_proof(&db, &ids[5], None).await,
        Err(LogError::NotFound(_))
    ));

    // The next append takes the index the rolled-back one had.
    let mut tx = db.begin().await.unwrap();
    assert_eq!(log_store::append(&mut tx, &ids[30]).await.unwrap(), 5);
    tx.commit().await.unwrap();
    assert!(log_store::audit_log_integrity(&db, &signer().verifier()).await.unwrap().is_intact());
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn checkpoints_are_signed_roots_of_grown_trees(db) {
    let signer = signer();
    let verifier = signer.verifier();
    assert_eq!(log_store::publish_checkpoint(&db, &signer, ORIGIN).await.unwrap(), None);
    assert_eq!(log_store::latest_checkpoint(&db).await.unwrap(), None);

    let ids: Vec<String> = (0..17).map(hash_id).collect();
    append_all(&db, &ids[..10]).await;
    let first = log_store::publish_checkpoint(&db, &signer, ORIGIN).await.unwrap().unwrap();
    assert_eq!(first.tree_size, 10);
    assert_eq!(first.root, log_store::root_at(&db, 10).await.unwrap());
    let opened = open_checkpoint(&first.note, &verifier).unwrap();
    assert_eq!((opened.origin(), opened.size(), opened.root()), (ORIGIN, 10, &first.root));
    assert_eq!(log_store::publish_checkpoint(&db, &signer, ORIGIN).await.unwrap(), None);
    assert_eq!(log_store::latest_checkpoint(&db).await.unwrap().as_ref(), Some(&first));
    assert_eq!(log_store::checkpoint_at(&db, 10).await.unwrap().as_ref(), Some(&first));
    assert_eq!(log_store::checkpoint_at(&db, 9).await.unwrap(), None);
    assert_eq!(log_store::checkpoint_at(&db, u64::MAX).await.unwrap(), None);

    append_all(&db, &ids[10..]).await;
    assert!(matches!(
        log_store::publish_checkpoint(&db, &signer, "bad\norigin").await,
        Err(LogError::Checkpoint(_))
    ));
    let second = log_store::publish_checkpoint(&db, &signer, ORIGIN).await.unwrap().unwrap();
    assert_eq!(second.tree_size, 17);
    assert_eq!(log_store::latest_checkpoint(&db).await.unwrap().as_ref(), Some(&second));
    let a = open_checkpoint(&first.note, &verifier).unwrap();
    let b = open_checkpoint(&second.note, &verifier).unwrap();
    let proof = log_store::consistency_proof(&db, a.size(), b.size()).await.unwrap();
    verify_consistency(a.size(), b.size(), &proof, a.root(), b.root()).unwrap();

    let report = log_store::audit_log_integrity(&db, &verifier).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.checkpoints_checked, 2);
    let stranger = Signer::from_seed("someone.else", [9; 32]).unwrap().verifier();
    let report = log_store::audit_log_integrity(&db, &stranger).await.unwrap();
    assert_eq!(report.mismatches.len(), 2);
    assert!(matches!(
        &report.mismatches[0],
        Mismatch::Checkpoint { tree_size: 10, problem: CheckpointProblem::Signature(_) }
    ));
});

/// 20 leaves (nodes: 10 + 5 + 2 + 1) and a checkpoint of them, intact.
async fn tamper_fixture(db: &Db) -> Vec<String> {
    let ids: Vec<String> = (0..20).map(hash_id).collect();
    append_all(db, &ids).await;
    log_store::publish_checkpoint(db, &signer(), ORIGIN)
        .await
        .unwrap()
        .unwrap();
    let report = log_store::audit_log_integrity(db, &signer().verifier()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.leaves, report.nodes_checked, report.checkpoints_checked),
        (20, 18, 1)
    );
    ids
}

async fn mismatches(db: &Db) -> Vec<Mismatch> {
    let report = log_store::audit_log_integrity(db, &signer().verifier()).await.unwrap();
    assert_eq!(report.unlisted, 0);
    report.mismatches
}

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn a_changed_hash_id_is_detected(db) {
    let ids = tamper_fixture(&db).await;
    let forged = hash_id(999);
    db.execute_raw(&format!("UPDATE trace_log_leaves SET hash_id = '{forged}' WHERE leaf_index = 5"))
        .await
        .unwrap();
    let found = mismatches(&db).await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0],
        Mismatch::Leaf {
            leaf_index: 5,
            hash_id: forged.clone(),
            stored: hex::encode(leaf_hash(ids[5].as_bytes())),
            computed: leaf_hash(forged.as_bytes()),
        }
    );
    // The signed checkpoint no longer matches the events.
    assert!(matches!(
        found[1],
        Mismatch::Checkpoint { tree_size: 20, problem: CheckpointProblem::RootMismatch { .. } }
    ));
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn a_changed_leaf_hash_is_detected(db) {
    let ids = tamper_fixture(&db).await;
    let forged = hex::encode([0xab; 32]);
    db.execute_raw(&format!("UPDATE trace_log_leaves SET leaf_hash = '{forged}' WHERE leaf_index = 6"))
        .await
        .unwrap();
    assert_eq!(
        mismatches(&db).await,
        [Mismatch::Leaf {
            leaf_index: 6,
            hash_id: ids[6].clone(),
            stored: forged,
            computed: leaf_hash(ids[6].as_bytes()),
        }]
    );
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn a_changed_node_is_detected(db) {
    let ids = tamper_fixture(&db).await;
    db.execute_raw(&format!(
        "UPDATE trace_log_nodes SET hash = '{}' WHERE level = 2 AND idx = 1",
        hex::encode([0xcd; 32])
    ))
    .await
    .unwrap();
    // Node (2, 1) covers leaves 4..8.
    let h = leaves(&ids);
    let computed = node_hash(&node_hash(&h[4], &h[5]), &node_hash(&h[6], &h[7]));
    assert_eq!(
        mismatches(&db).await,
        [Mismatch::Node { level: 2, index: 1, stored: Some(hex::encode([0xcd; 32])), computed }]
    );

    db.execute_raw("DELETE FROM trace_log_nodes WHERE level = 2 AND idx = 1").await.unwrap();
    db.execute_raw(&format!(
        "INSERT INTO trace_log_nodes (level, idx, hash) VALUES (3, 2, '{}')",
        hex::encode([1; 32])
    ))
    .await
    .unwrap();
    assert_eq!(
        mismatches(&db).await,
        [
            Mismatch::Node { level: 2, index: 1, stored: None, computed },
            Mismatch::UnexpectedNode { level: 3, index: 2 },
        ]
    );
    // A proof that needs the missing node is refused, not made up.
    assert!(matches!(
        log_store::inclusion_proof(&db, &ids[0], None).await,
        Err(LogError::Corrupt(_))
    ));
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn a_changed_checkpoint_is_detected(db) {
    tamper_fixture(&db).await;
    let note = log_store::latest_checkpoint(&db).await.unwrap().unwrap().note;
    let forged = note.replacen(ORIGIN, "shuxiang.example/forged", 1);
    db.execute_raw(&format!(
        "UPDATE trace_checkpoints SET note = '{}' WHERE tree_size = 20",
        forged.replace('\'', "''")
    ))
    .await
    .unwrap();
    let found = mismatches(&db).await;
    assert!(
        matches!(
            found.as_slice(),
            [Mismatch::Checkpoint { tree_size: 20, problem: CheckpointProblem::Signature(_) }]
        ),
        "{found:?}"
    );

    db.execute_raw(&format!(
        "UPDATE trace_checkpoints SET note = '{}', root_hash = '{}' WHERE tree_size = 20",
        note.replace('\'', "''"),
        hex::encode([2; 32])
    ))
    .await
    .unwrap();
    let found = mismatches(&db).await;
    assert!(
        matches!(
            found.as_slice(),
            [Mismatch::Checkpoint { tree_size: 20, problem: CheckpointProblem::RootMismatch { .. } }]
        ),
        "{found:?}"
    );
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn a_deleted_leaf_is_detected(db) {
    tamper_fixture(&db).await;
    db.execute_raw("DELETE FROM trace_log_leaves WHERE leaf_index = 3").await.unwrap();
    let found = mismatches(&db).await;
    assert_eq!(found[0], Mismatch::LeafIndex { expected: 3, found: 4 });
    assert!(found.contains(&Mismatch::Head { stored_size: 20, leaves: 3, frontier_matches: false }));
    assert!(found.contains(&Mismatch::Checkpoint {
        tree_size: 20,
        problem: CheckpointProblem::BeyondLog { leaves: 3 },
    }));
});

shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn concurrent_appends_get_distinct_gapless_indexes(db) {
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 25;
    let shared = hash_id(1_000_000);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let db = db.clone();
        let shared = shared.clone();
        tasks.spawn(async move {
            let mut got = Vec::new();
            for i in 0..PER_TASK {
                let id = hash_id(task * PER_TASK + i);
                let mut tx = db.begin().await.unwrap();
                let index = log_store::append(&mut tx, &id).await.unwrap();
                // Every task also logs one common event, racing the others.
                if i == task {
                    log_store::append(&mut tx, &shared).await.unwrap();
                }
                tx.commit().await.unwrap();
                got.push((index, id));
            }
            got
        });
    }
    let mut appended = Vec::new();
    while let Some(got) = tasks.join_next().await {
        appended.extend(got.unwrap());
    }
    let n = TASKS * PER_TASK + 1;
    assert_eq!(log_store::size(&db).await.unwrap(), n);
    let shared_proof = log_store::inclusion_proof(&db, &shared, None).await.unwrap();
    appended.push((shared_proof.leaf_index, shared));
    appended.sort();
    let indexes: Vec<u64> = appended.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, (0..n).collect::<Vec<_>>());
    assert_eq!(appended.iter().map(|(_, id)| id).collect::<HashSet<_>>().len() as u64, n);

    let ids: Vec<String> = appended.into_iter().map(|(_, id)| id).collect();
    assert_eq!(log_store::root(&db).await.unwrap(), root_of_leaves(&leaves(&ids)));
    assert!(log_store::audit_log_integrity(&db, &signer().verifier()).await.unwrap().is_intact());
});

// Proofs fetched for many events at once (one leaf query, one node query)
// equal those made one event at a time and those of the in-memory tree, at
// random sizes and indexes; unknown events and events beyond the size fail
// in their own slot without disturbing the others.
shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn batched_proofs_equal_single_ones(db) {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use shuxiang_trace::merkle::MemoryTree;

    let mut rng = StdRng::seed_from_u64(6962);
    let ids: Vec<String> = (0..700).map(hash_id).collect();
    let mut tree = MemoryTree::new();
    let mut next = 0;
    while next < ids.len() {
        let batch = rng.random_range(1..=90).min(ids.len() - next);
        append_all(&db, &ids[next..next + batch]).await;
        for id in &ids[next..next + batch] {
            tree.append(leaf_hash(id.as_bytes()));
        }
        next += batch;
    }
    let unknown = hash_id(1_000_000);
    for round in 0..40 {
        let size = if round == 0 { 700 } else { rng.random_range(1..=700) };
        let mut asked: Vec<&str> = (0..rng.random_range(1..=12))
            .map(|_| ids[rng.random_range(0..700)].as_str())
            .collect();
        asked.push(&unknown);
        // The same event twice, as two links of a page may name it.
        asked.push(asked[0]);
        let batched = log_store::inclusion_proofs(&db, &asked, Some(size)).await.unwrap();
        assert_eq!(batched.len(), asked.len());
        for (id, got) in asked.iter().zip(&batched) {
            let single = log_store::inclusion_proof(&db, id, Some(size)).await;
            let Some(index) = ids.iter().position(|known| known == id) else {
                assert!(matches!(got, Err(LogError::NotFound(missing)) if missing == id));
                assert!(matches!(single, Err(LogError::NotFound(_))));
                continue;
            };
            let index = index as u64;
            if index >= size {
                assert!(
                    matches!(got, Err(LogError::Proof(ProofError::IndexOutOfRange { index: i, size: s })) if *i == index && *s == size),
                    "{got:?}"
                );
                continue;
            }
            let got = got.as_ref().unwrap();
            assert_eq!((got.leaf_index, got.tree_size), (index, size));
            assert_eq!(got.proof, tree.inclusion_proof(index, size).unwrap(), "leaf {index} in tree {size}");
            assert_eq!(*got, single.unwrap());
            verify_inclusion(&leaf_hash(id.as_bytes()), index, size, &got.proof, &tree.root_at(size).unwrap())
                .unwrap();
        }
    }
    // The current size is the default, and a size beyond the log fails the
    // whole batch as it fails a single proof.
    let latest = log_store::inclusion_proofs(&db, &[&ids[3], &ids[699]], None).await.unwrap();
    for (index, p) in [3u64, 699].into_iter().zip(latest) {
        assert_eq!(p.unwrap().proof, tree.inclusion_proof(index, 700).unwrap());
    }
    assert!(matches!(
        log_store::inclusion_proofs(&db, &[&ids[3], &unknown], Some(701)).await,
        Err(LogError::BeyondTree { requested: 701, size: 700 })
    ));
    assert!(matches!(
        log_store::inclusion_proofs(&db, &[ids[3].as_str(), "urn:uuid:42"], None).await,
        Err(LogError::InvalidHashId(_))
    ));
    assert!(log_store::inclusion_proofs::<&str>(&db, &[], Some(5)).await.unwrap().is_empty());
});

// More events than one proof statement takes (5,000) are proven chunk by
// chunk; without a size asked for, every chunk proves at the size the first
// one read, so all proofs of one call check against one root.
shuxiang_core::db_test!([&TRACE_MIGRATIONS] async fn proofs_across_statements_share_one_tree(db) {
    let ids: Vec<String> = (0..301).map(hash_id).collect();
    append_all(&db, &ids).await;
    let asked: Vec<&str> = (0..5_003).map(|n| ids[n * 7 % ids.len()].as_str()).collect();
    let root = log_store::root_at(&db, 301).await.unwrap();
    for size in [None, Some(301), Some(150)] {
        let proofs = log_store::inclusion_proofs(&db, &asked, size).await.unwrap();
        assert_eq!(proofs.len(), asked.len());
        let want = size.unwrap_or(301);
        let root = if want == 301 { root } else { log_store::root_at(&db, want).await.unwrap() };
        // The last chunk's events are the ones a second statement proved.
        for (n, (id, proof)) in asked.iter().zip(&proofs).enumerate().rev().step_by(97) {
            let index = (n * 7 % ids.len()) as u64;
            if index >= want {
                assert!(matches!(proof, Err(LogError::Proof(ProofError::IndexOutOfRange { .. }))), "{proof:?}");
                continue;
            }
            let proof = proof.as_ref().unwrap();
            assert_eq!((proof.leaf_index, proof.tree_size), (index, want));
            verify_inclusion(&leaf_hash(id.as_bytes()), index, want, &proof.proof, &root)
                .unwrap_or_else(|e| panic!("event #{n}, leaf {index} in tree {want}: {e}"));
        }
    }
});
