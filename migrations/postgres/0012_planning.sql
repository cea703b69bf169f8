-- 0012: assignment suggestions and route plans (issue 11, sections 4 and 5): each org's planning
-- settings, and what each type of work (a checklist template's name) needs. The technicians'
-- skills, home location and time blocks, and the sites' locations, are 0006's tables.

CREATE TABLE planning_settings (
    org_id               uuid PRIMARY KEY REFERENCES orgs (id),
    -- A job made without assignees goes to its first eligible suggestion.
    auto_assign          boolean NOT NULL,
    default_duration_min integer NOT NULL CHECK (default_duration_min > 0),
    speed_kmh            double precision NOT NULL CHECK (speed_kmh > 0)
);

CREATE TABLE job_type_requirements (
    org_id            uuid NOT NULL REFERENCES orgs (id),
    template          text NOT NULL,
    skills            text[] NOT NULL,
    estimated_minutes integer CHECK (estimated_minutes > 0),
    PRIMARY KEY (org_id, template)
);

-- Tenant tables: the same policy as 0007's.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['planning_settings', 'job_type_requirements'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY org_scope ON %I USING (org_id = NULLIF(current_setting(''fieldsync.org_id'', true), '''')::uuid)',
            t
        );
        EXECUTE format('GRANT SELECT ON %I TO fieldsync_tenant', t);
    END LOOP;
END
$$;
