-- The renewal scheduler's index and the search column (see the SQLite migration 0010).
ALTER TABLE certs ADD COLUMN check_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE certs ADD COLUMN check_policy TEXT;
CREATE INDEX certs_check_at ON certs (check_at);
CREATE INDEX certs_check_policy ON certs (check_policy);

ALTER TABLE certs ADD COLUMN names TEXT NOT NULL DEFAULT '';
UPDATE certs SET names = COALESCE(
    (SELECT string_agg(lower(e ->> 'value'), ' ') FROM jsonb_array_elements(certs.identifiers::jsonb) e),
    '');

ALTER TABLE orders ADD COLUMN replaces TEXT;
CREATE INDEX orders_created_at ON orders (created_at);
