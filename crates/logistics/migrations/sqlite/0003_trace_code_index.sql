-- Which shipments carry a trace code: the consumer scanning a label asks
-- this, and the JSON column of logistics_shipments cannot answer it without
-- reading every row. Codes are stored in the canonical form of
-- shipments::canonical_trace_code (trimmed; a 16-character Crockford code
-- upper-cased without dashes or spaces, O read as 0 and I, L as 1).
CREATE TABLE logistics_shipment_trace_codes (
    shipment_id INTEGER NOT NULL REFERENCES logistics_shipments (id),
    trace_code TEXT NOT NULL,
    PRIMARY KEY (trace_code, shipment_id)
);

-- The codes booked before this table existed, canonicalised as above.
-- Stored codes are already trimmed and hold no spaces (booking refuses
-- them), so only dashes, case and look-alike letters remain to fold.
INSERT INTO logistics_shipment_trace_codes (shipment_id, trace_code)
SELECT DISTINCT s.id,
    CASE
        WHEN REPLACE(REPLACE(REPLACE(REPLACE(UPPER(REPLACE(j.value, '-', '')), 'O', '0'), 'I', '1'), 'L', '1'), ' ', '')
            GLOB '[0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z][0-9A-HJKMNP-TV-Z]'
        THEN REPLACE(REPLACE(REPLACE(REPLACE(UPPER(REPLACE(j.value, '-', '')), 'O', '0'), 'I', '1'), 'L', '1'), ' ', '')
        ELSE TRIM(j.value)
    END
FROM logistics_shipments s, json_each(s.trace_codes) j
WHERE j.type = 'text'
ON CONFLICT DO NOTHING;
