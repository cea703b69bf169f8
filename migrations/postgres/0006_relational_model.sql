-- 0006: the relational model of the field-service core (the seeds' customers, sites, assets,
-- technicians, inventory), and the tables the projection keeps in step with the documents.
--
-- Two kinds of table live here:
-- * Reference data the dispatcher API writes directly: customers, sites, assets, technician
--   profiles, skills and time blocks, the parts catalog, stock locations, stock receipts.
-- * Projected rows (jobs, job_status_history, checklist_responses, job_parts, job_photos,
--   signatures, and the stock movements of parts used): a function of the documents alone,
--   written only by the projection (sync-server/src/projection/), in the same transaction as its
--   position in the change log (projection_state), so rebuilding them from the log gives the
--   same rows and a change applied twice changes nothing.
--
-- Every tenant table carries org_id. Quantities are double precision because the documents
-- carry them as numbers; money is integer cents, so sums are exact.

CREATE TABLE customers (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES orgs (id),
    name       text NOT NULL,
    phone      text,
    email      text,
    created_at timestamptz NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE sites (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES orgs (id),
    customer_id uuid NOT NULL REFERENCES customers (id),
    name        text NOT NULL,
    address     text,
    lat         double precision,
    lon         double precision,
    time_zone   text NOT NULL DEFAULT 'UTC',
    UNIQUE (customer_id, name)
);
CREATE INDEX sites_org ON sites (org_id);

CREATE TABLE assets (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES orgs (id),
    site_id      uuid NOT NULL REFERENCES sites (id),
    name         text NOT NULL,
    make         text,
    model        text,
    serial       text,
    vin          text CHECK (vin IS NULL OR length(vin) = 17),
    install_date date
);
CREATE INDEX assets_org ON assets (org_id);
CREATE INDEX assets_site ON assets (site_id);

-- A technician's profile beside their user row (users holds the sign-in).
CREATE TABLE technicians (
    user_id      uuid PRIMARY KEY REFERENCES users (id),
    org_id       uuid NOT NULL REFERENCES orgs (id),
    display_name text NOT NULL,
    phone        text,
    home_lat     double precision,
    home_lon     double precision
);
CREATE INDEX technicians_org ON technicians (org_id);

CREATE TABLE skills (
    id     uuid PRIMARY KEY,
    org_id uuid NOT NULL REFERENCES orgs (id),
    name   text NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE technician_skills (
    org_id   uuid NOT NULL REFERENCES orgs (id),
    user_id  uuid NOT NULL REFERENCES technicians (user_id),
    skill_id uuid NOT NULL REFERENCES skills (id),
    PRIMARY KEY (user_id, skill_id)
);

CREATE TABLE technician_time_blocks (
    id        uuid PRIMARY KEY,
    org_id    uuid NOT NULL REFERENCES orgs (id),
    user_id   uuid NOT NULL REFERENCES technicians (user_id),
    starts_at timestamptz NOT NULL,
    ends_at   timestamptz NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('available', 'break', 'pto')),
    CHECK (ends_at > starts_at)
);
CREATE INDEX technician_time_blocks_user ON technician_time_blocks (user_id, starts_at);

CREATE TABLE parts_catalog (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES orgs (id),
    sku              text NOT NULL,
    name             text NOT NULL,
    unit             text,
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    unit_cost_cents  bigint NOT NULL CHECK (unit_cost_cents >= 0),
    UNIQUE (org_id, sku)
);

-- Warehouses and vans. A part line names its location by code; without one it comes from the
-- van of the technician who added it.
CREATE TABLE stock_locations (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES orgs (id),
    code          text NOT NULL,
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('warehouse', 'van')),
    technician_id uuid REFERENCES users (id),
    UNIQUE (org_id, code),
    CHECK (kind = 'van' OR technician_id IS NULL)
);
CREATE UNIQUE INDEX stock_locations_van ON stock_locations (technician_id) WHERE kind = 'van';

-- On hand per location and SKU: always the sum of the location's movements for that SKU (kept
-- in the movement's transaction).
CREATE TABLE stock_levels (
    org_id      uuid NOT NULL REFERENCES orgs (id),
    location_id uuid NOT NULL REFERENCES stock_locations (id),
    sku         text NOT NULL,
    on_hand     double precision NOT NULL,
    PRIMARY KEY (location_id, sku)
);

