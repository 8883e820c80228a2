//! Certificate signing requests: building one for a key and identifiers, and reading the
//! facts of one a user brings (its self-signature checked).

use std::net::IpAddr;

use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::identifier::{Identifier, RuleViolation};
use crate::key::PrivateKey;

/// The longest common name X.509 allows (RFC 5280 `ub-common-name`).
const MAX_CN_LEN: usize = 64;

/// Why a CSR could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Signing or encoding the request failed.
    #[error("could not build the CSR: {0}")]
    Build(String),
    /// The DER structure is not a PKCS#10 certification request.
    #[error("the CSR is not a valid PKCS#10 request: {0}")]
    Der(String),
    /// A name in the CSR breaks an identifier rule.
    #[error("the CSR names an invalid identifier: {0}")]
    Identifier(#[from] RuleViolation),
    /// A CSR must name at least one identifier.
    #[error("the CSR names no DNS name or IP address")]
    NoIdentifiers,
    /// The input looks like PEM but is not a valid CERTIFICATE REQUEST block.
    #[error("the CSR is not valid PEM: {0}")]
    Pem(String),
    /// The self-signature does not verify against the CSR's own public key.
    #[error("the CSR's signature does not verify with its public key: {0}")]
    Signature(String),
    /// The CSR asks for a kind of name ACME cannot issue.
    #[error(
        "the CSR asks for {0}, which ACME cannot issue; only DNS names and IP addresses are allowed"
    )]
    UnsupportedName(String),
}

/// Builds a DER CSR for `ids`, signed with `key`.
///
/// Every identifier becomes a subjectAltName (DNS or IP). The subject's common name is the
/// first DNS name if it fits in 64 characters; otherwise the subject is empty.
pub fn build_csr(key: &PrivateKey, ids: &[Identifier]) -> Result<Vec<u8>, CsrError> {
    if ids.is_empty() {
        return Err(CsrError::NoIdentifiers);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(Identifier::Dns(cn)) = ids.iter().find(|i| matches!(i, Identifier::Dns(_)))
        && cn.len() <= MAX_CN_LEN
    {
        params.distinguished_name.push(DnType::CommonName, cn.as_str());
    }
    params.subject_alt_names = ids
        .iter()
        .map(|id| match id {
            Identifier::Dns(name) => name
                .as_str()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| CsrError::Build(format!("{name:?} is not an IA5 string: {e}"))),
            Identifier::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_, _>>()?;
    let pair = key.to_rcgen();
    let csr = params.serialize_request(&pair).map_err(|e| CsrError::Build(e.to_string()))?;
    Ok(csr.der().to_vec())
}

/// The facts of a CSR whose self-signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCsr {
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// The identifiers asked for, normalised and without duplicates: a common name that is
    /// a DNS name not among the subjectAltNames first, then the DNS and IP subjectAltNames
    /// in their order.
    pub identifiers: Vec<Identifier>,
    /// The CSR, DER.
    pub der: Vec<u8>,
    /// The public key, DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

impl ParsedCsr {
    /// Reads a CSR given as PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) or DER
    /// and checks its self-signature.
    pub fn parse(input: &[u8]) -> Result<ParsedCsr, CsrError> {
        let der = to_der(input)?;
        let (rest, csr) =
            X509CertificationRequest::from_der(&der).map_err(|e| CsrError::Der(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CsrError::Der(format!("{} bytes follow the request", rest.len())));
        }
        csr.verify_signature().map_err(|e| CsrError::Signature(e.to_string()))?;

        let info = &csr.certification_request_info;
        let common_name = match info.subject.iter_common_name().next() {
            Some(attr) => Some(
                attr.as_str()
                    .map_err(|e| CsrError::Der(format!("the common name is not a string: {e}")))?
                    .to_string(),
            ),
            None => None,
        };

        let mut sans = Vec::new();
        for ext in csr.requested_extensions().into_iter().flatten() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    sans.push(general_name_to_identifier(name)?);
                }
            }
        }

        let mut identifiers: Vec<Identifier> = Vec::with_capacity(sans.len() + 1);
        if let Some(cn) = &common_name
            && let Ok(id @ Identifier::Dns(_)) = Identifier::parse(cn)
            && !sans.contains(&id)
        {
            identifiers.push(id);
        }
        for id in sans {
            if !identifiers.contains(&id) {
                identifiers.push(id);
            }
        }
        if identifiers.is_empty() {
            return Err(CsrError::NoIdentifiers);
        }
        let public_key_der = info.subject_pki.raw.to_vec();
        Ok(ParsedCsr { common_name, identifiers, public_key_der, der })
    }
}

fn to_der(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let trimmed = input.trim_ascii_start();
    if !trimmed.starts_with(b"-----BEGIN") {
        return Ok(input.to_vec());
    }
    let text = std::str::from_utf8(trimmed).map_err(|_| CsrError::Pem("not UTF-8 text".into()))?;
    let blocks = pem::parse_many(text).map_err(|e| CsrError::Pem(e.to_string()))?;
    blocks
        .into_iter()
        .find(|b| matches!(b.tag(), "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"))
        .map(pem::Pem::into_contents)
        .ok_or_else(|| CsrError::Pem("no CERTIFICATE REQUEST block found".into()))
}

fn general_name_to_identifier(name: &GeneralName<'_>) -> Result<Identifier, CsrError> {
    match name {
        GeneralName::DNSName(n) => Ok(Identifier::parse(n)?),
        GeneralName::IPAddress(bytes) => ip_from_bytes(bytes)
            .map(Identifier::Ip)
            .ok_or_else(|| CsrError::Der(format!("an IP address SAN has {} bytes", bytes.len()))),
        GeneralName::RFC822Name(n) => {
            Err(CsrError::UnsupportedName(format!("the e-mail address {n:?}")))
        }
        GeneralName::URI(u) => Err(CsrError::UnsupportedName(format!("the URI {u:?}"))),
        other => Err(CsrError::UnsupportedName(format!("the name {other}"))),
    }
}

/// An IP address from its SAN encoding: 4 bytes (IPv4) or 16 bytes (IPv6).
pub(crate) fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
