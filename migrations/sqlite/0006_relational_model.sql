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
-- Every tenant table carries org_id. Quantities are REAL because the documents carry them as
-- numbers; money is INTEGER cents, so sums are exact. The same schema as
-- migrations/postgres/0006 in SQLite's terms: UUIDs as TEXT, times as microseconds since the
-- Unix epoch, dates as 'YYYY-MM-DD', INTEGERs 0 or 1, JSON as TEXT.

CREATE TABLE customers (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    name       TEXT NOT NULL,
    phone      TEXT,
    email      TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE sites (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    customer_id TEXT NOT NULL REFERENCES customers (id),
    name        TEXT NOT NULL,
    address     TEXT,
    lat         REAL,
    lon         REAL,
    time_zone   TEXT NOT NULL DEFAULT 'UTC',
    UNIQUE (customer_id, name)
) STRICT;
CREATE INDEX sites_org ON sites (org_id);

CREATE TABLE assets (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    site_id      TEXT NOT NULL REFERENCES sites (id),
    name         TEXT NOT NULL,
    make         TEXT,
    model        TEXT,
    serial       TEXT,
    vin          TEXT CHECK (vin IS NULL OR length(vin) = 17),
    install_date TEXT
) STRICT;
CREATE INDEX assets_org ON assets (org_id);
CREATE INDEX assets_site ON assets (site_id);

-- A technician's profile beside their user row (users holds the sign-in).
CREATE TABLE technicians (
    user_id      TEXT PRIMARY KEY REFERENCES users (id),
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    display_name TEXT NOT NULL,
    phone        TEXT,
    home_lat     REAL,
    home_lon     REAL
) STRICT;
CREATE INDEX technicians_org ON technicians (org_id);

CREATE TABLE skills (
    id     TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name   TEXT NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE technician_skills (
    org_id   TEXT NOT NULL REFERENCES orgs (id),
    user_id  TEXT NOT NULL REFERENCES technicians (user_id),
    skill_id TEXT NOT NULL REFERENCES skills (id),
    PRIMARY KEY (user_id, skill_id)
) STRICT;

CREATE TABLE technician_time_blocks (
    id        TEXT PRIMARY KEY,
    org_id    TEXT NOT NULL REFERENCES orgs (id),
    user_id   TEXT NOT NULL REFERENCES technicians (user_id),
    starts_at INTEGER NOT NULL,
    ends_at   INTEGER NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('available', 'break', 'pto')),
    CHECK (ends_at > starts_at)
) STRICT;
CREATE INDEX technician_time_blocks_user ON technician_time_blocks (user_id, starts_at);

CREATE TABLE parts_catalog (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    sku              TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit             TEXT,
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    unit_cost_cents  INTEGER NOT NULL CHECK (unit_cost_cents >= 0),
    UNIQUE (org_id, sku)
) STRICT;

-- Warehouses and vans. A part line names its location by code; without one it comes from the
-- van of the technician who added it.
CREATE TABLE stock_locations (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    code          TEXT NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('warehouse', 'van')),
    technician_id TEXT REFERENCES users (id),
    UNIQUE (org_id, code),
    CHECK (kind = 'van' OR technician_id IS NULL)
) STRICT;
CREATE UNIQUE INDEX stock_locations_van ON stock_locations (technician_id) WHERE kind = 'van';

-- On hand per location and SKU: always the sum of the location's movements for that SKU (kept
-- in the movement's transaction).
CREATE TABLE stock_levels (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    location_id TEXT NOT NULL REFERENCES stock_locations (id),
    sku         TEXT NOT NULL,
    on_hand     REAL NOT NULL,
    PRIMARY KEY (location_id, sku)
) STRICT;

-- Every change of stock, signed (negative leaves the location). A job's parts line moves stock
-- through rows naming the job and the line: the projection adds the difference between what the
-- line takes now and what its rows already took, so a line moves stock exactly once however
-- often it is projected.
CREATE TABLE stock_movements (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    location_id TEXT NOT NULL REFERENCES stock_locations (id),
    sku         TEXT NOT NULL,
    qty         REAL NOT NULL,
    reason      TEXT NOT NULL CHECK (reason IN ('receipt', 'adjustment', 'job_use')),
    job_id      TEXT,
    line_id     TEXT,
    at          INTEGER NOT NULL,
    CHECK ((reason = 'job_use') = (job_id IS NOT NULL AND line_id IS NOT NULL))
) STRICT;
CREATE INDEX stock_movements_job ON stock_movements (job_id, line_id) WHERE job_id IS NOT NULL;
CREATE INDEX stock_movements_location ON stock_movements (location_id, sku);

