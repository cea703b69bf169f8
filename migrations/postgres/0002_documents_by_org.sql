-- 0002: an index for an org's whole document list (every kind, not only jobs), in the order it
-- is read (by job, then document), so the dispatcher's view does not scan every org's documents.

CREATE INDEX documents_org_id ON documents (org_id, job_id, id);
