-- 0012: assignment suggestions and route plans (issue 11, sections 4 and 5): each org's planning
-- settings, and what each type of work (a checklist template's name) needs. Same schema as
-- migrations/postgres/0012 in SQLite's terms (see 0006).

CREATE TABLE planning_settings (
    org_id               TEXT PRIMARY KEY REFERENCES orgs (id),
    auto_assign          INTEGER NOT NULL,
    default_duration_min INTEGER NOT NULL CHECK (default_duration_min > 0),
    speed_kmh            REAL NOT NULL CHECK (speed_kmh > 0)
) STRICT;

CREATE TABLE job_type_requirements (
    org_id            TEXT NOT NULL REFERENCES orgs (id),
    template          TEXT NOT NULL,
    -- A JSON array of skill names.
    skills            TEXT NOT NULL,
    estimated_minutes INTEGER CHECK (estimated_minutes > 0),
    PRIMARY KEY (org_id, template)
) STRICT;