-- Every change of stock, signed (negative leaves the location). A job's parts line moves stock
-- through rows naming the job and the line: the projection adds the difference between what the
-- line takes now and what its rows already took, so a line moves stock exactly once however
-- often it is projected.
CREATE TABLE stock_movements (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES orgs (id),
    location_id uuid NOT NULL REFERENCES stock_locations (id),
    sku         text NOT NULL,
    qty         double precision NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('receipt', 'adjustment', 'job_use')),
    job_id      uuid,
    line_id     text,
    at          timestamptz NOT NULL,
    CHECK ((reason = 'job_use') = (job_id IS NOT NULL AND line_id IS NOT NULL))
);
CREATE INDEX stock_movements_job ON stock_movements (job_id, line_id) WHERE job_id IS NOT NULL;
CREATE INDEX stock_movements_location ON stock_movements (location_id, sku);

-- The next job number of each org. Taken in the projection's transaction, which one node at a
-- time holds, so numbers are unique and gapless (a rolled back transaction gives its back).
CREATE TABLE org_counters (
    org_id          uuid PRIMARY KEY REFERENCES orgs (id),
    next_job_number bigint NOT NULL
);

CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES orgs (id),
    number          bigint NOT NULL,
    title           text NOT NULL,
    priority        text NOT NULL,
    status          text NOT NULL,
    scheduled_start timestamptz,
    scheduled_end   timestamptz,
    -- The list's order and date filter: the scheduled start, or the creation time.
    sort_at         timestamptz NOT NULL,
    customer_id     uuid REFERENCES customers (id),
    customer_name   text NOT NULL,
    site_id         uuid REFERENCES sites (id),
    site_name       text NOT NULL,
    asset_id        uuid REFERENCES assets (id),
    asset_name      text,
    assignees       text NOT NULL,
    signed_off      boolean NOT NULL,
    follow_up_of    uuid,
    created_at      timestamptz NOT NULL,
    created_by      text NOT NULL,
    UNIQUE (org_id, number)
);
CREATE INDEX jobs_org_sort ON jobs (org_id, sort_at, id);
CREATE INDEX jobs_org_status ON jobs (org_id, status);

CREATE TABLE job_status_history (
    org_id   uuid NOT NULL REFERENCES orgs (id),
    job_id   uuid NOT NULL REFERENCES jobs (id),
    position integer NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    by_name     text NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (job_id, position)
);

-- Each job's checklist: which template (the job's type of work) it was made from.
CREATE TABLE job_checklists (
    id       uuid PRIMARY KEY,
    org_id   uuid NOT NULL REFERENCES orgs (id),
    job_id   uuid NOT NULL,
    template text NOT NULL,
    title    text NOT NULL
);
CREATE INDEX job_checklists_job ON job_checklists (job_id);

CREATE TABLE checklist_responses (
    org_id       uuid NOT NULL REFERENCES orgs (id),
    job_id       uuid NOT NULL,
    checklist_id uuid NOT NULL,
    position     integer NOT NULL,
    item_id      text NOT NULL,
    label        text NOT NULL,
    kind         text NOT NULL,
    required     boolean NOT NULL,
    value        jsonb,
    by_name      text,
    at           timestamptz,
    PRIMARY KEY (checklist_id, item_id)
);
CREATE INDEX checklist_responses_job ON checklist_responses (job_id);

CREATE TABLE job_parts (
    org_id           uuid NOT NULL REFERENCES orgs (id),
    job_id           uuid NOT NULL,
    parts_id         uuid NOT NULL,
    line_id          text NOT NULL,
    sku              text NOT NULL,
    description      text NOT NULL,
    qty              double precision NOT NULL,
    unit             text,
    location_id      uuid REFERENCES stock_locations (id),
    unit_price_cents bigint,
    unit_cost_cents  bigint,
    by_name          text NOT NULL,
    at               timestamptz NOT NULL,
    PRIMARY KEY (parts_id, line_id)
);
CREATE INDEX job_parts_job ON job_parts (job_id);

CREATE TABLE job_photos (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs (id),
    job_id         uuid NOT NULL,
    sha256         text NOT NULL,
    size           bigint NOT NULL,
    mime           text NOT NULL,
    width          integer NOT NULL,
    height         integer NOT NULL,
    taken_at       timestamptz NOT NULL,
    lat            double precision,
    lon            double precision,
    checklist_item text,
    caption        text NOT NULL,
    upload         text NOT NULL,
    review_state   text,
    review_by      text,
    review_at      timestamptz,
    review_note    text
);
CREATE INDEX job_photos_job ON job_photos (job_id);

CREATE TABLE signatures (
    job_id         uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs (id),
    signer_name    text NOT NULL,
    signed_at      timestamptz NOT NULL,
    summary_sha256 text NOT NULL,
    blob_sha256    text NOT NULL,
    by_name        text NOT NULL
);

-- How far the projection has read the change log: every change with seq <= upto_seq is in the
-- rows above. One row; the projecting node holds it locked for its transaction.
CREATE TABLE projection_state (
    name       text PRIMARY KEY,
    upto_seq   bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
INSERT INTO projection_state (name, upto_seq, updated_at) VALUES ('rows', 0, now());
