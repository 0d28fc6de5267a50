-- 农资经营店 dealers and their stock-in and real-name sales ledgers (台账),
-- with the anomalies supervision sees. Ledger entries are append-only: a
-- mistake is corrected by a reversal entry, and triggers refuse UPDATE and
-- DELETE so entries outlive the two-year retention minimum.
CREATE TABLE dealers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    -- 农药经营许可证 number.
    licence_number TEXT NOT NULL UNIQUE,
    -- County or township code of the shop.
    region TEXT NOT NULL,
    address TEXT NOT NULL,
    owner_user_id BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX dealers_region ON dealers (region, id);
CREATE INDEX dealers_owner ON dealers (owner_user_id);

-- One stock-in or sale. Amounts are in base units (g, mL or pieces) per
-- dimension; a reversal repeats the reversed entry with the amount negated,
-- so plain sums net corrections out.
CREATE TABLE dealer_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dealer_id BIGINT NOT NULL REFERENCES dealers (id),
    dealer_region TEXT NOT NULL,
    entry_type TEXT NOT NULL CHECK (entry_type IN ('stock_in', 'sale')),
    reverses_id BIGINT UNIQUE REFERENCES dealer_ledger (id),
    reason TEXT,
    entry_date TEXT NOT NULL,
    product_id BIGINT NOT NULL REFERENCES input_products (id),
    product_kind TEXT NOT NULL,
    quantity TEXT NOT NULL,
    unit TEXT NOT NULL,
    dimension TEXT NOT NULL CHECK (dimension IN ('mass', 'volume', 'count')),
    base_amount BIGINT NOT NULL,
    label_codes TEXT NOT NULL,
    -- 生产批号 production batch printed on the package.
    batch TEXT,
    supplier TEXT,
    buyer_name TEXT,
    buyer_id_number TEXT,
    buyer_phone TEXT,
    buyer_village TEXT,
    crop TEXT,
    created_at TEXT NOT NULL,
    created_by BIGINT NOT NULL
);
CREATE INDEX dealer_ledger_dealer ON dealer_ledger (dealer_id, id);
CREATE INDEX dealer_ledger_stock ON dealer_ledger (dealer_id, product_id, dimension);
CREATE INDEX dealer_ledger_village ON dealer_ledger (buyer_village, entry_date);
CREATE INDEX dealer_ledger_region ON dealer_ledger (dealer_region, entry_date);

CREATE TRIGGER dealer_ledger_no_update BEFORE UPDATE ON dealer_ledger
BEGIN
    SELECT RAISE(ABORT, 'dealer_ledger is append-only: correct an entry by reversing it');
END;
CREATE TRIGGER dealer_ledger_no_delete BEFORE DELETE ON dealer_ledger
BEGIN
    SELECT RAISE(ABORT, 'dealer_ledger is append-only: correct an entry by reversing it');
END;

-- Label codes currently sold: one row per code, removed when its sale is
-- reversed. The primary key is what refuses a code sold twice.
CREATE TABLE sold_label_codes (
    code TEXT PRIMARY KEY,
    entry_id BIGINT NOT NULL REFERENCES dealer_ledger (id)
);
CREATE INDEX sold_label_codes_entry ON sold_label_codes (entry_id);

-- 异常 what supervision must see: refused sales of banned products, label
-- codes sold twice, restricted products sold without a buyer ID, stock that
-- went negative.
CREATE TABLE input_anomalies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('banned_product_sale', 'label_code_sold_twice', 'restricted_without_buyer_id', 'negative_stock')),
    dealer_id BIGINT NOT NULL REFERENCES dealers (id),
    dealer_region TEXT NOT NULL,
    product_id BIGINT,
    entry_id BIGINT,
    label_code TEXT,
    detail TEXT NOT NULL,
    actor_id BIGINT,
    at TEXT NOT NULL
);
CREATE INDEX input_anomalies_region ON input_anomalies (dealer_region, id);
