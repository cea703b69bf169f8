-- 0004: the audit log. What the server did on a writer's behalf (a repair of a change that broke
-- the contract or the writer's role, changes that arrived after an unassignment), with who, when,
-- what and why. Append-only; `flagged` rows are shown to the dispatcher on the job. JSON columns
-- hold JSON text; times are microseconds since the Unix epoch, as in 0001.

CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    job_id       TEXT NOT NULL,
    doc_id       TEXT,
    actor_user   TEXT,
    actor_device TEXT,
    action       TEXT NOT NULL,
    reasons      TEXT NOT NULL,
    before       TEXT,
    after        TEXT,
    at           INTEGER NOT NULL,
    flagged      INTEGER NOT NULL DEFAULT 0 CHECK (flagged IN (0, 1))
) STRICT;

CREATE INDEX audit_log_job ON audit_log (job_id, at);
