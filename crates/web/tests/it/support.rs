//! A real Shuxiang server per test on 127.0.0.1:0, over a fresh database on
//! SQLite and (with SHUXIANG_TEST_PG) PostgreSQL, plus HTTP helpers.

use reqwest::{Client, Method, Response};
use serde_json::{Value, json};
use shuxiang_core::Db;
use shuxiang_core::auth;
use shuxiang_core::db::Backend;
use shuxiang_core::testing::TestDb;
use shuxiang_web::WebConfig;
use tokio::sync::oneshot;

pub const ADMIN_PASSWORD: &str = "admin password 1";
pub const USER_PASSWORD: &str = "a long secret phrase";

pub struct TestServer {
    pub base: String,
    db: Db,
    /// The trace log's signing key this node uses.
    pub trace_keys: shuxiang_trace::keys::TraceLogKeys,
    test_db: Option<TestDb>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// `None` for PostgreSQL when SHUXIANG_TEST_PG is not set.
    pub async fn start(backend: Backend) -> Option<Self> {
        let test_db = TestDb::new(backend, &shuxiang_web::all_migrations()).await?;
        let db = test_db.db.clone();
        auth::ensure_admin(&db, Some(ADMIN_PASSWORD))
            .await
            .expect("bootstrap admin");
        let mut server = Self::serve(db).await;
        server.test_db = Some(test_db);
        Some(server)
    }

    /// A second node over the same database, as in a scale-out deployment.
    pub async fn another_node(&self) -> Self {
        Self::serve(self.db.clone()).await
    }

    async fn serve(db: Db) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let signer = shuxiang_trace::checkpoint::Signer::generate("shuxiang.test/trace").expect("signing key");
        let keys = shuxiang_trace::keys::TraceLogKeys {
            signer: std::sync::Arc::new(signer),
            origin: "shuxiang.test/trace".into(),
        };
        let telemetry = shuxiang_telemetry::ingest::TelemetryState::new(db.clone(), Default::default());
        let state = shuxiang_web::new_state(db.clone(), WebConfig::default(), keys.clone(), telemetry);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            shuxiang_web::serve(listener, state, async move {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            base: format!("http://{addr}"),
            db,
            trace_keys: keys,
            test_db: None,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(t) = self.test_db.take() {
            t.finish().await;
        }
    }

    /// Signs a checkpoint of the trace log now, as the server's publisher
    /// would within seconds.
    pub async fn publish_checkpoint(&self) {
        shuxiang_trace::log_store::publish_checkpoint(&self.db, &self.trace_keys.signer, &self.trace_keys.origin)
            .await
            .expect("checkpoint published");
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs in over the API and returns the bearer token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = client()
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {username} failed");
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Creates a user with one role over one scope and returns a token for them.
    pub async fn user_with(&self, username: &str, role: &str, scope: &str) -> String {
        let admin = self.admin_token().await;
        let r = self
            .call(
                Method::POST,
                "/api/v1/users",
                Some(&admin),
                Some(json!({
                    "username": username, "password": USER_PASSWORD, "display_name": username,
                    "phone": "13912345678", "roles": [{"role": role, "scope": scope}]
                })),
            )
            .await;
        assert_eq!(r.status(), 201, "creating {username}: {}", r.text().await.unwrap());
        self.login(username, USER_PASSWORD).await
    }

    /// One API call with an optional bearer token and JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut req = client().request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// A call that must succeed with `status`; returns the JSON body.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let r = self.call(method.clone(), path, token, body).await;
        let got = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }
}

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Asserts the error format `{"error": code, "message": text}` and the status.
pub async fn assert_error(r: Response, status: u16, code: &str) {
    assert_eq!(r.status().as_u16(), status, "expected {status} {code}");
    let v: Value = r.json().await.expect("error bodies are JSON");
    assert_eq!(v["error"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

/// Runs a test body against a real server on each configured backend.
#[macro_export]
macro_rules! server_test {
    ($(#[$meta:meta])* async fn $name:ident($srv:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($srv: &$crate::support::TestServer) $body

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s = $crate::support::TestServer::start(shuxiang_core::db::Backend::Sqlite).await.unwrap();
                body(&s).await;
                s.stop().await;
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(s) = $crate::support::TestServer::start(shuxiang_core::db::Backend::Postgres).await else {
                    eprintln!("PostgreSQL leg skipped: {} is not set", shuxiang_core::testing::PG_ENV);
                    return;
                };
                body(&s).await;
                s.stop().await;
            }
        }
    };
}
