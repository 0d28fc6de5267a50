//! The public tamper-evidence API over a real server on each backend: what
//! it serves verifies with the library alone, and its errors carry the
//! documented statuses and codes.

use std::sync::Arc;

use reqwest::Response;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shuxiang_core::Db;
use shuxiang_core::db::Backend;
use shuxiang_core::testing::TestDb;
use shuxiang_trace::api::InclusionProofBody;
use shuxiang_trace::checkpoint::{Signer, Verifier, open_checkpoint};
use shuxiang_trace::keys::TraceLogKeys;
use shuxiang_trace::log_store;
use shuxiang_trace::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use tokio::sync::oneshot;

const ORIGIN: &str = "shuxiang.test/trace";

fn hash_id(n: u64) -> String {
    format!(
        "ni:///sha-256;{}?ver=CBV2.0",
        hex::encode(Sha256::digest(n.to_le_bytes()))
    )
}

fn unhex(list: &Value) -> Vec<Vec<u8>> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
        .collect()
}

async fn append(db: &Db, ids: impl IntoIterator<Item = u64>) {
    let mut tx = db.begin().await.unwrap();
    for n in ids {
        log_store::append(&mut tx, &hash_id(n)).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn assert_error(r: Response, status: u16, code: &str) {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], code, "{v}");
}

/// Runs `scenario` against a server over a fresh database of `backend`;
/// `false` when that backend is not configured.
async fn with_server(backend: Backend) -> bool {
    let Some(t) = TestDb::new(backend, &shuxiang_web::all_migrations()).await else {
        eprintln!("PostgreSQL leg skipped: {} is not set", shuxiang_core::testing::PG_ENV);
        return false;
    };
    let signer = Arc::new(Signer::generate(ORIGIN).unwrap());
    let keys = TraceLogKeys {
        signer: signer.clone(),
        origin: ORIGIN.into(),
    };
    let telemetry = shuxiang_telemetry::ingest::TelemetryState::new(t.db.clone(), Default::default());
    let state = shuxiang_web::new_state(t.db.clone(), shuxiang_web::WebConfig::default(), keys, telemetry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(shuxiang_web::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    scenario(&t.db, &signer, &base).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    t.finish().await;
    true
}

async fn scenario(db: &Db, signer: &Signer, base: &str) {
    let get = |path: String| async move { reqwest::get(format!("{base}{path}")).await.unwrap() };
    let proof_of = |n: u64| format!("/api/v1/trace/proof?event={}", percent(&hash_id(n)));

    // Before any checkpoint.
    assert_error(get("/api/v1/trace/checkpoint".into()).await, 404, "not_found").await;
    append(db, 0..5).await;
    assert_error(get(proof_of(1)).await, 404, "not_yet_checkpointed").await;

    let key = get("/api/v1/trace/public-key".into()).await;
    assert_eq!(key.headers()["content-type"], "text/plain; charset=utf-8");
    let verifier = Verifier::from_verifier_key_str(&key.text().await.unwrap()).unwrap();
    assert_eq!(verifier, signer.verifier());

    let first = log_store::publish_checkpoint(db, signer, ORIGIN)
        .await
        .unwrap()
        .unwrap();
    append(db, 5..12).await;
    let second = log_store::publish_checkpoint(db, signer, ORIGIN)
        .await
        .unwrap()
        .unwrap();
    append(db, 12..13).await;

    let latest = get("/api/v1/trace/checkpoint".into()).await;
    assert_eq!(latest.headers()["content-type"], "text/plain; charset=utf-8");
    let cp = open_checkpoint(&latest.text().await.unwrap(), &verifier).unwrap();
    assert_eq!((cp.origin(), cp.size()), (ORIGIN, 12));

    // A proof is for the latest checkpoint, and verifies against it alone.
    let r = get(proof_of(3)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["leaf_index"].as_u64(), body["tree_size"].as_u64()),
        (Some(3), Some(12))
    );
    let cp = open_checkpoint(body["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    verify_inclusion(
        &leaf_hash(hash_id(3).as_bytes()),
        3,
        cp.size(),
        &unhex(&body["proof"]),
        cp.root(),
    )
    .unwrap();
    let typed: InclusionProofBody = serde_json::from_value(body).unwrap();
    typed.verify(&hash_id(3), &verifier).unwrap();
    assert!(
        typed.verify(&hash_id(4), &verifier).is_err(),
        "another event must not verify"
    );

    // Or for the checkpoint of the size asked for.
    let body: Value = get(format!("{}&size=5", proof_of(3))).await.json().await.unwrap();
    let cp = open_checkpoint(body["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!((cp.size(), &cp.root()[..]), (5, &first.root[..]));
    verify_inclusion(
        &leaf_hash(hash_id(3).as_bytes()),
        3,
        5,
        &unhex(&body["proof"]),
        cp.root(),
    )
    .unwrap();
    assert_error(
        get(format!("{}&size=5", proof_of(7))).await,
        404,
        "not_yet_checkpointed",
    )
    .await;
    assert_error(get(format!("{}&size=6", proof_of(3))).await, 404, "not_found").await;

    // Consistency between the two checkpoints.
    let r = get("/api/v1/trace/consistency?from=5&to=12".into()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let old = open_checkpoint(body["from_checkpoint"].as_str().unwrap(), &verifier).unwrap();
    let new = open_checkpoint(body["to_checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!((old.size(), new.size(), &new.root()[..]), (5, 12, &second.root[..]));
    verify_consistency(5, 12, &unhex(&body["proof"]), old.root(), new.root()).unwrap();
    let same: Value = get("/api/v1/trace/consistency?from=12&to=12".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(same["proof"], serde_json::json!([]));

    // Errors.
    assert_error(
        get("/api/v1/trace/proof?event=not-a-hash-id".into()).await,
        400,
        "invalid_hash_id",
    )
    .await;
    assert_error(get(proof_of(99)).await, 404, "not_found").await;
    assert_error(get(proof_of(12)).await, 404, "not_yet_checkpointed").await;
    assert_error(get("/api/v1/trace/proof".into()).await, 400, "invalid_query").await;
    assert_error(
        get("/api/v1/trace/consistency?from=12&to=5".into()).await,
        422,
        "sizes_out_of_order",
    )
    .await;
    assert_error(
        get("/api/v1/trace/consistency?from=5&to=13".into()).await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        get("/api/v1/trace/consistency?from=4&to=12".into()).await,
        404,
        "not_found",
    )
    .await;
}

/// Query-string escaping of a hash ID (`;`, `/`, `?`, `:` and `=`).
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_api_on_sqlite() {
    assert!(with_server(Backend::Sqlite).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_api_on_postgres() {
    with_server(Backend::Postgres).await;
}
