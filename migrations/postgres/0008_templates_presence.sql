-- 0008: an org's own checklist templates, versioned, and where technicians are connected.

-- Every version of every template an org wrote; a job's checklist copies the version it was made
-- from, so a later version changes no job. Built-in templates are version 0 and live in the
-- binary; an org's version of the same name replaces it for the org's new jobs.
CREATE TABLE checklist_templates (
    org_id     uuid NOT NULL REFERENCES orgs (id),
    name       text NOT NULL,
    version    integer NOT NULL CHECK (version >= 1),
    body       jsonb NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, name, version)
);

-- Each node's connected users, rewritten by the node every few seconds: a user is online while
-- some node saw them connected recently (a node that died stops refreshing its rows, so they
-- age out), and `seen_at` of the latest row is their last sync.
CREATE TABLE presence (
    node_id     uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id),
    org_id      uuid NOT NULL REFERENCES orgs (id),
    connections integer NOT NULL CHECK (connections >= 0),
    seen_at     timestamptz NOT NULL,
    PRIMARY KEY (node_id, user_id)
);
CREATE INDEX presence_user ON presence (user_id, seen_at);

-- Both are tenant tables: the same policy as 0007's.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['checklist_templates', 'presence'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY org_scope ON %I USING (org_id = NULLIF(current_setting(''fieldsync.org_id'', true), '''')::uuid)',
            t
        );
        EXECUTE format('GRANT SELECT ON %I TO fieldsync_tenant', t);
    END LOOP;
END
$$;
