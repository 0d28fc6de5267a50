-- One counter per cached kind of data, bumped in the same transaction as any
-- change to it, so every node can tell cheaply that its cache is stale.
CREATE TABLE cache_generations (
    name TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
