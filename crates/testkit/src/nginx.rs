//! A real nginx serving TLS on a free loopback port, with the certificate and key files a
//! test deploys to, and a client that reads the chain it serves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

use crate::{free_port, require_tool, wait_until};

/// A running nginx (killed on drop).
pub struct Nginx {
    /// Where it serves TLS.
    pub addr: SocketAddr,
    /// Its configuration file, for `nginx -c CONF -s reload`.
    pub conf: PathBuf,
    nginx: PathBuf,
    child: Child,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx serving TLS with `fullchain` and `key` (PEM files that must exist).
    pub async fn start(fullchain: &Path, key: &Path) -> Nginx {
        Self::start_named(fullchain, key, &[]).await
    }

    /// [`Nginx::start`] with a `server_name` of `names` (none: no `server_name`).
    pub async fn start_named(fullchain: &Path, key: &Path, names: &[&str]) -> Nginx {
        let server_name = match names {
            [] => String::new(),
            names => format!("server_name {};", names.join(" ")),
        };
        let nginx = require_tool("nginx", "apt-get install nginx");
        let dir = TempDir::new().expect("a temporary directory");
        let port = free_port();
        let d = dir.path().display();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    {server_name}
    ssl_certificate {fullchain};
    ssl_certificate_key {key};
    location / {{ return 200 "ok\n"; }}
  }}
}}
"#,
                fullchain = fullchain.display(),
                key = key.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(&nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nginx starts");
        let server =
            Nginx { addr: SocketAddr::from(([127, 0, 0, 1], port)), conf, nginx, child, dir };
        let pid = server.child.id();
        wait_until("nginx to listen", Duration::from_secs(20), || async {
            if crate::process_gone(pid) {
                panic!("nginx exited:\n{}", server.log());
            }
            let pid_file = server.dir.path().join("nginx.pid").exists();
            let listening = tokio::net::TcpStream::connect(server.addr).await.is_ok();
            (pid_file && listening).then_some(())
        })
        .await;
        server
    }

    /// The command line that makes this nginx reload its configuration and certificates.
    pub fn reload_command(&self) -> String {
        format!(
            "{} -c {} -p {} -s reload",
            self.nginx.display(),
            self.conf.display(),
            self.dir.path().display()
        )
    }

    /// The command line that tests this nginx's configuration (`nginx -t`).
    pub fn test_command(&self) -> String {
        format!(
            "{} -t -q -c {} -p {}",
            self.nginx.display(),
            self.conf.display(),
            self.dir.path().display()
        )
    }

    /// nginx's error log and output so far.
    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// The chain nginx serves for `sni`, leaf first, from a handshake that verifies it
    /// against `root_pem` at the current time.
    pub async fn served_chain(&self, sni: &str, root_pem: &str) -> Result<Vec<Vec<u8>>, String> {
        served_chain(self.addr, sni, root_pem).await
    }
}

/// The chain a TLS server at `addr` serves for `sni`, leaf first, from a handshake that
/// verifies it against `root_pem` at the current time.
pub async fn served_chain(
    addr: SocketAddr,
    sni: &str,
    root_pem: &str,
) -> Result<Vec<Vec<u8>>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.map_err(|e| format!("root: {e}"))?).map_err(|e| format!("{e}"))?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("{e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{e}"))?
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(sni.to_string()).map_err(|e| format!("{sni}: {e}"))?;
    let tcp =
        tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {}: {e}", addr))?;
    let tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "the handshake hung".to_string())?
        .map_err(|e| format!("handshake for {sni}: {e}"))?;
    let (_, conn) = tls.get_ref();
    Ok(conn.peer_certificates().unwrap_or_default().iter().map(|c| c.to_vec()).collect())
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master takes its worker with it on SIGTERM; SIGKILL would leave the worker.
        crate::terminate(&mut self.child);
    }
}
