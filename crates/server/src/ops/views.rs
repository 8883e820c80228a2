//! What the operations give back, typed: the API serializes these (and its OpenAPI document
//! describes them from the same types), the UI renders them.

use certhub_store::{CertRecord, CertState, CertSummary, IssuedRecord, RETRY_STOPPED};
use schemars::JsonSchema;
use serde::Serialize;

use crate::clock::{now_ms, rfc3339_ms};

/// A managed certificate: what it is for, its latest issued certificate, and its renewal.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct CertView {
    pub name: String,
    /// `pending`, `valid`, `renewing`, `failing`, `expired` or `revoked`.
    #[schemars(with = "String")]
    pub state: CertState,
    /// The ACME account that orders it; none for a certificate imported without one.
    pub account: Option<String>,
    pub identifiers: Vec<String>,
    pub key_type: String,
    /// The latest issued certificate's serial, lowercase hex.
    pub serial: Option<String>,
    pub issuer: Option<String>,
    /// RFC 3339.
    pub not_before: Option<String>,
    /// RFC 3339.
    pub not_after: Option<String>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    pub renewal: RenewalView,
    /// `not_after` in epoch milliseconds, for the pages.
    #[serde(skip)]
    #[schemars(skip)]
    pub expires_at: Option<i64>,
    /// Whether the latest issued certificate is revoked, for the pages.
    #[serde(skip)]
    #[schemars(skip)]
    pub revoked: bool,
}

/// How a certificate is renewed and where its retries stand.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct RenewalView {
    /// Its own renewal policy (else the hub's).
    pub policy: Option<String>,
    pub fallback_account: Option<String>,
    /// Failed requests in a row.
    pub failures: i64,
    /// No automatic retry before this time (RFC 3339).
    pub next_attempt: Option<String>,
    /// The CA refused for good: no automatic retry until the certificate is changed or
    /// requested by hand.
    pub retries_stopped: bool,
}

impl CertView {
    /// A certificate from its record and latest issued certificate.
    pub fn of(c: &CertRecord, issued: Option<&IssuedRecord>) -> Self {
        Self::from_summary(&CertSummary::of(c, issued))
    }

    /// A certificate from its summary.
    pub fn from_summary(c: &CertSummary) -> Self {
        let issued = c.latest.as_ref();
        Self {
            name: c.name.clone(),
            state: c.effective_state(now_ms()),
            account: c.account_name.clone(),
            identifiers: c.identifiers.iter().map(ToString::to_string).collect(),
            key_type: c.key_type.clone(),
            serial: issued.map(|i| i.serial_hex.clone()),
            issuer: issued.map(|i| i.issuer.clone()),
            not_before: issued.map(|i| rfc3339_ms(i.not_before)),
            not_after: issued.map(|i| rfc3339_ms(i.not_after)),
            last_error: c.last_error.clone(),
            renewal: RenewalView {
                policy: c.renewal_policy.clone(),
                fallback_account: c.fallback_account.clone(),
                failures: c.failures,
                next_attempt: c.next_attempt_at.filter(|&t| t != RETRY_STOPPED).map(rfc3339_ms),
                retries_stopped: c.next_attempt_at == Some(RETRY_STOPPED),
            },
            expires_at: issued.map(|i| i.not_after),
            revoked: issued.is_some_and(|i| i.revoked_at.is_some()),
        }
    }
}

/// A certificate after a change, with what changed in words.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EditedView {
    #[serde(flatten)]
    pub certificate: CertView,
    pub changed: Vec<String>,
}

/// One page of the certificate list.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CertPage {
    pub items: Vec<CertView>,
    pub page: u32,
    pub per_page: u32,
    /// Matching certificates on all pages.
    pub total: usize,
}

/// What an import did.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ImportView {
    pub name: String,
    /// The serial, issuer and expiry in words; none when the certificate held it already.
    pub imported: Option<String>,
    pub names: Vec<String>,
    pub without_key: bool,
    /// The ACME account that renews it, if any.
    pub renewed_by: Option<String>,
    pub expired: bool,
    pub deployed: Vec<DeployedView>,
}

/// What one deployment task did.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DeployedView {
    pub task: String,
    pub did: String,
}

/// A certificate's event.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EventView {
    /// RFC 3339.
    pub at: String,
    pub kind: String,
    pub detail: Option<String>,
}

/// A challenge configuration, credentials left out, and what it validates.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ChallengeView {
    /// `http-01`, `dns-01` or `tls-alpn-01`.
    pub challenge: String,
    /// How it answers, in words.
    pub answers: String,
    /// The domains it applies to, or `all`.
    pub applies_to: Vec<String>,
    pub propagation_timeout_seconds: Option<u64>,
    /// How a dns-01 record is known to be there, when not by checking every authoritative
    /// server: `wait:SECONDS` or `resolver:HOST:PORT`.
    pub propagation: Option<String>,
    /// The identifiers it validates.
    pub validates: Vec<String>,
}

/// A deployment task, with how it last ran.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DeployTaskView {
    pub name: String,
    /// `issued`, `renewed` or `always`.
    pub when: String,
    /// What it does, in words (a webhook's URL with its credentials hidden).
    pub does: String,
    /// Seconds it may take.
    pub timeout: u64,
    /// `done`, `failed` or `skipped`.
    pub last_outcome: Option<String>,
    pub last_detail: Option<String>,
    /// RFC 3339.
    pub last_run_at: Option<String>,
    /// Failures in a row (0 once it delivers): the renewal service retries a failed task
    /// after a wait that grows with them, from a minute to six hours.
    pub failures: i64,
}

/// A deployment task just added.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AddedTaskView {
    pub name: String,
    pub when: String,
    pub does: String,
}

/// A CA account.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AccountView {
    pub name: String,
    /// The CA's ACME directory URL.
    pub directory: String,
    pub email: Option<String>,
    pub status: String,
    pub key_type: String,
}

/// A notification channel: where it sends, never its secrets.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ChannelView {
    pub name: String,
    /// `email`, `webhook`, `slack`, …
    pub kind: String,
    pub events: Vec<String>,
    /// Where it sends, credentials hidden.
    pub target: String,
}

impl ChannelView {
    pub fn of(c: &certhub_store::ChannelRecord) -> Self {
        Self {
            name: c.name.clone(),
            kind: c.kind.clone(),
            events: c.events.clone(),
            target: certhub_deploy::notify::target(&c.kind, &c.config),
        }
    }
}

/// A user.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct UserView {
    pub username: String,
    pub role: String,
    /// RFC 3339.
    pub created_at: String,
    /// When an admin disabled the user (RFC 3339); absent while enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    /// The OpenID provider (its issuer URL) the user signs in through; absent for a user
    /// who signs in with a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<String>,
}

/// An API token or web session, never its secret.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TokenView {
    pub id: String,
    pub user: String,
    /// `api` or `session`.
    pub kind: String,
    pub label: String,
    pub scopes: Vec<String>,
    /// RFC 3339; none for a token that does not expire.
    pub expires_at: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl TokenView {
    pub fn of(t: &certhub_store::TokenRecord) -> Self {
        Self {
            id: t.id.clone(),
            user: t.user_name.clone(),
            kind: t.kind.as_str().to_string(),
            label: t.label.clone(),
            scopes: t.scopes.split_whitespace().map(str::to_string).collect(),
            expires_at: t.expires_at.map(rfc3339_ms),
            created_at: rfc3339_ms(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339_ms),
        }
    }
}
