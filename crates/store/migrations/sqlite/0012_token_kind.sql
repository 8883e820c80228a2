-- What a token is: 'api' (made by its owner, with the scopes they chose) or 'session' (a web
-- sign-in, holding every scope of its owner's role). Sessions were told apart by their label
-- before, which a user could choose for an API token too: those rows are removed, so every
-- browser signs in once more.
ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
DELETE FROM api_tokens WHERE label = 'web session';
