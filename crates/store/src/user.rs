//! The hub's users and API tokens (tables `users`, `api_tokens`). The store keeps hashes
//! only: password hashing (argon2id) is the caller's; token secrets are hashed here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{AuditEntry, Error, Store, is_foreign_key_violation, is_unique_violation, now_ms};

/// A user of the hub.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    /// Unique name.
    pub name: String,
    /// argon2id PHC string; empty for a user who signs in through an OpenID provider only.
    pub password_hash: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// Last change, epoch milliseconds.
    pub updated_at: i64,
    /// When an admin disabled the user, epoch milliseconds; `None` while enabled.
    pub disabled_at: Option<i64>,
    /// The OpenID provider (its issuer URL) the user signs in through; `None` for a local
    /// user.
    pub oidc_issuer: Option<String>,
    /// The provider's name for the user (the ID token's `sub`).
    pub oidc_subject: Option<String>,
}

impl UserRecord {
    /// Whether the user signs in through an OpenID provider, and so has no password here.
    pub fn signs_in_through_provider(&self) -> bool {
        self.oidc_issuer.is_some()
    }
}

/// The columns of a [`UserRecord`], for `SELECT`.
macro_rules! user_columns {
    () => {
        "name, password_hash, role, created_at, updated_at, disabled_at, oidc_issuer, oidc_subject"
    };
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("disabled_at", &self.disabled_at)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_subject", &self.oidc_subject)
            .finish()
    }
}

/// What a token is, decided by how it was made and never by anything its owner chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Made by its owner for a program, with the scopes they chose.
    Api,
    /// A web sign-in: lives in the browser's cookie and holds every scope of its owner's role.
    Session,
}

impl TokenKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Session => "session",
        }
    }
}

impl TryFrom<String> for TokenKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "api" => Ok(Self::Api),
            "session" => Ok(Self::Session),
            _ => Err(format!("api_tokens.kind holds {s:?}, which is neither api nor session")),
        }
    }
}

/// An API token or a web session (its secret is never stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    /// Public id, the first part of the token.
    pub id: String,
    /// Whose it is.
    pub user_name: String,
    /// An API token or a web session.
    #[sqlx(try_from = "String")]
    pub kind: TokenKind,
    /// What it is for, as its owner named it.
    pub label: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// Expiry, epoch milliseconds, if any.
    pub expires_at: Option<i64>,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// Last use, epoch milliseconds.
    pub last_used_at: Option<i64>,
}

/// A token as stored, with its secret's hash and its owner's role.
#[derive(sqlx::FromRow)]
struct TokenWithRole {
    #[sqlx(flatten)]
    token: TokenRecord,
    token_hash: String,
    role: String,
}

