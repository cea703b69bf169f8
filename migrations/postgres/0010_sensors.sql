-- 0010: IoT sensors → jobs (issue 11, section 2): sensors registered to assets with thresholds and
-- a trigger rule, their readings, and the jobs their rules opened (sync-server/src/iot/).
--
-- A firing is claimed in the store before its job is made, like a PM occurrence (0009): the
-- claim is one transaction that flips the sensor's `armed` to false (only while it is armed and
-- past its cool-down) and inserts the `sensor_jobs` row with the ids the job will have. Of
-- several nodes evaluating readings of one sensor, exactly one wins; the sensor is armed again
-- when a node sees a reading back inside the thresholds (by the hysteresis). A claimed row whose
-- job was never finished (`job_created_at` NULL) is taken over after a lease, with the same ids.

CREATE TABLE sensors (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs (id),
    asset_id      uuid NOT NULL REFERENCES assets (id),
    kind          text NOT NULL,
    unit          text NOT NULL,
    min_value     double precision,
    max_value     double precision,
    consecutive   integer NOT NULL CHECK (consecutive BETWEEN 1 AND 10000),
    duration_s    integer NOT NULL CHECK (duration_s >= 0),
    hysteresis    double precision NOT NULL CHECK (hysteresis >= 0),
    cooldown_s    integer NOT NULL CHECK (cooldown_s >= 0),
    template      text NOT NULL,
    priority      text NOT NULL,
    assignee      text,
    armed         boolean NOT NULL DEFAULT true,
    last_fired_at timestamptz,
    created_at    timestamptz NOT NULL,
    CHECK (min_value IS NOT NULL OR max_value IS NOT NULL)
);
CREATE INDEX sensors_org ON sensors (org_id);
CREATE INDEX sensors_asset ON sensors (asset_id);

-- Readings, many and small: no foreign key (the server checks the sensor and its org in memory
-- before a batch is written, and a key check per row would halve the insert rate) and no primary
-- key (MQTT delivers at least once; a repeated reading is harmless to the rules). Read by
-- (sensor, time range); pruned by time (FIELDSYNC_READINGS_RETENTION_DAYS), for which the BRIN
-- index on `at` suffices since rows arrive roughly in time order.
CREATE TABLE sensor_readings (
    sensor_id   uuid NOT NULL,
    org_id      uuid NOT NULL,
    at          timestamptz NOT NULL,
    value       double precision NOT NULL
);
CREATE INDEX sensor_readings_sensor_at ON sensor_readings (sensor_id, at);
CREATE INDEX sensor_readings_at ON sensor_readings USING brin (at);

CREATE TABLE sensor_jobs (
    sensor_id      uuid NOT NULL REFERENCES sensors (id),
    fired_at       timestamptz NOT NULL,
    org_id         uuid NOT NULL REFERENCES orgs (id),
    value          double precision NOT NULL,
    job_id         uuid NOT NULL UNIQUE,
    checklist_id   uuid NOT NULL,
    parts_id       uuid NOT NULL,
    claimed_at     timestamptz NOT NULL,
    job_created_at timestamptz,
    PRIMARY KEY (sensor_id, fired_at)
);
CREATE INDEX sensor_jobs_open ON sensor_jobs (claimed_at) WHERE job_created_at IS NULL;

-- Tenant tables: the same policy as 0007's.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sensors', 'sensor_readings', 'sensor_jobs'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY org_scope ON %I USING (org_id = NULLIF(current_setting(''fieldsync.org_id'', true), '''')::uuid)',
            t
        );
        EXECUTE format('GRANT SELECT ON %I TO fieldsync_tenant', t);
    END LOOP;
END
$$;
