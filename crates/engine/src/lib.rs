//! certhub's engine: everything certhub does after its input is parsed. Issuance
//! ([`issue`]), renewal decisions and the CAs' budgets ([`renew`]), deployment
//! ([`deploy`]), notifications ([`notify`]), the hub's scheduler ([`scheduler`]), preview,
//! discovery of the names a web server serves ([`discover`]),
//! import and accounts, over one store and one set of challenge responders.
//!
//! The CLI, the hub and, next, its agents call it; it prints nothing and knows no exit code:
//! progress goes through [`Progress`], failures are [`Error`]s of a [`Kind`], and each
//! caller says them its own way (the CLI as text and an exit code, the hub as a problem
//! document).

pub mod account;
mod actor;
pub mod agent_ca;
mod agent_solver;
pub mod agents;
pub mod audit;
mod caa;
pub mod cert;
mod clock;
pub mod credentials;
pub mod deploy;
pub mod discover;
mod engine;
pub mod error;
pub mod import;
pub mod issue;
pub mod metrics;
pub mod notify;
pub mod preview;
mod progress;
pub mod records;
pub mod renew;
pub mod scheduler;
mod settings;

pub use account::{NewAccount, Rollover};
pub use actor::Actor;
pub use cert::{Added, CertChanges, NewCertificate, Probe};
pub use clock::{now_secs, rfc3339, unix_ms};
pub use engine::{Config, Engine, REQUEST_TIMEOUT};
pub use error::{Error, Kind};
pub use import::{Bundle, Import, Imported};
pub use issue::Issuer;
pub use preview::Preview;
pub use progress::{LogProgress, Progress};
pub use renew::{RenewRun, RenewSummary};
pub use settings::{Settings, SettingsChanges, SharedSettings};
