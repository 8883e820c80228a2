//! dns-01 through the callback channel: certhub POSTs signed JSON events to the user's URL,
//! and whoever receives them publishes and removes the record.
//!
//! ```json
//! { "version": 1, "event_type": "cert_domain_validation_required",
//!   "event_id": "…", "timestamp": 1700000000000, "cert_name": "web",
//!   "domain": "example.com", "domain_validation_method": "dns-01",
//!   "challenge": { "txt_record_name": "_acme-challenge.example.com",
//!                  "txt_record_val": "…" } }
//! ```
//!
//! Headers: `X-Certhub-Signature: sha256=HEX`, the HMAC-SHA256 of the raw body under the
//! shared secret, and `X-Certhub-Timestamp` (unix milliseconds, also in the body). After
//! `cert_domain_validation_required`, certhub waits (10 minutes by default) until the record
//! is visible on every authoritative server; after validation it sends
//! `cert_domain_validation_completed` with the same challenge, so the record can go.
//! `version` is [`VERSION`]: a receiver can tell the events of a later format apart; members
//! are only ever added within a version.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certhub_core::secret::shown_url;
use certhub_core::{PendingChallenge, Secret, Solver, SolverError};
use serde_json::json;

use super::propagation::PropagationChecker;
use super::{record_name, txt_value};

/// The format of the events.
pub const VERSION: u32 = 1;

/// How long to wait for the record by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// Sends validation events to a URL.
pub struct CallbackSolver {
    url: String,
    secret: Secret,
    checker: PropagationChecker,
    http: reqwest::Client,
}

impl CallbackSolver {
    /// Events go to `url`, signed with `secret`.
    pub fn new(
        url: String,
        secret: Secret,
        checker: PropagationChecker,
        http: reqwest::Client,
    ) -> Self {
        Self { url, secret, checker, http }
    }

    async fn send(
        &self,
        event_type: &str,
        challenge: &PendingChallenge,
    ) -> Result<(), SolverError> {
        let now =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let body = json!({
            "version": VERSION,
            "event_type": event_type,
            "cert_name": challenge.cert,
            "event_id": format!("{now:x}-{:016x}", rand::random::<u64>()),
            "timestamp": now,
            "domain": challenge.identifier.to_string(),
            "domain_validation_method": "dns-01",
            "challenge": {
                "txt_record_name": record_name(challenge),
                "txt_record_val": txt_value(&challenge.key_authorization),
            },
        })
        .to_string();
        let signature = self.secret.sign_hex(body.as_bytes());
        let rsp = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-certhub-signature", format!("sha256={signature}"))
            .header("x-certhub-timestamp", now.to_string())
            .timeout(Duration::from_secs(30))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let shown = shown_url(&self.url);
                SolverError::Hook(format!("the callback {shown} failed: {}", e.without_url()))
            })?;
        let status = rsp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = rsp.text().await.unwrap_or_default();
        let snippet: String = text.chars().take(200).collect();
        Err(SolverError::Hook(format!(
            "the callback {} answered {event_type} with {status}: {snippet}",
            shown_url(&self.url)
        )))
    }
}

#[async_trait::async_trait]
impl Solver for CallbackSolver {
    async fn present(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        self.send("cert_domain_validation_required", challenge).await?;
        self.checker
            .wait_visible(&record_name(challenge), &txt_value(&challenge.key_authorization))
            .await
    }

    async fn cleanup(&self, challenge: &PendingChallenge) -> Result<(), SolverError> {
        self.send("cert_domain_validation_completed", challenge).await
    }
}
