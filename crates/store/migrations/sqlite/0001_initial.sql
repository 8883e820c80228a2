-- certhub initial schema.
--
-- Portable SQL where possible: times are BIGINT epoch milliseconds (issued.not_before and
-- not_after are unix seconds), secrets are BLOBs sealed by the store's envelope encryption,
-- JSON is TEXT. Generated ids use SQLite's INTEGER PRIMARY KEY AUTOINCREMENT, so an id is
-- never reused after a delete (a PostgreSQL schema uses an identity column instead).

-- Store-wide values: the master key check.
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- ACME accounts. key_pkcs8 is encrypted.
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    directory_url TEXT NOT NULL,
    ca_bundle_pem TEXT,
    email TEXT,
    key_type TEXT NOT NULL,
    key_pkcs8 BLOB NOT NULL,
    account_url TEXT,
    status TEXT NOT NULL,
    eab_kid TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Managed certificates. challenges is encrypted JSON (it holds DNS credentials).
CREATE TABLE certs (
    name TEXT PRIMARY KEY,
    account_name TEXT NOT NULL REFERENCES accounts (name),
    identifiers TEXT NOT NULL,
    key_type TEXT NOT NULL,
    reuse_key BOOLEAN NOT NULL,
    csr_pem TEXT,
    profile TEXT,
    preferred_chain TEXT,
    challenges BLOB NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX certs_account_name ON certs (account_name);

-- One row per order attempt. key_pkcs8 (the certificate key) is encrypted. account_name
-- records the account used and is deliberately not a foreign key: a certificate may move to
-- another account, and the old account may then be deleted while its orders stay as history.
CREATE TABLE orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cert_name TEXT NOT NULL REFERENCES certs (name),
    account_name TEXT NOT NULL,
    order_url TEXT,
    status TEXT NOT NULL,
    key_pkcs8 BLOB,
    key_type TEXT,
    csr_der BLOB,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX orders_cert_name ON orders (cert_name, id);

-- Challenges presented and not yet cleaned up. spec is encrypted JSON.
CREATE TABLE presented (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    spec BLOB NOT NULL,
    challenge TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX presented_order_id ON presented (order_id);

-- Issued certificates. key_pkcs8 is encrypted. At most one issued row per order.
CREATE TABLE issued (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cert_name TEXT NOT NULL REFERENCES certs (name),
    order_id BIGINT REFERENCES orders (id),
    serial_hex TEXT NOT NULL,
    issuer TEXT NOT NULL,
    sans TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    chain_pem TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_pkcs8 BLOB NOT NULL,
    revoked_at BIGINT,
    revocation_reason BIGINT,
    created_at BIGINT NOT NULL
);

CREATE INDEX issued_cert_name ON issued (cert_name, id);

CREATE UNIQUE INDEX issued_order_id ON issued (order_id);
