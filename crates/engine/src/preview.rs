//! Preview: the plan of a request in plain language, computed from what is
//! stored, with no side effects (nothing is sent to the CA, no listener is opened, no file
//! is written, no hook runs).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certhub_core::identifier::assign_challenges;
use certhub_core::renewal::{Decision, Reason, RenewalPolicy, RenewalWindow, decide};
use certhub_core::{ChallengeSpec, Identifier};
use certhub_store::Store;
use serde::Serialize;

use crate::clock::rfc3339;
use crate::error::invalid;
use crate::error::violations;

/// The plan of requesting a certificate now.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Preview {
    /// The certificate.
    pub certificate: String,
    /// The account that would order it.
    pub ca: PlanAccount,
    /// The CA profile asked for, if any.
    pub profile: Option<String>,
    /// The issuer of the chain asked for, if any.
    pub preferred_chain: Option<String>,
    /// How each identifier would be validated.
    pub validation: Vec<PlanValidation>,
    /// What CAA says of each identifier for the account's CA and the fallback's (read from
    /// DNS and the CA's directory; empty when they were not asked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caa: Vec<PlanCaa>,
    /// Which key the CSR would carry.
    pub key: String,
    /// The deployment tasks that would run, in order.
    pub deployment: Vec<PlanTask>,
    /// When it is renewed next, and why then.
    pub next_renewal: PlanRenewal,
    /// The plan in plain language, a line a step.
    pub summary: Vec<String>,
}

/// What CAA says of one identifier for one account's CA.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanCaa {
    pub identifier: String,
    /// Whether that CA may issue for it (or the records could not be read).
    pub permitted: bool,
    /// `account NAME: …` or `fallback account NAME: …`, and what the records say.
    pub says: String,
}

/// The account a request would use.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PlanAccount {
    /// The account exists.
    Found {
        account: String,
        /// Its CA's directory URL.
        directory: String,
        status: String,
        email: Option<String>,
        /// Whether it is the certificate's fallback account, used after failed requests.
        fallback: bool,
        /// Failed requests in a row.
        failures: i64,
    },
    /// The account named does not exist: the request would fail.
    Missing { account: String, missing: bool, fallback: bool },
}

/// How one identifier would be validated.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanValidation {
    pub identifier: String,
    #[schemars(with = "String")]
    pub challenge: certhub_core::ChallengeKind,
    /// How the challenge is answered, in words.
    pub how: String,
    /// The TXT record written, for dns-01.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// What follows the record, for dns-01.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
}

/// A deployment task that would run.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanTask {
    pub task: String,
    /// `issued`, `renewed` or `always`.
    pub when: String,
    /// Seconds it may take.
    pub timeout: u64,
    pub does: String,
}

/// When a certificate is renewed next.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanRenewal {
    /// `now: …`, or an RFC 3339 time.
    pub when: String,
    /// The renewal policy that applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// What decides the time: the CA's window, the policy, or expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The plan of requesting certificate `name` now; `default_policy` applies when the
