-- The spine: devices, their last values, incidents with evidence, the event log, metadata.
-- PostgreSQL twin of ../sqlite/0001_spine.sql: integers are BIGINT (Unix ms, ids), reals DOUBLE PRECISION,
-- JSON stays TEXT so what is read back is exactly what was written.
CREATE TABLE devices (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    lon         DOUBLE PRECISION NOT NULL,
    lat         DOUBLE PRECISION NOT NULL,
    source      TEXT NOT NULL,           -- 'config' or 'api'
    created_at  BIGINT NOT NULL,         -- Unix ms
    updated_at  BIGINT NOT NULL
);

-- One row per device and measurement: the last value, written in batches, never one row per message.
CREATE TABLE device_last_values (
    device_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,           -- JSON: number, boolean or string
    unit        TEXT,
    time        BIGINT NOT NULL,         -- Unix ms
    PRIMARY KEY (device_id, name)
);

CREATE TABLE incidents (
    id                BIGINT PRIMARY KEY NOT NULL,
    device_id         TEXT NOT NULL,
    kind              TEXT NOT NULL,
    rule_id           TEXT NOT NULL,
    category_code     TEXT NOT NULL,
    category_name_zh  TEXT NOT NULL,
    category_name_en  TEXT NOT NULL,
    measurement       TEXT NOT NULL,
    value             TEXT NOT NULL,     -- JSON
    unit              TEXT,
    condition         TEXT NOT NULL,
    lon               DOUBLE PRECISION NOT NULL,
    lat               DOUBLE PRECISION NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('open', 'cleared')),
    opened_at         BIGINT NOT NULL,
    cleared_at        BIGINT,
    clear_value       TEXT,              -- JSON
    evidence          TEXT NOT NULL      -- JSON array of the readings that triggered it
);
CREATE INDEX incidents_by_device ON incidents (device_id, id);
CREATE INDEX incidents_by_state ON incidents (state, id);
CREATE INDEX incidents_by_opened ON incidents (opened_at);
-- The invariant "one open incident per device and rule" holds in the database too.
CREATE UNIQUE INDEX incidents_one_open ON incidents (device_id, rule_id) WHERE state = 'open';

-- The bus event log: replay for clients that come back after the memory ring moved on.
CREATE TABLE events (
    seq   BIGINT PRIMARY KEY NOT NULL,
    type  TEXT NOT NULL,
    time  BIGINT NOT NULL,               -- Unix ms
    json  TEXT NOT NULL                  -- the wire frame, as sent on /ws
);
CREATE INDEX events_by_time ON events (time);

CREATE TABLE meta (
    key    TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);
