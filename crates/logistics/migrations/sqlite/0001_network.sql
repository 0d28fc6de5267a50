-- 农村物流网络 the rural logistics network: sites (operation centres,
-- warehouses, stations) and vehicles; shipments with their handovers.
-- Every row carries the region code its scope is checked against.
CREATE TABLE logistics_sites (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('operation_centre', 'cloud_warehouse', 'cold_store', 'post_office', 'service_station', 'collection_point')),
    tier TEXT NOT NULL CHECK (tier IN ('province', 'city', 'county', 'village')),
    region_code TEXT NOT NULL,
    lon REAL NOT NULL,
    lat REAL NOT NULL,
    capacity_kg REAL,
    cold_storage BOOLEAN NOT NULL DEFAULT FALSE,
    opening_hours TEXT,
    logger_device_id INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX logistics_sites_region ON logistics_sites (region_code, id);

CREATE TABLE logistics_vehicles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plate TEXT NOT NULL UNIQUE,
    capacity_kg REAL NOT NULL,
    capacity_m3 REAL NOT NULL,
    refrigeration TEXT NOT NULL CHECK (refrigeration IN ('ambient', 'chilled', 'frozen')),
    depot_site_id INTEGER NOT NULL REFERENCES logistics_sites (id),
    -- The depot's region, copied so scope filters need no join.
    region_code TEXT NOT NULL,
    driver_user_id INTEGER,
    shift_start TEXT NOT NULL,
    shift_end TEXT NOT NULL,
    logger_device_id INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX logistics_vehicles_region ON logistics_vehicles (region_code, id);

CREATE TABLE logistics_shipments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The pickup's region (village or the origin site's region).
    region_code TEXT NOT NULL,
    booked_by INTEGER NOT NULL,
    goods TEXT NOT NULL,
    commodity TEXT NOT NULL,
    weight_kg REAL NOT NULL,
    volume_m3 REAL NOT NULL,
    temperature_class TEXT NOT NULL CHECK (temperature_class IN ('ambient', 'chilled', 'frozen')),
    band_min_c REAL,
    band_max_c REAL,
    band_set BOOLEAN NOT NULL DEFAULT FALSE,
    ready_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    origin_site_id INTEGER REFERENCES logistics_sites (id),
    origin_name TEXT,
    origin_lon REAL NOT NULL,
    origin_lat REAL NOT NULL,
    destination_site_id INTEGER REFERENCES logistics_sites (id),
    destination_name TEXT,
    destination_lon REAL NOT NULL,
    destination_lat REAL NOT NULL,
    trace_codes TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'planned', 'picked_up', 'in_transit', 'delivered', 'cancelled')),
    vehicle_id INTEGER REFERENCES logistics_vehicles (id),
    -- The vehicle's region, so carriers' filters need no join.
    vehicle_region TEXT,
    delivered_at TEXT,
    receiver_name TEXT,
    delivery_note TEXT,
    cancel_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX logistics_shipments_region ON logistics_shipments (region_code, id);
CREATE INDEX logistics_shipments_vehicle_region ON logistics_shipments (vehicle_region, id);
CREATE INDEX logistics_shipments_booker ON logistics_shipments (booked_by, id);

CREATE TABLE logistics_handovers (
    shipment_id INTEGER NOT NULL REFERENCES logistics_shipments (id),
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    from_party TEXT NOT NULL,
    to_party TEXT NOT NULL,
    temperature_c REAL,
    signature_name TEXT NOT NULL,
    note TEXT,
    recorded_by INTEGER NOT NULL,
    PRIMARY KEY (shipment_id, seq)
);
