-- What a token is: 'api' or 'session' (see the SQLite migration 0012).
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
DELETE FROM api_tokens WHERE label = 'web session';
