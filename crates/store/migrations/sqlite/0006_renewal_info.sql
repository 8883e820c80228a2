-- The CA's renewal window (ARI, RFC 9773) of each issued certificate as last fetched, and
-- when to ask again (the CA's Retry-After), so cron runs do not poll the CA every time.
CREATE TABLE renewal_info (
    issued_id       INTEGER PRIMARY KEY REFERENCES issued (id),
    window_start    BIGINT  NOT NULL,
    window_end      BIGINT  NOT NULL,
    explanation_url TEXT,
    fetched_at      BIGINT  NOT NULL,
    next_fetch_at   BIGINT  NOT NULL
);
