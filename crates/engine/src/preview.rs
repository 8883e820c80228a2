//! Preview: the plan of a request in plain language, computed from what is
//! stored, with no side effects (nothing is sent to the CA, no listener is opened, no file
//! is written, no hook runs).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certhub_core::identifier::assign_challenges;
use certhub_core::renewal::{Decision, Reason, RenewalPolicy, RenewalWindow, decide};
use certhub_core::{ChallengeSpec, Identifier};
use certhub_store::Store;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::error::invalid;
use crate::error::violations;

/// The plan of requesting certificate `name` now, as JSON; `default_policy` applies when the
/// certificate has no renewal policy of its own.
pub async fn plan(store: &Store, name: &str, default_policy: &str) -> anyhow::Result<Value> {
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

    let validation: Vec<Value> = assignment
        .iter()
        .map(|(id, i)| {
            let spec = &specs[*i];
            let mut step = json!({ "identifier": id.to_string(), "challenge": spec.config.kind(), "how": spec.config.describe() });
            if spec.config.kind() == certhub_core::ChallengeKind::Dns01 {
                let base = id.to_string();
                step["record"] = json!(format!("_acme-challenge.{}", base.trim_start_matches("*.")));
                step["then"] = json!("certhub waits until every authoritative name server of the zone answers with the value");
            }
            step
        })
        .collect();
    let key = match (&cert.csr_pem, cert.reuse_key, &latest) {
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
    let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    let renewal = match &latest {
        None => json!({ "when": "now: it has never been issued" }),
        Some(i) => {
            // The CA's window as last fetched (a preview asks the CA nothing), if it is this
            // account's CA's.
            let window = store
                .renewal_info(i.id)
                .await?
                .filter(|w| account.as_ref().is_none_or(|a| a.directory_url == w.directory_url))
                .map(|w| (w.window_start, w.window_end));
            let ms = |ms: i64| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
            let ari = window.map(|(start, end)| RenewalWindow { start: ms(start), end: ms(end) });
            let seed = crate::renew::window_seed(&i.serial_hex);
            let decision =
                decide(at(i.not_before), at(i.not_after), ari, policy, SystemTime::now(), seed);
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
            let mut renewal = match decision {
                Decision::RenewNow(_) => json!({ "when": "now: it is due" }),
                Decision::RenewAt(t, _) => {
                    json!({ "when": rfc3339(crate::clock::unix_ms(t) / 1000) })
                }
            };
            renewal["policy"] = json!(policy_text);
            renewal["by"] = json!(by);
            if window.is_none() {
                renewal["note"] =
                    json!("a renewal window offered by the CA (ARI) takes precedence");
            }
            renewal
        }
    };
    let ca = match &account {
        Some(a) => {
            json!({ "account": a.name, "directory": a.directory_url, "status": a.status,
                "email": a.email, "fallback": fallback, "failures": cert.failures })
        }
        None => json!({ "account": account_name, "missing": true, "fallback": fallback }),
    };
    let deployment = crate::deploy::plan(store, name).await?;
    let mut plan = json!({
        "certificate": name,
        "ca": ca,
        "profile": cert.profile,
        "preferred_chain": cert.preferred_chain,
        "validation": validation,
        "key": key,
        "deployment": deployment,
        "next_renewal": renewal,
    });
    plan["summary"] = json!(summary(&plan));
    Ok(plan)
}

/// The plan in plain language, a line a step.
fn summary(plan: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let ca = &plan["ca"];
    let mut lines = vec![format!("Requesting {} would:", text(&plan["certificate"]))];
    if ca["missing"] == true {
        lines.push(format!("  1. fail: account {} does not exist", text(&ca["account"])));
    } else {
        let why = if ca["fallback"] == true {
            format!(", the fallback after {} failed requests", ca["failures"])
        } else {
            String::new()
        };
        lines.push(format!(
            "  1. order from {} with account {} ({}{why})",
            text(&ca["directory"]),
            text(&ca["account"]),
            text(&ca["status"])
        ));
    }
    if let Some(p) = plan["profile"].as_str() {
        lines.push(format!("     asking for profile {p}"));
    }
    lines.push("  2. validate each identifier:".into());
    for step in plan["validation"].as_array().into_iter().flatten() {
        lines.push(format!(
            "     {}  {}: {}",
            text(&step["identifier"]),
            text(&step["challenge"]),
            text(&step["how"])
        ));
    }
    lines.push(format!("  3. finalize: {}", text(&plan["key"])));
    lines.push(match plan["preferred_chain"].as_str() {
        Some(p) => format!(
            "  4. download the chain issued by {p} if the CA offers it, else the default chain"
        ),
        None => "  4. download the default chain".into(),
    });
    match plan["deployment"].as_array().filter(|d| !d.is_empty()) {
        None => lines.push("  5. deploy: no deployment tasks are configured".into()),
        Some(steps) => {
            lines.push("  5. deploy, in order:".into());
            for step in steps {
                lines.push(format!(
                    "     {} ({}, at most {}s): {}",
                    text(&step["task"]),
                    text(&step["when"]),
                    step["timeout"],
                    text(&step["does"])
                ));
            }
        }
    }
    let next = &plan["next_renewal"];
    lines.push(match next["by"].as_str() {
        Some(by) => format!("Next renewal: {}, by {by}", text(&next["when"])),
        None => format!("Next renewal: {}", text(&next["when"])),
    });
    lines
}
