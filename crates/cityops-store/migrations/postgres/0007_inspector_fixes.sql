-- Inspectors' accepted position fixes, written in batches: the track patrol coverage is computed from.
CREATE TABLE inspector_fixes (
    inspector  TEXT NOT NULL,
    time       BIGINT NOT NULL,   -- Unix ms of the fix
    lon        DOUBLE PRECISION NOT NULL,
    lat        DOUBLE PRECISION NOT NULL,
    accuracy   DOUBLE PRECISION
);
CREATE INDEX inspector_fixes_by_time ON inspector_fixes (time);
