-- One event-ID index instead of two. For almost every event the eventID is
-- its hash ID, so `event_id` now holds only a capturer's own eventID and is
-- NULL otherwise; the event's ID is COALESCE(event_id, hash_id). A unique
-- index allows any number of NULLs, so the hash ID index alone carries the
-- events that have no ID of their own.
ALTER TABLE epcis_events ALTER COLUMN event_id DROP NOT NULL;
ALTER TABLE epcis_events DROP CONSTRAINT epcis_events_event_id_key;
UPDATE epcis_events SET event_id = NULL WHERE event_id = hash_id;
CREATE UNIQUE INDEX epcis_events_event_id ON epcis_events (event_id);
