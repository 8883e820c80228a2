//! ACME Renewal Information (RFC 9773).

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::client::Client;
use crate::error::Error;
use crate::jws::b64;

/// The ARI certificate identifier: base64url(AKI keyIdentifier) "." base64url(serial).
pub fn certificate_id(leaf_der: &[u8]) -> Result<String, Error> {
    let bad = |m: &str| Error::Key(format!("cannot compute the ARI certificate identifier: {m}"));
    let (_, cert) =
        X509Certificate::from_der(leaf_der).map_err(|_| bad("the certificate does not parse"))?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .ok_or_else(|| bad("it has no authority key identifier"))?;
    Ok(format!("{}.{}", b64(&aki), b64(cert.raw_serial())))
}

/// A renewal window suggested by the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalInfo {
    /// Start of the suggested window.
    pub window_start: SystemTime,
    /// End of the suggested window.
    pub window_end: SystemTime,
    /// A page explaining why the window is where it is (e.g. an incident).
    pub explanation_url: Option<String>,
    /// When to ask again, as the CA said in Retry-After.
    pub retry_after: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    suggested_window: WireWindow,
    #[serde(default, rename = "explanationURL")]
    explanation_url: Option<String>,
}

#[derive(Deserialize)]
struct WireWindow {
    start: String,
    end: String,
}

impl Client {
    /// Fetches the CA's suggested renewal window for a certificate it issued.
    pub async fn renewal_info(&self, leaf_der: &[u8]) -> Result<RenewalInfo, Error> {
        let base = self.directory().renewal_info.clone().ok_or_else(|| {
            Error::NotSupported("the CA does not offer renewal information (ARI)".into())
        })?;
        let url = format!("{}/{}", base.trim_end_matches('/'), certificate_id(leaf_der)?);
        let rsp = self.get(&url).await?;
        let wire: Wire = rsp.json()?;
        let time = |s: &str| -> Result<SystemTime, Error> {
            s.parse::<jiff::Timestamp>().ok().map(SystemTime::from).ok_or_else(|| Error::Protocol {
                url: url.clone(),
                message: format!("{s:?} is not an RFC 3339 time"),
            })
        };
        let window_start = time(&wire.suggested_window.start)?;
        let window_end = time(&wire.suggested_window.end)?;
        if window_end < window_start {
            return Err(Error::Protocol {
                url,
                message: "the suggested window ends before it starts".into(),
            });
        }
        Ok(RenewalInfo {
            window_start,
            window_end,
            explanation_url: wire.explanation_url,
            retry_after: rsp.retry_after(),
        })
    }
}
