//! Serving the router over plain TCP or TLS, with each client's address for the audit log,
//! within bounds that a client cannot push the hub out of: connections in all and from one
//! address are capped (an IPv6 client's /64 counts as one address), a TLS handshake and a
//! request's headers and its body each have a time limit, and so has a connection idle
//! between requests.
//! Accepting never stops: a connection past a cap is closed at once, so a flood from some
//! addresses never keeps the others waiting.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::IntoResponse as _;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::problem::Problem;

/// The client's address, as handlers see it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The certificate (DER) a TLS client authenticated with, as handlers see it: a request
/// carries this extension only when its connection's client presented a certificate that the
/// listener's verifier accepted.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<Vec<u8>>);

/// How far the hub lets its clients go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, in all.
    pub connections: usize,
    /// Connections open at once from one client address.
    pub per_address: usize,
    /// How long a client may take to send a request's headers, and how long a connection
    /// may sit idle between requests.
    pub header_timeout: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a request's body may take to arrive, whole.
    pub body_timeout: Duration,
}

/// The largest request body the hub takes (a PKCS#12 file to import is the largest).
const MAX_BODY: usize = 2 << 20;

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 4096,
            per_address: 256,
            header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The address a client counts as: itself, or for IPv6 its /64, which one client usually
/// holds whole.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The connections open now, in all and by client address.
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's place among the open ones, given back when it closes.
struct Slot {
    open: Arc<Mutex<Open>>,
    key: IpAddr,
}

impl Slot {
    /// A place for a connection from `ip`, unless a cap is reached.
    fn take(open: &Arc<Mutex<Open>>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
        let key = client_key(ip);
        let mut o = open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = o.by_address.get(&key).copied().unwrap_or(0);
        if o.total >= limits.connections || mine >= limits.per_address {
            return None;
        }
        o.total += 1;
        *o.by_address.entry(key).or_insert(0) += 1;
        Some(Slot { open: open.clone(), key })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        o.total -= 1;
        if let Some(n) = o.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                o.by_address.remove(&self.key);
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) within `limits` until `shutdown`
/// completes; then stops accepting and gives open requests up to 10 s to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(|mut config| {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let open = Arc::new(Mutex::new(Open::default()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = Slot::take(&open, addr.ip(), &limits) else {
            tracing::debug!(client = %addr, "connection refused: too many open");
            drop(stream);
            continue;
        };
        let (acceptor, http, app) = (acceptor.clone(), http.clone(), app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let service = move |peer: Option<PeerCertificate>| {
                hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let (app, peer) = (app.clone(), peer.clone());
                    async move {
                        let (mut parts, body) = req.into_parts();
                        parts.extensions.insert(ConnectInfo(Peer(addr)));
                        if let Some(peer) = peer {
                            parts.extensions.insert(peer);
                        }
                        // The whole body, within its time and size, before any handler runs: a
                        // client trickling a body cannot hold its connection.
                        let body = http_body_util::Limited::new(body, MAX_BODY);
                        let body = match tokio::time::timeout(limits.body_timeout, body.collect())
                            .await
                        {
                            Ok(Ok(collected)) => collected.to_bytes(),
                            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                                let p = Problem::too_large("the request body is larger than 2 MiB");
                                return Ok(p.into_response());
                            }
                            Ok(Err(_)) => {
                                let p = Problem::invalid("body", "the request body broke off");
                                return Ok(p.into_response());
                            }
                            Err(_) => {
                                let p = Problem::too_slow(format!(
                                    "the request body did not arrive within {} s",
                                    limits.body_timeout.as_secs()
                                ));
                                return Ok(p.into_response());
                            }
                        };
                        let req = hyper::Request::from_parts(parts, axum::body::Body::from(body));
                        app.oneshot(req).await
                    }
                })
            };
            let served = match acceptor {
                None => {
                    watcher.watch(http.serve_connection(TokioIo::new(stream), service(None))).await
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(
                        limits.handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            return tracing::debug!(client = %addr, error = %e, "TLS handshake failed");
                        }
                        Err(_) => return tracing::debug!(client = %addr, "TLS handshake timed out"),
                    };
                    let peer = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                    let peer = peer.map(|c| PeerCertificate(Arc::new(c.to_vec())));
                    watcher.watch(http.serve_connection(TokioIo::new(tls), service(peer))).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(client = %addr, error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::debug!("requests still open after 10 s were cut short");
    }
}

/// The hub's TLS identity, which can be replaced while it serves (after the hub renews
/// its own certificate): new handshakes get the new one.
#[derive(Debug)]
pub struct HubCert {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl HubCert {
    /// An identity from a PEM chain (leaf first) and a PEM private key.
    pub fn new(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self { current: std::sync::RwLock::new(certified_key(chain_pem, key_pem)?) }))
    }

    /// Replaces the identity.
    pub fn replace(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
        let key = certified_key(chain_pem, key_pem)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }

    /// A server configuration that presents this identity.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, String> {
        Ok(rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(self.clone()))
    }
}

impl rustls::server::ResolvesServerCert for HubCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

pub(crate) fn certified_key(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the certificate PEM does not parse: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate PEM holds no certificate".into());
    }
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key PEM does not parse: {e}"))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the key is not usable for TLS: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    Ok(Arc::new(certified))
}
