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
    /// The error name and the CA's words. A document without a type (RFC 7807's
    /// `about:blank`) shows just the words, and one without either says so.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.detail) {
            (Some(_), Some(d)) => write!(f, "{}: {d}", self.short_kind())?,
            (Some(_), None) => write!(f, "{}", self.short_kind())?,
            (None, Some(d)) => write!(f, "{d}")?,
            (None, None) => f.write_str("no reason given")?,
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

/// What a failed challenge says: the CA's reason, and what the CA tried to reach; when it
/// gave no reason, what to check.
fn challenge_failed(
    identifier: &str,
    kind: &str,
    token: Option<&str>,
    problem: Option<&Problem>,
) -> String {
    let (reached, check) = match kind {
        "http-01" => (
            format!(
                "http://{identifier}/.well-known/acme-challenge/{} on port 80",
                token.unwrap_or("TOKEN")
            ),
            format!(
                "that {identifier} resolves to this server and that its port 80 reaches \
                 certhub's http-01 listener or the web server of the webroot"
            ),
        ),
        "tls-alpn-01" => (
            format!("{identifier} on port 443 with TLS and ALPN acme-tls/1"),
            format!(
                "that {identifier} resolves to this server and that its port 443 reaches \
                 certhub's tls-alpn-01 listener"
            ),
        ),
        "dns-01" => (
            format!("the TXT record _acme-challenge.{}", identifier.trim_start_matches("*.")),
            "that the record is published on every authoritative name server of the zone, \
             with no CNAME or DNSSEC error on the way"
                .to_string(),
        ),
        _ => {
            return match problem {
                Some(p) => format!("{identifier}: the CA marked the authorization invalid: {p}"),
                None => format!(
                    "{identifier}: the CA marked the authorization invalid without giving a reason"
                ),
            };
        }
    };
    match problem {
        Some(p) if p.kind.is_some() || p.detail.is_some() => {
            format!("{identifier}: {kind} validation failed: {p} (the CA tried {reached})")
        }
        _ => format!(
            "{identifier}: the CA found the {kind} challenge invalid without giving a reason; \
             it tried {reached}: check {check}"
        ),
    }
}

/// The host and port of `url`, which name the server whose certificate it is.
fn authority(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// The causes of `e`, outermost first. An I/O error's `source()` skips the error it wraps,
/// so that one is taken from `get_ref()` instead.
fn causes<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |c| {
        match c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        }
    })
}

/// A request's failure in a few words: the innermost cause (a refused connection, a
/// timeout, a DNS failure), without the URL the caller names already.
fn cause_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    causes(e).last().map(ToString::to_string).unwrap_or_default()
}

impl Error {
    /// The error of a request that got no answer: [`Error::Untrusted`] when the server's
    /// certificate does not verify, else [`Error::Http`].
    pub(crate) fn http(url: &str, error: reqwest::Error) -> Self {
        match untrusted_because(&error) {
            Some(why) => Self::Untrusted { url: url.to_string(), why },
            None => Self::Http { url: url.to_string(), error: Box::new(error) },
        }
    }
}

/// Why the server's certificate was refused, if that is what ended the request.
fn untrusted_because(e: &reqwest::Error) -> Option<String> {
    use rustls::CertificateError as C;
    causes(e).find_map(|c| match c.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(cert) => Some(match cert {
            C::UnknownIssuer => "it is signed by an issuer this machine does not trust".into(),
            C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "it is not valid for this name".into()
            }
            other => format!("{other:?}"),
        }),
        _ => None,
    })
}

/// Everything that can go wrong talking to a CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CA answered with an error.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// A challenge failed validation.
    #[error("{}", challenge_failed(identifier, kind, token.as_deref(), problem.as_deref()))]
    ChallengeFailed {
        /// The identifier.
        identifier: String,
        /// The challenge type (`authorization` when the CA marked the authorization invalid
        /// without a failed challenge).
        kind: String,
        /// The challenge's token, which names what the CA fetched.
        token: Option<String>,
        /// The CA's explanation, when it gave one.
        problem: Option<Box<Problem>>,
    },
    /// The request never got an answer (connection refused, timeout, TLS failure). Its
    /// message says the cause once, so the cause is not chained again.
    #[error("request to {url} failed: {}", cause_of(error))]
    Http {
        /// The request URL.
        url: String,
        /// The cause.
        error: Box<reqwest::Error>,
    },
    /// The server's TLS certificate does not verify: trying again will not help, trusting
    /// the right root (or reaching the right name) will.
    #[error("the TLS certificate of {} does not verify: {why}", authority(url))]
    Untrusted {
        /// The request URL.
        url: String,
        /// Why, in plain words: an issuer this machine does not trust, expired, another name.
        why: String,
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
            Self::Untrusted { .. } => false,
            Self::ChallengeFailed { problem, .. } => problem
                .as_ref()
                .is_some_and(|p| ["connection", "dns", "serverInternal"].iter().any(|k| p.is(k))),
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
            Self::ChallengeFailed { problem, .. } => problem.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_failed_without_a_reason_says_what_was_tried_and_what_to_check() {
        let e = Error::ChallengeFailed {
            identifier: "www.example.com".into(),
            kind: "http-01".into(),
            token: Some("tok3n".into()),
            problem: Some(Box::new(Problem { status: Some(403), ..Default::default() })),
        };
        let said = e.to_string();
        assert!(!said.contains("about:blank"), "{said}");
        assert!(said.contains("without giving a reason"), "{said}");
        assert!(
            said.contains("http://www.example.com/.well-known/acme-challenge/tok3n on port 80"),
            "{said}"
        );
        assert!(said.contains("resolves to this server"), "{said}");
        // With the CA's reason, that reason, and where it looked.
        let e = Error::ChallengeFailed {
            identifier: "www.example.com".into(),
            kind: "tls-alpn-01".into(),
            token: None,
            problem: Some(Box::new(Problem {
                kind: Some("urn:ietf:params:acme:error:connection".into()),
                detail: Some("connection refused".into()),
                ..Default::default()
            })),
        };
        assert_eq!(
            e.to_string(),
            "www.example.com: tls-alpn-01 validation failed: connection: connection refused \
             (the CA tried www.example.com on port 443 with TLS and ALPN acme-tls/1)"
        );
        assert!(e.is_retryable());
        // A problem document without a type shows only its words.
        let p = Problem { detail: Some("no luck".into()), ..Default::default() };
        assert_eq!(p.to_string(), "no luck");
    }
}
