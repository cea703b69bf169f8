-- 0005: what the server read from each stored image (photos and signatures): one row per blob of
-- an org, keyed by its sha256 (content-addressed, so the same photo on two jobs is one row), with
-- the decoded size, the EXIF time and GPS position when the image has them, and the thumbnail
-- sizes made so far ("320,1280"). Written once the original is in the blob store.

CREATE TABLE photos (
    org_id     uuid NOT NULL REFERENCES orgs (id),
    sha256     text NOT NULL,
    size       bigint NOT NULL,
    mime       text NOT NULL,
    width      integer NOT NULL,
    height     integer NOT NULL,
    taken_at   timestamptz,
    lat        double precision,
    lon        double precision,
    thumbnails text NOT NULL DEFAULT '',
    stored_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, sha256)
);
