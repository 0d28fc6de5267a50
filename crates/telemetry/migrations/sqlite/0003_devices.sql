-- 设备 the device registry: one row per sensor or logger, in a village,
-- owned by a user. The token is stored only as its SHA-256 (hex); the
-- device's narrower metric ranges are a JSON object {metric: {min, max}}.
CREATE TABLE devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    device_type TEXT NOT NULL
        CHECK (device_type IN ('soil_moisture', 'weather', 'water_quality', 'water_meter', 'cold_chain')),
    village TEXT NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    owner_id BIGINT NOT NULL REFERENCES users (id),
    ranges TEXT NOT NULL DEFAULT '{}',
    token_hash TEXT NOT NULL UNIQUE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX devices_village ON devices (village, id);
CREATE INDEX devices_owner ON devices (owner_id, id);

-- Points refused at ingest, counted per device and error code, with the
-- latest reason, for the device's owner to see.
CREATE TABLE device_rejections (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    error TEXT NOT NULL,
    count BIGINT NOT NULL,
    last_at TEXT NOT NULL,
    last_message TEXT NOT NULL,
    PRIMARY KEY (device_id, error)
) WITHOUT ROWID;
