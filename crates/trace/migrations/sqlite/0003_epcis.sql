-- EPCIS 2.0 events as captured, with the fields the standard queries filter
-- on pulled out of the JSON. Times are milliseconds since the Unix epoch
-- (UTC), the precision of the event hash. `region` is the capturer's scope
-- region ('*' for a national scope), `captured_by` the capturing user:
-- together they decide who may read the event.
CREATE TABLE epcis_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    hash_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    action TEXT,
    event_time BIGINT NOT NULL,
    record_time BIGINT NOT NULL,
    biz_step TEXT,
    disposition TEXT,
    read_point TEXT,
    biz_location TEXT,
    body TEXT NOT NULL,
    captured_by BIGINT,
    region TEXT NOT NULL,
    capture_id TEXT
);
CREATE INDEX epcis_events_biz_step ON epcis_events (biz_step, id);
CREATE INDEX epcis_events_biz_location ON epcis_events (biz_location, id);
CREATE INDEX epcis_events_event_time ON epcis_events (event_time, id);
CREATE INDEX epcis_events_region ON epcis_events (region, id);
CREATE INDEX epcis_events_captured_by ON epcis_events (captured_by, id);

-- The EPCs and EPC classes an event names, for MATCH_epc (kind 'epc':
-- epcList, childEPCs, inputEPCList, outputEPCList), MATCH_anyEPC (also
-- 'parent': parentID) and MATCH_epcClass ('class': the quantity lists).
CREATE TABLE epcis_event_epcs (
    epc TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('epc', 'parent', 'class')),
    event_pk BIGINT NOT NULL REFERENCES epcis_events (id),
    PRIMARY KEY (epc, kind, event_pk)
);

-- Capture jobs of POST /epcis/capture. The document waits here until a
-- worker stores its events; the job's outcome is written in the same
-- transaction as the events, so a job still 'pending' after a restart has
-- stored nothing and is simply run again.
CREATE TABLE epcis_capture_jobs (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    actor TEXT NOT NULL,
    ip TEXT,
    region TEXT NOT NULL,
    behaviour TEXT NOT NULL CHECK (behaviour IN ('rollback', 'proceed')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'partial', 'failed')),
    document TEXT,
    event_count BIGINT NOT NULL DEFAULT 0,
    captured_count BIGINT NOT NULL DEFAULT 0,
    errors TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX epcis_capture_jobs_user ON epcis_capture_jobs (user_id, created_at);
CREATE INDEX epcis_capture_jobs_status ON epcis_capture_jobs (status, created_at);
