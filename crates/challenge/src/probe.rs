//! Checking a challenge configuration without ordering anything: the configuration
//! presents a probe (a random token, or a TXT record), and the probe is fetched the way a CA
//! would fetch it; then it is cleaned up.
//!
//! - http-01: the name is resolved, and each address is asked for
//!   `http://NAME/.well-known/acme-challenge/TOKEN` on the validation port;
//! - tls-alpn-01: each address is asked for a TLS handshake with ALPN `acme-tls/1`, and the
//!   certificate must carry the probe's acmeIdentifier;
//! - dns-01: presenting already waits until every authoritative server of the zone answers
//!   with the probe value, so success of `present` is the check.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use certhub_core::{ChallengeKind, ChallengeSpec, Identifier, PendingChallenge};

use crate::Solvers;
use crate::dns::PropagationChecker;

/// The ports a CA validates on: 80 and 443, unless a test CA says otherwise.
#[derive(Debug, Clone, Copy)]
pub struct ProbePorts {
    /// http-01.
    pub http: u16,
    /// tls-alpn-01.
    pub tls: u16,
}

impl Default for ProbePorts {
    fn default() -> Self {
        Self { http: 80, tls: 443 }
    }
}

/// Checks that `spec` can answer a challenge for `id` of certificate `cert`. `Ok` says what
/// worked; `Err` says why a CA's validation would fail.
pub async fn probe(
    solvers: &Solvers,
    checker: &PropagationChecker,
    cert: &str,
    spec: &ChallengeSpec,
    id: &Identifier,
    ports: ProbePorts,
) -> Result<String, String> {
    let kind = spec.config.kind();
    let base = match id {
        Identifier::Dns(n) => Identifier::Dns(n.trim_start_matches("*.").to_string()),
        Identifier::Ip(ip) => Identifier::Ip(*ip),
    };
    let token = format!("certhub-probe-{:016x}", rand::random::<u64>());
    let challenge = PendingChallenge {
        cert: cert.to_string(),
        kind,
        identifier: base.clone(),
        key_authorization: format!("{token}.certhub-probe"),
        token,
    };
    let solver = solvers.for_spec(spec).await.map_err(|e| e.to_string())?;
    let presented =
        solver.present(&challenge).await.map_err(|e| format!("presenting the probe failed: {e}"));
    let result = match presented {
        Err(e) => Err(e),
        Ok(()) => match kind {
            ChallengeKind::Dns01 => Ok(format!(
                "a probe TXT record at _acme-challenge.{base} was visible on every authoritative name server"
            )),
            ChallengeKind::Http01 | ChallengeKind::TlsAlpn01 => {
                let addrs = match &base {
                    Identifier::Ip(ip) => Ok(vec![*ip]),
                    Identifier::Dns(n) => {
                        checker.addresses(n).await.map_err(|e| format!("{n} does not resolve: {e}"))
                    }
                };
                match addrs {
                    Err(e) => Err(e),
                    Ok(a) if a.is_empty() => Err(format!("{base} has no A or AAAA record")),
                    Ok(addrs) => fetch_all(kind, &base, &challenge, &addrs, ports).await,
                }
            }
        },
    };
    if let Err(e) = solver.cleanup(&challenge).await {
        tracing::warn!(identifier = %id, error = %e, "removing the probe failed");
    }
    result
}

async fn fetch_all(
    kind: ChallengeKind,
    id: &Identifier,
    challenge: &PendingChallenge,
    addrs: &[IpAddr],
    ports: ProbePorts,
) -> Result<String, String> {
    let mut failures = Vec::new();
    for ip in addrs {
        let outcome = match kind {
            ChallengeKind::Http01 => {
                fetch_http(id, challenge, SocketAddr::new(*ip, ports.http)).await
            }
            _ => fetch_tls(id, challenge, SocketAddr::new(*ip, ports.tls)).await,
        };
        if let Err(e) = outcome {
            failures.push(format!("{ip}: {e}"));
        }
    }
    if failures.is_empty() {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        Ok(format!("the probe was answered correctly at {}", list.join(", ")))
    } else {
        Err(failures.join("; "))
    }
}

async fn fetch_http(
    id: &Identifier,
    challenge: &PendingChallenge,
    addr: SocketAddr,
) -> Result<(), String> {
    let host = match id {
        Identifier::Dns(n) => n.clone(),
        Identifier::Ip(ip) => ip.to_string(),
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .resolve(&host, addr)
        .build()
        .map_err(|e| e.to_string())?;
    let url = match id {
        Identifier::Ip(IpAddr::V6(v6)) => {
            format!("http://[{v6}]:{}/.well-known/acme-challenge/{}", addr.port(), challenge.token)
        }
        _ => {
            format!("http://{host}:{}/.well-known/acme-challenge/{}", addr.port(), challenge.token)
        }
    };
    let rsp = client.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = rsp.status();
    let body = rsp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    if body.trim() != challenge.key_authorization {
        return Err(format!("{url} answered with something other than the probe"));
    }
    Ok(())
}

async fn fetch_tls(
    id: &Identifier,
    challenge: &PendingChallenge,
    addr: SocketAddr,
) -> Result<(), String> {
    let sni = crate::tls_alpn::sni_of(id);
    let served = handshake(addr, &sni, Some(b"acme-tls/1")).await?;
    if served.alpn.as_deref() != Some(b"acme-tls/1".as_slice()) {
        return Err(format!("{addr} did not negotiate acme-tls/1"));
    }
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        challenge.key_authorization.as_bytes(),
    );
    // The extension's value is a DER OCTET STRING holding the 32-byte digest.
    let needle = [&[0x04, 0x20][..], digest.as_ref()].concat();
    if !served.leaf.windows(needle.len()).any(|w| w == needle.as_slice()) {
        return Err(format!("{addr} served a certificate without the probe's acmeIdentifier"));
    }
    Ok(())
}

/// What a TLS server presented in a handshake.
pub struct Served {
    /// The protocol negotiated by ALPN, if any.
    pub alpn: Option<Vec<u8>>,
    /// The leaf certificate, DER.
    pub leaf: Vec<u8>,
}

/// A TLS handshake with `addr` for `sni`, offering `alpn`, that accepts any certificate
/// (the caller checks what it needs of it), each step under 10 s.
pub async fn handshake(addr: SocketAddr, sni: &str, alpn: Option<&[u8]>) -> Result<Served, String> {
    handshake_within(addr, sni, alpn, Duration::from_secs(10)).await
}

/// [`handshake`], each step (the connection, the handshake) under `limit`.
pub async fn handshake_within(
    addr: SocketAddr,
    sni: &str,
    alpn: Option<&[u8]>,
    limit: Duration,
) -> Result<Served, String> {
    let secs = limit.as_secs();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.map(|a| vec![a.to_vec()]).unwrap_or_default();
    let name = rustls_pki_types::ServerName::try_from(sni.to_string())
        .map_err(|e| format!("{sni}: {e}"))?;
    let tcp = tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr} did not accept a connection within {secs}s"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let tls = tokio::time::timeout(
        limit,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("{addr}: the TLS handshake did not finish within {secs}s"))?
    .map_err(|e| format!("{addr}: the TLS handshake failed: {e}"))?;
    let (_, conn) = tls.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| format!("{addr} sent no certificate"))?;
    Ok(Served { alpn: conn.alpn_protocol().map(<[u8]>::to_vec), leaf: leaf.to_vec() })
}

/// The probe checks the certificate's content itself: a tls-alpn-01 certificate is
/// self-signed and carries a critical extension no verifier knows.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
