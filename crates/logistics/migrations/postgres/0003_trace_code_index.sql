-- Which shipments carry a trace code: the consumer scanning a label asks
-- this, and the JSON column of logistics_shipments cannot answer it without
-- reading every row. Codes are stored in the canonical form of
-- shipments::canonical_trace_code (trimmed; a 16-character Crockford code
-- upper-cased without dashes or spaces, O read as 0 and I, L as 1).
CREATE TABLE logistics_shipment_trace_codes (
    shipment_id BIGINT NOT NULL REFERENCES logistics_shipments (id),
    trace_code TEXT NOT NULL,
    PRIMARY KEY (trace_code, shipment_id)
);

-- The codes booked before this table existed, canonicalised as above.
-- Stored codes are already trimmed and hold no spaces (booking refuses
-- them), so only dashes, case and look-alike letters remain to fold.
INSERT INTO logistics_shipment_trace_codes (shipment_id, trace_code)
SELECT DISTINCT s.id,
    CASE
        WHEN TRANSLATE(UPPER(c.code), 'OIL- ', '011') ~ '^[0-9A-HJKMNP-TV-Z]{16}$'
        THEN TRANSLATE(UPPER(c.code), 'OIL- ', '011')
        ELSE BTRIM(c.code)
    END
FROM logistics_shipments s
CROSS JOIN LATERAL jsonb_array_elements_text(s.trace_codes::jsonb) AS c (code)
ON CONFLICT DO NOTHING;
