//! Times as people and JSON read them.

/// Unix seconds as an RFC 3339 UTC time (`2026-11-23T10:14:53Z`).
pub fn rfc3339(unix_secs: i64) -> String {
    jiff::Timestamp::from_second(unix_secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| unix_secs.to_string())
}
