-- How many managed certificates there are, kept by triggers: every list page shows the total,
-- and counting a large fleet on each page would cost more than the page.
CREATE TABLE cert_count (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO cert_count (id, n) SELECT 1, COUNT(*) FROM certs;
CREATE TRIGGER certs_counted_in AFTER INSERT ON certs
BEGIN
    UPDATE cert_count SET n = n + 1 WHERE id = 1;
END;
CREATE TRIGGER certs_counted_out AFTER DELETE ON certs
BEGIN
    UPDATE cert_count SET n = n - 1 WHERE id = 1;
END;
