-- 0009: preventive maintenance (issue 11, section 1): PM templates, schedules per asset, and the
-- occurrences the scheduler made (sync-server/src/planning/).
--
-- An occurrence's (schedule_id, due_date) is its primary key: the scheduler claims a due date by
-- inserting its row (with the ids its job will have) before it makes the job, so of several
-- nodes, or a node restarted after a crash, exactly one makes each occurrence's job; a claimed
-- row whose job was never finished (`job_created_at` NULL) is taken over after a lease, with the
-- same ids. Same schema as migrations/postgres/0009 in SQLite's terms (see 0006).

-- A kind of maintenance: the checklist its jobs get, how long it takes, the skills it needs.
CREATE TABLE pm_templates (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES orgs (id),
    name               TEXT NOT NULL,
    checklist_template TEXT NOT NULL,
    estimated_minutes  INTEGER NOT NULL CHECK (estimated_minutes > 0),
    -- A JSON array of skill names.
    required_skills    TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

-- One asset's maintenance. `rule` is the JSON of schemas::api::PmRule (every N days, weeks or
-- months; a day of the month; the Nth weekday of the month); due dates are days in the time zone
-- of the asset's site. `anchor`: the next due date counts from the last due date or the last
-- completion. `last_due_date` is the latest claimed occurrence, `last_completed_at` the latest
-- completion of an occurrence's job.
CREATE TABLE pm_schedules (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs (id),
    asset_id          TEXT NOT NULL REFERENCES assets (id),
    template_id       TEXT NOT NULL REFERENCES pm_templates (id),
    rule              TEXT NOT NULL,
    anchor            TEXT NOT NULL CHECK (anchor IN ('due', 'completion')),
    horizon_days      INTEGER NOT NULL CHECK (horizon_days BETWEEN 0 AND 366),
    start_date        TEXT NOT NULL,
    assignee          TEXT,
    last_due_date     TEXT,
    last_completed_at INTEGER,
    created_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX pm_schedules_org ON pm_schedules (org_id);

CREATE TABLE pm_occurrences (
    schedule_id     TEXT NOT NULL REFERENCES pm_schedules (id),
    due_date        TEXT NOT NULL,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    job_id          TEXT NOT NULL UNIQUE,
    checklist_id    TEXT NOT NULL,
    parts_id        TEXT NOT NULL,
    scheduled_start INTEGER NOT NULL,
    claimed_at      INTEGER NOT NULL,
    job_created_at  INTEGER,
    completed_at    INTEGER,
    PRIMARY KEY (schedule_id, due_date)
) STRICT;
CREATE INDEX pm_occurrences_open ON pm_occurrences (org_id, completed_at);
