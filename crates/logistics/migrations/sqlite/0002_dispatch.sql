-- 调度 dispatch plans: for a depot and a day, the routes of its vehicles
-- through the booked pickups of its county, and the pickups left over with
-- the reason. Times are minutes after midnight of the plan's day (UTC+8).
CREATE TABLE logistics_plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    depot_site_id INTEGER NOT NULL REFERENCES logistics_sites (id),
    -- The depot's region, for scope checks.
    region_code TEXT NOT NULL,
    day TEXT NOT NULL,
    road_factor REAL NOT NULL,
    speed_kmh REAL NOT NULL,
    distance_km REAL NOT NULL,
    created_by INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX logistics_plans_region ON logistics_plans (region_code, id);

CREATE TABLE logistics_plan_routes (
    plan_id INTEGER NOT NULL REFERENCES logistics_plans (id),
    vehicle_id INTEGER NOT NULL REFERENCES logistics_vehicles (id),
    start_min REAL NOT NULL,
    end_min REAL NOT NULL,
    distance_km REAL NOT NULL,
    PRIMARY KEY (plan_id, vehicle_id)
);

CREATE TABLE logistics_plan_stops (
    plan_id INTEGER NOT NULL REFERENCES logistics_plans (id),
    vehicle_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    shipment_id INTEGER NOT NULL REFERENCES logistics_shipments (id),
    arrival_min REAL NOT NULL,
    departure_min REAL NOT NULL,
    PRIMARY KEY (plan_id, vehicle_id, seq)
);

CREATE TABLE logistics_plan_unassigned (
    plan_id INTEGER NOT NULL REFERENCES logistics_plans (id),
    shipment_id INTEGER NOT NULL REFERENCES logistics_shipments (id),
    reason TEXT NOT NULL,
    PRIMARY KEY (plan_id, shipment_id)
);
