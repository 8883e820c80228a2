//! Time as the store keeps it (Unix milliseconds) and as people read it (RFC 3339).

pub use certhub_core::time::{now_secs, rfc3339, unix_ms};
