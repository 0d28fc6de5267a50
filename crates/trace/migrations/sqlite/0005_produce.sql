-- 农产品生产批次 produce batches and the trace codes printed on their labels.
-- What happened to a batch is recorded as EPCIS events (epcis_events, in the
-- tamper-evident log); these tables find a batch's events by its codes.
CREATE TABLE produce_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The batch's own trace code (also in trace_codes).
    code TEXT NOT NULL UNIQUE,
    village TEXT NOT NULL,
    crop TEXT NOT NULL,
    producer_name TEXT NOT NULL,
    owner_id INTEGER NOT NULL,
    lon REAL,
    lat REAL,
    harvested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL
);
CREATE INDEX produce_batches_village ON produce_batches (village, id);
CREATE INDEX produce_batches_owner ON produce_batches (owner_id, id);

CREATE TABLE trace_codes (
    code TEXT PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES produce_batches (id),
    kind TEXT NOT NULL CHECK (kind IN ('batch', 'package'))
) WITHOUT ROWID;
CREATE INDEX trace_codes_batch ON trace_codes (batch_id, kind);

-- The batch's events in the order they were recorded.
CREATE TABLE produce_batch_events (
    batch_id INTEGER NOT NULL REFERENCES produce_batches (id),
    seq INTEGER NOT NULL,
    hash_id TEXT NOT NULL,
    PRIMARY KEY (batch_id, seq)
) WITHOUT ROWID;
