//! A string that never shows itself in `Debug` or `Display` output.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// A secret value (HMAC key, TSIG secret, password). `Debug` prints a placeholder, and the
/// memory is wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where the value is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC-SHA256 of `message` under this secret, as lowercase hex: the signature of
    /// certhub's signed events (`X-Certhub-Signature: sha256=HEX`).
    pub fn sign_hex(&self, message: &[u8]) -> String {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.0.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, message);
        crate::cert::hex(tag.as_ref())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The part of a URL that is safe to show: its scheme, host and port. A URL can carry
/// credentials in its user part (`user:password@`), its path (a secret path) or its query (a
/// token), so messages, logs and views that anyone but its owner reads show only this.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a URL)".into();
    };
    let authority = rest.split(['/', '?', '#', ';']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return "(a URL)".into();
    }
    format!("{}://{host}", scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod url_tests {
    use super::shown_url;

    #[test]
    fn credentials_paths_and_queries_are_left_out() {
        for (url, shown) in [
            (
                "https://user:pa55@dns.example:8443/hook/s3cr3t?token=abc#x",
                "https://dns.example:8443",
            ),
            ("http://dns.example/", "http://dns.example"),
            ("https://dns.example?key=1", "https://dns.example"),
            ("https://a@b@dns.example/p", "https://dns.example"),
            ("HTTPS://[::1]:8080/x", "https://[::1]:8080"),
            ("not a url", "(a URL)"),
            ("https:///path", "(a URL)"),
        ] {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }
}
