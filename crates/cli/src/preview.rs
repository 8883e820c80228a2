//! `certhub cert preview`: the plan of a request in plain language, computed from what is
//! stored, with no side effects (nothing is sent to the CA, no listener is opened, no file
//! is written, no hook runs).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use certhub_core::identifier::assign_challenges;
use certhub_core::renewal::{Decision, RenewalPolicy, decide};
use certhub_core::{ChallengeConfig, ChallengeSpec, Identifier};
use certhub_store::Store;
use serde_json::{Value, json};

use crate::args::CertPreview;
use crate::exit::{INVALID_INPUT, NOT_FOUND, fail};
use crate::issue::violations;
use crate::output::{print_json, rfc3339};

/// Where and how a challenge configuration answers, secrets left out.
fn method(spec: &ChallengeSpec) -> String {
    match &spec.config {
        ChallengeConfig::Http01Listen { listen } => format!("certhub answers on http://{listen}"),
        ChallengeConfig::Http01Webroot { webroot } => {
            format!(
                "a file is written below {}/.well-known/acme-challenge/ and removed after",
                webroot.display()
            )
        }
        ChallengeConfig::TlsAlpn01Listen { listen } => {
            format!("certhub answers TLS (acme-tls/1) on {listen}")
        }
        ChallengeConfig::Dns01Rfc2136 { server, key_name, .. } => {
            format!(
                "a TXT record is added by RFC 2136 update on {server} (TSIG key {key_name}) and removed after"
            )
        }
        ChallengeConfig::Dns01Exec { path } => {
            format!("{} present/cleanup publishes the TXT record", path.display())
        }
        ChallengeConfig::Dns01Callback { url, .. } => {
            format!("signed events to {url} ask for the TXT record and say when it can go")
        }
    }
}

pub async fn run(store: &Store, args: CertPreview) -> anyhow::Result<()> {
    let cert = store.cert(&args.name).await?.ok_or_else(|| {
        fail(NOT_FOUND, format!("no certificate named {:?} (see `certhub cert list`)", args.name))
    })?;
    // The certificate's own policy wins over --policy.
    let policy_text = cert.renewal_policy.clone().unwrap_or_else(|| args.policy.clone());
    let policy: RenewalPolicy =
        policy_text.parse().map_err(|e| fail(INVALID_INPUT, format!("--policy {e}")))?;
    let (account_name, fallback) = crate::cert::ordering_account(&cert)?;
    let account = store.account(account_name).await?;
    let ids: Vec<Identifier> = serde_json::from_value(cert.identifiers.clone())?;
    let specs: Vec<ChallengeSpec> = serde_json::from_value(cert.challenges.clone())?;
    let assignment = assign_challenges(&ids, &specs).map_err(|v| violations(&args.name, &v))?;
    let latest = store.latest_issued(&args.name).await?;

    let validation: Vec<Value> = assignment
        .iter()
        .map(|(id, i)| {
            let spec = &specs[*i];
            let mut step = json!({ "identifier": id.to_string(), "challenge": spec.config.kind(), "how": method(spec) });
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
            match decide(at(i.not_before), at(i.not_after), None, policy, SystemTime::now(), 0) {
                Decision::RenewNow(_) => json!({ "when": "now: it is due", "policy": policy_text }),
                Decision::RenewAt(t, _) => {
                    let secs =
                        t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
                    json!({ "when": rfc3339(secs), "policy": policy_text,
                        "note": "a renewal window offered by the CA (ARI) takes precedence" })
                }
            }
        }
    };
    let ca = match &account {
        Some(a) => {
            json!({ "account": a.name, "directory": a.directory_url, "status": a.status, "email": a.email, "fallback": fallback })
        }
        None => json!({ "account": account_name, "missing": true, "fallback": fallback }),
    };
    let deployment = crate::deploy::plan(store, &args.name).await?;
    let plan = json!({
        "certificate": args.name,
        "ca": ca,
        "profile": cert.profile,
        "preferred_chain": cert.preferred_chain,
        "validation": validation,
        "key": key,
        "deployment": deployment,
        "next_renewal": renewal,
    });
    if args.json {
        print_json(&plan);
        return Ok(());
    }
    println!("Requesting {} would:", args.name);
    match &account {
        Some(a) => {
            let why = if fallback {
                format!(", the fallback after {} failed requests", cert.failures)
            } else {
                String::new()
            };
            println!(
                "  1. order from {} with account {} ({}{why})",
                a.directory_url, a.name, a.status
            )
        }
        None => println!("  1. fail: account {account_name} does not exist"),
    }
    if let Some(p) = &cert.profile {
        println!("     asking for profile {p}");
    }
    println!("  2. validate each identifier:");
    for step in &validation {
        println!(
            "     {}  {}: {}",
            step["identifier"].as_str().unwrap_or_default(),
            step["challenge"].as_str().unwrap_or_default(),
            step["how"].as_str().unwrap_or_default()
        );
    }
    println!("  3. finalize: {key}");
    match &cert.preferred_chain {
        Some(p) => println!(
            "  4. download the chain issued by {p} if the CA offers it, else the default chain"
        ),
        None => println!("  4. download the default chain"),
    }
    if deployment.is_empty() {
        println!("  5. deploy: no deployment tasks are configured");
    } else {
        println!("  5. deploy, in order:");
        for step in &deployment {
            println!(
                "     {} ({}, at most {}s): {}",
                step["task"].as_str().unwrap_or_default(),
                step["when"].as_str().unwrap_or_default(),
                step["timeout"],
                step["does"].as_str().unwrap_or_default()
            );
        }
    }
    println!("Next renewal: {}", renewal["when"].as_str().unwrap_or_default());
    Ok(())
}
