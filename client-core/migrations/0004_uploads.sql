-- Photos and signatures waiting to reach the server's blob store. A row is written in the same
-- transaction as the local document change that references the blob, so a crash can never leave
-- a photo the queue does not know. It is `done` once the server confirmed every byte (its sha256
-- verified); the file itself stays in the data dir while its job is on the device.
CREATE TABLE uploads (
    sha256     TEXT PRIMARY KEY,
    -- The document that references the blob (a photo, or the job of a signature): what the
    -- server checks the upload against.
    doc_id     TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('photo', 'signature')),
    size       INTEGER NOT NULL,
    -- The tus upload on the server, once created, and the bytes it confirmed (Upload-Offset).
    url        TEXT,
    sent       INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'refused')),
    -- Why the server refused it, or why the last attempt failed.
    error      TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    queued_at  TEXT NOT NULL,
    done_at    TEXT
);
CREATE INDEX uploads_state ON uploads (state);
