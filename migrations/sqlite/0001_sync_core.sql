-- 0001: everything the sync needs on day one, the same schema as migrations/postgres/0001 in
-- SQLite's terms. Migrations are append-only: change the schema with a new numbered file, never
-- by editing this one (the runner in sync-server/src/store/sqlite.rs records each applied file's
-- sha256 and refuses to start when an applied file changed).
--
-- STRICT tables so a wrongly typed value fails instead of being stored as something else.
-- UUIDs are stored as their hyphenated text and times as microseconds since the Unix epoch
-- (Postgres' precision, so both stores round-trip the same values). Booleans are 0 or 1.

CREATE TABLE orgs (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('technician', 'dispatcher', 'back_office', 'admin')),
    password_hash TEXT NOT NULL
) STRICT;
CREATE INDEX users_org_id ON users (org_id);

CREATE TABLE devices (
    id      TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    name    TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT;
CREATE INDEX devices_user_id ON devices (user_id);

-- Only the sha256 of a token is kept, so a leaked file does not leak usable tokens.
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    user_id    TEXT NOT NULL REFERENCES users (id),
    device_id  TEXT REFERENCES devices (id),
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX tokens_user_id ON tokens (user_id);
CREATE INDEX tokens_device_id ON tokens (device_id);

-- The document registry. A job document's job_id is its own id.
CREATE TABLE documents (
    id     TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    kind   TEXT NOT NULL,
    job_id TEXT NOT NULL
) STRICT;
CREATE INDEX documents_job_id ON documents (job_id);
CREATE INDEX documents_org_jobs ON documents (org_id) WHERE kind = 'job';

-- The change log. AUTOINCREMENT so seq only grows, even after rows are deleted, and "changes
-- after seq N" never skips or repeats one. (doc_id, hash) is unique so a retried upload is a
-- no-op; compaction sets bytes to NULL but keeps the row so the hash still counts after it.
CREATE TABLE changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents (id),
    hash   TEXT NOT NULL,
    bytes  BLOB,
    UNIQUE (doc_id, hash)
) STRICT;
CREATE INDEX changes_doc_id_seq ON changes (doc_id, seq);

-- One snapshot per document, covering every change of the document with seq <= upto_seq.
CREATE TABLE snapshots (
    doc_id   TEXT PRIMARY KEY REFERENCES documents (id),
    bytes    BLOB NOT NULL,
    upto_seq INTEGER NOT NULL
) STRICT;

-- Automerge sync state per (device, document), so a reconnecting device resumes where it was.
CREATE TABLE sync_states (
    device_id TEXT NOT NULL REFERENCES devices (id),
    doc_id    TEXT NOT NULL REFERENCES documents (id),
    state     BLOB NOT NULL,
    PRIMARY KEY (device_id, doc_id)
) STRICT;

-- Which users work on which job; this defines each technician's document set. job_id does not
-- reference documents: the dispatcher may assign a job whose document reaches the server later.
CREATE TABLE assignments (
    job_id  TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (job_id, user_id)
) STRICT;
CREATE INDEX assignments_user_id ON assignments (user_id);
