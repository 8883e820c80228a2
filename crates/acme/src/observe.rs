//! Who hears of each request to a CA: a process-wide observer (the hub's metrics), set once.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Hears of every HTTP request made to a CA, when its answer (or failure) is in.
pub trait Observer: Send + Sync {
    /// A request to the CA of `directory_url`, at `endpoint` (`newNonce`, `newAccount`,
    /// `newOrder`, `revokeCert`, `keyChange`, `renewalInfo`, `directory`, or `resource` for
    /// the URLs the CA hands out: orders, authorizations, challenges, finalization,
    /// certificates), which took `took` and got HTTP status `status` (none when no answer
    /// came).
    fn request(
        &self,
        directory_url: &str,
        endpoint: &'static str,
        took: Duration,
        status: Option<u16>,
    );
}

static OBSERVER: OnceLock<Arc<dyn Observer>> = OnceLock::new();

/// Sets the process's observer; false if one was set before (it stays).
pub fn set_observer(observer: Arc<dyn Observer>) -> bool {
    OBSERVER.set(observer).is_ok()
}

pub(crate) fn observe(
    directory_url: &str,
    endpoint: &'static str,
    took: Duration,
    status: Option<u16>,
) {
    if let Some(o) = OBSERVER.get() {
        o.request(directory_url, endpoint, took, status);
    }
}
