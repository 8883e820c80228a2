//! Debian's Pebble 2.4.0 as a child process: its own listener certificate, its own config,
//! free ports for the ACME and management listeners and for the ports its validator dials.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{free_port, require_tool, wait_until};

/// How to start Pebble. The defaults make tests deterministic: no validation sleep, no
/// nonce rejection, no authorization reuse.
#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// DNS server Pebble resolves identifiers with (`-dnsserver`); none means the system's.
    pub dns_server: Option<SocketAddr>,
    /// Refuse newAccount without External Account Binding.
    pub eab_required: bool,
    /// EAB keys: (key id, base64url HMAC key).
    pub eab_keys: Vec<(String, String)>,
    /// Percentage of good nonces rejected as badNonce.
    pub nonce_reject: u8,
    /// Percentage chance of reusing a valid authorization.
    pub authz_reuse: u8,
    /// Turn off the random wait before each validation.
    pub va_nosleep: bool,
    /// Domains refused with rejectedIdentifier.
    pub blocklist: Vec<String>,
    /// Validity of issued certificates in seconds (Pebble's default is 5 years).
    pub validity_secs: Option<u64>,
    /// Number of intermediates.
    pub chain_length: Option<u32>,
    /// Extra chains offered through `Link: rel="alternate"`.
    pub alternate_roots: u32,
}

impl Default for PebbleOptions {
    fn default() -> Self {
        Self {
            dns_server: None,
            eab_required: false,
            eab_keys: Vec::new(),
            nonce_reject: 0,
            authz_reuse: 0,
            va_nosleep: true,
            blocklist: Vec::new(),
            validity_secs: None,
            chain_length: None,
            alternate_roots: 0,
        }
    }
}

/// A running Pebble, killed on drop.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory_url: String,
    /// The CA that signed Pebble's HTTPS certificate (trust it to talk to Pebble).
    pub listener_ca_pem: String,
    /// The same, as a file.
    pub listener_ca_path: PathBuf,
    /// The port Pebble's validator dials for http-01.
    pub http_port: u16,
    /// The port Pebble's validator dials for tls-alpn-01.
    pub tls_port: u16,
    /// The management API (roots, intermediates, certificate status).
    pub management_url: String,
    child: Child,
    dir: TempDir,
}

impl Pebble {
    /// Starts Pebble and waits until its directory answers.
    pub async fn start(opts: PebbleOptions) -> Pebble {
        let bin = require_tool("pebble", "apt-get install pebble");
        let dir = TempDir::new().expect("a temporary directory");
        let (ca_pem, cert_pem, key_pem) = listener_certificates();
        let ca_path = dir.path().join("listener-ca.pem");
        std::fs::write(&ca_path, &ca_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), key_pem).unwrap();
        let (acme_port, mgmt_port, http_port, tls_port) =
            (free_port(), free_port(), free_port(), free_port());
        let mut config = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": opts.eab_required,
            "domainBlocklist": opts.blocklist,
        });
        if !opts.eab_keys.is_empty() {
            config["externalAccountMACKeys"] = serde_json::Value::Object(
                opts.eab_keys.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect(),
            );
        }
        if let Some(v) = opts.validity_secs {
            config["certificateValidityPeriod"] = v.into();
        }
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, serde_json::json!({ "pebble": config }).to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-config").arg(&config_path).current_dir(dir.path());
        if let Some(dns) = opts.dns_server {
            cmd.arg("-dnsserver").arg(dns.to_string());
        }
        cmd.env("PEBBLE_WFE_NONCEREJECT", opts.nonce_reject.to_string())
            .env("PEBBLE_AUTHZREUSE", opts.authz_reuse.to_string())
            .env("PEBBLE_ALTERNATE_ROOTS", opts.alternate_roots.to_string());
        if opts.va_nosleep {
            cmd.env("PEBBLE_VA_NOSLEEP", "1");
        }
        if let Some(n) = opts.chain_length {
            cmd.env("PEBBLE_CHAIN_LENGTH", n.to_string());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble starts");
        let pebble = Pebble {
            directory_url: format!("https://127.0.0.1:{acme_port}/dir"),
            listener_ca_pem: ca_pem,
            listener_ca_path: ca_path,
            http_port,
            tls_port,
            management_url: format!("https://127.0.0.1:{mgmt_port}"),
            child,
            dir,
        };
        let client = pebble.http_client();
        let url = pebble.directory_url.clone();
        let pid = pebble.child.id();
        let log_path = pebble.dir.path().join("pebble.log");
        wait_until("pebble's directory to answer", Duration::from_secs(20), || {
            let client = client.clone();
            let url = url.clone();
            let log_path = log_path.clone();
            async move {
                if crate::process_gone(pid) {
                    panic!(
                        "pebble exited:\n{}",
                        std::fs::read_to_string(log_path).unwrap_or_default()
                    );
                }
                client.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
            }
        })
        .await;
        pebble
    }

    /// The Pebble process's id (to read its CPU time, for example).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client that trusts Pebble's listener CA.
    pub fn http_client(&self) -> reqwest::Client {
        let certs = reqwest::Certificate::from_pem_bundle(self.listener_ca_pem.as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only(certs)
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn management(&self, path: &str) -> reqwest::Response {
        self.http_client()
            .get(format!("{}{path}", self.management_url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("pebble's management API at {path}: {e}"))
    }

    /// Root `n` (0 is the default chain's, 1.. the alternates'), PEM.
    pub async fn root_pem(&self, n: u32) -> String {
        self.management(&format!("/roots/{n}")).await.text().await.unwrap()
    }

    /// Intermediate `n`, PEM.
    pub async fn intermediate_pem(&self, n: u32) -> String {
        self.management(&format!("/intermediates/{n}")).await.text().await.unwrap()
    }

    /// `/cert-status-by-serial/HEX` as JSON (`Status`, `Reason`, …).
    pub async fn cert_status(&self, serial_hex: &str) -> serde_json::Value {
        let rsp = self.management(&format!("/cert-status-by-serial/{serial_hex}")).await;
        let text = rsp.text().await.unwrap();
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("pebble's certificate status is not JSON: {text}"))
    }

    /// Pebble's listener certificate and key (PEM), for a server that stands in for it
    /// (the fault proxy) and is trusted as it is.
    pub fn listener_identity(&self) -> (String, String) {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap();
        (read("cert.pem"), read("key.pem"))
    }

    /// Where Pebble's ACME server answers: `https://127.0.0.1:PORT`.
    pub fn origin(&self) -> &str {
        self.directory_url.trim_end_matches("/dir")
    }

    /// Pebble's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A listener CA and a server certificate for localhost, 127.0.0.1 and ::1 (PEM).
fn listener_certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "certhub test listener CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.subject_alt_names.push(rcgen::SanType::IpAddress("::1".parse().unwrap()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
