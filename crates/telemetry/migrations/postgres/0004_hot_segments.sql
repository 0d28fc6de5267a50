-- The hot tier holds write batches, not points (ADR 0006, revised): one row
-- per device per write, its points packed per metric with the chunk codec.
-- A point costs a few bytes of a row instead of a row, which is what lets
-- batch ingest run past the engine's row-insert rate. `seq` orders writes:
-- on equal (device, metric, timestamp) the later segment wins. Points still
-- in `telemetry_points` are moved into segments by the next maintenance run.
CREATE TABLE telemetry_segments (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id BIGINT NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    data BYTEA NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX telemetry_segments_device ON telemetry_segments (device_id, seq);
