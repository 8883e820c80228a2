//! A real SMTP server: aiosmtpd (Debian's python3-aiosmtpd) on a free loopback port, keeping
//! each message it receives in a Maildir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::{free_port, wait_until};

const INSTALL: &str =
    "install Debian's python3-aiosmtpd: sudo apt-get install python3-aiosmtpd (scripts/test does)";

/// A running SMTP server; it stops when dropped.
pub struct SmtpServer {
    _child: tokio::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts aiosmtpd and waits until it accepts connections.
    pub async fn start() -> SmtpServer {
        // Debian's own Python, where the package installs the module.
        let python = PathBuf::from("/usr/bin/python3");
        let probe = std::process::Command::new(&python).args(["-c", "import aiosmtpd"]).output();
        if !probe.is_ok_and(|o| o.status.success()) {
            panic!("aiosmtpd not found: {INSTALL}");
        }
        let maildir = tempfile::TempDir::new().expect("a maildir");
        let port = free_port();
        let child = tokio::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("aiosmtpd starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until("aiosmtpd to accept connections", Duration::from_secs(20), || async move {
            tokio::net::TcpStream::connect(addr).await.ok()
        })
        .await;
        SmtpServer { _child: child, addr, maildir }
    }

    /// The messages received so far, raw (headers and body).
    pub fn messages(&self) -> Vec<String> {
        let dir = self.maildir.path().join("mail").join("new");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect()
    }

    /// Waits up to 20 s until `n` messages have arrived; them.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        wait_until(&format!("{n} message(s) at the SMTP server"), Duration::from_secs(20), || {
            let messages = self.messages();
            async move { (messages.len() >= n).then_some(messages) }
        })
        .await
    }
}
