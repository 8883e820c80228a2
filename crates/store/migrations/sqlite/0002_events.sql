-- What happened to each managed certificate, in order: ordered, validated, issued,
-- failed (with the reason), revoked. Kept when a request fails; removed with the certificate.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    cert_name  TEXT    NOT NULL,
    at         BIGINT  NOT NULL,
    kind       TEXT    NOT NULL,
    detail     TEXT
);

CREATE INDEX events_by_cert ON events (cert_name, id);
