//! Challenge solvers: http-01 (built-in responder and webroot), tls-alpn-01 (built-in
//! responder) and dns-01 (RFC 2136, exec hook, callback URL) with a propagation check on
//! every authoritative name server.

pub mod dns;
pub mod http01;
pub mod probe;
pub mod solvers;
pub mod tls_alpn;
pub mod webroot;

pub use solvers::Solvers;
