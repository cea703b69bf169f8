-- 0003: a rotated refresh token is marked used instead of deleted, so that presenting it again
-- is recognised as reuse (a copied token, or a client replaying an old one) and its device is
-- revoked: the thief's line of tokens and the owner's stop working together.
-- used_at is in microseconds since the Unix epoch, like expires_at.
ALTER TABLE tokens ADD COLUMN used_at INTEGER;
