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
