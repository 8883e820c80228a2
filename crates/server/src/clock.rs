//! Time as the hub keeps it (Unix milliseconds) and shows it (RFC 3339).

pub(crate) use certhub_core::time::now_ms;

/// Epoch milliseconds as RFC 3339 UTC.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    certhub_core::rfc3339(ms.div_euclid(1000))
}
