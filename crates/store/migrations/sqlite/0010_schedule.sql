-- The renewal scheduler's index, so that finding what is due reads a few rows, not the fleet.
-- check_at: when the certificate next needs a look (epoch ms; 0: at the next run). Every
-- change that can make it due sooner (an edit, an issuance, a revocation, a failure, a
-- deployment task) sets it to 0. check_policy: the hub-wide renewal policy that check_at
-- assumed, for certificates without their own (NULL otherwise); a run with another policy
-- looks at them again.
ALTER TABLE certs ADD COLUMN check_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE certs ADD COLUMN check_policy TEXT;
CREATE INDEX certs_check_at ON certs (check_at);
CREATE INDEX certs_check_policy ON certs (check_policy);

-- The identifiers' values, lower case, separated by spaces: what a search looks in.
ALTER TABLE certs ADD COLUMN names TEXT NOT NULL DEFAULT '';
UPDATE certs SET names = COALESCE(
    (SELECT group_concat(lower(json_extract(value, '$.value')), ' ') FROM json_each(certs.identifiers)),
    '');

-- The certificate an order replaces (ARI, RFC 9773): such renewals are exempt from some CAs'
-- rate limits. Orders are counted per account and time for the CA's rate-limit budget.
ALTER TABLE orders ADD COLUMN replaces TEXT;
CREATE INDEX orders_created_at ON orders (created_at);
