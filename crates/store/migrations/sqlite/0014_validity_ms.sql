-- One unit of time: an issued certificate's validity and revocation time in epoch
-- milliseconds, as every other time in the store (they were written in unix seconds).
UPDATE issued SET not_before = not_before * 1000, not_after = not_after * 1000,
    revoked_at = revoked_at * 1000;
