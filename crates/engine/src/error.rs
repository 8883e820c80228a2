//! What went wrong, by kind: the CLI maps a kind to its exit code once, the hub to its
//! problem document once, and a job's result carries it.
//!
//! Inside the engine, work returns `anyhow::Result`, whose chain keeps each cause with the
//! context it was met in; a cause whose kind is known where it is made is an [`Error`] in
//! that chain (see [`fail`], [`invalid`]). At the engine's edge, [`Error::from`] reads the
//! chain once: the first cause of a known kind decides, and the message is the whole chain.

use std::time::Duration;

use serde::Serialize;

/// The kinds of failure, each with its meaning for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The input breaks a rule (an identifier, a SPEC, a file, a flag); fix it and retry.
    Invalid,
    /// No such account, certificate or task.
    NotFound,
    /// The state does not allow it (it exists already, it is already revoked).
    Conflict,
    /// The caller may not do it: a join token unknown, used or expired; a certificate not
    /// assigned to the agent asking for it.
    Forbidden,
    /// Another certhub process is at work on it; retry later.
    Busy,
    /// The CA refused for good; retrying as it is will not help.
    CaRefused,
    /// The CA or the network failed for now; retrying later may succeed.
    Transient,
    /// Something on certhub's side.
    Internal,
}

impl Kind {
    /// Whether retrying the same thing later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, Kind::Busy | Kind::Transient)
    }
}

/// An engine failure: its kind, what happened (with its causes), the input field at fault
/// when one is, the CA's problem document when the CA refused, and how long the CA asked to
/// wait.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    /// What happened, in one sentence with its causes.
    pub message: String,
    /// The input field at fault (`name`, `challenges`, `renew_at`, …), when one is.
    pub field: Option<&'static str>,
    /// The CA's problem document, kept whole, when the CA refused.
    pub problem: Option<Box<certhub_acme::Problem>>,
    /// The CA's Retry-After, when it gave one.
    pub retry_after: Option<Duration>,
    /// What to do about it, when the message alone does not say.
    pub hint: Option<&'static str>,
    /// The CA refused the request itself for good (see [`Error::is_permanent_refusal`]).
    pub permanent: bool,
}

impl Error {
    /// An error of `kind`.
    pub fn new(kind: Kind, message: impl std::fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
            field: None,
            problem: None,
            retry_after: None,
            hint: None,
            permanent: false,
        }
    }

    /// Invalid input: `field` breaks the rule `message` states.
    pub fn invalid(field: &'static str, message: impl std::fmt::Display) -> Self {
        Self { field: Some(field), ..Self::new(Kind::Invalid, message) }
    }

    /// The same error, naming `field`.
    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// Whether the CA refused the request for good: a request like this one will be refused
    /// again until something changes (the names, the account, the CSR, the CAA records), so
    /// automatic retries stop. Only an answer to the request itself (newOrder, finalize)
    /// counts: a challenge the CA could not validate (`unauthorized` for a wrong answer, `caa`
    /// for a lookup that failed) may well pass once the server or the zone is fixed, and is
    /// retried on the backoff table.
    pub fn is_permanent_refusal(&self) -> bool {
        self.permanent
    }
}

/// The CA's problem types that refuse a request for good.
fn refuses_for_good(p: &certhub_acme::Problem) -> bool {
    const PERMANENT: &[&str] = &[
        "rejectedIdentifier",
        "unauthorized",
        "caa",
        "badCSR",
        "unsupportedIdentifier",
        "badSignatureAlgorithm",
        "invalidContact",
        "unsupportedContact",
        "accountDoesNotExist",
        "externalAccountRequired",
        "userActionRequired",
        "badRevocationReason",
    ];
    PERMANENT.iter().any(|t| p.is(t))
        || p.subproblems.iter().any(|s| {
            let kind = s.kind.as_deref().unwrap_or_default();
            let kind = kind.strip_prefix("urn:ietf:params:acme:error:").unwrap_or(kind);
            PERMANENT.contains(&kind)
        })
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A cause of a known kind, for an `anyhow` chain.
pub fn fail(kind: Kind, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Error::new(kind, message))
}

/// Invalid input in `field`, for an `anyhow` chain.
pub fn invalid(field: &'static str, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Error::invalid(field, message))
}

/// All rule violations in one error.
pub fn violations(what: &str, v: &[certhub_core::identifier::RuleViolation]) -> anyhow::Error {
    let lines: Vec<String> = v.iter().map(|v| format!("  {v}")).collect();
    invalid(
        "identifiers",
        format!(
            "{what}: {} identifier{} refused:\n{}",
            v.len(),
            if v.len() == 1 { " was" } else { "s were" },
            lines.join("\n")
        ),
    )
}

/// `err`, said of the input `field` (an account that does not exist, named in `fallback`).
pub fn at_field(err: anyhow::Error, field: &'static str) -> anyhow::Error {
    anyhow::Error::new(Error::of(&err).with_field(field))
}

/// What to say after an untrusted CA certificate.
const UNTRUSTED_HINT: &str = "If the CA uses a private or test root, give that root to \
     `certhub account add` with --ca-bundle PEM; otherwise check the directory URL.";

