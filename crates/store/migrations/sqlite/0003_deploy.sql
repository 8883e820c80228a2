-- Deployment tasks of each managed certificate, run in `position` order after a request.
-- task is encrypted JSON (it may hold a webhook secret or a PKCS#12 password).
-- deployed_issued_id is the issued certificate the task last delivered: an on-success task
-- whose value differs from the latest issued certificate is pending and retried.
CREATE TABLE deploy_tasks (
    cert_name          TEXT    NOT NULL REFERENCES certs (name),
    name               TEXT    NOT NULL,
    position           BIGINT  NOT NULL,
    task               BLOB    NOT NULL,
    deployed_issued_id BIGINT,
    last_outcome       TEXT,
    last_detail        TEXT,
    last_run_at        BIGINT,
    PRIMARY KEY (cert_name, name)
);
