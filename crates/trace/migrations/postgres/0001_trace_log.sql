-- The trace log: an RFC 6962 Merkle tree over EPCIS event hash IDs.
-- Hashes are lowercase hex text, the same on both backends.

-- Level 0 of the tree: one leaf per event hash ID, in append order.
CREATE TABLE trace_log_leaves (
    leaf_index BIGINT PRIMARY KEY,
    hash_id TEXT NOT NULL UNIQUE,
    leaf_hash TEXT NOT NULL,
    appended_at TIMESTAMPTZ NOT NULL
);

-- Every complete perfect subtree of 2^level >= 2 leaves; they never change
-- once written, and every root or proof is folded from O(log n) of them.
CREATE TABLE trace_log_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The one row appenders lock: the tree size and its right-edge subtree
-- hashes (the compact range), concatenated hex, largest subtree first.
CREATE TABLE trace_log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    frontier TEXT NOT NULL
);
INSERT INTO trace_log_head (id, size, frontier) VALUES (1, 0, '');

-- Signed checkpoints (C2SP signed notes) as published.
CREATE TABLE trace_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root_hash TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
