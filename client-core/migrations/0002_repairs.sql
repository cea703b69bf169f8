-- What the server repaired in documents this device changed: it kept the technician's changes
-- but fixed the document (an invalid value, a field a technician may not set, changes made after
-- the job was unassigned). Kept for `status` so the technician sees what happened; no foreign
-- key to `documents`, because the record outlives a job removed from the device.
CREATE TABLE repairs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id         TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    -- JSON array of sentences, one per repaired field.
    reasons        TEXT NOT NULL,
    at             TEXT NOT NULL,
    after_unassign INTEGER NOT NULL
);
CREATE INDEX repairs_job ON repairs (job_id);
