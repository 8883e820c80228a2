//! Who a change is written to the audit log as.

use certhub_store::{AuditEntry, Store};

/// Who a change is written to the audit log as.
#[derive(Debug, Clone)]
pub struct Actor {
    name: String,
    source: &'static str,
}

impl Actor {
    /// The user running a command, as `cli:USER`.
    pub fn cli() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Self { name: format!("cli:{user}"), source: "cli" }
    }

    /// The hub's own background work (its renewal service).
    pub fn hub() -> Self {
        Self { name: "hub".into(), source: "renewal service" }
    }

    /// The audit entry of this actor doing `action` on `target`, to store with the change.
    pub fn entry(&self, action: &str, target: &str) -> AuditEntry {
        AuditEntry::new(&self.name, action, target, self.source)
    }

    /// Writes an event that changes nothing (a key copied out) to the audit log.
    pub async fn audit(
        &self,
        store: &Store,
        action: &str,
        target: &str,
        detail: Option<&str>,
    ) -> Result<(), certhub_store::Error> {
        store.audit(&self.name, action, target, self.source, detail).await?;
        Ok(())
    }
}
