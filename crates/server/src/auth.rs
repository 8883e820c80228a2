//! Who is calling: API tokens, roles and scopes; password hashing; sign-in rate limiting.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

pub(crate) use crate::credentials::{
    Role, SCOPES, argon2_task, dummy_hash, hash_password, new_token, random_secret, split_token,
    verify_password,
};
use crate::problem::Problem;
use crate::state::AppState;

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
    /// Read the hub's metrics.
    Metrics,
}

impl Need {
    fn scope(self) -> &'static str {
        match self {
            Self::Read => "cert:read",
            Self::Request => "cert:request",
            Self::Key => "cert:key",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
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
    /// Signed in through the web UI (the token is a session's).
    web: bool,
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

    /// A caller holding every scope `role` allows (a web session).
    pub fn with_role_scopes(user: String, role: Role, token_id: String, source: String) -> Self {
        let scopes =
            SCOPES.iter().filter(|(_, least)| role >= *least).map(|(s, _)| s.to_string()).collect();
        Caller { user, role, token_id, scopes, source, web: true }
    }

    /// Whether the caller may do `need`.
    pub fn may(&self, need: Need) -> bool {
        self.require(need).is_ok()
    }

    /// An audit entry of the caller doing `action` on `target`, to be stored with the change.
    pub fn entry(&self, action: &str, target: &str) -> certhub_store::AuditEntry {
        certhub_store::AuditEntry::new(&self.actor(), action, target, &self.source)
    }

    /// The audit log's name for the caller.
    pub fn actor(&self) -> String {
        if self.web {
            return format!("{} (web)", self.user);
        }
        format!("{} (token {})", self.user, self.token_id)
    }
}

/// The client's address, or `unknown` when the server was not told (router tests).
pub(crate) fn source(parts: &Parts) -> String {
    source_of(&parts.extensions)
}

/// The client's address from a request's extensions, for the audit log.
pub(crate) fn source_of(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<crate::listen::Peer>>()
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
        let (record, role) = state
            .store
            .verify_token(id, secret)
            .await?
            .ok_or_else(|| Problem::unauthorized("the token is unknown, revoked or expired"))?;
        if record.kind == certhub_store::TokenKind::Session {
            // A session lives in its browser's cookie, with its idle limit and CSRF checks.
            return Err(Problem::unauthorized(
                "that is a web session, not an API token; make one with POST /api/v1/tokens",
            ));
        }
        let role = Role::parse(&role).unwrap_or(Role::Viewer);
        Ok(Caller {
            user: record.user_name,
            role,
            token_id: record.id,
            scopes: record.scopes.split_whitespace().map(str::to_string).collect(),
            source: source(parts),
            web: false,
        })
    }
}
