-- no-transaction
-- Certificates imported from elsewhere (bought OV/EV certificates) have no ACME account
-- until the user attaches one: certs.account_name becomes nullable. SQLite cannot change a
-- column's constraint in place, so the table is rebuilt, the way SQLite documents it: with
-- foreign keys off (which only works outside a transaction, hence this migration's own),
-- since dropping the old table would otherwise count every order and issued certificate as
-- a violation. Run again after a crash before its bookkeeping, it does the same again.
-- reuse_key becomes a BIGINT 0 or 1, as in the PostgreSQL schema, so one query reads both.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE certs_new (
    name TEXT PRIMARY KEY,
    account_name TEXT REFERENCES accounts (name),
    identifiers TEXT NOT NULL,
    key_type TEXT NOT NULL,
    reuse_key BIGINT NOT NULL,
    csr_pem TEXT,
    profile TEXT,
    preferred_chain TEXT,
    challenges BLOB NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

INSERT INTO certs_new SELECT name, account_name, identifiers, key_type,
    CAST(reuse_key AS BIGINT), csr_pem,
    profile, preferred_chain, challenges, state, last_error, created_at, updated_at FROM certs;
DROP TABLE certs;
ALTER TABLE certs_new RENAME TO certs;
CREATE INDEX certs_account_name ON certs (account_name);
COMMIT;
PRAGMA foreign_keys = ON;
