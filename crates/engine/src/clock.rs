//! Time as the store keeps it (Unix milliseconds) and as people read it (RFC 3339).

use std::time::{SystemTime, UNIX_EPOCH};

pub use certhub_core::rfc3339;

/// A time as Unix milliseconds.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
