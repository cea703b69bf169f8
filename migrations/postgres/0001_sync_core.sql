-- 0001: everything the sync needs on day one, in one migration because nothing was deployed
-- before it. Migrations are append-only: change the schema with a new numbered file, never by
-- editing this one (sqlx checks each applied file's checksum and refuses a changed one).
--
-- Ids are UUIDs made by the server (v7, so they sort by creation time). Names that people type
-- (org names, user names) are unique server-wide because users sign in with their name alone.

CREATE TABLE orgs (
    id   UUID PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    org_id        UUID NOT NULL REFERENCES orgs (id),
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('technician', 'dispatcher', 'back_office', 'admin')),
    password_hash TEXT NOT NULL
);
CREATE INDEX users_org_id ON users (org_id);

CREATE TABLE devices (
    id      UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id),
    name    TEXT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX devices_user_id ON devices (user_id);

-- Only the sha256 of a token is kept, so a leaked table does not leak usable tokens.
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    user_id    UUID NOT NULL REFERENCES users (id),
    device_id  UUID REFERENCES devices (id),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX tokens_user_id ON tokens (user_id);
CREATE INDEX tokens_device_id ON tokens (device_id);

-- The document registry. A job document's job_id is its own id.
CREATE TABLE documents (
    id     UUID PRIMARY KEY,
    org_id UUID NOT NULL REFERENCES orgs (id),
    kind   TEXT NOT NULL,
    job_id UUID NOT NULL
);
CREATE INDEX documents_job_id ON documents (job_id);
CREATE INDEX documents_org_jobs ON documents (org_id) WHERE kind = 'job';

-- The change log. seq is global and only grows, so "changes after seq N" is one range scan and a
-- node catching up after a notification asks for exactly what it missed. (doc_id, hash) is
-- unique so a retried upload is a no-op; compaction sets bytes to NULL but keeps the row so the
-- hash still counts after it.
CREATE TABLE changes (
    seq    BIGSERIAL PRIMARY KEY,
    doc_id UUID NOT NULL REFERENCES documents (id),
    hash   TEXT NOT NULL,
    bytes  BYTEA,
    UNIQUE (doc_id, hash)
);
CREATE INDEX changes_doc_id_seq ON changes (doc_id, seq);

-- One snapshot per document, covering every change of the document with seq <= upto_seq.
CREATE TABLE snapshots (
    doc_id   UUID PRIMARY KEY REFERENCES documents (id),
    bytes    BYTEA NOT NULL,
    upto_seq BIGINT NOT NULL
);

-- Automerge sync state per (device, document), so a reconnecting device resumes where it was.
CREATE TABLE sync_states (
    device_id UUID NOT NULL REFERENCES devices (id),
    doc_id    UUID NOT NULL REFERENCES documents (id),
    state     BYTEA NOT NULL,
    PRIMARY KEY (device_id, doc_id)
);

-- Which users work on which job; this defines each technician's document set. job_id does not
-- reference documents: the dispatcher may assign a job whose document reaches the server later.
CREATE TABLE assignments (
    job_id  UUID NOT NULL,
    user_id UUID NOT NULL REFERENCES users (id),
    PRIMARY KEY (job_id, user_id)
);
CREATE INDEX assignments_user_id ON assignments (user_id);
