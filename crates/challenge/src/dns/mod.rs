//! dns-01 (RFC 8555 §8.4): a TXT record `_acme-challenge.NAME` holding
//! base64url(SHA-256(key authorization)), published through a DNS provider's API, RFC 2136, an
//! exec hook or the callback channel. Every solver returns from `present` only once the value is visible on
//! every authoritative name server of the zone (following a CNAME on `_acme-challenge`).

pub mod caa;
pub mod callback;
pub mod exec;
pub mod propagation;
pub mod provider;
pub mod rfc2136;
mod wire;

use base64::Engine as _;
use certhub_core::PendingChallenge;

pub use propagation::{DnsCheckConfig, PropagationChecker};

/// The TXT value answering a dns-01 challenge.
pub fn txt_value(key_authorization: &str) -> String {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// `_acme-challenge.NAME` without the trailing dot.
pub fn record_name(challenge: &PendingChallenge) -> String {
    let base = challenge.identifier.to_string();
    format!("_acme-challenge.{}", base.trim_start_matches("*.").trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_value_follows_rfc_8555() {
        // SHA-256 of "token.thumbprint", base64url without padding: 43 characters.
        let v = txt_value(
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ",
        );
        assert_eq!(v.len(), 43);
        assert!(!v.contains('=') && !v.contains('+') && !v.contains('/'));
    }
}
