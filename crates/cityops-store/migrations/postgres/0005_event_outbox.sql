-- Case events relayed from the outbox keep their outbox id in the event log; the unique index makes
-- relaying exactly once in effect (a second copy is skipped with ON CONFLICT DO NOTHING).
ALTER TABLE events ADD COLUMN outbox_id BIGINT;
CREATE UNIQUE INDEX events_by_outbox_id ON events (outbox_id) WHERE outbox_id IS NOT NULL;
