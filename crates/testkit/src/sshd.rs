//! Debian's OpenSSH server (`sshd`) as a child process on a free loopback port: its own host
//! key, one client key authorized for the user running the tests, SFTP through
//! `internal-sftp`, no passwords.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, require_tool, wait_until};

/// A running `sshd`, killed on drop.
pub struct Sshd {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The user the client key signs in as (the one running the tests).
    pub user: String,
    /// The client's private key (OpenSSH format), authorized for `user`.
    pub client_key: String,
    /// The host key's SHA-256 fingerprint, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// A known_hosts file listing this server under `[127.0.0.1]:PORT`.
    pub known_hosts: PathBuf,
    /// Another host key's public line (`ssh-ed25519 AAAA…`), for a known_hosts that lists
    /// the wrong key.
    pub other_host_key: String,
    child: Child,
    dir: TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let keygen = require_tool("ssh-keygen", "apt-get install openssh-client");
    let out = Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "certhub-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
}

impl Sshd {
    /// Starts `sshd` and waits until it answers.
    pub async fn start() -> Sshd {
        let sshd = require_tool("sshd", "apt-get install openssh-server");
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        for name in ["host_key", "other_host_key", "client_key"] {
            keygen(&d.join(name));
        }
        let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap();
        std::fs::write(d.join("authorized_keys"), read("client_key.pub")).unwrap();
        // sshd refuses to start without its privilege separation directory.
        if !Path::new("/run/sshd").exists() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let port = free_port();
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| {
                let out = Command::new("id").arg("-un").output().ok()?;
                Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
            })
            .unwrap_or_else(|| "root".into());
        let conf = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nAllowUsers {user}\nSubsystem sftp internal-sftp\n\
             LogLevel VERBOSE\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), conf).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let host_pub = read("host_key.pub");
        let host_line = host_pub.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let known_hosts = d.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_line}\n")).unwrap();
        let fp = Command::new(require_tool("ssh-keygen", "apt-get install openssh-client"))
            .arg("-lf")
            .arg(d.join("host_key.pub"))
            .output()
            .unwrap();
        let fingerprint = String::from_utf8_lossy(&fp.stdout)
            .split_whitespace()
            .nth(1)
            .expect("ssh-keygen -lf prints the fingerprint")
            .to_string();
        let other = read("other_host_key.pub");
        let server = Sshd {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            user,
            client_key: read("client_key"),
            fingerprint,
            known_hosts,
            other_host_key: other.split_whitespace().take(2).collect::<Vec<_>>().join(" "),
            child,
            dir,
        };
        let (pid, addr, log) = (server.child.id(), server.addr, server.dir.path().join("sshd.log"));
        wait_until("sshd to listen", Duration::from_secs(20), || {
            let log = log.clone();
            async move {
                if crate::process_gone(pid) {
                    panic!("sshd exited:\n{}", std::fs::read_to_string(log).unwrap_or_default());
                }
                tokio::net::TcpStream::connect(addr).await.ok().map(drop)
            }
        })
        .await;
        server
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}
