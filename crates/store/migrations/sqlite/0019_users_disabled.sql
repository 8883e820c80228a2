-- A user an admin disabled: when (epoch milliseconds), or NULL while enabled. A disabled
-- user cannot sign in, and their sessions and API tokens stop working.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
