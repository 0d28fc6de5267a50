//! The `shuxiang` binary end to end: first start, serving, CLI imports and
//! their error messages, the national import on each backend, and offline
//! verification of trace log proofs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

mod dispatch;
mod telemetry;

const BIN: &str = env!("CARGO_BIN_EXE_shuxiang");

fn data_dir(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// A running `shuxiang serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
    /// `host:port` of its embedded MQTT endpoint.
    mqtt: String,
    printed: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, admin_password: Option<&str>) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--mqtt",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    cmd.env_remove("SHUXIANG_ADMIN_PASSWORD")
        .env_remove("SHUXIANG_DATABASE");
    if let Some(p) = admin_password {
        cmd.env("SHUXIANG_ADMIN_PASSWORD", p);
    }
    let mut child = cmd.spawn().expect("spawn shuxiang serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut mqtt = String::new();
    let base = loop {
        let line = lines.next().expect("serve exited before listening").unwrap();
        if let Some(rest) = line.strip_prefix("Shuxiang listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        if let Some(rest) = line.strip_prefix("MQTT devices: mqtt://") {
            mqtt = rest.trim().to_string();
        }
        printed.push(line);
    };
    Server {
        child,
        base,
        mqtt,
        printed,
    }
}

async fn login(base: &str, user: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn first_start_creates_an_admin_and_serves_jiangxi() {
    let dir = tempfile::tempdir().unwrap();
    let (base, password) = {
        let s = serve(dir.path(), None);
        let line = s
            .printed
            .iter()
            .find(|l| l.contains("password"))
            .expect("the generated password is printed once");
        let password = line.rsplit(' ').next().unwrap().to_string();
        (s.base.clone(), password)
    };
    // The first server is gone; a second start on the same data keeps the admin and prints no password.
    let s = serve(dir.path(), None);
    assert!(s.printed.iter().all(|l| !l.contains("password")), "{:?}", s.printed);
    assert_ne!(base, "");
    let r = login(&s.base, "admin", &password).await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let jx: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/regions/36", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jx["counts"],
        json!({"city": 11, "county": 100, "township": 1767, "village": 22080})
    );
    assert!(dir.path().join("shuxiang.db").exists());
    // The trace log's signing key was created on first start, for the owner only.
    let key = dir.path().join("trace-signing.key");
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("PRIVATE+KEY+shuxiang.local/trace+")
    );
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions()) & 0o777,
        0o600
    );
    let ready = reqwest::get(format!("{}/readyz", s.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn admin_password_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), Some("from the environment"));
    assert!(s.printed.iter().all(|l| !l.contains("password")));
    assert_eq!(login(&s.base, "admin", "from the environment").await.status(), 200);
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--mqtt", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("SHUXIANG_ADMIN_PASSWORD", "some long password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn import_errors_name_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("provinces.csv"), "code,name\n11,北京市\n").unwrap();
    std::fs::write(
        files.path().join("cities.csv"),
        "code,name,provinceCode\n1101,市辖区,11\n1102,,11\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["import", "regions"])
        .arg(files.path())
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cities.csv line 3 field name: the name is empty"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
}

#[test]
fn users_and_tokens_from_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("SHUXIANG_NEW_PASSWORD", "console password 1")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Scopes must be known regions, so load the province first.
    let (ok, out) = run(&["import", "regions", data_dir("data/regions/jiangxi").to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("23959 regions read, 23959 written"), "{out}");
    let (ok, out) = run(&[
        "user",
        "create",
        "--username",
        "xinxiyuan",
        "--display-name",
        "信息员",
        "--role",
        "village_staff:360102002001",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&[
        "user",
        "create",
        "--username",
        "bad",
        "--display-name",
        "x",
        "--role",
        "official",
    ]);
    assert!(!ok && out.contains("ROLE:SCOPE"), "{out}");
    let (ok, out) = run(&["token", "create", "--user", "xinxiyuan", "--name", "sync"]);
    assert!(ok && out.contains("sxt_"), "{out}");
    let (ok, out) = run(&["user", "list"]);
    assert!(
        ok && out.contains("xinxiyuan") && out.contains("village_staff:360102002001"),
        "{out}"
    );
}

/// Imports all of China twice through the CLI and checks the counts and
/// that the second run writes nothing.
fn national_import(target: &[&str]) {
    let china = data_dir("data/regions/china");
    let run = || {
        let out = Command::new(BIN)
            .args(["import", "regions"])
            .arg(&china)
            .args(target)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let total = 31 + 342 + 2978 + 41352 + 620573;
    assert!(run().contains(&format!("{total} regions read, {total} written")));
    assert!(run().contains(&format!("{total} regions read, 0 written ({total} unchanged)")));
}

#[test]
fn national_import_on_sqlite_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    national_import(&["--data-dir", dir.path().to_str().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_import_on_postgres_is_idempotent() {
    let Some(url) = std::env::var("SHUXIANG_TEST_PG").ok().filter(|u| !u.is_empty()) else {
        eprintln!("PostgreSQL leg skipped: SHUXIANG_TEST_PG is not set");
        return;
    };
    use sqlx::Connection;
    let name = format!("sx_national_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut db_url = url::Url::parse(&url).unwrap();
    db_url.set_path(&format!("/{name}"));
    let target = db_url.to_string();
    tokio::task::spawn_blocking(move || national_import(&["--database", &target]))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[test]
fn trace_verify_checks_a_proof_offline() {
    use shuxiang_trace::checkpoint::{Checkpoint, Signer};
    use shuxiang_trace::merkle::{MemoryTree, leaf_hash};

    let event = |n: u64| format!("ni:///sha-256;{n:064x}?ver=CBV2.0");
    let signer = Signer::generate("shuxiang.test/trace").unwrap();
    let mut tree = MemoryTree::new();
    for n in 0..6 {
        tree.append(leaf_hash(event(n).as_bytes()));
    }
    let proof: Vec<String> = tree.inclusion_proof(2, 6).unwrap().iter().map(hex::encode).collect();
    let note = signer.sign_checkpoint(&Checkpoint::new("shuxiang.test/trace", 6, tree.root()).unwrap());
    let body = json!({"leaf_index": 2, "tree_size": 6, "proof": proof, "checkpoint": note});

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, signer.verifier_key_string() + "\n").unwrap();
    let verify = |body: &Value, key_args: &[&str]| {
        let path = dir.path().join("proof.json");
        std::fs::write(&path, body.to_string()).unwrap();
        // No --data-dir: the command must not touch a database.
        let out = Command::new(BIN)
            .args(["trace", "verify", "--event", &event(2), "--proof"])
            .arg(&path)
            .args(key_args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };

    let key = signer.verifier_key_string();
    let (code, out) = verify(&body, &["--key", &key]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("verified: leaf 2 in tree of size 6, checkpoint shuxiang.test/trace"),
        "{out}"
    );
    let (code, out) = verify(&body, &["--key-file", key_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        !dir.path().join("shuxiang-data").exists(),
        "trace verify must not open a database"
    );

    let mut tampered = body.clone();
    tampered["proof"][1] = json!(hex::encode([0u8; 32]));
    let (code, out) = verify(&tampered, &["--key", &key]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("not verified") && out.contains("different root hash"),
        "{out}"
    );

    let other = Signer::generate("shuxiang.test/trace").unwrap().verifier_key_string();
    let (code, out) = verify(&body, &["--key", &other]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not open with the given key"), "{out}");

    let mut resized = body.clone();
    resized["tree_size"] = json!(7);
    let (code, out) = verify(&resized, &["--key", &key]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("tree size 7, but the checkpoint is of size 6"), "{out}");
}
