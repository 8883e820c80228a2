-- Users who sign in through an OpenID provider: the provider's issuer URL and the subject it
-- names them by (the ID token's `iss` and `sub`), NULL for local users. Such a user has an
-- empty password_hash, so no password signs them in.
ALTER TABLE users ADD COLUMN oidc_issuer TEXT;
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX users_oidc ON users (oidc_issuer, oidc_subject);
