-- The org's checklist templates as the server last sent them (GET /api/v1/templates), so jobs
-- made on the device offline use the org's current versions. Until the first fetch the device
-- uses the built-in pack.
CREATE TABLE org_templates (
    name    TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL
) STRICT;
