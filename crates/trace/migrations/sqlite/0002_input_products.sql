-- 农资 farm-input products: registered pesticides and fertilizers, national
-- reference data. Active ingredients are a JSON array of {name, content}.
CREATE TABLE input_products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('pesticide', 'fertilizer')),
    name TEXT NOT NULL,
    -- Unique when present; fertilizers may have none.
    registration_number TEXT UNIQUE,
    maker TEXT NOT NULL,
    active_ingredients TEXT NOT NULL,
    restricted_use BOOLEAN NOT NULL DEFAULT FALSE,
    banned BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX input_products_kind ON input_products (kind, id);
