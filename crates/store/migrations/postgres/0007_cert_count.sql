-- How many managed certificates there are, kept by a trigger: every list page shows the total,
-- and counting a large fleet on each page would cost more than the page.
CREATE TABLE cert_count (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO cert_count (id, n) SELECT 1, COUNT(*) FROM certs;
CREATE FUNCTION cert_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE cert_count SET n = n + 1 WHERE id = 1;
    ELSE
        UPDATE cert_count SET n = n - 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER certs_counted AFTER INSERT OR DELETE ON certs
    FOR EACH ROW EXECUTE FUNCTION cert_count_change();
