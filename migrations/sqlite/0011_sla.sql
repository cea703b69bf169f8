-- 0011: SLA timers (issue 11, section 3): per org, job type (the checklist template's name, or
-- '*') and priority (or '*'), how long a job may take to be acknowledged and to be resolved, in
-- business hours or around the clock; and the breaches (and approaching ones) the watcher
-- recorded (sync-server/src/planning/sla.rs, sla_watch.rs). Same schema as
-- migrations/postgres/0011 in SQLite's terms (see 0006).
--
-- An event's (job_id, kind, level) is its primary key: the watcher claims a breach by inserting
-- its row before it counts it or sends the webhook, so a node restarted records each once.
-- Delivery to the webhook is tracked on the row (`delivered_at`, retried with backoff from
-- `next_attempt_at`).

CREATE TABLE sla_policies (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES orgs (id),
    job_type           TEXT NOT NULL,
    priority           TEXT NOT NULL,
    acknowledge_within_seconds INTEGER NOT NULL CHECK (acknowledge_within_seconds > 0),
    resolve_within_seconds     INTEGER NOT NULL CHECK (resolve_within_seconds > 0),
    -- The JSON of schemas::api::BusinessHours, or NULL: around the clock.
    business_hours     TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (org_id, job_type, priority)
) STRICT;

CREATE TABLE sla_events (
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    job_id          TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('acknowledge', 'resolve')),
    level           TEXT NOT NULL CHECK (level IN ('approaching', 'breached')),
    deadline        INTEGER NOT NULL,
    policy_id       TEXT NOT NULL,
    at              INTEGER NOT NULL,
    delivered_at    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    PRIMARY KEY (job_id, kind, level)
) STRICT;
CREATE INDEX sla_events_org ON sla_events (org_id, at);
CREATE INDEX sla_events_undelivered ON sla_events (next_attempt_at) WHERE delivered_at IS NULL;