/// certificate has no renewal policy of its own.
pub async fn plan(store: &Store, name: &str, default_policy: &str) -> anyhow::Result<Preview> {
    let cert = crate::records::load(store, name).await?;
    // The certificate's own policy wins over the default.
    let policy_text = cert.renewal_policy.clone().unwrap_or_else(|| default_policy.to_string());
    let policy: RenewalPolicy =
        policy_text.parse().map_err(|e| invalid("policy", format!("--policy {e}")))?;
    let (account_name, fallback) = crate::records::ordering_account(&cert)?;
    let account = store.account(account_name).await?;
    let ids: Vec<Identifier> = cert.identifiers.clone();
    let specs: Vec<ChallengeSpec> = cert.challenges.clone();
    let assignment = assign_challenges(&ids, &specs).map_err(|v| violations(name, &v))?;
    let latest = store.latest_issued(name).await?;
    let on_agent = cert.key_type == certhub_core::agent::KEY_ON_AGENT;
    // Its key's agent answers http-01 and tls-alpn-01 on its machine.
    let agent = match on_agent {
        true => store
            .cert_targets(name)
            .await?
            .iter()
            .find_map(|t| t.strip_prefix("agent:").map(str::to_string)),
        false => None,
    };

    let validation = assignment
        .iter()
        .map(|(id, i)| {
            let spec = &specs[*i];
            let dns = spec.config.kind() == certhub_core::ChallengeKind::Dns01;
            let base = id.to_string();
            PlanValidation {
                identifier: id.to_string(),
                challenge: spec.config.kind(),
                how: match &agent {
                    Some(a) if !dns => {
                        format!("on agent {a}'s machine: {}", spec.config.describe())
                    }
                    _ => spec.config.describe(),
                },
                record: dns.then(|| format!("_acme-challenge.{}", base.trim_start_matches("*."))),
                then: dns.then(|| match spec.propagation {
                    certhub_core::Propagation::Check => "certhub waits until every \
                         authoritative name server of the zone answers with the value"
                        .to_string(),
                    certhub_core::Propagation::Wait { seconds } => {
                        format!("certhub waits {seconds} s without looking, then asks the CA")
                    }
                    certhub_core::Propagation::Resolver { address } => {
                        format!("certhub waits until the resolver {address} answers with the value")
                    }
                }),
            }
        })
        .collect();
    let key = match (&cert.csr_pem, cert.reuse_key, &latest) {
        (Some(_), _, _) if on_agent => {
            "the CSR its agent made is sent; the key stays on the agent".to_string()
        }
        (None, _, _) if on_agent => {
            "its agent makes the key and sends a CSR when it connects; the key stays there"
                .to_string()
        }
        (Some(_), _, _) => "the CSR you supplied is sent; certhub holds no private key".to_string(),
        (None, true, Some(prev)) if prev.key_type == cert.key_type => {
            format!("the current {} key is reused", cert.key_type)
        }
        (None, true, _) => {
            format!("a new {} key is generated (and reused on later renewals)", cert.key_type)
        }
        (None, false, _) => {
            format!("a new {} key is generated and stored encrypted", cert.key_type)
        }
    };
    let ms = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let next_renewal = match &latest {
        None => PlanRenewal {
            when: "now: it has never been issued".into(),
            policy: None,
            by: None,
            note: None,
        },
        Some(i) => {
            // The CA's window as last fetched (a preview asks the CA nothing), if it is this
            // account's CA's.
            let window = store
                .renewal_info(i.id)
                .await?
                .filter(|w| account.as_ref().is_none_or(|a| a.directory_url == w.directory_url))
                .map(|w| (w.window_start, w.window_end));
            let ari = window.map(|(start, end)| RenewalWindow { start: ms(start), end: ms(end) });
            let seed = crate::renew::window_seed(&i.serial_hex);
            let decision =
                decide(ms(i.not_before), ms(i.not_after), ari, policy, SystemTime::now(), seed);
            let by = match (window, decision) {
                (
                    Some((start, end)),
                    Decision::RenewAt(_, Reason::CaWindow) | Decision::RenewNow(Reason::CaWindow),
                ) => {
                    format!(
                        "the CA's renewal window (ARI), {} to {}",
                        rfc3339(start / 1000),
                        rfc3339(end / 1000)
                    )
                }
                (_, Decision::RenewNow(Reason::Expired)) => "expiry: it has expired".to_string(),
                _ => format!("the renewal policy {policy_text}"),
            };
            let when = match decision {
                Decision::RenewNow(_) => "now: it is due".to_string(),
                Decision::RenewAt(t, _) => rfc3339(crate::clock::unix_ms(t) / 1000),
            };
            PlanRenewal {
                when,
                policy: Some(policy_text.clone()),
                by: Some(by),
                note: window.is_none().then(|| {
                    "a renewal window offered by the CA (ARI) takes precedence".to_string()
                }),
            }
        }
    };
    let ca = match account {
        Some(a) => PlanAccount::Found {
            account: a.name,
            directory: a.directory_url,
            status: a.status,
            email: a.email,
            fallback,
            failures: cert.failures,
        },
        None => PlanAccount::Missing { account: account_name.to_string(), missing: true, fallback },
    };
    let deployment = crate::deploy::tasks(store, name)
        .await?
        .into_iter()
        .map(|(t, _)| PlanTask {
            task: t.name,
            when: t.trigger.as_str().to_string(),
            timeout: t.timeout.as_secs(),
            does: t.action.describe(),
        })
        .collect();
    let mut plan = Preview {
        certificate: name.to_string(),
        ca,
        profile: cert.profile.clone(),
        preferred_chain: cert.preferred_chain.clone(),
        validation,
        caa: Vec::new(),
        key,
        deployment,
        next_renewal,
        summary: Vec::new(),
    };
    plan.summary = summary(&plan);
    Ok(plan)
}

/// The plan in plain language, a line a step.
pub(crate) fn summary(plan: &Preview) -> Vec<String> {
    let mut lines = vec![format!("Requesting {} would:", plan.certificate)];
    match &plan.ca {
        PlanAccount::Missing { account, .. } => {
            lines.push(format!("  1. fail: account {account} does not exist"));
        }
        PlanAccount::Found { account, directory, status, fallback, failures, .. } => {
            let why = if *fallback {
                format!(", the fallback after {failures} failed requests")
            } else {
                String::new()
            };
            lines.push(format!(
                "  1. order from {directory} with account {account} ({status}{why})"
            ));
        }
    }
    if let Some(p) = &plan.profile {
        lines.push(format!("     asking for profile {p}"));
    }
    for c in &plan.caa {
        let mark = if c.permitted { "" } else { " (not permitted)" };
        lines.push(format!("     CAA of {}, {}{mark}", c.identifier, c.says));
    }
    lines.push("  2. validate each identifier:".into());
    for step in &plan.validation {
        lines.push(format!("     {}  {}: {}", step.identifier, step.challenge, step.how));
    }
    lines.push(format!("  3. finalize: {}", plan.key));
    lines.push(match &plan.preferred_chain {
        Some(p) => format!(
            "  4. download the chain issued by {p} if the CA offers it, else the default chain"
        ),
        None => "  4. download the default chain".into(),
    });
    if plan.deployment.is_empty() {
        lines.push("  5. deploy: no deployment tasks are configured".into());
    } else {
        lines.push("  5. deploy, in order:".into());
        for step in &plan.deployment {
            lines.push(format!(
                "     {} ({}, at most {}s): {}",
                step.task, step.when, step.timeout, step.does
            ));
        }
    }
    let next = &plan.next_renewal;
    lines.push(match &next.by {
        Some(by) => format!("Next renewal: {}, by {by}", next.when),
        None => format!("Next renewal: {}", next.when),
    });
    lines
}
