//! The certhub domain: identifiers and the rules a request must obey, key types, CSRs,
//! certificate facts, and challenge configurations with the [`Solver`] trait that the
//! challenge crate implements.
//!
//! This crate does no I/O of its own and depends on no other workspace crate.

pub mod agent;
pub mod budget;
pub mod caa;
pub mod cert;
pub mod challenge;
pub mod credential;
pub mod csr;
pub mod deploy;
pub mod discover;
pub mod dns_provider;
pub mod identifier;
pub mod key;
pub mod name;
pub mod renewal;
pub mod secret;
pub mod time;

pub use cert::{CertError, CertInfo, key_matches_cert, pem_block, split_pem_chain};
pub use challenge::{
    ChallengeConfig, ChallengeKind, ChallengeSpec, PendingChallenge, Propagation, Solver,
    SolverError,
};
pub use csr::{CsrError, ParsedCsr, build_csr};
pub use deploy::{DeployAction, DeployTask, Trigger};
pub use identifier::Identifier;
pub use identifier::{
    Normalized, Note, RequestRules, Rule, RuleViolation, assign_challenges, normalize,
};
pub use key::KeyType;
pub use key::{KeyError, PrivateKey};
pub use secret::Secret;
pub use time::rfc3339;
