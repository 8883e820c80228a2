//! Errors, with the CA's problem documents (RFC 7807, RFC 8555 §6.7) kept whole.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::Identifier;

const ACME_ERROR_PREFIX: &str = "urn:ietf:params:acme:error:";

/// A problem document from the CA.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Problem {
    /// The problem type URI, e.g. `urn:ietf:params:acme:error:rejectedIdentifier`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Human-readable explanation.
    #[serde(default)]
    pub detail: Option<String>,
    /// HTTP status as the CA put it in the document.
    #[serde(default)]
    pub status: Option<u16>,
    /// Per-identifier problems (§6.7.1).
    #[serde(default)]
    pub subproblems: Vec<Subproblem>,
    /// Any other members, kept as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A subproblem: a problem about one identifier.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Subproblem {
    /// Problem type URI.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Explanation.
    #[serde(default)]
    pub detail: Option<String>,
    /// The identifier concerned.
    #[serde(default)]
    pub identifier: Option<Identifier>,
}

fn short(kind: Option<&str>) -> &str {
    let kind = kind.unwrap_or("about:blank");
    kind.strip_prefix(ACME_ERROR_PREFIX).unwrap_or(kind)
}

impl Problem {
    /// The ACME error name without the URN prefix (`badNonce`, `rejectedIdentifier`, …).
    pub fn short_kind(&self) -> &str {
        short(self.kind.as_deref())
    }

    /// Is this the ACME error `name` (e.g. `"badNonce"`)?
    pub fn is(&self, name: &str) -> bool {
        self.short_kind() == name
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short_kind())?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        for sub in &self.subproblems {
            f.write_str("; ")?;
            if let Some(id) = &sub.identifier {
                write!(f, "{}: ", id.value)?;
            }
            write!(f, "{}", short(sub.kind.as_deref()))?;
            if let Some(d) = &sub.detail {
                write!(f, ": {d}")?;
            }
        }
        Ok(())
    }
}

/// An error response from the CA: the problem document, the HTTP status and Retry-After.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The request URL.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The problem document (synthesised from the status when the body was not one).
    pub problem: Problem,
    /// The Retry-After header, if sent.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the CA answered {} (HTTP {})", self.problem, self.status)?;
        if let Some(ra) = self.retry_after {
            write!(f, ", retry after {}s", ra.as_secs())?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to a CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CA answered with an error.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// A challenge failed validation.
    #[error("{identifier}: {kind} validation failed: {problem}")]
    ChallengeFailed {
        /// The identifier.
        identifier: String,
        /// The challenge type.
        kind: String,
        /// The CA's explanation.
        problem: Box<Problem>,
    },
    /// The request never got an answer (connection refused, TLS failure, timeout).
    #[error("request to {url} failed: {source}")]
    Http {
        /// The request URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A key could not be read, generated or used.
    #[error("{0}")]
    Key(String),
    /// The CA does not support what was asked (no renewalInfo, no such profile, …).
    #[error("{0}")]
    NotSupported(String),
    /// The order became invalid.
    #[error("the order {url} became invalid{}", .problem.as_ref().map(|p| format!(": {p}")).unwrap_or_default())]
    OrderInvalid {
        /// The order URL.
        url: String,
        /// The CA's explanation.
        problem: Option<Box<Problem>>,
    },
    /// The CA's answer was not what RFC 8555 says it must be.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// The request URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A wait ran past its deadline.
    #[error("gave up waiting for {what} after {}s", .after.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
    },
}

impl Error {
    /// Can trying again later help? badNonce, rate limits, server errors, timeouts and
    /// network failures are transient; a rejected identifier or a refused account is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(e) => {
                e.status >= 500
                    || e.status == 429
                    || ["badNonce", "rateLimited", "serverInternal"].iter().any(|k| e.problem.is(k))
            }
            Self::Http { .. } | Self::Timeout { .. } => true,
            Self::ChallengeFailed { problem, .. } => {
                ["connection", "dns", "serverInternal"].iter().any(|k| problem.is(k))
            }
            Self::Key(_)
            | Self::NotSupported(_)
            | Self::OrderInvalid { .. }
            | Self::Protocol { .. } => false,
        }
    }

    /// The problem document, when the CA sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Self::Api(e) => Some(&e.problem),
            Self::ChallengeFailed { problem, .. } => Some(problem),
            Self::OrderInvalid { problem, .. } => problem.as_deref(),
            _ => None,
        }
    }

    /// How long the CA asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(e) => e.retry_after,
            _ => None,
        }
    }
}
