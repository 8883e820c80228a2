-- A deployment task's failures in a row: a task that keeps failing is retried after a
-- growing wait (the backoff table of failed requests), not at every scheduler run.
ALTER TABLE deploy_tasks ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
