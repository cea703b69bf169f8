-- 0005: what the server read from each stored image (photos and signatures): one row per blob of
-- an org, keyed by its sha256 (content-addressed, so the same photo on two jobs is one row), with
-- the decoded size, the EXIF time and GPS position when the image has them, and the thumbnail
-- sizes made so far ("320,1280"). Written once the original is in the blob store. Times are
-- microseconds since the Unix epoch, as in 0001.

CREATE TABLE photos (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mime       TEXT NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    taken_at   INTEGER,
    lat        REAL,
    lon        REAL,
    thumbnails TEXT NOT NULL DEFAULT '',
    stored_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, sha256)
) STRICT;
