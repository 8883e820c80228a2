-- The hub's users, their API tokens, and the audit log.
-- password_hash is an argon2id PHC string; token_hash the SHA-256 (hex) of the token's secret
-- part, which is random and shown once. The audit log is append-only: each entry's hash covers
-- the previous entry's hash and its own fields, so an edited or removed entry breaks the chain.
CREATE TABLE users (
    name          TEXT    PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT    PRIMARY KEY,
    user_name    TEXT    NOT NULL REFERENCES users (name),
    label        TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    expires_at   BIGINT,
    created_at   BIGINT  NOT NULL,
    last_used_at BIGINT
);

CREATE INDEX api_tokens_user ON api_tokens (user_name);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        BIGINT  NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    source    TEXT    NOT NULL,
    detail    TEXT,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
