-- Managed components (部件): manhole covers, street lamps, bins, hydrants… with their place and the
-- departments that supervise, own and maintain them (a case on a component goes to its owner).
CREATE TABLE components (
    id            TEXT PRIMARY KEY NOT NULL,
    data          TEXT NOT NULL,      -- JSON of cityops_gis::Component
    category_code TEXT NOT NULL,
    cell          TEXT,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX components_by_category ON components (category_code);
CREATE INDEX components_by_cell ON components (cell);
