//! An ACME client (RFC 8555) with External Account Binding, key rollover, IP identifiers
//! (RFC 8738), renewal information (ARI, RFC 9773), profiles, alternate chains and
//! revocation by account key or certificate key.
//!
//! Protocol only: no storage, no policy. Nonces come from every `Replay-Nonce` header;
//! `badNonce` is retried until a deadline; every wait is bounded; errors keep the CA's
//! problem document, HTTP status and Retry-After.
//!
//! ```no_run
//! # async fn run() -> Result<(), certhub_acme::Error> {
//! use certhub_acme::{Client, ClientConfig, KeyAlgorithm, NewAccount, SigningKey};
//! let client = Client::new("https://acme.example/dir", ClientConfig::default()).await?;
//! let key = SigningKey::generate(KeyAlgorithm::EcP256)?;
//! let (account, _) = client
//!     .new_account(key, &NewAccount { terms_of_service_agreed: true, ..Default::default() })
//!     .await?;
//! # Ok(()) }
//! ```

mod account;
mod ari;
mod chain;
mod client;
mod error;
#[cfg(test)]
mod fuzz;
mod jws;
mod key;
mod observe;
mod types;

pub use account::{Account, NewAccount, NewOrder};
pub use ari::{RenewalInfo, certificate_id};
pub use chain::CertificateChain;
pub use client::{Client, ClientConfig, Look};
pub use error::{ApiError, Error, Problem, Subproblem};
pub use jws::{EabAlgorithm, ExternalAccountKey};
pub use key::{KeyAlgorithm, SigningKey};
pub use observe::{Observer, set_observer};
pub use types::{
    AccountResource, AccountStatus, Authorization, AuthorizationStatus, Challenge, ChallengeStatus,
    ChallengeType, Directory, Identifier, IdentifierType, Meta, Order, OrderStatus,
    RevocationReason,
};
