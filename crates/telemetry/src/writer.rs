//! 批量提交 group commit of telemetry: many concurrent callers (HTTP requests,
//! MQTT messages) hand their points to a [`PointWriter`], whose workers take
//! everything queued, append it in one transaction and answer every caller
//! once that transaction has committed. A commit (an fsync on SQLite) is the
//! dominant cost of a small write, so sharing it is what lets QoS 1
//! messages be acknowledged after commit at a high rate.
//!
//! A request whose points are invalid fails on its own before it joins a
//! batch; if a shared transaction fails, each of its requests is retried in a
//! transaction of its own so one caller's problem never fails another's.

use std::sync::Arc;

use shuxiang_core::CoreError;
use shuxiang_core::db::{Backend, Db};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{NewPoint, append_parts, validate_point};

/// How a [`PointWriter`] batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// A worker stops gathering requests once it holds this many points (a
    /// single larger request still goes in whole).
    pub max_batch_points: usize,
    /// Transactions in flight at once. SQLite has one writer, so more than 1
    /// only queues; PostgreSQL overlaps one batch's commit with the next.
    pub workers: usize,
    /// Requests waiting before `write` itself waits (back-pressure).
    pub queue: usize,
}

impl WriterConfig {
    /// Defaults suited to the backend.
    pub fn for_backend(backend: Backend) -> Self {
        Self {
            max_batch_points: 50_000,
            workers: match backend {
                Backend::Sqlite => 1,
                Backend::Postgres => 4,
            },
            queue: 10_000,
        }
    }
}

struct Request {
    points: Vec<NewPoint>,
    done: oneshot::Sender<Result<(), CoreError>>,
}

/// A handle to the group-commit workers; cheap to clone. The workers stop
/// when the last handle is dropped.
#[derive(Clone)]
pub struct PointWriter {
    tx: mpsc::Sender<Request>,
}

impl PointWriter {
    /// Starts the workers on the current Tokio runtime.
    pub fn spawn(db: Db, config: WriterConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..config.workers.max(1) {
            tokio::spawn(worker(db.clone(), rx.clone(), config.max_batch_points.max(1)));
        }
        Self { tx }
    }

    /// Stores `points`; resolves only after the transaction holding them
    /// committed, or with the reason it did not.
    pub async fn write(&self, points: Vec<NewPoint>) -> Result<(), CoreError> {
        if points.is_empty() {
            return Ok(());
        }
        for (i, p) in points.iter().enumerate() {
            validate_point(i, p)?;
        }
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Request { points, done })
            .await
            .map_err(|_| CoreError::Internal("telemetry writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| CoreError::Internal("telemetry writer stopped before committing".into()))?
    }
}

async fn worker(db: Db, rx: Arc<Mutex<mpsc::Receiver<Request>>>, max_points: usize) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut total = first.points.len();
            let mut batch = vec![first];
            while total < max_points {
                match rx.try_recv() {
                    Ok(r) => {
                        total += r.points.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        write_batch(&db, batch).await;
    }
}

async fn write_batch(db: &Db, batch: Vec<Request>) {
    if batch.len() == 1 {
        let r = batch.into_iter().next().expect("one request");
        let result = commit(db, &[&r.points]).await;
        let _ = r.done.send(result);
        return;
    }
    let parts: Vec<&[NewPoint]> = batch.iter().map(|r| r.points.as_slice()).collect();
    match commit(db, &parts).await {
        Ok(()) => {
            for r in batch {
                let _ = r.done.send(Ok(()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = batch.len(), "telemetry group commit failed; retrying requests one by one");
            for r in batch {
                let result = commit(db, &[&r.points]).await;
                let _ = r.done.send(result);
            }
        }
    }
}

async fn commit(db: &Db, parts: &[&[NewPoint]]) -> Result<(), CoreError> {
    let mut tx = db.begin().await?;
    append_parts(&mut tx, parts).await?;
    tx.commit().await
}
