//! The hub's agent authority: it signs the client certificate each agent authenticates with
//! (its key made on the agent, sent as a CSR, never leaving the target) and the server
//! certificate of the hub's agent listener, which agents trust alone. An agent's identity is
//! the URI `urn:certhub:agent:ID` in its certificate's names.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use zeroize::Zeroizing;

use crate::error::{Error, Kind};

use certhub_core::agent::AGENT_URI_PREFIX as AGENT_URI;

/// How long an agent's certificate is valid: a year, renewed over its connection.
const AGENT_CERT_DAYS: i64 = 365;

/// The agent authority: its certificate and its signing key.
pub struct AgentCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Kind::Internal, format!("{what}: {e}"))
}

/// `now` plus `days`, for a certificate's validity.
fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// A random serial number, positive and 16 bytes long.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

impl AgentCa {
    /// A new authority for the hub `hub`; its certificate and its key (PEM, to be sealed).
    pub fn generate(hub: &str) -> Result<(Self, Zeroizing<String>), Error> {
        let key = KeyPair::generate().map_err(|e| internal("making the agent CA key", e))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("certhub agent CA of {hub}"));
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_after = days_from_now(100 * 365);
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(|e| internal("making the agent CA", e))?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        let ca = Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        };
        Ok((ca, key_pem))
    }

    /// The authority kept as its certificate and key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| internal("the agent CA key", e))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| internal("the agent CA certificate", e))?;
        let cert_der = pem::parse(cert_pem)
            .map_err(|e| internal("the agent CA certificate", e))?
            .into_contents();
        Ok(Self { cert_pem: cert_pem.to_string(), cert_der, issuer })
    }

    /// Its certificate, PEM, which agents trust alone.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Its certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The SHA-256 of its certificate, lowercase hex: what a join token carries, so that
    /// an agent can check the authority it is handed.
    pub fn fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.cert_der);
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The client certificate (PEM) of agent `id`, for the key of the CSR `csr_pem` (its
    /// signature checked), with its serial (hex). Nothing the CSR asks for is copied: the
    /// names and uses are the authority's own.
    pub fn sign_agent(&self, csr_pem: &str, id: &str) -> Result<(String, String), Error> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            Error::invalid("csr", format!("the agent's certificate request is not valid: {e}"))
        })?;
        let uri = format!("{AGENT_URI}{id}")
            .try_into()
            .map_err(|_| Error::invalid("name", format!("{id:?} cannot name an agent")))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, id);
        params.distinguished_name = name;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_after = days_from_now(AGENT_CERT_DAYS);
        let serial = random_serial();
        let serial_hex = serial.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| internal("signing the agent's certificate", e))?;
        Ok((cert.pem(), serial_hex))
    }

    /// A server certificate and key (PEM) for the hub's agent listener at `names`.
    pub fn server_cert(&self, names: &[String]) -> Result<(String, Zeroizing<String>), Error> {
        let key = KeyPair::generate().map_err(|e| internal("making the listener key", e))?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| Error::invalid("agent_listen", format!("a listener name: {e}")))?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_after = days_from_now(AGENT_CERT_DAYS);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| internal("signing the listener's certificate", e))?;
        Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
    }
}

/// An agent's new key and its certificate request (both PEM); the key stays on the agent.
pub fn agent_request() -> Result<(String, Zeroizing<String>), Error> {
    let key = KeyPair::generate().map_err(|e| internal("making the agent key", e))?;
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| internal("making the certificate request", e))?;
    Ok((csr, Zeroizing::new(key.serialize_pem())))
}

/// The agent a certificate (DER) names, if it names one.
pub fn agent_id(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    names.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => {
            uri.strip_prefix(AGENT_URI).map(str::to_string)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::WebPkiClientVerifier;

    use super::*;

    fn der(pem_text: &str) -> CertificateDer<'static> {
        CertificateDer::from(pem::parse(pem_text).unwrap().into_contents())
    }

    /// Whether a client verifier trusting only `ca` accepts `cert`.
    fn accepted_by(ca: &AgentCa, cert: &CertificateDer<'static>) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.cert_der().to_vec())).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        verifier.verify_client_cert(cert, &[], UnixTime::now()).is_ok()
    }

    #[test]
    fn an_agent_certificate_names_its_agent_and_chains_to_its_authority_alone() {
        let (ca, key_pem) = AgentCa::generate("hub.example").unwrap();
        let (csr, _agent_key) = agent_request().unwrap();
        let cert = der(&ca.sign_agent(&csr, "web-01").unwrap().0);
        assert_eq!(agent_id(&cert).as_deref(), Some("web-01"));
        assert!(accepted_by(&ca, &cert));
        // Another hub's authority does not vouch for it.
        let (other, _) = AgentCa::generate("other.example").unwrap();
        assert!(!accepted_by(&other, &cert));
        // Kept and loaded again, the authority signs what the first one trusts.
        let again = AgentCa::load(ca.cert_pem(), &key_pem).unwrap();
        assert_eq!(again.fingerprint(), ca.fingerprint());
        let (csr, _) = agent_request().unwrap();
        assert!(accepted_by(&ca, &der(&again.sign_agent(&csr, "web-02").unwrap().0)));
        // The listener's certificate names no agent.
        let (server, _) = ca.server_cert(&["hub.example".into()]).unwrap();
        assert_eq!(agent_id(&der(&server)), None);
    }

    #[test]
    fn a_request_that_is_not_one_is_refused_naming_the_csr() {
        let (ca, _) = AgentCa::generate("hub.example").unwrap();
        let (csr, _) = agent_request().unwrap();
        // One character of the signed request changed: its signature no longer holds.
        let mut lines: Vec<String> = csr.lines().map(str::to_string).collect();
        let body = &mut lines[2];
        let flipped = if body.starts_with('A') { "B" } else { "A" };
        body.replace_range(0..1, flipped);
        for bad in [lines.join("\n"), "not a request".to_string()] {
            let err = ca.sign_agent(&bad, "web-01").unwrap_err();
            assert_eq!((err.kind, err.field), (Kind::Invalid, Some("csr")), "{err}");
        }
    }
}