/// What to say when the database's disk is full.
const STORAGE_FULL_HINT: &str = "The database's disk is full: free space where the database \
     is (the data directory, or the PostgreSQL server), then try again.";

/// What to say when the database cannot be reached.
const UNAVAILABLE_HINT: &str = "The database could not be reached: check that the \
     PostgreSQL server named by --database (CERTHUB_DATABASE_URL) is running and reachable, \
     or that the data directory's disk is there, then try again.";

/// Whether `err` was caused by the database going away (see
/// [`certhub_store::Error::is_unavailable`]): a failure of certhub's own, not of the request.
pub fn store_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<certhub_store::Error>().is_some_and(certhub_store::Error::is_unavailable)
    })
}

impl From<certhub_store::Error> for Error {
    fn from(err: certhub_store::Error) -> Self {
        Error::of(&anyhow::Error::from(err))
    }
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        Error::of(&err)
    }
}

impl Error {
    /// Reads a chain once: the first cause of a known kind decides the kind (and brings its
    /// field, problem document and Retry-After); the message is the whole chain.
    pub fn of(err: &anyhow::Error) -> Self {
        let message = format!("{err:#}");
        let mut out = Error::new(Kind::Internal, &message);
        for cause in err.chain() {
            if let Some(e) = cause.downcast_ref::<Error>() {
                return Error { message, ..e.clone() };
            }
            if let Some(e) = cause.downcast_ref::<certhub_acme::Error>() {
                out.problem = e.problem().cloned().map(Box::new);
                out.retry_after = e.retry_after();
                match e {
                    certhub_acme::Error::Untrusted { .. } => {
                        out.kind = Kind::Invalid;
                        out.hint = Some(UNTRUSTED_HINT);
                    }
                    e if e.is_retryable() => out.kind = Kind::Transient,
                    e => {
                        out.kind = Kind::CaRefused;
                        out.permanent = matches!(e, certhub_acme::Error::Api(a) if refuses_for_good(&a.problem));
                    }
                }
                return out;
            }
            if let Some(e) = cause.downcast_ref::<certhub_store::Error>() {
                match e {
                    e if e.is_storage_full() => {
                        out.kind = Kind::Transient;
                        out.hint = Some(STORAGE_FULL_HINT);
                    }
                    e if e.is_unavailable() => {
                        out.kind = Kind::Transient;
                        out.hint = Some(UNAVAILABLE_HINT);
                    }
                    certhub_store::Error::NotFound { .. } => out.kind = Kind::NotFound,
                    certhub_store::Error::AlreadyExists { .. }
                    | certhub_store::Error::InUse { .. } => out.kind = Kind::Conflict,
                    _ => continue,
                }
                return out;
            }
            if cause.downcast_ref::<certhub_core::identifier::RuleViolation>().is_some() {
                return Error { field: Some("identifiers"), ..Error::new(Kind::Invalid, message) };
            }
            if cause.downcast_ref::<certhub_core::challenge::SpecError>().is_some() {
                return Error { field: Some("challenges"), ..Error::new(Kind::Invalid, message) };
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_of_a_known_kind_decides_and_the_message_is_the_chain() {
        let e = invalid("renew_at", "renew_at must be 1% to 99%").context("certificate www");
        let e = Error::from(e);
        assert_eq!(e.kind, Kind::Invalid);
        assert_eq!(e.field, Some("renew_at"));
        assert_eq!(e.message, "certificate www: renew_at must be 1% to 99%");
    }

    #[test]
    fn a_challenge_the_ca_could_not_validate_is_refused_but_not_for_good() {
        let unauthorized = certhub_acme::Problem {
            kind: Some("urn:ietf:params:acme:error:unauthorized".into()),
            detail: Some("Invalid response from http://www.test/.well-known/…: 404".into()),
            ..Default::default()
        };
        let e = Error::from(anyhow::Error::new(certhub_acme::Error::ChallengeFailed {
            identifier: "www.test".into(),
            kind: "http-01".into(),
            token: None,
            problem: Some(Box::new(unauthorized.clone())),
        }));
        assert_eq!(e.kind, Kind::CaRefused);
        assert!(!e.is_permanent_refusal(), "a fixed web server may pass the next time");
        // The same problem answering the order itself is a refusal for good.
        let e = Error::from(anyhow::Error::new(certhub_acme::Error::Api(Box::new(
            certhub_acme::ApiError {
                url: "https://ca.test/new-order".into(),
                status: 403,
                problem: unauthorized,
                retry_after: None,
            },
        ))));
        assert!(e.is_permanent_refusal());
    }

    #[test]
    fn an_unknown_cause_is_internal() {
        let e = Error::from(anyhow::anyhow!("disk full"));
        assert_eq!(e.kind, Kind::Internal);
        assert!(!e.kind.is_transient());
    }

    #[test]
    fn a_store_not_found_is_not_found() {
        let e = anyhow::Error::new(certhub_store::Error::NotFound {
            what: "deployment task",
            name: "x".into(),
        });
        assert_eq!(Error::from(e).kind, Kind::NotFound);
    }
}