/// Adds a user within a transaction. Fails with [`Error::AlreadyExists`] when the name is
/// taken.
pub(crate) async fn insert_user_in(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    password_hash: &str,
    role: &str,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO users (name, password_hash, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(name)
    .bind(password_hash)
    .bind(role)
    .bind(now_ms())
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists { what: "user", name: name.to_string() }
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// How stale a token's recorded last use may be (see [`Store::verify_token`]).
const LAST_USE_RESOLUTION_MS: i64 = 60_000;

/// SHA-256 of a token secret, hex.
pub fn token_hash(secret: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
    crate::crypto::hex(d.as_ref())
}

/// Compares two secrets (or their hashes) in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Store {
    /// How many users there are (none before the hub's setup).
    pub async fn user_count(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?)
    }

    /// Adds a user, with `audit`'s entry. Fails with [`Error::AlreadyExists`] when the name
    /// is taken.
    pub async fn insert_user(
        &self,
        name: &str,
        password_hash: &str,
        role: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        insert_user_in(&mut tx, name, password_hash, role).await?;
        self.commit_change(tx, audit).await
    }

    /// The user named `name`, if any.
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, Error> {
        Ok(sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The user an OpenID provider (`issuer`) names `subject`, if they signed in before.
    pub async fn oidc_user(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, Error> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2"
        ))
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Adds a user who signs in through the OpenID provider `issuer`, which names them
    /// `subject`, with `audit`'s entry. Fails with [`Error::AlreadyExists`] when the name is
    /// taken.
    pub async fn insert_oidc_user(
        &self,
        name: &str,
        role: &str,
        issuer: &str,
        subject: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        insert_user_in(&mut tx, name, "", role).await?;
        sqlx::query("UPDATE users SET oidc_issuer = $1, oidc_subject = $2 WHERE name = $3")
            .bind(issuer)
            .bind(subject)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        self.commit_change(tx, audit).await
    }

    /// Removes tokens past their expiry, and web sessions unused since `idle_before` (epoch
    /// milliseconds); how many.
    pub async fn delete_stale_tokens(&self, idle_before: i64) -> Result<u64, Error> {
        let done = sqlx::query(
            "DELETE FROM api_tokens WHERE (expires_at IS NOT NULL AND expires_at <= $1) \
             OR (kind = $2 AND COALESCE(last_used_at, created_at) < $3)",
        )
        .bind(now_ms())
        .bind(TokenKind::Session.as_str())
        .bind(idle_before)
        .execute(&self.writer)
        .await?;
        self.tokens.forget(None);
        Ok(done.rows_affected())
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>, Error> {
        Ok(sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users ORDER BY name"))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Stores a token whose secret hashes to `hash` (see [`token_hash`]), with `audit`'s entry.
    pub async fn insert_token(
        &self,
        token: &TokenRecord,
        hash: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, user_name, label, token_hash, scopes, expires_at, \
             created_at, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(&token.user_name)
        .bind(&token.label)
        .bind(hash)
        .bind(&token.scopes)
        .bind(token.expires_at)
        .bind(now_ms())
        .bind(token.kind.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                Error::NotFound { what: "user", name: token.user_name.clone() }
            } else {
                e.into()
            }
        })?;
        self.commit_change(tx, audit).await
    }

    /// The token with this id whose secret is `secret`, if it exists and has not expired,
    /// with its owner's role. This runs on every API request and every page, so it reads
    /// the database at most once a second per token (see `TOKEN_CACHE_TTL`) and records
    /// the token's last use to the minute: a client making many requests a second costs one
    /// lookup a second and one write a minute.
    pub async fn verify_token(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<Option<(TokenRecord, String)>, Error> {
        let hash = token_hash(secret);
        let now = now_ms();
        if let Some((token, role)) = self.tokens.get(id, &hash) {
            return Ok(token.expires_at.is_none_or(|e| e > now).then_some((token, role)));
        }
        let row: Option<TokenWithRole> = sqlx::query_as(
            "SELECT t.id, t.user_name, t.kind, t.label, t.token_hash, t.scopes, t.expires_at, \
             t.created_at, t.last_used_at, u.role FROM api_tokens t \
             JOIN users u ON u.name = t.user_name WHERE t.id = $1 AND u.disabled_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(TokenWithRole { token, token_hash: stored, role }) = row else {
            return Ok(None);
        };
        if !same_secret(&hash, &stored) || token.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        if token.last_used_at.is_none_or(|t| now - t >= LAST_USE_RESOLUTION_MS) {
            let noted = sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&token.id)
                .execute(&self.writer)
                .await
                .map_err(Error::from);
            match noted {
                // A full disk does not keep a token from reading what is there.
                Err(e) if e.is_storage_full() => {
                    tracing::warn!(error = %e, "recording a token's last use failed");
                }
                other => {
                    other?;
                }
            }
        }
        self.tokens.put(&token, &role, hash);
        Ok(Some((token, role)))
    }

    /// The tokens of `user` (all users' when `None`), newest first.
    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>, Error> {
        Ok(sqlx::query_as(
            "SELECT id, user_name, kind, label, scopes, expires_at, created_at, last_used_at \
             FROM api_tokens WHERE ($1 IS NULL OR user_name = $1) ORDER BY created_at DESC, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes (deletes) a token, with `audit`'s entry. Fails with [`Error::NotFound`] when
    /// there is none.
    pub async fn delete_token(&self, id: &str, audit: Option<&AuditEntry>) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let result =
            sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if result.rows_affected() == 0 {
            return Err(Error::NotFound { what: "token", name: id.to_string() });
        }
        self.commit_change(tx, audit).await?;
        self.tokens.forget(Some(id));
        Ok(())
    }

    /// Revokes (deletes) every token and session of user `name`, with `audit`'s entry; how
    /// many there were.
    pub async fn delete_user_tokens(
        &self,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<u64, Error> {
        let mut tx = self.begin_change(audit).await?;
        let result = sqlx::query("DELETE FROM api_tokens WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        self.commit_change(tx, audit).await?;
        self.tokens.forget(None);
        Ok(result.rows_affected())
    }
}

/// A change to a user (see [`Store::change_user`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    /// A new password (its argon2id PHC string).
    Password(String),
    /// A new role.
    Role(String),
    /// Disabled (true) or enabled again (false).
    Disabled(bool),
    /// Removed, with their tokens and sessions.
    Remove,
}

impl Store {
    /// Changes user `name`, with `audit`'s entry. Fails with [`Error::NotFound`] without
    /// the user, and with [`Error::Invalid`] when the change would leave no enabled admin.
    /// A disabled or removed user's sessions and tokens stop at once (on another hub
    /// sharing the database, within a second).
    pub async fn change_user(
        &self,
        name: &str,
        change: &UserChange,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        self.change_user_all(name, &[(change.clone(), audit)]).await
    }

    /// Makes `changes` to user `name` in order, each with its audit entry, all or none (see
    /// [`Store::change_user`]); the last enabled admin is judged on where they end.
    pub async fn change_user_all(
        &self,
        name: &str,
        changes: &[(UserChange, Option<&AuditEntry>)],
    ) -> Result<(), Error> {
        let audited = changes.iter().find_map(|(_, a)| *a);
        let mut tx = self.begin_change(audited).await?;
        let user: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT role, disabled_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((role, disabled_at)) = user else {
            return Err(Error::NotFound { what: "user", name: name.to_string() });
        };
        // The last enabled admin stays an enabled admin.
        let (mut admin, mut enabled, mut removed) = (role == "admin", disabled_at.is_none(), false);
        let was_enabled_admin = admin && enabled;
        for (change, _) in changes {
            match change {
                UserChange::Role(r) => admin = r == "admin",
                UserChange::Disabled(d) => enabled = !d,
                UserChange::Remove => removed = true,
                UserChange::Password(_) => {}
            }
        }
        let loses_admin = was_enabled_admin && (removed || !(admin && enabled));
        if loses_admin {
            let admins: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL",
            )
            .fetch_one(&mut *tx)
            .await?;
            if admins <= 1 {
                return Err(Error::Invalid {
                    what: "user",
                    name: name.to_string(),
                    reason: "it is the last enabled admin: make another admin first".into(),
                });
            }
        }
        let now = now_ms();
        for (change, audit) in changes {
            // A change of one column, or the removal.
            let update = match change {
                UserChange::Password(hash) => Some(
                    sqlx::query(
                        "UPDATE users SET password_hash = $1, updated_at = $2 WHERE name = $3",
                    )
                    .bind(hash),
                ),
                UserChange::Role(role) => Some(
                    sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE name = $3")
                        .bind(role),
                ),
                UserChange::Disabled(d) => Some(
                    sqlx::query(
                        "UPDATE users SET disabled_at = $1, updated_at = $2 WHERE name = $3",
                    )
                    .bind(d.then_some(now)),
                ),
                UserChange::Remove => None,
            };
            match update {
                Some(update) => {
                    update.bind(now).bind(name).execute(&mut *tx).await?;
                }
                None => {
                    for sql in [
                        "DELETE FROM api_tokens WHERE user_name = $1",
                        "DELETE FROM users WHERE name = $1",
                    ] {
                        sqlx::query(sql).bind(name).execute(&mut *tx).await?;
                    }
                }
            }
            if let Some(a) = audit {
                self.audit_in(
                    &mut tx,
                    &a.actor,
                    &a.action,
                    &a.target,
                    &a.source,
                    a.detail.as_deref(),
                )
                .await?;
            }
        }
        tx.commit().await?;
        self.tokens.forget(None);
        Ok(())
    }
}

/// How long a verified token is taken on trust before the database is asked again. A token
/// revoked through this store stops working at once; one revoked by another hub sharing the
/// database, within this time.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);

/// Tokens verified within [`TOKEN_CACHE_TTL`], by id, with their secret's hash.
#[derive(Debug, Default)]
pub(crate) struct TokenCache(Mutex<HashMap<String, Verified>>);

#[derive(Debug)]
struct Verified {
    hash: String,
    token: TokenRecord,
    role: String,
    at: Instant,
}

/// More entries than this and the cache starts over (many clients at once, or someone
/// trying ids): a bound on its memory, not a figure reached in use.
const TOKEN_CACHE_MAX: usize = 10_000;

impl TokenCache {
    fn get(&self, id: &str, hash: &str) -> Option<(TokenRecord, String)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let v = map.get(id)?;
        (v.at.elapsed() < TOKEN_CACHE_TTL && same_secret(&v.hash, hash))
            .then(|| (v.token.clone(), v.role.clone()))
    }

    fn put(&self, token: &TokenRecord, role: &str, hash: String) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= TOKEN_CACHE_MAX {
            map.retain(|_, v| v.at.elapsed() < TOKEN_CACHE_TTL);
            if map.len() >= TOKEN_CACHE_MAX {
                map.clear();
            }
        }
        let (token, role, at) = (token.clone(), role.to_owned(), Instant::now());
        map.insert(token.id.clone(), Verified { hash, token, role, at });
    }

    /// Forgets the token `id`, or every token.
    fn forget(&self, id: Option<&str>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match id {
            Some(id) => {
                map.remove(id);
            }
            None => map.clear(),
        }
    }
}
