-- Notification channels and once-only notices (see the SQLite migration 0008).
CREATE TABLE notification_channels (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config BYTEA NOT NULL,
    events TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE notices (
    cert_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    occasion TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (cert_name, kind, occasion)
);
