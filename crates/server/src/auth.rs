//! Who is calling: API tokens, roles and scopes; password hashing; sign-in rate limiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use base64::Engine as _;

use crate::{AppState, Problem};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read certificates, accounts and history.
    Viewer,
    /// And request, renew and download keys.
    Operator,
    /// And manage users, settings and the audit log.
    Admin,
}

impl Role {
    /// The role named `s` (`admin`, `operator`, `viewer`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "operator" => Some(Self::Operator),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
        }
    }
}

/// Token scopes and the least role each needs.
pub(crate) const SCOPES: &[(&str, Role)] = &[
    ("cert:read", Role::Viewer),
    ("cert:request", Role::Operator),
    ("cert:key", Role::Operator),
    ("admin", Role::Admin),
];

/// What a caller may do, by scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Read certificates and their history.
    Read,
    /// Request and renew certificates.
    Request,
    /// Download private keys.
    Key,
    /// Administer (the audit log, users).
    Admin,
}

impl Need {
    fn scope(self) -> &'static str {
        match self {
            Self::Read => "cert:read",
            Self::Request => "cert:request",
            Self::Key => "cert:key",
            Self::Admin => "admin",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The user.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// The token's id.
    pub token_id: String,
    scopes: Vec<String>,
    /// Where the request came from.
    pub source: String,
}

impl Caller {
    /// Fails unless both the role and the token's scopes allow `need`.
    pub fn require(&self, need: Need) -> Result<(), Problem> {
        let (scope, least) = SCOPES
            .iter()
            .find(|(s, _)| *s == need.scope())
            .copied()
            .unwrap_or(("admin", Role::Admin));
        if self.role < least {
            return Err(Problem::forbidden(format!(
                "user {} is a {}; this needs the {} role",
                self.user,
                self.role.as_str(),
                least.as_str()
            )));
        }
        if !self.scopes.iter().any(|s| s == scope) {
            return Err(Problem::forbidden(format!("this token lacks the {scope} scope")));
        }
        Ok(())
    }

    /// The audit log's name for the caller.
    pub fn actor(&self) -> String {
        format!("{} (token {})", self.user, self.token_id)
    }
}

/// The client's address, or `unknown` when the server was not told (router tests).
pub(crate) fn source(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<crate::Peer>>()
        .map(|c| c.0.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Problem::unauthorized("send an API token: Authorization: Bearer TOKEN")
            })?;
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            Problem::unauthorized("the Authorization header must be Bearer TOKEN")
        })?;
        let (id, secret) = split_token(token.trim())
            .ok_or_else(|| Problem::unauthorized("that is not a certhub API token"))?;
        let record = state
            .store
            .verify_token(id, secret)
            .await?
            .ok_or_else(|| Problem::unauthorized("the token is unknown, revoked or expired"))?;
        let user = state
            .store
            .user(&record.user_name)
            .await?
            .ok_or_else(|| Problem::unauthorized("the token's user no longer exists"))?;
        let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
        Ok(Caller {
            user: user.name,
            role,
            token_id: record.id,
            scopes: record.scopes.split_whitespace().map(str::to_string).collect(),
            source: source(parts),
        })
    }
}

/// A new token: `chb_ID_SECRET`, with the id and the secret.
pub(crate) fn new_token() -> (String, String, String) {
    let id: String = (0..8).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    let secret = random_secret();
    (format!("chb_{id}_{secret}"), id, secret)
}

fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("chb_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && !secret.is_empty()).then_some((id, secret))
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes, base64url.
pub(crate) fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, Problem> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(Problem::internal)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(Problem::internal)
}

/// Does `password` match the PHC string?
pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Failed sign-ins per user name: after [`LoginLimiter::MAX_FAILURES`] within the window,
/// further attempts are refused until it passes.
#[derive(Default)]
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    const MAX_FAILURES: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(300);
    const MAX_TRACKED: usize = 10_000;

    /// Refuses while `user` is locked out.
    pub fn check(&self, user: &str) -> Result<(), Problem> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(user) {
            Some((n, since)) if *n >= Self::MAX_FAILURES && since.elapsed() < Self::WINDOW => {
                Err(Problem::too_many(format!(
                    "too many failed sign-ins for {user}; try again in {} s",
                    (Self::WINDOW - since.elapsed()).as_secs() + 1
                )))
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, user: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Names sprayed by a guesser must not grow the table without end.
        if failures.len() >= Self::MAX_TRACKED {
            failures.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        if failures.len() >= Self::MAX_TRACKED {
            failures.clear();
        }
        let entry = failures.entry(user.to_string()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, user: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(user);
    }
}
