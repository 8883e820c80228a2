-- A failed job's error as the hub's problem document (JSON): its kind, the field at fault,
-- the CA's own problem document and Retry-After, as a request answered at once would give.
ALTER TABLE jobs ADD COLUMN error TEXT;
