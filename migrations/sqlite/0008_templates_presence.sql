-- 0008: an org's own checklist templates, versioned, and where technicians are connected.

-- Every version of every template an org wrote; a job's checklist copies the version it was made
-- from, so a later version changes no job. Built-in templates are version 0 and live in the
-- binary; an org's version of the same name replaces it for the org's new jobs.
CREATE TABLE checklist_templates (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    body       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, name, version)
) STRICT;

-- Each node's connected users, rewritten by the node every few seconds: a user is online while
-- some node saw them connected recently (a node that died stops refreshing its rows, so they
-- age out), and `seen_at` of the latest row is their last sync.
CREATE TABLE presence (
    node_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    connections INTEGER NOT NULL CHECK (connections >= 0),
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (node_id, user_id)
) STRICT;
CREATE INDEX presence_user ON presence (user_id, seen_at);
