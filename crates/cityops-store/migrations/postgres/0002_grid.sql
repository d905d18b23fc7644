-- Every device and incident carries its place in the unit grid: the JSON of cityops_core::GridPlace,
-- and the cell code on its own for filtering by cell, community or street (codes are prefixes).
ALTER TABLE devices ADD COLUMN grid TEXT;
ALTER TABLE incidents ADD COLUMN grid TEXT;
ALTER TABLE incidents ADD COLUMN cell TEXT;
CREATE INDEX incidents_by_cell ON incidents (cell text_pattern_ops, id);
