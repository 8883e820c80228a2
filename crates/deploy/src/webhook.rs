//! The deployment webhook: a signed JSON event (see the crate documentation).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certhub_core::Secret;
use serde_json::json;

use certhub_core::rfc3339;

use crate::{Error, Facts};

pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &Secret,
    facts: &Facts,
    failure: Option<&str>,
    timeout: Duration,
) -> Result<String, Error> {
    let now =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let issued = facts.issued.as_ref();
    let fullchain: Option<String> = issued
        .map(|i| i.chain_der.iter().map(|d| certhub_core::pem_block("CERTIFICATE", d)).collect());
    let body = json!({
        "event_type": "cert_deployment",
        "event_id": format!("{now:x}-{:016x}", rand::random::<u64>()),
        "timestamp": now,
        "cert_name": facts.cert_name,
        "outcome": if failure.is_some() { "failure" } else { "success" },
        "error": failure,
        "serial": issued.map(|i| i.serial_hex.clone()),
        "not_before": issued.map(|i| rfc3339(i.not_before)),
        "not_after": issued.map(|i| rfc3339(i.not_after)),
        "domains": issued.map(|i| i.domains.clone()).unwrap_or_default(),
        "fullchain_pem": fullchain,
    })
    .to_string();
    post_signed(http, url, secret, body, now, timeout).await.map_err(Error::Webhook)
}

/// POSTs a JSON `body` signed with `secret` (`X-Certhub-Signature: sha256=HEX` of the body,
/// `X-Certhub-Timestamp`); what happened, naming only the URL's host (a webhook URL's path or
/// query often holds its token, as Slack's do).
pub(crate) async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    secret: &Secret,
    body: String,
    now_ms: u64,
    timeout: Duration,
) -> Result<String, String> {
    let host = host_of(url);
    let rsp = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-certhub-signature", format!("sha256={}", secret.sign_hex(body.as_bytes())))
        .header("x-certhub-timestamp", now_ms.to_string())
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST to {host} failed: {}", e.without_url()))?;
    answered(&host, rsp).await
}

/// The scheme and host of `url`, the part of it safe to show.
pub(crate) fn host_of(url: &str) -> String {
    certhub_core::secret::shown_url(url)
}

/// A success, or the status and the start of the body as an error.
pub(crate) async fn answered(host: &str, rsp: reqwest::Response) -> Result<String, String> {
    let status = rsp.status();
    if status.is_success() {
        return Ok(format!("POSTed to {host} ({status})"));
    }
    let text = rsp.text().await.unwrap_or_default();
    let snippet: String = text.chars().take(200).collect();
    Err(format!("{host} answered {status}: {snippet}"))
}
