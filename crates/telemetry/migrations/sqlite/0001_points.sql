-- Telemetry time series (ADR 0006). Metric names map to small ids; recent
-- points land in a hot table; maintenance folds them into compressed
-- per-series hour chunks and, when raw data expires, into roll-up rows.
CREATE TABLE telemetry_metrics (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE telemetry_points (
    device_id INTEGER NOT NULL,
    metric_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (device_id, metric_id, ts_ms)
) WITHOUT ROWID;

CREATE TABLE telemetry_chunks (
    device_id INTEGER NOT NULL,
    metric_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    last REAL NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (device_id, metric_id, start_ms)
) WITHOUT ROWID;
CREATE INDEX telemetry_chunks_start ON telemetry_chunks (start_ms);

CREATE TABLE telemetry_rollups (
    device_id INTEGER NOT NULL,
    metric_id INTEGER NOT NULL,
    step INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    count INTEGER NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (device_id, metric_id, step, bucket_ms)
) WITHOUT ROWID;
CREATE INDEX telemetry_rollups_expiry ON telemetry_rollups (step, bucket_ms);
