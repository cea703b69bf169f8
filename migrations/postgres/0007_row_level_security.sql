-- 0007: row-level security per org, for the queries the API makes on a caller's behalf.
--
-- Those queries run as the role fieldsync_tenant (`SET LOCAL ROLE` inside their transaction) with
-- the caller's org in the transaction-local setting fieldsync.org_id; every policy compares a
-- row's org_id with it, so a query made for org A cannot see a row of org B even if its own
-- WHERE clause forgot the org. Without the setting a tenant query sees no rows at all. The
-- server's own connection (the tables' owner: the projection, the sync) is not subject to the
-- policies.
--
-- The role is cluster-wide, so creating it tolerates its existing already (another database of
-- the same cluster, or a race with one migrating at the same moment).

DO $$
BEGIN
    CREATE ROLE fieldsync_tenant NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- The server's user must be able to switch to the role (a superuser always can).
DO $$
BEGIN
    EXECUTE format('GRANT fieldsync_tenant TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'users', 'documents', 'audit_log', 'photos',
        'customers', 'sites', 'assets', 'technicians', 'skills', 'technician_skills',
        'technician_time_blocks', 'parts_catalog', 'stock_locations', 'stock_levels',
        'stock_movements', 'jobs', 'job_status_history', 'job_checklists', 'checklist_responses',
        'job_parts', 'job_photos', 'signatures'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY org_scope ON %I USING (org_id = NULLIF(current_setting(''fieldsync.org_id'', true), '''')::uuid)',
            t
        );
        EXECUTE format('GRANT SELECT ON %I TO fieldsync_tenant', t);
    END LOOP;
END
$$;

-- Assignments carry no org of their own: a tenant sees those of its org's jobs.
GRANT SELECT ON assignments TO fieldsync_tenant;
ALTER TABLE assignments ENABLE ROW LEVEL SECURITY;
CREATE POLICY org_scope ON assignments USING (
    EXISTS (SELECT 1 FROM users u WHERE u.id = assignments.user_id)
);
