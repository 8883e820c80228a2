//! Notifications: what happened to a certificate, sent to a channel.
//!
//! Channels (their configuration is JSON, stored encrypted by the hub):
//!
//! - `smtp`: `{"host", "port" (587), "tls": "starttls" | "tls" | "none", "username",
//!   "password", "from", "to": [addresses]}`: a plain-text email.
//! - `slack`: `{"url"}`: a Slack incoming webhook, `{"text": …}` with Slack's mrkdwn.
//! - `callback`: `{"url", "secret"}`: a signed JSON event, the contract of the dns-01
//!   callback and the deployment webhook (`X-Certhub-Signature: sha256=HMAC-SHA256 of the
//!   body`, `X-Certhub-Timestamp`):
//!
//! ```json
//! { "event_type": "cert_renewed", "event_id": "…", "timestamp": 1700000000000,
//!   "cert_name": "web", "summary": "web was renewed", "detail": "serial …" }
//! ```
//!
//! Events: `issued`, `renewed`, `renewal-failed`, `expiring`, `revoked`, `deploy-failed`, and
//! `test` (a channel's "send test").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certhub_core::Secret;
use serde_json::{Value, json};

/// The events a channel can ask for.
pub const EVENTS: &[&str] =
    &["issued", "renewed", "renewal-failed", "expiring", "revoked", "deploy-failed"];

/// The kinds of channel.
pub const KINDS: &[&str] = &["smtp", "slack", "callback"];

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Something to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// One of [`EVENTS`], or `test`.
    pub event: String,
    /// The managed certificate.
    pub cert_name: String,
    /// One line: what happened.
    pub summary: String,
    /// More: a serial, an expiry, an error.
    pub detail: Option<String>,
}

/// A channel configuration that does not hold together; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ConfigError {
    /// The field at fault.
    pub field: String,
    /// What it must be.
    pub rule: String,
}

fn bad(field: &str, rule: &str) -> ConfigError {
    ConfigError { field: field.into(), rule: rule.into() }
}

fn text<'a>(config: &'a Value, field: &str) -> Option<&'a str> {
    config[field].as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn url(config: &Value) -> Result<&str, ConfigError> {
    let url = text(config, "url").ok_or_else(|| bad("url", "give the URL to POST to"))?;
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(url),
        _ => Err(bad("url", "an http:// or https:// URL")),
    }
}

/// Checks a channel's configuration before it is stored.
pub fn check(kind: &str, config: &Value) -> Result<(), ConfigError> {
    match kind {
        "smtp" => {
            text(config, "host").ok_or_else(|| bad("host", "give the SMTP server's name"))?;
            if !config["port"].is_null() && config["port"].as_u64().is_none_or(|p| p > 65535) {
                return Err(bad("port", "a port number"));
            }
            match config["tls"].as_str().unwrap_or("starttls") {
                "starttls" | "tls" | "none" => {}
                _ => return Err(bad("tls", "starttls, tls or none")),
            }
            let from =
                text(config, "from").ok_or_else(|| bad("from", "give the sender address"))?;
            from.parse::<lettre::message::Mailbox>()
                .map_err(|_| bad("from", "an email address"))?;
            let to = recipients(config);
            if to.is_empty() {
                return Err(bad("to", "give at least one recipient"));
            }
            for addr in to {
                addr.parse::<lettre::message::Mailbox>()
                    .map_err(|_| bad("to", &format!("{addr:?} is not an email address")))?;
            }
            if text(config, "username").is_some() != text(config, "password").is_some() {
                return Err(bad("password", "give the user name and the password together"));
            }
            Ok(())
        }
        "slack" => url(config).map(|_| ()),
        "callback" => {
            url(config)?;
            text(config, "secret").ok_or_else(|| bad("secret", "give the shared secret"))?;
            Ok(())
        }
        other => Err(bad("kind", &format!("{other:?}: use smtp, slack or callback"))),
    }
}

/// Where a channel sends, safe to show: the recipients and server of an email, the scheme and
/// host of a URL (its path and query may hold a token).
pub fn target(kind: &str, config: &Value) -> String {
    match kind {
        "smtp" => format!(
            "{} via {}",
            recipients(config).join(", "),
            text(config, "host").unwrap_or_default()
        ),
        _ => crate::webhook::host_of(text(config, "url").unwrap_or_default()),
    }
}

fn recipients(config: &Value) -> Vec<&str> {
    match &config["to"] {
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::trim).collect(),
        Value::String(s) => s.split([',', '\n']).map(str::trim).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

/// Sends `notice` to a channel of `kind` with `config`; what happened, or why it failed.
pub async fn send(
    http: &reqwest::Client,
    kind: &str,
    config: &Value,
    notice: &Notice,
) -> Result<String, String> {
    check(kind, config).map_err(|e| e.to_string())?;
    let now =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    match kind {
        "smtp" => email(config, notice).await,
        "slack" => {
            let url = url(config).map_err(|e| e.to_string())?;
            let mut message = format!("*certhub*: {}", notice.summary);
            if let Some(d) = &notice.detail {
                message.push_str(&format!("\n```{d}```"));
            }
            let host = crate::webhook::host_of(url);
            let rsp = http
                .post(url)
                .json(&json!({ "text": message }))
                .timeout(TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("POST to {host} failed: {}", e.without_url()))?;
            crate::webhook::answered(&host, rsp).await
        }
        _ => {
            let url = url(config).map_err(|e| e.to_string())?;
            let secret = Secret::new(text(config, "secret").unwrap_or_default().to_string());
            let body = json!({
                "event_type": format!("cert_{}", notice.event.replace('-', "_")),
                "event_id": format!("{now:x}-{:016x}", rand::random::<u64>()),
                "timestamp": now,
                "cert_name": notice.cert_name,
                "summary": notice.summary,
                "detail": notice.detail,
            })
            .to_string();
            crate::webhook::post_signed(http, url, &secret, body, now, TIMEOUT).await
        }
    }
}

async fn email(config: &Value, notice: &Notice) -> Result<String, String> {
    use lettre::message::{Mailbox, Message, header::ContentType};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
    let host = text(config, "host").unwrap_or_default();
    let tls = config["tls"].as_str().unwrap_or("starttls");
    let port = config["port"].as_u64().map(|p| p as u16).unwrap_or(match tls {
        "tls" => 465,
        _ => 587,
    });
    let fail = |e: &dyn std::fmt::Display| format!("email through {host}:{port} failed: {e}");
    let mut builder = match tls {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| fail(&e))?,
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| fail(&e))?,
    }
    .port(port)
    .timeout(Some(TIMEOUT));
    if let (Some(user), Some(password)) = (text(config, "username"), text(config, "password")) {
        builder = builder.credentials(Credentials::new(user.into(), password.into()));
    }
    let from: Mailbox = text(config, "from").unwrap_or_default().parse().map_err(|e| fail(&e))?;
    let mut message = Message::builder()
        .from(from)
        .subject(format!("[certhub] {}", notice.summary))
        .header(ContentType::TEXT_PLAIN);
    let to = recipients(config);
    for addr in &to {
        message = message.to(addr.parse().map_err(|e| fail(&e))?);
    }
    let mut body = format!("{}\n", notice.summary);
    if let Some(d) = &notice.detail {
        body.push_str(&format!("\n{d}\n"));
    }
    body.push_str(&format!("\nCertificate: {}\nEvent: {}\n", notice.cert_name, notice.event));
    let message = message.body(body).map_err(|e| fail(&e))?;
    builder.build().send(message).await.map_err(|e| fail(&e))?;
    Ok(format!("emailed {} through {host}:{port}", to.join(", ")))
}
