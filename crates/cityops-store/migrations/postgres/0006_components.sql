-- Managed components (部件) with the departments that supervise, own and maintain them.
CREATE TABLE components (
    id            TEXT PRIMARY KEY NOT NULL,
    data          TEXT NOT NULL,      -- JSON of cityops_gis::Component
    category_code TEXT NOT NULL,
    cell          TEXT,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX components_by_category ON components (category_code);
CREATE INDEX components_by_cell ON components (cell);
