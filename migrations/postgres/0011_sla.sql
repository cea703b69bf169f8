-- 0011: SLA timers (issue 11, section 3): per org, job type (the checklist template's name, or
-- '*') and priority (or '*'), how long a job may take to be acknowledged and to be resolved, in
-- business hours or around the clock; and the breaches (and approaching ones) the watcher
-- recorded (sync-server/src/planning/sla.rs, sla_watch.rs).
--
-- An event's (job_id, kind, level) is its primary key: the watcher claims a breach by inserting
-- its row before it counts it or sends the webhook, so of several nodes, or a node restarted,
-- exactly one records each. Delivery to the webhook is tracked on the row (`delivered_at`,
-- retried with backoff from `next_attempt_at`).

CREATE TABLE sla_policies (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES orgs (id),
    -- A checklist template's name, or '*': any type.
    job_type           text NOT NULL,
    -- A priority (low, medium, high, urgent), or '*': any.
    priority           text NOT NULL,
    acknowledge_within_seconds integer NOT NULL CHECK (acknowledge_within_seconds > 0),
    resolve_within_seconds     integer NOT NULL CHECK (resolve_within_seconds > 0),
    -- The JSON of schemas::api::BusinessHours (a time zone and weekly opening hours), or NULL:
    -- the clock runs around the clock.
    business_hours     jsonb,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    UNIQUE (org_id, job_type, priority)
);

CREATE TABLE sla_events (
    org_id          uuid NOT NULL REFERENCES orgs (id),
    job_id          uuid NOT NULL,
    -- 'acknowledge' or 'resolve'.
    kind            text NOT NULL CHECK (kind IN ('acknowledge', 'resolve')),
    -- 'approaching' or 'breached'.
    level           text NOT NULL CHECK (level IN ('approaching', 'breached')),
    -- The deadline as computed when the event was recorded.
    deadline        timestamptz NOT NULL,
    policy_id       uuid NOT NULL,
    at              timestamptz NOT NULL,
    -- Webhook delivery: when it was delivered (NULL until then), attempts so far, when the next
    -- may start (a sender takes a lease by moving it on), and the last failure.
    delivered_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    PRIMARY KEY (job_id, kind, level)
);
CREATE INDEX sla_events_org ON sla_events (org_id, at);
CREATE INDEX sla_events_undelivered ON sla_events (next_attempt_at) WHERE delivered_at IS NULL;

-- Tenant tables: the same policy as 0007's.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sla_policies', 'sla_events'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY org_scope ON %I USING (org_id = NULLIF(current_setting(''fieldsync.org_id'', true), '''')::uuid)',
            t
        );
        EXECUTE format('GRANT SELECT ON %I TO fieldsync_tenant', t);
    END LOOP;
END
$$;
