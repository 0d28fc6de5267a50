-- Alarms (告警): rules, alarms with their transition history, devices'
-- last-seen times for "not reporting", webhooks and their delivery outbox.
-- Times are epoch milliseconds, the unit readings and the engine's clock use.
CREATE TABLE alarm_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    device_type TEXT,
    device_id BIGINT,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    metric TEXT,
    condition TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    created_by BIGINT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    CHECK ((device_type IS NULL) <> (device_id IS NULL))
);
CREATE INDEX alarm_rules_region ON alarm_rules (region);

CREATE TABLE alarm_alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id BIGINT NOT NULL REFERENCES alarm_rules (id),
    device_id BIGINT NOT NULL,
    device_name TEXT NOT NULL,
    device_type TEXT NOT NULL,
    village TEXT NOT NULL,
    owner_user_id BIGINT,
    kind TEXT NOT NULL,
    metric TEXT,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    value DOUBLE PRECISION,
    raised_ms BIGINT NOT NULL,
    acknowledged_ms BIGINT,
    acknowledged_by TEXT,
    cleared_ms BIGINT,
    cleared_by TEXT
);
-- At most one open alarm per (rule, device): the engine's raised state, and
-- what keeps two nodes from raising the same alarm twice.
CREATE UNIQUE INDEX alarm_alarms_open ON alarm_alarms (rule_id, device_id) WHERE status <> 'cleared';
CREATE INDEX alarm_alarms_village ON alarm_alarms (village, status);
CREATE INDEX alarm_alarms_device ON alarm_alarms (device_id);

CREATE TABLE alarm_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id BIGINT NOT NULL REFERENCES alarm_alarms (id),
    at_ms BIGINT NOT NULL,
    transition TEXT NOT NULL,
    by_user_id BIGINT,
    by_name TEXT NOT NULL,
    value DOUBLE PRECISION,
    note TEXT
);
CREATE INDEX alarm_history_alarm ON alarm_history (alarm_id, id);

CREATE TABLE alarm_device_seen (
    device_id BIGINT PRIMARY KEY NOT NULL,
    device_name TEXT NOT NULL,
    device_type TEXT NOT NULL,
    village TEXT NOT NULL,
    owner_user_id BIGINT,
    last_seen_ms BIGINT NOT NULL
);

CREATE TABLE alarm_webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    region TEXT NOT NULL,
    url TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    created_by BIGINT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX alarm_webhooks_region ON alarm_webhooks (region);

CREATE TABLE alarm_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id BIGINT NOT NULL REFERENCES alarm_webhooks (id),
    alarm_id BIGINT NOT NULL REFERENCES alarm_alarms (id),
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    delivered_ms BIGINT
);
CREATE INDEX alarm_deliveries_due ON alarm_deliveries (status, next_attempt_ms);
CREATE INDEX alarm_deliveries_webhook ON alarm_deliveries (webhook_id, id);
