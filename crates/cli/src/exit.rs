//! Exit codes, derived from the cause of an error (documented in `certhub --help`).

/// Invalid input or configuration: an identifier, a challenge spec, a file, a CA whose TLS
/// certificate does not verify.
pub const INVALID_INPUT: u8 = 3;
/// The CA refused; retrying will not help.
pub const CA_REFUSED: u8 = 4;
/// Transient: network, rate limit, timeout, another process at work.
pub const TRANSIENT: u8 = 5;
/// No such account or certificate.
pub const NOT_FOUND: u8 = 6;

/// An error whose exit code is fixed where it is made.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// An error with a fixed exit code.
pub fn fail(code: u8, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(Exit { code, message: message.to_string() })
}

pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(Exit { code, .. }) = cause.downcast_ref::<Exit>() {
            return *code;
        }
        if let Some(e) = cause.downcast_ref::<certhub_acme::Error>() {
            return match e {
                certhub_acme::Error::Untrusted { .. } => INVALID_INPUT,
                e if e.is_retryable() => TRANSIENT,
                _ => CA_REFUSED,
            };
        }
        if let Some(certhub_store::Error::NotFound { .. }) =
            cause.downcast_ref::<certhub_store::Error>()
        {
            return NOT_FOUND;
        }
        if cause.downcast_ref::<certhub_core::identifier::RuleViolation>().is_some()
            || cause.downcast_ref::<certhub_core::challenge::SpecError>().is_some()
        {
            return INVALID_INPUT;
        }
    }
    1
}

/// What to do about `err`, when the error alone does not say: a sentence to print after it.
pub fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|cause| match cause.downcast_ref::<certhub_acme::Error>() {
        Some(certhub_acme::Error::Untrusted { .. }) => Some(
            "If the CA uses a private or test root, give that root to `certhub account add` with \
             --ca-bundle PEM; otherwise check the directory URL.",
        ),
        _ => None,
    })
}
