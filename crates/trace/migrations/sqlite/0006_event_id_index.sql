-- One event-ID index instead of two. For almost every event the eventID is
-- its hash ID, so `event_id` now holds only a capturer's own eventID and is
-- NULL otherwise; the event's ID is COALESCE(event_id, hash_id). A unique
-- index allows any number of NULLs, so the hash ID index alone carries the
-- events that have no ID of their own.
--
-- SQLite cannot drop a column's UNIQUE constraint, so the table is rebuilt
-- with the same ids. The runner applies a migration in a transaction on a
-- connection opened with foreign keys on, where PRAGMA foreign_keys is a
-- no-op: dropping epcis_events while epcis_event_epcs references it would
-- run an implicit DELETE that checks every event against that table (no
-- index on event_pk) and fails on the first event with EPCs. So the EPC
-- rows step aside into a plain copy first and come back at the end, each
-- checked against the rebuilt table by its primary key.
CREATE TABLE epcis_event_epcs_copy AS SELECT epc, kind, event_pk FROM epcis_event_epcs;
DROP TABLE epcis_event_epcs;

CREATE TABLE epcis_events_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT,
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
INSERT INTO epcis_events_new (id, event_id, hash_id, event_type, action, event_time, record_time, biz_step,
    disposition, read_point, biz_location, body, captured_by, region, capture_id)
SELECT id, NULLIF(event_id, hash_id), hash_id, event_type, action, event_time, record_time, biz_step,
    disposition, read_point, biz_location, body, captured_by, region, capture_id
FROM epcis_events ORDER BY id;
-- The AUTOINCREMENT high-water mark moves with the rows, so an id is never
-- handed out twice.
DELETE FROM sqlite_sequence WHERE name = 'epcis_events_new';
UPDATE sqlite_sequence SET name = 'epcis_events_new' WHERE name = 'epcis_events';
DROP TABLE epcis_events;
ALTER TABLE epcis_events_new RENAME TO epcis_events;

CREATE UNIQUE INDEX epcis_events_event_id ON epcis_events (event_id);
CREATE INDEX epcis_events_biz_step ON epcis_events (biz_step, id);
CREATE INDEX epcis_events_biz_location ON epcis_events (biz_location, id);
CREATE INDEX epcis_events_event_time ON epcis_events (event_time, id);
CREATE INDEX epcis_events_region ON epcis_events (region, id);
CREATE INDEX epcis_events_captured_by ON epcis_events (captured_by, id);

CREATE TABLE epcis_event_epcs (
    epc TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('epc', 'parent', 'class')),
    event_pk BIGINT NOT NULL REFERENCES epcis_events (id),
    PRIMARY KEY (epc, kind, event_pk)
);
INSERT INTO epcis_event_epcs (epc, kind, event_pk)
SELECT epc, kind, event_pk FROM epcis_event_epcs_copy ORDER BY epc, kind, event_pk;
DROP TABLE epcis_event_epcs_copy;
