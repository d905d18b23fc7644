-- Case events relayed from the outbox keep their outbox id in the event log. The unique index is what
-- makes relaying exactly once in effect: a relay that publishes an event again after a crash has its
-- second copy skipped by the log (INSERT OR IGNORE), and at start it asks the log which pending outbox
-- ids it already holds. Other events have no outbox id (NULLs never collide).
ALTER TABLE events ADD COLUMN outbox_id INTEGER;
CREATE UNIQUE INDEX events_by_outbox_id ON events (outbox_id) WHERE outbox_id IS NOT NULL;
