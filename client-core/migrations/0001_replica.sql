-- The device replica: documents (snapshot + incremental changes), the local changes the server
-- has not acknowledged, per-peer sync states, and the query tables screens read.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per Automerge document. `snapshot` is the last compacted save(); the changes after it
-- are in doc_changes. A document loads from its snapshot plus its change rows.
CREATE TABLE documents (
    id       TEXT PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('job', 'checklist', 'parts', 'photo')),
    job_id   TEXT NOT NULL,
    snapshot BLOB
);
CREATE INDEX documents_job ON documents (job_id);

CREATE TABLE doc_changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    bytes  BLOB NOT NULL
);
CREATE INDEX doc_changes_doc ON doc_changes (doc_id, seq);

-- Local changes not yet acknowledged by the server (an ack means the server committed them).
CREATE TABLE unacked (
    doc_id     TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (doc_id, hash)
);

-- Automerge sync state per document and peer, so a reconnect sends only what the peer lacks.
CREATE TABLE sync_states (
    doc_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    peer   TEXT NOT NULL,
    state  BLOB NOT NULL,
    PRIMARY KEY (doc_id, peer)
);

-- Query tables: derived from the documents, rebuilt by Replica::rebuild_queries.
CREATE TABLE q_jobs (
    id              TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    status          TEXT NOT NULL,
    priority        TEXT NOT NULL,
    scheduled_start TEXT,
    customer        TEXT NOT NULL,
    site            TEXT NOT NULL,
    assignees       TEXT NOT NULL,
    signed_off      INTEGER NOT NULL
);
CREATE INDEX q_jobs_schedule ON q_jobs (scheduled_start, status);
CREATE INDEX q_jobs_status ON q_jobs (status);

CREATE TABLE q_checklists (
    checklist_id   TEXT PRIMARY KEY,
    job_id         TEXT NOT NULL,
    total          INTEGER NOT NULL,
    done           INTEGER NOT NULL,
    required_total INTEGER NOT NULL,
    required_done  INTEGER NOT NULL
);
CREATE INDEX q_checklists_job ON q_checklists (job_id);

CREATE TABLE q_parts (
    parts_id    TEXT NOT NULL,
    line_id     TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    sku         TEXT NOT NULL,
    description TEXT NOT NULL,
    qty         REAL NOT NULL,
    source      TEXT,
    PRIMARY KEY (parts_id, line_id)
);
CREATE INDEX q_parts_job ON q_parts (job_id);

CREATE TABLE q_photos (
    id             TEXT PRIMARY KEY,
    job_id         TEXT NOT NULL,
    checklist_item TEXT,
    sha256         TEXT NOT NULL,
    upload         TEXT NOT NULL
);
CREATE INDEX q_photos_job ON q_photos (job_id);
