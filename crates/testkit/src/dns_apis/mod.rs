//! DNS providers' HTTP APIs, written from each provider's API documentation, for the
//! providers no real server of runs here (Cloudflare, Azure, Google Cloud DNS, DigitalOcean,
//! OVH, Hetzner, Gandi, GoDaddy, Linode).
//!
//! They answer at the providers' own addresses (`https://api.cloudflare.com/…`): the process
//! under test is given `HTTPS_PROXY` naming [`ProviderApis::proxy_url`], and
//! `SSL_CERT_FILE` naming [`ProviderApis::ca_file`]. The proxy answers each `CONNECT` itself
//! with TLS for that host, from a certificate of a test CA, so the client's requests reach
//! the provider's fake exactly as they would reach the provider: same host, path, headers
//! and body. A fake refuses what the provider would refuse, with the provider's documented
//! error body.
//!
//! Every zone a fake holds is a zone of a real BIND 9 ([`crate::bind::Bind`]): a TXT record
//! created through a fake is added there by dynamic update, and removed when deleted, so
//! that a real ACME server can validate the challenge it answers.

mod azure;
mod cloudflare;
mod digitalocean;
mod gandi;
mod godaddy;
mod google;
mod hetzner;
mod linode;
mod ovh;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::bind::Updater;

/// One provider's fake: the hosts it answers for and its API.
pub(crate) struct Api {
    /// The provider's name, as `dns-01:provider=NAME` names it.
    pub name: &'static str,
    /// The hosts its API (and its sign-in service, if separate) answers at.
    pub hosts: &'static [&'static str],
    /// The credential fields certhub stores for it (`certhub credential add --kind NAME`),
    /// with values this fake accepts.
    pub credential: fn(&Fixture) -> Vec<(&'static str, String)>,
    /// The API, given the zones.
    pub router: fn(Zones, Arc<Fixture>) -> Router,
}

/// What the fakes need beyond the zones: keys generated for the run.
pub struct Fixture {
    /// An RSA key (PKCS#8 PEM) for Google's service account; the fake of Google's token
    /// service checks the assertion's signature with its public key.
    pub rsa_pkcs8_pem: String,
    /// The public key of `rsa_pkcs8_pem` (DER, RSAPublicKey).
    pub rsa_public_der: Vec<u8>,
}

fn all() -> Vec<Api> {
    vec![
        azure::api(),
        cloudflare::api(),
        digitalocean::api(),
        gandi::api(),
        godaddy::api(),
        google::api(),
        hetzner::api(),
        linode::api(),
        ovh::api(),
    ]
}

