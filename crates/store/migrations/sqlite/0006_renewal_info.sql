-- The CA's renewal window (ARI, RFC 9773) of each issued certificate as last fetched, and
-- when to ask again (the CA's Retry-After), so cron runs do not poll the CA every time;
-- directory_url is the CA that answered (it knows the certificate: a renewal may name it in
-- `replaces`).
CREATE TABLE renewal_info (
    issued_id       INTEGER PRIMARY KEY REFERENCES issued (id),
    window_start    BIGINT  NOT NULL,
    window_end      BIGINT  NOT NULL,
    directory_url   TEXT    NOT NULL,
    explanation_url TEXT,
    fetched_at      BIGINT  NOT NULL,
    next_fetch_at   BIGINT  NOT NULL
);
