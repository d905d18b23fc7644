-- Geofences drawn through the API (the configured ones stay in their file): key projects, no-stall
-- zones, construction sites. The whole fence is kept as its GeoJSON Feature (WGS-84); the columns
-- beside it are for listing and filtering.
CREATE TABLE geofences (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,
    id                      TEXT NOT NULL UNIQUE,
    name                    TEXT NOT NULL,
    kind                    TEXT NOT NULL,
    required_visits_per_day INTEGER,
    min_dwell_ms            INTEGER,
    feature                 TEXT NOT NULL,   -- JSON: a GeoJSON Feature
    created_at              INTEGER NOT NULL, -- Unix ms
    created_by              TEXT NOT NULL,
    updated_at              INTEGER NOT NULL,
    updated_by              TEXT NOT NULL
);

-- Run cards (责任卡) set through the API: a grid code (6, 9, 12 or 15 digits) and its responsible
-- team of inspectors in order. They override the configured card for the same code.
CREATE TABLE run_cards (
    code        TEXT PRIMARY KEY NOT NULL,
    team        TEXT NOT NULL,     -- JSON array of usernames
    updated_at  INTEGER NOT NULL,  -- Unix ms
    updated_by  TEXT NOT NULL
);
