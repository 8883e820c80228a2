-- Per-certificate renewal settings and the state of failed attempts.
-- renewal_policy: "75%" or "30d"; NULL follows the global default.
-- fallback_account: the account to order with once `failures` reaches fallback_after.
-- failures: failed requests in a row; next_attempt_at (epoch ms): no automatic retry before.
ALTER TABLE certs ADD COLUMN renewal_policy TEXT;
ALTER TABLE certs ADD COLUMN fallback_account TEXT REFERENCES accounts (name);
ALTER TABLE certs ADD COLUMN fallback_after BIGINT NOT NULL DEFAULT 3;
ALTER TABLE certs ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE certs ADD COLUMN next_attempt_at BIGINT;
