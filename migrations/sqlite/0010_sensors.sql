-- 0010: IoT sensors → jobs (issue 11, section 2): sensors registered to assets with thresholds and
-- a trigger rule, their readings, and the jobs their rules opened (sync-server/src/iot/). Same
-- schema as migrations/postgres/0010 in SQLite's terms (see 0006); read that file for the claim.

CREATE TABLE sensors (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    asset_id      TEXT NOT NULL REFERENCES assets (id),
    kind          TEXT NOT NULL,
    unit          TEXT NOT NULL,
    min_value     REAL,
    max_value     REAL,
    consecutive   INTEGER NOT NULL CHECK (consecutive BETWEEN 1 AND 10000),
    duration_s    INTEGER NOT NULL CHECK (duration_s >= 0),
    hysteresis    REAL NOT NULL CHECK (hysteresis >= 0),
    cooldown_s    INTEGER NOT NULL CHECK (cooldown_s >= 0),
    template      TEXT NOT NULL,
    priority      TEXT NOT NULL,
    assignee      TEXT,
    armed         INTEGER NOT NULL DEFAULT 1,
    last_fired_at INTEGER,
    created_at    INTEGER NOT NULL,
    CHECK (min_value IS NOT NULL OR max_value IS NOT NULL)
) STRICT;
CREATE INDEX sensors_org ON sensors (org_id);
CREATE INDEX sensors_asset ON sensors (asset_id);

-- Readings: no foreign key and no primary key (see the Postgres file); times in microseconds.
CREATE TABLE sensor_readings (
    sensor_id TEXT NOT NULL,
    org_id    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    value     REAL NOT NULL
) STRICT;
CREATE INDEX sensor_readings_sensor_at ON sensor_readings (sensor_id, at);
CREATE INDEX sensor_readings_at ON sensor_readings (at);

CREATE TABLE sensor_jobs (
    sensor_id      TEXT NOT NULL REFERENCES sensors (id),
    fired_at       INTEGER NOT NULL,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    value          REAL NOT NULL,
    job_id         TEXT NOT NULL UNIQUE,
    checklist_id   TEXT NOT NULL,
    parts_id       TEXT NOT NULL,
    claimed_at     INTEGER NOT NULL,
    job_created_at INTEGER,
    PRIMARY KEY (sensor_id, fired_at)
) STRICT;
