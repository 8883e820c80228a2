//! Exit codes, derived from the kind of an error (documented in `certhub --help`): the one
//! place an engine error becomes a number.

use certhub_engine::{Error, Kind};

/// Invalid input or configuration: an identifier, a challenge spec, a file, a CA whose TLS
/// certificate does not verify.
pub const INVALID_INPUT: u8 = 3;
/// The CA refused; retrying will not help.
pub const CA_REFUSED: u8 = 4;
/// Transient: network, rate limit, timeout, another process at work.
pub const TRANSIENT: u8 = 5;
/// No such account or certificate.
pub const NOT_FOUND: u8 = 6;

/// An error whose exit code is fixed where it is made (several failures of mixed kinds).
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

/// The exit code of an engine error's kind.
pub fn code_of(kind: Kind) -> u8 {
    match kind {
        Kind::Invalid | Kind::Conflict | Kind::Forbidden => INVALID_INPUT,
        Kind::CaRefused => CA_REFUSED,
        Kind::Busy | Kind::Transient => TRANSIENT,
        Kind::NotFound => NOT_FOUND,
        Kind::Internal => 1,
    }
}

pub fn code_for(err: &anyhow::Error) -> u8 {
    if let Some(Exit { code, .. }) = err.chain().find_map(|c| c.downcast_ref::<Exit>()) {
        return *code;
    }
    code_of(Error::of(err).kind)
}

/// One code for several failures: theirs when they share it, else 1.
pub fn code_for_all<'a>(errors: impl IntoIterator<Item = &'a Error>) -> u8 {
    let codes: Vec<u8> = errors.into_iter().map(|e| code_of(e.kind)).collect();
    if codes.windows(2).all(|w| w[0] == w[1]) { codes.first().copied().unwrap_or(1) } else { 1 }
}

/// What to do about `err`, when the error alone does not say: a sentence to print after it.
pub fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    Error::of(err).hint
}
