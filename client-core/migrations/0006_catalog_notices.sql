-- The org's parts catalog as the server last sent it, with what the technician's van holds
-- (`on_hand`, NULL when the device does not know), so parts are searched offline.
CREATE TABLE catalog (
    sku              TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    unit             TEXT,
    unit_price_cents INTEGER NOT NULL,
    on_hand          REAL
);

-- Things the technician must be told that no screen shows by itself (a job the dispatcher
-- unassigned left the device once its changes were uploaded). Kept until dismissed; no foreign
-- key, because the job they speak of is gone.
CREATE TABLE notices (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    job_id    TEXT,
    text      TEXT NOT NULL,
    dismissed INTEGER NOT NULL DEFAULT 0
);
