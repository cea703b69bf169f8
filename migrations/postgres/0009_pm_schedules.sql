-- 0009: preventive maintenance (issue 11, section 1): PM templates, schedules per asset, and the
-- occurrences the scheduler made (sync-server/src/planning/).
--
-- An occurrence's (schedule_id, due_date) is its primary key: the scheduler claims a due date by
-- inserting its row (with the ids its job will have) before it makes the job, so of several
-- nodes, or a node restarted after a crash, exactly one makes each occurrence's job; a claimed
-- row whose job was never finished (`job_created_at` NULL) is taken over after a lease, with the
-- same ids.

-- A kind of maintenance: the checklist its jobs get, how long it takes, the skills it needs.
CREATE TABLE pm_templates (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES orgs (id),
    name               text NOT NULL,
    checklist_template text NOT NULL,
    estimated_minutes  integer NOT NULL CHECK (estimated_minutes > 0),
    required_skills    text[] NOT NULL,
    created_at         timestamptz NOT NULL,
    UNIQUE (org_id, name)
);

-- One asset's maintenance. `rule` is the JSON of schemas::api::PmRule (every N days, weeks or
-- months; a day of the month; the Nth weekday of the month); due dates are days in the time zone
-- of the asset's site. `anchor`: the next due date counts from the last due date or the last
-- completion. `last_due_date` is the latest claimed occurrence, `last_completed_at` the latest
-- completion of an occurrence's job.
CREATE TABLE pm_schedules (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES orgs (id),
    asset_id          uuid NOT NULL REFERENCES assets (id),
    template_id       uuid NOT NULL REFERENCES pm_templates (id),
    rule              jsonb NOT NULL,
    anchor            text NOT NULL CHECK (anchor IN ('due', 'completion')),
    horizon_days      integer NOT NULL CHECK (horizon_days BETWEEN 0 AND 366),
    start_date        date NOT NULL,
    assignee          text,
    last_due_date     date,
    last_completed_at timestamptz,
    created_at        timestamptz NOT NULL
);
CREATE INDEX pm_schedules_org ON pm_schedules (org_id);

CREATE TABLE pm_occurrences (
    schedule_id     uuid NOT NULL REFERENCES pm_schedules (id),
    due_date        date NOT NULL,
    org_id          uuid NOT NULL REFERENCES orgs (id),
    job_id          uuid NOT NULL UNIQUE,
    checklist_id    uuid NOT NULL,
    parts_id        uuid NOT NULL,
    scheduled_start timestamptz NOT NULL,
    claimed_at      timestamptz NOT NULL,
    job_created_at  timestamptz,
    completed_at    timestamptz,
    PRIMARY KEY (schedule_id, due_date)
);
CREATE INDEX pm_occurrences_open ON pm_occurrences (org_id, completed_at);

-- Tenant tables: the same policy as 0007's.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['pm_templates', 'pm_schedules', 'pm_occurrences'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY org_scope ON %I USING (org_id = NULLIF(current_setting(''fieldsync.org_id'', true), '''')::uuid)',
            t
        );
        EXECUTE format('GRANT SELECT ON %I TO fieldsync_tenant', t);
    END LOOP;
END
$$;
