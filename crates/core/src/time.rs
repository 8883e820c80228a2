//! Times as certhub keeps them (Unix milliseconds) and as people and JSON read them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds as an RFC 3339 UTC time (`2026-11-23T10:14:53Z`).
pub fn rfc3339(unix_secs: i64) -> String {
    jiff::Timestamp::from_second(unix_secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| unix_secs.to_string())
}

/// A time as Unix milliseconds (0 before 1970, the largest value past its range).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}
