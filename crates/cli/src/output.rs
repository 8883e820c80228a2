//! Small helpers for human and JSON output.

use std::time::{SystemTime, UNIX_EPOCH};

pub use certhub_core::rfc3339;

/// A time as Unix milliseconds.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Prints rows as left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Who a change is written to the audit log as.
#[derive(Debug, Clone)]
pub struct Actor {
    name: String,
    source: &'static str,
    /// The hub's own work: it logs instead of printing.
    hub: bool,
}

impl Actor {
    /// The user running the command, as `cli:USER`.
    pub fn cli() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Self { name: format!("cli:{user}"), source: "cli", hub: false }
    }

    /// The hub's own background work (its renewal service).
    pub fn hub() -> Self {
        Self { name: "hub".into(), source: "renewal service", hub: true }
    }

    /// How this actor's work is told: on the console, or for the hub, in the log.
    pub(crate) fn reporter(&self, names: &[String]) -> crate::cert::Reporter {
        if self.hub { crate::cert::Reporter::logging() } else { crate::cert::Reporter::new(names) }
    }

    /// The audit entry of this actor doing `action` on `target`, to store with the change.
    pub fn entry(&self, action: &str, target: &str) -> certhub_store::AuditEntry {
        certhub_store::AuditEntry::new(&self.name, action, target, self.source)
    }

    /// Writes a change to the audit log.
    pub async fn audit(
        &self,
        store: &certhub_store::Store,
        action: &str,
        target: &str,
        detail: Option<&str>,
    ) -> anyhow::Result<()> {
        store.audit(&self.name, action, target, self.source, detail).await?;
        Ok(())
    }
}

/// Writes a change made from the command line to the audit log, as `cli:USER`.
pub async fn audit(
    store: &certhub_store::Store,
    action: &str,
    target: &str,
    detail: Option<&str>,
) -> anyhow::Result<()> {
    Actor::cli().audit(store, action, target, detail).await
}

/// Returns `result`, after writing `audited` (action and target) to the audit log as
/// `cli:USER` when it succeeded.
pub async fn audit_done(
    store: &certhub_store::Store,
    result: anyhow::Result<()>,
    audited: Option<(&str, String)>,
) -> anyhow::Result<()> {
    if let (Ok(()), Some((action, name))) = (&result, audited) {
        audit(store, action, &name, None).await?;
    }
    result
}