-- The next job number of each org. Taken in the projection's transaction, which one node at a
-- time holds, so numbers are unique and gapless (a rolled back transaction gives its back).
CREATE TABLE org_counters (
    org_id          TEXT PRIMARY KEY REFERENCES orgs (id),
    next_job_number INTEGER NOT NULL
) STRICT;

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    number          INTEGER NOT NULL,
    title           TEXT NOT NULL,
    priority        TEXT NOT NULL,
    status          TEXT NOT NULL,
    scheduled_start INTEGER,
    scheduled_end   INTEGER,
    -- The list's order and date filter: the scheduled start, or the creation time.
    sort_at         INTEGER NOT NULL,
    customer_id     TEXT REFERENCES customers (id),
    customer_name   TEXT NOT NULL,
    site_id         TEXT REFERENCES sites (id),
    site_name       TEXT NOT NULL,
    asset_id        TEXT REFERENCES assets (id),
    asset_name      TEXT,
    assignees       TEXT NOT NULL,
    signed_off      INTEGER NOT NULL CHECK (signed_off IN (0, 1)),
    follow_up_of    TEXT,
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    UNIQUE (org_id, number)
) STRICT;
CREATE INDEX jobs_org_sort ON jobs (org_id, sort_at, id);
CREATE INDEX jobs_org_status ON jobs (org_id, status);

CREATE TABLE job_status_history (
    org_id   TEXT NOT NULL REFERENCES orgs (id),
    job_id   TEXT NOT NULL REFERENCES jobs (id),
    position INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    by_name     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (job_id, position)
) STRICT;

-- Each job's checklist: which template (the job's type of work) it was made from.
CREATE TABLE job_checklists (
    id       TEXT PRIMARY KEY,
    org_id   TEXT NOT NULL REFERENCES orgs (id),
    job_id   TEXT NOT NULL,
    template TEXT NOT NULL,
    title    TEXT NOT NULL
) STRICT;
CREATE INDEX job_checklists_job ON job_checklists (job_id);

CREATE TABLE checklist_responses (
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    job_id       TEXT NOT NULL,
    checklist_id TEXT NOT NULL,
    position     INTEGER NOT NULL,
    item_id      TEXT NOT NULL,
    label        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    required     INTEGER NOT NULL CHECK (required IN (0, 1)),
    value        TEXT,
    by_name      TEXT,
    at           INTEGER,
    PRIMARY KEY (checklist_id, item_id)
) STRICT;
CREATE INDEX checklist_responses_job ON checklist_responses (job_id);

CREATE TABLE job_parts (
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    job_id           TEXT NOT NULL,
    parts_id         TEXT NOT NULL,
    line_id          TEXT NOT NULL,
    sku              TEXT NOT NULL,
    description      TEXT NOT NULL,
    qty              REAL NOT NULL,
    unit             TEXT,
    location_id      TEXT REFERENCES stock_locations (id),
    unit_price_cents INTEGER,
    unit_cost_cents  INTEGER,
    by_name          TEXT NOT NULL,
    at               INTEGER NOT NULL,
    PRIMARY KEY (parts_id, line_id)
) STRICT;
CREATE INDEX job_parts_job ON job_parts (job_id);

CREATE TABLE job_photos (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    job_id         TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    size           INTEGER NOT NULL,
    mime           TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    taken_at       INTEGER NOT NULL,
    lat            REAL,
    lon            REAL,
    checklist_item TEXT,
    caption        TEXT NOT NULL,
    upload         TEXT NOT NULL,
    review_state   TEXT,
    review_by      TEXT,
    review_at      INTEGER,
    review_note    TEXT
) STRICT;
CREATE INDEX job_photos_job ON job_photos (job_id);

CREATE TABLE signatures (
    job_id         TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    signer_name    TEXT NOT NULL,
    signed_at      INTEGER NOT NULL,
    summary_sha256 TEXT NOT NULL,
    blob_sha256    TEXT NOT NULL,
    by_name        TEXT NOT NULL
) STRICT;

-- How far the projection has read the change log: every change with seq <= upto_seq is in the
-- rows above. One row; the projecting node holds it locked for its transaction.
CREATE TABLE projection_state (
    name       TEXT PRIMARY KEY,
    upto_seq   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
INSERT INTO projection_state (name, upto_seq, updated_at) VALUES ('rows', 0, 0);
