//! Certificate chains as downloaded, and preferred-chain selection.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;

/// A downloaded chain: leaf first.
#[derive(Debug, Clone)]
pub struct CertificateChain {
    /// Where it was downloaded from.
    pub url: String,
    /// The PEM as served.
    pub pem: String,
    /// DER of each certificate, leaf first.
    pub certificates: Vec<Vec<u8>>,
    /// The issuer common name of each certificate, in order.
    pub issuer_names: Vec<String>,
}

impl CertificateChain {
    pub(crate) fn from_pem(url: &str, body: &[u8]) -> Result<Self, Error> {
        let bad = |message: String| Error::Protocol { url: url.to_string(), message };
        let pem =
            String::from_utf8(body.to_vec()).map_err(|_| bad("the chain is not text".into()))?;
        let mut certificates = Vec::new();
        let mut issuer_names = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(body) {
            let block = block.map_err(|e| bad(format!("the chain is not valid PEM: {e}")))?;
            if block.label != "CERTIFICATE" {
                continue;
            }
            let (_, cert) = X509Certificate::from_der(&block.contents)
                .map_err(|e| bad(format!("a certificate in the chain does not parse: {e}")))?;
            issuer_names.push(common_name(cert.issuer()));
            certificates.push(block.contents);
        }
        if certificates.is_empty() {
            return Err(bad("the chain holds no certificate".into()));
        }
        Ok(Self { url: url.to_string(), pem, certificates, issuer_names })
    }

    /// The leaf certificate, DER.
    pub fn leaf(&self) -> &[u8] {
        &self.certificates[0]
    }
}

fn common_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string())
}

/// certbot's and lego's rule: the topmost certificate's issuer first, then any issuer.
pub(crate) fn select(mut chains: Vec<CertificateChain>, preferred: &str) -> CertificateChain {
    let top = chains.iter().position(|c| c.issuer_names.last().is_some_and(|n| n == preferred));
    let any = || chains.iter().position(|c| c.issuer_names.iter().any(|n| n == preferred));
    let index = top.or_else(any).unwrap_or(0);
    chains.swap_remove(index)
}
