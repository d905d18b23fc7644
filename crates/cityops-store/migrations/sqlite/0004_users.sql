-- Users of the platform: one role each, a department for department handlers, an argon2id hash.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    department    TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,   -- Unix ms
    updated_at    INTEGER NOT NULL
);
