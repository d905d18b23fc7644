-- Inspectors' accepted position fixes, written in batches: the track patrol coverage is computed from.
CREATE TABLE inspector_fixes (
    inspector  TEXT NOT NULL,
    time       INTEGER NOT NULL,   -- Unix ms of the fix
    lon        REAL NOT NULL,
    lat        REAL NOT NULL,
    accuracy   REAL
);
CREATE INDEX inspector_fixes_by_time ON inspector_fixes (time);
