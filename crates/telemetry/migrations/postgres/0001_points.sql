-- Telemetry time series (ADR 0006). Metric names map to small ids; recent
-- points land in a hot table; maintenance folds them into compressed
-- per-series hour chunks and, when raw data expires, into roll-up rows.
-- Keys lead with device_id so a distributed PostgreSQL can shard by it.
CREATE TABLE telemetry_metrics (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Rows are short-lived (deleted once compacted): vacuum early.
CREATE TABLE telemetry_points (
    device_id BIGINT NOT NULL,
    metric_id INTEGER NOT NULL,
    ts_ms BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, metric_id, ts_ms)
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

CREATE TABLE telemetry_chunks (
    device_id BIGINT NOT NULL,
    metric_id INTEGER NOT NULL,
    start_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    count BIGINT NOT NULL,
    min DOUBLE PRECISION NOT NULL,
    max DOUBLE PRECISION NOT NULL,
    sum DOUBLE PRECISION NOT NULL,
    last DOUBLE PRECISION NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (device_id, metric_id, start_ms)
);
-- The blob is already compressed; TOAST compression would only cost CPU.
ALTER TABLE telemetry_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX telemetry_chunks_start ON telemetry_chunks USING BRIN (start_ms);

CREATE TABLE telemetry_rollups (
    device_id BIGINT NOT NULL,
    metric_id INTEGER NOT NULL,
    step SMALLINT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    min DOUBLE PRECISION NOT NULL,
    max DOUBLE PRECISION NOT NULL,
    sum DOUBLE PRECISION NOT NULL,
    count BIGINT NOT NULL,
    last DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, metric_id, step, bucket_ms)
);
CREATE INDEX telemetry_rollups_expiry ON telemetry_rollups (step, bucket_ms);
