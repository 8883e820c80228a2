-- The renewal scheduler wakes for the earliest retry after a failure as it does for the
-- earliest check time: both are one index lookup.
CREATE INDEX certs_next_attempt_at ON certs (next_attempt_at);
