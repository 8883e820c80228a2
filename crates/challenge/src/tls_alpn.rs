//! tls-alpn-01 (RFC 8737) answered by certhub's own TLS listener: for the SNI of a
//! presented identifier, and only to a client offering ALPN `acme-tls/1`, it serves a
//! self-signed certificate carrying the critical acmeIdentifier extension. IP identifiers
//! (RFC 8738 §6) are matched by their reverse-DNS name.
//!
//! A name has one certificate at a time, and a validator's handshake says nothing of which
//! challenge it checks: so orders validating the same name take turns, each holding the name
//! from presenting its certificate until it is cleaned up. A turn not given back within
//! [`TURN_LIMIT`] (its order was cut short between the two) is taken from it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certhub_core::{Identifier, PendingChallenge, Solver, SolverError};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::PrivateKeyDer;
use tokio::sync::oneshot;

const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How long an order may hold a name: longer than a CA takes to validate, so only an order
/// cut short between presenting and cleaning up (its task cancelled) reaches it.
pub const TURN_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct Certs(Mutex<HashMap<String, Arc<CertifiedKey>>>);

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if !hello.alpn()?.any(|p| p == ACME_TLS_ALPN) {
            return None;
        }
        let name = hello.server_name()?.to_ascii_lowercase();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&name).cloned()
    }
}

/// A name's turn as held by one challenge (its SNI name and key authorization), and since
/// when.
type Turn = (tokio::sync::OwnedMutexGuard<()>, tokio::time::Instant);

/// A running tls-alpn-01 responder. The listener stops when the responder is dropped.
pub struct TlsAlpnResponder {
    certs: Arc<Certs>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    local_addr: SocketAddr,
    /// One turn per name: the challenge being validated holds it (by SNI name, with the
    /// key authorization it presents).
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The turns held, with when each was taken.
    held: Mutex<HashMap<(String, String), Turn>>,
    _stop: oneshot::Sender<()>,
}

impl TlsAlpnResponder {
    /// Listens on `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> Result<Arc<Self>, SolverError> {
        let io = |source| SolverError::Io {
            what: format!("cannot listen on {addr} for tls-alpn-01"),
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
        let local_addr = listener.local_addr().map_err(io)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = Arc::new(Certs::default());
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| SolverError::Unsupported(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (stop, mut stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            tracing::debug!(error = %e, "tls-alpn-01 accept failed");
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // The validator only needs the handshake; bound it so a silent peer can't linger.
                    let _ = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await;
                });
            }
        });
        Ok(Arc::new(Self {
            certs,
            provider,
            local_addr,
            turns: Mutex::default(),
            held: Mutex::default(),
            _stop: stop,
        }))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn certified_key(
        &self,
        challenge: &PendingChallenge,
    ) -> Result<(String, Arc<CertifiedKey>), SolverError> {
        let failed = |e: String| {
            SolverError::Unsupported(format!(
                "cannot make the tls-alpn-01 certificate for {}: {e}",
                challenge.identifier
            ))
        };
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            challenge.key_authorization.as_bytes(),
        );
        let key = rcgen::KeyPair::generate().map_err(|e| failed(e.to_string()))?;
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![match &challenge.identifier {
            Identifier::Dns(name) => rcgen::SanType::DnsName(
                name.trim_start_matches("*.")
                    .to_string()
                    .try_into()
                    .map_err(|e: rcgen::Error| failed(e.to_string()))?,
            ),
            Identifier::Ip(ip) => rcgen::SanType::IpAddress(*ip),
        }];
        let sni = sni_of(&challenge.identifier);
        params.custom_extensions =
            vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
        let cert = params.self_signed(&key).map_err(|e| failed(e.to_string()))?;
        let signing = self
            .provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .map_err(|e| failed(e.to_string()))?;
        Ok((sni, Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing))))
    }
}

/// The name a validator sends as SNI for `id`: the name without its wildcard, or for an IP
/// address its reverse-DNS name.
pub(crate) fn sni_of(id: &Identifier) -> String {
    match id {
        Identifier::Dns(n) => n.trim_start_matches("*.").to_string(),
        Identifier::Ip(ip) => reverse_name(*ip),
    }
}

/// The reverse-DNS name of an address (`1.0.0.127.in-addr.arpa`, nibbles for IPv6).
pub(crate) fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut out = String::new();
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

#[async_trait::async_trait]
impl Solver for TlsAlpnResponder {
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let (sni, key) = self.certified_key(challenge)?;
        let turn = self
            .turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(sni.clone())
            .or_default()
            .clone();
        // Waits while another order validates this name; its cleanup ends its turn, and a
        // turn held past the limit was abandoned: it is taken back.
        let held = loop {
            match tokio::time::timeout(TURN_LIMIT, turn.clone().lock_owned()).await {
                Ok(held) => break held,
                Err(_) => {
                    let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
                    held.retain(|(name, _), (_, since)| {
                        let stale = *name == sni && since.elapsed() >= TURN_LIMIT;
                        if stale {
                            tracing::warn!(
                                name,
                                "a tls-alpn-01 turn was not given back; taking it"
                            );
                        }
                        !stale
                    });
                }
            }
        };
        self.certs.0.lock().unwrap_or_else(|p| p.into_inner()).insert(sni.clone(), key);
        let mut turns = self.held.lock().unwrap_or_else(|p| p.into_inner());
        turns.insert(
            (sni, challenge.key_authorization.clone()),
            (held, tokio::time::Instant::now()),
        );
        Ok(())
    }

    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        let sni = sni_of(&challenge.identifier);
        let key = (sni, challenge.key_authorization.clone());
        // Only the challenge whose turn it is removes the certificate: a cleanup of one that
        // never got its turn (it failed first) leaves the other order's alone.
        let turn = self.held.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        if let Some(turn) = turn {
            self.certs.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&key.0);
            drop(turn);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_follow_rfc_8738() {
        assert_eq!(reverse_name("127.0.0.1".parse().unwrap()), "1.0.0.127.in-addr.arpa");
        assert!(reverse_name("::1".parse().unwrap()).starts_with("1.0.0.0."));
        assert!(reverse_name("::1".parse().unwrap()).ends_with(".ip6.arpa"));
    }
}
