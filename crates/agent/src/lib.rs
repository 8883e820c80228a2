//! The certhub agent: the same binary, run on each target machine. It joins a hub once with a
//! one-time token ([`join`]: its key is made here and never leaves the machine; the hub's
//! agent authority signs its client certificate), then ([`run`]) keeps one outbound
//! connection to the hub's agent endpoint, over which the hub pushes the certificates
//! assigned to this machine as they are issued; the agent deploys each one with its tasks,
//! within what it was allowed ([`Safety`]), and reports the outcome.
//!
//! What it keeps, in its data directory: `agent.json` (its id, name, the hub's URLs),
//! `agent-key.pem` (mode 0600), `agent-cert.pem`, `agent-ca.pem` (the only authority it
//! trusts for the hub's agent endpoint) and `deployed.json` (the serial it last deployed of
//! each certificate, so that nothing is deployed twice and a hub out of reach changes
//! nothing here).

mod identity;
mod run;
mod safety;
mod verify;

pub use identity::{Identity, JoinOptions, join};
pub use run::{RunOptions, run};
pub use safety::Safety;
pub use verify::WebConfig;

/// This machine's host name, if the kernel says.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string())
}

/// The facts of this machine the agent reports (the names its web servers serve are the
/// caller's to add).
pub fn facts() -> certhub_core::agent::AgentFacts {
    let hostname = hostname().unwrap_or_else(|| "unknown".into());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    certhub_core::agent::AgentFacts {
        hostname,
        os,
        version: env!("CARGO_PKG_VERSION").to_string(),
        discovered: Vec::new(),
    }
}
