-- A failed job's error as a problem document (see the SQLite migration 0013).
ALTER TABLE jobs ADD COLUMN error TEXT;
