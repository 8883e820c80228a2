//! Debian's BIND 9 (`named`) as a child process: authoritative for the zones a test names,
//! every name in them resolving to 127.0.0.1 (A only: the ACME test server asks AAAA
//! first), dynamic updates allowed with one TSIG key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use tempfile::TempDir;

use crate::{free_port, require_tool, wait_until};

/// A running `named`, killed on drop.
pub struct Bind {
    /// Where it answers, UDP and TCP.
    pub addr: SocketAddr,
    /// The TSIG key's name.
    pub tsig_key_name: String,
    /// The TSIG secret, base64.
    pub tsig_secret: String,
    /// The TSIG algorithm, as nsupdate and certhub name it.
    pub algorithm: &'static str,
    child: Child,
    dir: TempDir,
}

impl Bind {
    /// Starts `named` authoritative for `zones` (e.g. `["test"]`) and waits until it answers.
    pub async fn start(zones: &[&str]) -> Bind {
        let named = require_tool("named", "apt-get install bind9");
        require_tool("dig", "apt-get install bind9-dnsutils");
        let dir = TempDir::new().expect("a temporary directory");
        let port = free_port();
        let secret: [u8; 32] = rand_bytes();
        let tsig_secret = base64::engine::general_purpose::STANDARD.encode(secret);
        let key_name = "certhub-test".to_string();
        let d = dir.path().display();
        let mut conf = format!(
            r#"key "{key_name}" {{ algorithm hmac-sha256; secret "{tsig_secret}"; }};
options {{
  directory "{d}"; pid-file "{d}/named.pid"; session-keyfile "{d}/session.key";
  managed-keys-directory "{d}"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
  recursion no; dnssec-validation no; notify no; minimal-responses no;
}};
controls {{ }};
"#
        );
        for zone in zones {
            let zone = zone.trim_end_matches('.');
            std::fs::write(
                dir.path().join(format!("{zone}.zone")),
                format!(
                    "$TTL 60\n@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 60 60 600 60\n@ IN NS ns1.{zone}.\n@ IN A 127.0.0.1\nns1 IN A 127.0.0.1\n* IN A 127.0.0.1\n"
                ),
            )
            .unwrap();
            conf.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{d}/{zone}.zone\"; update-policy {{ grant {key_name} zonesub ANY; }}; }};\n"
            ));
        }
        let conf_path = dir.path().join("named.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("named.log")).unwrap();
        let child = Command::new(named)
            .arg("-g")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("named starts");
        let bind = Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tsig_key_name: key_name,
            tsig_secret,
            algorithm: "hmac-sha256",
            child,
            dir,
        };
        let first = zones.first().copied().unwrap_or("test").to_string();
        let pid = bind.child.id();
        let log_path = bind.log_path();
        wait_until("named to answer", Duration::from_secs(20), || {
            let first = first.clone();
            let log_path = log_path.clone();
            async move {
                if crate::process_gone(pid) {
                    panic!(
                        "named exited:\n{}",
                        std::fs::read_to_string(log_path).unwrap_or_default()
                    );
                }
                let out = dig(port, &["+short", "SOA", &format!("{first}.")]).await;
                out.filter(|o| !o.trim().is_empty()).map(|_| ())
            }
        })
        .await;
        bind
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("named.log")
    }

    /// named's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The TXT values of `name`, as this server answers them.
    pub async fn txt_values(&self, name: &str) -> Vec<String> {
        dig(self.addr.port(), &["+short", "TXT", name])
            .await
            .unwrap_or_else(|| panic!("named did not answer for {name}:\n{}", self.log()))
            .lines()
            .map(|l| l.trim().trim_matches('"').to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Runs nsupdate commands (e.g. `update add x.test. 60 CNAME y.test.`) with the TSIG key.
    pub async fn update(&self, commands: &str) {
        self.updater().update(commands).await;
    }

    /// A handle that can update the zones from anywhere, e.g. a spawned task.
    pub fn updater(&self) -> Updater {
        Updater {
            addr: self.addr,
            key: format!("{}:{}:{}", self.algorithm, self.tsig_key_name, self.tsig_secret),
        }
    }
}

/// Sends dynamic updates to a [`Bind`] with its TSIG key.
#[derive(Debug, Clone)]
pub struct Updater {
    addr: SocketAddr,
    key: String,
}

impl Updater {
    /// Runs nsupdate commands, panicking if nsupdate fails.
    pub async fn update(&self, commands: &str) {
        let nsupdate = require_tool("nsupdate", "apt-get install bind9-dnsutils");
        let script = format!("server {} {}\n{commands}\nsend\n", self.addr.ip(), self.addr.port());
        let mut child = tokio::process::Command::new(nsupdate)
            .arg("-y")
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsupdate runs");
        use tokio::io::AsyncWriteExt as _;
        child.stdin.take().unwrap().write_all(script.as_bytes()).await.unwrap();
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "nsupdate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dig's answer lines, or `None` when no answer came back.
async fn dig(port: u16, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=1", "+tries=1"])
        .args(args)
        .output()
        .await
        .expect("dig runs (apt-get install bind9-dnsutils)");
    // dig reports "connection refused" and timeouts on stdout too, even with +short; only a
    // successful exchange has an answer.
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(";;"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn rand_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    // Test keys only need to differ between runs; the clock and the pid are enough.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id());
    for (i, b) in out.iter_mut().enumerate() {
        *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
    }
    out
}
