//! A real Apache httpd (Debian's `apache2`) serving TLS on a free loopback port from one
//! virtual host, with its own configuration, modules loaded from Debian's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, require_tool, wait_until};

const MODULES: &str = "/usr/lib/apache2/modules";

/// A running httpd, stopped on drop.
pub struct Apache {
    /// Where it serves TLS.
    pub addr: SocketAddr,
    /// Its configuration file.
    pub conf: PathBuf,
    apache: PathBuf,
    child: Child,
    dir: TempDir,
}

impl Apache {
    /// Starts httpd with a virtual host answering to `names` (the first its ServerName)
    /// serving `fullchain` and `key`.
    pub async fn start(fullchain: &Path, key: &Path, names: &[&str]) -> Apache {
        let apache = require_tool("apache2", "apt-get install apache2");
        let dir = TempDir::new().unwrap();
        let d = dir.path().display();
        let port = free_port();
        let module =
            |name: &str, file: &str| format!("LoadModule {name}_module {MODULES}/{file}.so\n");
        let mut conf = format!(
            "ServerRoot \"{d}\"\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\n\
             DefaultRuntimeDir {d}\nMutex file:{d} default\nServerName localhost\n"
        );
        for (name, file) in [
            ("mpm_event", "mod_mpm_event"),
            ("authz_core", "mod_authz_core"),
            ("socache_shmcb", "mod_socache_shmcb"),
            ("ssl", "mod_ssl"),
        ] {
            conf.push_str(&module(name, file));
        }
        // As root, the children run as nobody (httpd refuses to serve as root).
        if is_root() {
            conf.push_str("User nobody\nGroup nogroup\n");
        }
        let (first, aliases) = names.split_first().expect("a name");
        conf.push_str(&format!(
            "<VirtualHost 127.0.0.1:{port}>\n  ServerName {first}\n{}  SSLEngine on\n  \
             SSLCertificateFile {}\n  SSLCertificateKeyFile {}\n</VirtualHost>\n",
            aliases.iter().map(|a| format!("  ServerAlias {a}\n")).collect::<String>(),
            fullchain.display(),
            key.display()
        ));
        let conf_path = dir.path().join("httpd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(&apache)
            .arg("-f")
            .arg(&conf_path)
            .arg("-DFOREGROUND")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("apache2 starts");
        let server = Apache {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            conf: conf_path,
            apache,
            child,
            dir,
        };
        let pid = server.child.id();
        wait_until("apache2 to listen", Duration::from_secs(20), || async {
            if crate::process_gone(pid) {
                panic!("apache2 exited:\n{}", server.log());
            }
            tokio::net::TcpStream::connect(server.addr).await.ok().map(drop)
        })
        .await;
        server
    }

    /// The command line that tests this httpd's configuration.
    pub fn test_command(&self) -> String {
        format!("{} -t -f {}", self.apache.display(), self.conf.display())
    }

    /// The command line that makes this httpd reload gracefully.
    pub fn reload_command(&self) -> String {
        format!("{} -k graceful -f {}", self.apache.display(), self.conf.display())
    }

    /// httpd's error log and output so far.
    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// The chain httpd serves for `sni`, leaf first, verified against `root_pem`.
    pub async fn served_chain(&self, sni: &str, root_pem: &str) -> Result<Vec<Vec<u8>>, String> {
        crate::nginx::served_chain(self.addr, sni, root_pem).await
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl Drop for Apache {
    fn drop(&mut self) {
        // SIGTERM lets the parent take its children with it.
        crate::terminate(&mut self.child);
    }
}
