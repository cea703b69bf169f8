-- 0004: the audit log. What the server did on a writer's behalf (a repair of a change that broke
-- the contract or the writer's role, changes that arrived after an unassignment), with who, when,
-- what and why. Append-only; `flagged` rows are shown to the dispatcher on the job.

CREATE TABLE audit_log (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES orgs (id),
    job_id       uuid NOT NULL,
    doc_id       uuid,
    actor_user   uuid,
    actor_device uuid,
    action       text NOT NULL,
    reasons      jsonb NOT NULL,
    before       jsonb,
    after        jsonb,
    at           timestamptz NOT NULL,
    flagged      boolean NOT NULL DEFAULT false
);

CREATE INDEX audit_log_job ON audit_log (job_id, at);
