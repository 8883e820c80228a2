-- One unit of time (see the SQLite migration 0014).
UPDATE issued SET not_before = not_before * 1000, not_after = not_after * 1000,
    revoked_at = revoked_at * 1000;
