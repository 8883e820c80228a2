//! Certificate facts read from DER/PEM.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use crate::csr::ip_from_bytes;
use crate::identifier::{Identifier, RuleViolation};
use crate::key::PrivateKey;

/// Why a certificate or chain could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The DER structure is not an X.509 certificate.
    #[error("the certificate is not valid X.509 DER: {0}")]
    Der(String),
    /// A subjectAltName of the certificate breaks an identifier rule.
    #[error("the certificate names an invalid identifier: {0}")]
    Identifier(#[from] RuleViolation),
    /// The PEM text has no CERTIFICATE block.
    #[error("the PEM text contains no CERTIFICATE block")]
    NoCertificate,
    /// The text is not valid PEM.
    #[error("the certificate chain is not valid PEM: {0}")]
    Pem(String),
}

/// Splits a PEM chain into the DER of each `CERTIFICATE` block, in order. Blocks with
/// other labels are skipped; a text without any certificate is an error.
pub fn split_pem_chain(pem: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let blocks = pem::parse_many(pem).map_err(|e| CertError::Pem(e.to_string()))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(certs)
}

/// One PEM block with Unix line endings (the `pem` crate writes CRLF by default), as every
/// file and message certhub produces has them.
pub fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// What certhub records about an issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The serial number as lowercase hex without separators: the bytes of the integer,
    /// without the leading `00` DER adds to keep a high bit positive (`"0a"` for 10).
    pub serial_hex: String,
    /// The issuer's common name, if any.
    pub issuer_cn: Option<String>,
    /// The subject's common name, if any.
    pub subject_cn: Option<String>,
    /// The issuer's distinguished name, RFC 4514 style (`CN=…, O=…`).
    pub issuer_dn: String,
    /// The DNS and IP subjectAltNames, in certificate order.
    pub sans: Vec<Identifier>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// The certificate, DER.
    pub leaf_der: Vec<u8>,
    /// The certified public key, DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

impl CertInfo {
    /// Reads the facts of one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, CertError> {
        let cert = parse_cert(der)?;
        let tbs = &cert.tbs_certificate;

        let mut sans = Vec::new();
        for ext in tbs.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(n) => sans.push(Identifier::parse(n)?),
                        GeneralName::IPAddress(bytes) => {
                            let ip = ip_from_bytes(bytes).ok_or_else(|| {
                                CertError::Der(format!(
                                    "an IP address SAN has {} bytes",
                                    bytes.len()
                                ))
                            })?;
                            sans.push(Identifier::Ip(ip));
                        }
                        // Other name forms (e-mail, URI) are not identifiers certhub manages.
                        _ => {}
                    }
                }
            }
        }

        Ok(CertInfo {
            serial_hex: serial_hex(tbs.raw_serial()),
            issuer_cn: common_name(tbs.issuer()),
            subject_cn: common_name(tbs.subject()),
            issuer_dn: tbs.issuer().to_string(),
            sans,
            not_before: tbs.validity().not_before.timestamp(),
            not_after: tbs.validity().not_after.timestamp(),
            leaf_der: der.to_vec(),
            public_key_der: tbs.subject_pki.raw.to_vec(),
        })
    }

    /// Reads the facts of the first certificate (the leaf) of a PEM chain.
    pub fn from_pem_chain(pem: &str) -> Result<CertInfo, CertError> {
        let chain = split_pem_chain(pem)?;
        // `split_pem_chain` never returns an empty list.
        let leaf = chain.first().ok_or(CertError::NoCertificate)?;
        Self::from_der(leaf)
    }
}

/// Is `leaf_der` a certificate for `key`'s public key? False when the certificate cannot
/// be read.
pub fn key_matches_cert(key: &PrivateKey, leaf_der: &[u8]) -> bool {
    let Ok(cert) = parse_cert(leaf_der) else {
        return false;
    };
    let key_spki = key.public_key_der();
    let Ok((_, key_spki)) = SubjectPublicKeyInfo::from_der(&key_spki) else {
        return false;
    };
    let cert_spki = &cert.tbs_certificate.subject_pki;
    key_spki.algorithm.algorithm == cert_spki.algorithm.algorithm
        && key_spki.subject_public_key.data == cert_spki.subject_public_key.data
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Der(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Der(format!("{} bytes follow the certificate", rest.len())));
    }
    Ok(cert)
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string)
}

fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len().saturating_sub(1));
    let bytes = &raw[start..];
    if bytes.is_empty() {
        return "00".to_string();
    }
    hex(bytes)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::serial_hex;

    #[test]
    fn serial_hex_drops_sign_padding_only() {
        assert_eq!(serial_hex(&[0x00, 0x9f, 0x01]), "9f01");
        assert_eq!(serial_hex(&[0x0a]), "0a");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "00");
        assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
    }
}
