-- Stored credentials: named sets of secrets (a TSIG key, a callback's signing key) that
-- challenge SPECs name with credential=NAME. fields is one encrypted JSON object, field to
-- value. Times are epoch milliseconds.
CREATE TABLE credentials (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    fields BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Which certificates name which credential in their challenges (which are encrypted), kept
-- with them: a credential in use is not removed.
CREATE TABLE cert_credentials (
    cert_name TEXT NOT NULL REFERENCES certs (name),
    credential TEXT NOT NULL,
    PRIMARY KEY (cert_name, credential)
);

CREATE INDEX cert_credentials_credential ON cert_credentials (credential);
