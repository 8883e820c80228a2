//! dns-01 through an executable, following lego's exec convention:
//!
//! ```text
//! HOOK present _acme-challenge.example.com. VALUE
//! HOOK cleanup _acme-challenge.example.com. VALUE
//! ```
//!
//! The FQDN carries its trailing dot, so existing lego hook scripts work unchanged. A hook
//! that runs longer than its timeout is killed; a non-zero exit fails with its stderr.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use certhub_core::{PendingChallenge, Solver, SolverError};

use super::propagation::PropagationChecker;
use super::{record_name, txt_value};

/// Runs a hook to publish and remove TXT records.
pub struct ExecSolver {
    path: PathBuf,
    checker: PropagationChecker,
    timeout: Duration,
}

impl ExecSolver {
    /// A hook at `path`, killed after 2 minutes.
    pub fn new(path: PathBuf, checker: PropagationChecker) -> Self {
        Self { path, checker, timeout: Duration::from_secs(120) }
    }

    async fn run(&self, mode: &str, fqdn: &str, value: &str) -> Result<(), SolverError> {
        let hook = self.path.display().to_string();
        let child = tokio::process::Command::new(&self.path)
            .args([mode, fqdn, value])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SolverError::Io {
                what: format!("cannot run the dns-01 hook {hook}"),
                source,
            })?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|source| SolverError::Io {
                what: format!("the dns-01 hook {hook} failed"),
                source,
            })?,
            Err(_) => {
                return Err(SolverError::Hook(format!(
                    "the dns-01 hook `{hook} {mode} {fqdn}` ran longer than {}s and was killed",
                    self.timeout.as_secs()
                )));
            }
        };
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> =
            stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        Err(SolverError::Hook(format!(
            "the dns-01 hook `{hook} {mode} {fqdn}` failed ({}){}",
            out.status,
            if tail.is_empty() { String::new() } else { format!(": {}", tail.join("\n")) }
        )))
    }
}

#[async_trait::async_trait]
impl Solver for ExecSolver {
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let record = record_name(challenge);
        let value = txt_value(&challenge.key_authorization);
        self.run("present", &format!("{record}."), &value).await?;
        self.checker.wait_visible(&record, &value).await
    }

    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let record = record_name(challenge);
        let value = txt_value(&challenge.key_authorization);
        self.run("cleanup", &format!("{record}."), &value).await
    }
}
