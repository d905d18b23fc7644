-- Cases of the GB/T 30428 workflow, their SLA clocks, their hash-chained audit trail, the outbox of
-- their events and the per-category, per-day sequences of case numbers.
--
-- Every change of a case is one transaction over cases + case_audit + outbox (+ case_clocks), written by
-- the repository in crates/cityops-store/src/cases/. Times are Unix milliseconds. JSON columns are TEXT,
-- also in the coming PostgreSQL schema for case_audit (not JSONB), so the hashed text stays exactly as
-- written.

CREATE TABLE cases (
    id                    INTEGER PRIMARY KEY NOT NULL,
    number                TEXT NOT NULL UNIQUE,     -- e.g. E05032026041001
    category_code         TEXT NOT NULL,            -- C0101, E0503, ...
    class                 TEXT NOT NULL CHECK (class IN ('component', 'event')),
    state                 TEXT NOT NULL,            -- CaseState::as_str
    state_code            INTEGER NOT NULL CHECK (state_code BETWEEN 1 AND 15),
    source                TEXT NOT NULL,            -- Source::as_str
    title                 TEXT NOT NULL,
    description           TEXT NOT NULL,
    address               TEXT NOT NULL,
    lon                   REAL NOT NULL,            -- WGS-84
    lat                   REAL NOT NULL,
    grid                  TEXT,                     -- JSON of GridPlace
    cell                  TEXT,                     -- the cell code alone, for prefix filters
    reporter              TEXT NOT NULL,            -- user name or device id
    verification_required INTEGER NOT NULL DEFAULT 0 CHECK (verification_required IN (0, 1)),
    department            TEXT,
    inspector             TEXT,
    incident_id           INTEGER,                  -- filed from a sensor incident
    device_id             TEXT,
    version               INTEGER NOT NULL CHECK (version >= 1),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    closed_at             INTEGER,
    closure_type          TEXT,
    satisfaction          INTEGER CHECK (satisfaction BETWEEN 1 AND 5),
    rework_count          INTEGER NOT NULL DEFAULT 0,
    wrong_dispatch_count  INTEGER NOT NULL DEFAULT 0,
    extension_count       INTEGER NOT NULL DEFAULT 0,
    reopen_count          INTEGER NOT NULL DEFAULT 0,
    -- The head of the case's audit chain, written in the same transaction as each record, so a record cut
    -- off the end of the chain is noticed too.
    audit_seq             INTEGER NOT NULL DEFAULT 0,
    audit_hash            TEXT NOT NULL
);
CREATE INDEX cases_by_created ON cases (created_at, id);
CREATE INDEX cases_by_updated ON cases (updated_at, id);
CREATE INDEX cases_by_state ON cases (state, created_at);
CREATE INDEX cases_by_category ON cases (category_code, created_at);
CREATE INDEX cases_by_cell ON cases (cell);
CREATE INDEX cases_by_department ON cases (department, state);
CREATE INDEX cases_by_inspector ON cases (inspector, state);
CREATE INDEX cases_by_incident ON cases (incident_id) WHERE incident_id IS NOT NULL;

-- The SLA clock of each stage a case ran, so timers survive restarts. `clock` is the serialized
-- cityops_core::sla::StageClock (the facts); deadline_at/warning_at are computed from it with the working
-- calendar when it changes (NULL while suspended or once stopped) so the scheduler can query them.
-- warned/overdue_notified are set in the same transaction as the scheduler's outbox event: none fires twice.
CREATE TABLE case_clocks (
    id                INTEGER PRIMARY KEY NOT NULL,
    case_id           INTEGER NOT NULL REFERENCES cases (id),
    stage             TEXT NOT NULL,
    clock             TEXT NOT NULL,
    started_at        INTEGER NOT NULL,
    deadline_at       INTEGER,
    warning_at        INTEGER,
    warned            INTEGER NOT NULL DEFAULT 0 CHECK (warned IN (0, 1)),
    overdue_notified  INTEGER NOT NULL DEFAULT 0 CHECK (overdue_notified IN (0, 1)),
    active            INTEGER NOT NULL CHECK (active IN (0, 1))
);
-- A case runs one stage at a time.
CREATE UNIQUE INDEX case_clocks_one_active ON case_clocks (case_id) WHERE active = 1;
CREATE INDEX case_clocks_by_case ON case_clocks (case_id, id);
CREATE INDEX case_clocks_by_deadline ON case_clocks (deadline_at) WHERE active = 1;
CREATE INDEX case_clocks_warning_due ON case_clocks (warning_at) WHERE active = 1 AND warned = 0;
CREATE INDEX case_clocks_overdue_due ON case_clocks (deadline_at) WHERE active = 1 AND overdue_notified = 0;

-- Who did what to a case, hash-chained per case: hash = sha256(prev_hash || canonical record), the first
-- record's prev_hash is 64 zeros. Append-only for the application (the triggers below); the chain makes a
-- change made around them visible to `cityops audit verify`.
CREATE TABLE case_audit (
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT,
    action      TEXT NOT NULL,      -- 'report' or ActionKind::as_str
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    note        TEXT,
    evidence    TEXT NOT NULL,      -- JSON array of SHA-256 hex digests
    payload     TEXT NOT NULL,      -- canonical JSON (sorted keys)
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);
CREATE TRIGGER case_audit_no_update BEFORE UPDATE ON case_audit
BEGIN
    SELECT RAISE(ABORT, 'case_audit is append-only');
END;
CREATE TRIGGER case_audit_no_delete BEFORE DELETE ON case_audit
BEGIN
    SELECT RAISE(ABORT, 'case_audit is append-only');
END;

-- Events committed with the change that caused them, waiting for the relay to put them on the bus.
-- AUTOINCREMENT: an id is never reused, even after published rows are pruned, because consumers
-- recognise a redelivered event by its id.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    created_at    INTEGER NOT NULL,
    event_type    TEXT NOT NULL,
    case_id       INTEGER,
    payload       TEXT NOT NULL,    -- JSON
    published_at  INTEGER
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- Case number sequences: prefix = category code + local date (yyyymmdd), last = the last sequence given.
CREATE TABLE case_sequences (
    prefix  TEXT PRIMARY KEY NOT NULL,
    last    INTEGER NOT NULL CHECK (last >= 1)
);