/// The records the fakes hold: TXT values by owner name, mirrored into BIND.
#[derive(Clone)]
pub struct Zones {
    zones: Arc<Vec<String>>,
    txt: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    bind: Updater,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Zones {
    /// The zone apexes, lowercase, without the trailing dot (e.g. `test`).
    pub fn zones(&self) -> Vec<String> {
        self.zones.as_ref().clone()
    }

    /// The zone holding `name` (the longest apex that is `name` or a suffix of it).
    pub fn zone_of(&self, name: &str) -> Option<String> {
        let name = normal(name);
        self.zones
            .iter()
            .filter(|z| name == **z || name.ends_with(&format!(".{z}")))
            .max_by_key(|z| z.len())
            .cloned()
    }

    /// The TXT values of `name` (a fully qualified name, with or without the trailing dot).
    pub fn txt(&self, name: &str) -> Vec<String> {
        self.txt.lock().unwrap().get(&normal(name)).cloned().unwrap_or_default()
    }

    /// Every owner name holding TXT values, with them.
    pub fn all_txt(&self) -> BTreeMap<String, Vec<String>> {
        self.txt.lock().unwrap().clone()
    }

    /// Adds the TXT value `value` at `name`, here and in BIND (a value already there is
    /// kept once).
    pub async fn add_txt(&self, name: &str, value: &str) {
        let name = normal(name);
        {
            let mut txt = self.txt.lock().unwrap();
            let values = txt.entry(name.clone()).or_default();
            if values.iter().any(|v| v == value) {
                return;
            }
            values.push(value.to_string());
        }
        self.bind.update(&format!("update add {name}. 60 TXT \"{value}\"")).await;
    }

    /// Removes the TXT value `value` at `name`, here and in BIND; false if it was not there.
    pub async fn remove_txt(&self, name: &str, value: &str) -> bool {
        let name = normal(name);
        {
            let mut txt = self.txt.lock().unwrap();
            let Some(values) = txt.get_mut(&name) else { return false };
            let before = values.len();
            values.retain(|v| v != value);
            if values.len() == before {
                return false;
            }
            if values.is_empty() {
                txt.remove(&name);
            }
        }
        self.bind.update(&format!("update delete {name}. TXT \"{value}\"")).await;
        true
    }

    /// Notes a line, for tests to see which calls were made (and what went wrong).
    pub fn log(&self, line: String) {
        self.requests.lock().unwrap().push(line);
    }

    /// Notes a request to `host`, as `METHOD host/path?query`.
    pub(crate) fn log_request(
        &self,
        method: &axum::http::Method,
        host: &str,
        uri: &axum::http::Uri,
    ) {
        let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        self.log(format!("{method} {host}{target}"));
    }
}

/// `name` lowercase without the trailing dot.
pub fn normal(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The providers' fakes behind one proxy, killed on drop.
pub struct ProviderApis {
    /// `http://127.0.0.1:PORT`: give it as `HTTPS_PROXY`.
    pub proxy_url: String,
    /// The test CA's certificate (PEM): give it as `SSL_CERT_FILE`.
    pub ca_file: PathBuf,
    /// The records created through the fakes.
    pub zones: Zones,
    fixture: Arc<Fixture>,
    names: Vec<&'static str>,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

impl Drop for ProviderApis {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProviderApis {
    /// Starts the fakes, holding `zones` (e.g. `["test"]`, zones `bind` serves).
    pub async fn start(zones: &[&str], bind: Updater) -> ProviderApis {
        let apis = all();
        let hosts: Vec<String> =
            apis.iter().flat_map(|a| a.hosts.iter().map(|h| h.to_string())).collect();
        let dir = TempDir::new().unwrap();
        let (ca_pem, acceptor) = tls(&hosts);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let fixture = Arc::new(fixture());
        let zones = Zones {
            zones: Arc::new(zones.iter().map(|z| normal(z)).collect()),
            txt: Arc::default(),
            bind,
            requests: Arc::default(),
        };
        // One HTTP server per host, fed the TLS streams the proxy accepts for it.
        let mut by_host: HashMap<String, mpsc::Sender<TlsStream<TcpStream>>> = HashMap::new();
        for api in &apis {
            for host in api.hosts {
                let (tx, rx) = mpsc::channel(16);
                by_host.insert(host.to_string(), tx);
                let router = (api.router)(zones.clone(), fixture.clone());
                tokio::spawn(async move {
                    let _ = axum::serve(Streams(rx), router).await;
                });
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let by_host = Arc::new(by_host);
        // A tunnel that fails goes into the log of requests, which tests show when they fail.
        let log = zones.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (acceptor, by_host, log) = (acceptor.clone(), by_host.clone(), log.clone());
                tokio::spawn(async move {
                    if let Err(e) = tunnel(stream, acceptor, &by_host).await {
                        log.log(format!("proxy: {e}"));
                    }
                });
            }
        });
        ProviderApis {
            proxy_url: format!("http://{addr}"),
            ca_file,
            zones,
            fixture,
            names: apis.iter().map(|a| a.name).collect(),
            task,
            _dir: dir,
        }
    }

    /// The providers faked here.
    pub fn providers(&self) -> Vec<&'static str> {
        self.names.clone()
    }

    /// The credential fields (`FIELD`, value) the fake of `provider` accepts.
    pub fn credential(&self, provider: &str) -> Vec<(&'static str, String)> {
        let api = all().into_iter().find(|a| a.name == provider).expect("a faked provider");
        (api.credential)(&self.fixture)
    }

    /// The requests made so far, `METHOD host/path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.zones.requests.lock().unwrap().clone()
    }
}

/// Reads a `CONNECT host:port` request, answers it, and hands the TLS stream that follows
/// to the host's fake.
async fn tunnel(
    mut stream: TcpStream,
    acceptor: TlsAcceptor,
    by_host: &HashMap<String, mpsc::Sender<TlsStream<TcpStream>>>,
) -> io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 || head.len() > 8192 {
            return Err(io::Error::other("the client closed before a whole CONNECT request"));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("CONNECT "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    let host = target.rsplit_once(':').map(|(h, _)| h).unwrap_or(&target).to_string();
    let Some(tx) = by_host.get(&host) else {
        stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").await?;
        return Err(io::Error::other(format!("no fake answers for {target:?}")));
    };
    stream.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await?;
    let tls = acceptor.accept(stream).await?;
    tx.send(tls).await.map_err(|_| io::Error::other("the fake stopped"))
}

/// TLS streams handed over by the proxy, as a listener axum can serve.
struct Streams(mpsc::Receiver<TlsStream<TcpStream>>);

impl axum::serve::Listener for Streams {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.recv().await {
            Some(s) => {
                let addr = s.get_ref().0.peer_addr().unwrap_or(([127, 0, 0, 1], 0).into());
                (s, addr)
            }
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(([127, 0, 0, 1], 443).into())
    }
}

/// A test CA (its PEM) and a TLS acceptor with one certificate it issued for `hosts`.
fn tls(hosts: &[String]) -> (String, TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "certhub test provider CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(hosts.to_vec()).unwrap().signed_by(&key, &issuer);
    let leaf = leaf.unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

fn fixture() -> Fixture {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::KeyPair as _;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = key.as_der().unwrap();
    let pem = pem_block("PRIVATE KEY", pkcs8.as_ref());
    Fixture { rsa_pkcs8_pem: pem, rsa_public_der: key.public_key().as_ref().to_vec() }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The token of an `Authorization: Bearer TOKEN` header, if there is one.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ")
}

/// The host a request was sent to (its `Host` header), lowercase, without the port.
pub(crate) fn host_of(headers: &axum::http::HeaderMap) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let host = host.unwrap_or_default();
    host.split(':').next().unwrap_or(host).to_ascii_lowercase()
}

/// The text of TXT content given as RFC 1035 character-strings (`"a" "b"` is `ab`, with
/// `\` escaping the next character); content without quotes is taken as it is.
pub(crate) fn txt_unquote(content: &str) -> String {
    let content = content.trim();
    if !content.starts_with('"') {
        return content.to_string();
    }
    let (mut text, mut inside, mut escaped) = (String::new(), false, false);
    for c in content.chars() {
        match c {
            _ if escaped => {
                text.push(c);
                escaped = false;
            }
            '\\' if inside => escaped = true,
            '"' => inside = !inside,
            _ if inside => text.push(c),
            _ => {}
        }
    }
    text
}

/// Now, UTC, in `format` (strftime).
pub(crate) fn utc_now(format: &str) -> String {
    jiff::Timestamp::now().strftime(format).to_string()
}

/// The pairs of a query string or an `application/x-www-form-urlencoded` body.
pub(crate) fn form_pairs(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

/// A JSON response with `status`.
pub(crate) fn json(
    status: axum::http::StatusCode,
    body: serde_json::Value,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (status, axum::Json(body)).into_response()
}
