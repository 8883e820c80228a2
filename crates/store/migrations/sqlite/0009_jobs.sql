-- Long operations started through the hub (a request), kept so that their status outlives
-- the hub process and can be read from any hub sharing the database. steps holds one line a
-- step, in order.
CREATE TABLE jobs (
    id         TEXT   PRIMARY KEY,
    kind       TEXT   NOT NULL,
    target     TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    steps      TEXT   NOT NULL,
    result     TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_updated_at ON jobs (updated_at);
