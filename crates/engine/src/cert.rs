//! Managed certificates: adding one, changing how it is ordered and renewed, revoking its
//! latest certificate, and probing its identifiers as the CA would.

use anyhow::{Context as _, anyhow};
use certhub_acme::RevocationReason;
use certhub_challenge::Solvers;
use certhub_core::cert::split_pem_chain;
use certhub_core::csr::ParsedCsr;
use certhub_core::identifier::{RequestRules, assign_challenges, normalize};
use certhub_core::{ChallengeKind, ChallengeSpec, DeployTask, Identifier};
use certhub_store::{AuditEntry, CertRecord, Store};
use futures::StreamExt as _;

use crate::account::{self, check_name, parse_key_type};
use crate::clock::now_secs;
use crate::error::violations;
use crate::error::{Kind, at_field, fail, invalid};
use crate::records::{acme_account, load};

/// A managed certificate to add (`POST /api/v1/certificates`, `certhub cert add`).
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCertificate {
    /// Its name.
    pub name: String,
    /// The account that orders it.
    pub account: String,
    /// DNS names (`*.example.com` for a wildcard).
    #[serde(default)]
    pub domains: Vec<String>,
    /// IP addresses.
    #[serde(default)]
    pub ips: Vec<std::net::IpAddr>,
    /// Key type (default ec-p256).
    #[serde(default)]
    pub key_type: Option<String>,
    /// Keep the key across renewals.
    #[serde(default)]
    pub reuse_key: bool,
    /// Challenge SPECs, as for `certhub cert add --challenge`.
    pub challenges: Vec<String>,
    /// Deployment SPECs, as for `certhub cert add --deploy`.
    #[serde(default)]
    pub deploy: Vec<String>,
    /// Where it is deployed: `agent:NAME` or `label:KEY=VALUE` (its tasks then run on those
    /// agents, never on the hub).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Where the key is made and kept: `hub` (the default: sealed in the store, sent to the
    /// targets) or `agent` (on its one target agent, which sends only a CSR).
    #[serde(default)]
    pub key_on: Option<String>,
    /// Renewal policy (75% or 30d).
    #[serde(default)]
    pub renew_at: Option<String>,
    /// The owner's CSR (PEM or DER), with where it came from for messages; the identifiers
    /// then come from it.
    #[serde(skip)]
    #[schemars(skip)]
    pub csr: Option<(String, Vec<u8>)>,
    /// The ACME profile to ask for.
    #[serde(skip)]
    #[schemars(skip)]
    pub profile: Option<String>,
    /// The issuer common name of the chain to prefer.
    #[serde(skip)]
    #[schemars(skip)]
    pub preferred_chain: Option<String>,
    /// Allow single-label names (a private CA).
    #[serde(skip)]
    #[schemars(skip)]
    pub allow_single_label: bool,
    /// The account that orders after `fallback_after` failures in a row.
    #[serde(skip)]
    #[schemars(skip)]
    pub fallback_account: Option<String>,
    /// Failures in a row before the fallback account orders.
    #[serde(skip)]
    #[schemars(skip)]
    pub fallback_after: Option<u16>,
}

/// Changes to a managed certificate (`PATCH /api/v1/certificates/{name}`, `certhub cert
/// set`); what is left out stays.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertChanges {
    /// Order with this account.
    #[serde(default)]
    pub account: Option<String>,
    /// Replace the challenge SPECs.
    #[serde(default)]
    pub challenges: Vec<String>,
    /// Renewal policy (75%, 30d, or `default`).
    #[serde(default)]
    pub renew_at: Option<String>,
    /// Fallback account, or `none`.
    #[serde(default)]
    pub fallback_account: Option<String>,
    /// Failures in a row before the fallback account orders.
    #[serde(default)]
    pub fallback_after: Option<u16>,
}

impl CertChanges {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.account.is_none()
            && self.challenges.is_empty()
            && self.renew_at.is_none()
            && self.fallback_account.is_none()
            && self.fallback_after.is_none()
    }
}

/// What adding a certificate did: how each identifier will be validated, its deployment
/// tasks, and notes on the names given (a name made lower case, …).
#[derive(Debug, Clone)]
pub struct Added {
    pub validation: Vec<(Identifier, ChallengeKind)>,
    pub tasks: Vec<DeployTask>,
    pub notes: Vec<String>,
}

/// What probing one identifier found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    pub identifier: String,
    pub challenge: ChallengeKind,
    /// Whether the CA would find the answer.
    pub works: bool,
    /// Why, in words.
    pub detail: String,
}

/// Checks and stores the managed certificate `args` describes, with `audit`'s entry; says
/// how each identifier will be validated and which deployment tasks follow.
pub async fn create(
    store: &Store,
    args: &NewCertificate,
    audit: &AuditEntry,
) -> anyhow::Result<Added> {
    check_name("certificate", &args.name)?;
    account::load(store, &args.account).await.map_err(|e| at_field(e, "account"))?;
    if store.cert(&args.name).await?.is_some() {
        return Err(fail(
            Kind::Conflict,
            format!("a certificate named {:?} already exists", args.name),
        ));
    }
    let key_type = parse_key_type(args.key_type.as_deref().unwrap_or("ec-p256"))?;
    let csr_pem = match &args.csr {
        Some((source, bytes)) => {
            if !args.domains.is_empty() || !args.ips.is_empty() {
                return Err(invalid(
                    "domains",
                    "with --csr the identifiers come from the CSR; drop -d and --ip",
                ));
            }
            let csr = ParsedCsr::parse(bytes)
                .map_err(|e| invalid("csr", format!("{source} is not a usable CSR: {e}")))?;
            Some((certhub_core::pem_block("CERTIFICATE REQUEST", &csr.der), csr))
        }
        None => None,
    };
    let inputs: Vec<String> = match &csr_pem {
        Some((_, csr)) => csr.identifiers.iter().map(ToString::to_string).collect(),
        None => {
            args.domains.iter().cloned().chain(args.ips.iter().map(ToString::to_string)).collect()
        }
    };
    if inputs.is_empty() {
        return Err(invalid(
            "domains",
            "name at least one identifier with -d DOMAIN or --ip ADDR (or bring a --csr)",
        ));
    }
    let rules = RequestRules { public_ca: !args.allow_single_label };
    let normalized = normalize(&inputs, &rules).map_err(|v| violations(&args.name, &v))?;
    let notes = normalized.notes.iter().map(|n| n.message.clone()).collect();
    let specs = parse_challenges(&args.challenges)?;
    crate::credentials::check_specs(store, &specs).await?;
    let ids = normalized.identifiers;
    let assignment = assign_challenges(&ids, &specs).map_err(|v| violations(&args.name, &v))?;
    let tasks = crate::deploy::parse_specs(&args.deploy, &[])?;
    crate::credentials::check_tasks(store, &tasks).await?;
    let targets = crate::agents::check_targets(store, &args.targets).await?;
    let key_on_agent = match args.key_on.as_deref().map(str::trim) {
        None | Some("hub") => false,
        Some("agent") => {
            if !matches!(targets.as_slice(), [certhub_core::agent::Target::Agent(_)]) {
                return Err(invalid(
                    "key_on",
                    "--key-on agent needs exactly one --target agent:NAME: the key is made and \
                     kept on that one machine",
                ));
            }
            if csr_pem.is_some() {
                return Err(invalid(
                    "key_on",
                    "--key-on agent and --csr both name the key's owner",
                ));
            }
            true
        }
        Some(other) => {
            return Err(invalid("key_on", format!("--key-on {other:?}: write hub or agent")));
        }
    };
    let renewal_policy = args.renew_at.as_deref().map(check_policy).transpose()?;
    if let Some(f) = &args.fallback_account {
        account::load(store, f).await.map_err(|e| at_field(e, "fallback_account"))?;
    }
    if args.preferred_chain.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err(invalid(
            "preferred_chain",
            "--preferred-chain must name an issuer common name",
        ));
    }
    let now = now_secs() * 1000;
    // The certificate and its tasks are stored together, with the audit entry.
    store
        .insert_cert_with_tasks(
            &CertRecord {
                name: args.name.clone(),
                account_name: Some(args.account.clone()),
                identifiers: ids.clone(),
                key_type: if key_on_agent {
                    certhub_core::agent::KEY_ON_AGENT.into()
                } else if csr_pem.is_some() {
                    "csr".into()
                } else {
                    key_type.to_string()
                },
                reuse_key: args.reuse_key,
                csr_pem: csr_pem.map(|(p, _)| p),
                profile: args.profile.clone(),
                preferred_chain: args.preferred_chain.clone(),
                challenges: specs.clone(),
                renewal_policy,
                fallback_account: args.fallback_account.clone(),
                fallback_after: args
                    .fallback_after
                    .map_or(certhub_store::DEFAULT_FALLBACK_AFTER, i64::from),
                created_at: now,
                updated_at: now,
                ..CertRecord::default()
            },
            &tasks,
            &targets,
            Some(audit),
        )
        .await?;
    let validation =
        assignment.iter().map(|(id, i)| (id.clone(), specs[*i].config.kind())).collect();
    Ok(Added { validation, tasks, notes })
}

/// Challenge SPECs as given, parsed.
pub fn parse_challenges(specs: &[String]) -> anyhow::Result<Vec<ChallengeSpec>> {
    specs
        .iter()
        .map(|s| ChallengeSpec::parse(s))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("challenges", e))
}

/// A renewal policy as given (`75%`, `30d`), checked.
pub fn check_policy(p: &str) -> anyhow::Result<String> {
    parse_policy(p).map_err(|e| invalid("renew_at", format!("--renew-at {e}")))
}

/// A renewal policy (`75%`, `30d`) as given, trimmed, or why it is not one: the one parser
/// of policies, for the CLI's flags, the API and the pages.
pub fn parse_policy(p: &str) -> Result<String, String> {
    p.parse::<certhub_core::renewal::RenewalPolicy>().map_err(|e| e.to_string())?;
    Ok(p.trim().to_string())
}

/// Changes how a certificate is ordered and renewed, with `audit`'s entry (what changed as
/// its detail); what changed, in words.
pub async fn apply_set(
    store: &Store,
    name: &str,
    args: &CertChanges,
    audit: AuditEntry,
) -> anyhow::Result<Vec<String>> {
    let mut c = load(store, name).await?;
    let mut changes = Vec::new();
    if let Some(a) = &args.account {
        account::load(store, a).await.map_err(|e| at_field(e, "account"))?;
        c.account_name = Some(a.clone());
        changes.push(format!("orders with account {a}"));
    }
    if !args.challenges.is_empty() {
        let specs = parse_challenges(&args.challenges)?;
        crate::credentials::check_specs(store, &specs).await?;
        c.challenges = specs.clone();
        changes.push(format!("{} challenge configuration(s)", specs.len()));
    }
    if c.account_name.is_some() {
        // The identifiers must all be served by the (new) challenge configuration.
        let ids: Vec<Identifier> = c.identifiers.clone();
        let specs: Vec<ChallengeSpec> = c.challenges.clone();
        assign_challenges(&ids, &specs)
            .map_err(|v| at_field(violations(name, &v), "challenges"))?;
    }
    match args.renew_at.as_deref() {
        None => {}
        Some("default") => {
            c.renewal_policy = None;
            changes.push("renews by the default policy".into());
        }
        Some(p) => {
            c.renewal_policy = Some(check_policy(p)?);
            changes.push(format!("renews at {p}"));
        }
    }
    match args.fallback_account.as_deref() {
        None => {}
        Some("none") => {
            c.fallback_account = None;
            changes.push("has no fallback account".into());
        }
        Some(f) => {
            account::load(store, f).await.map_err(|e| at_field(e, "fallback_account"))?;
            c.fallback_account = Some(f.to_string());
            changes.push(format!("falls back to account {f}"));
        }
    }
    if let Some(n) = args.fallback_after {
        c.fallback_after = i64::from(n);
        changes.push(format!("falls back after {n} failures in a row"));
    }
    if changes.is_empty() {
        return Err(fail(Kind::Invalid, "nothing to change; see `certhub cert set --help`"));
    }
    // A refusal for good was of the certificate as it was: the changed one is tried again.
    if c.next_attempt_at == Some(certhub_store::RETRY_STOPPED) {
        c.next_attempt_at = None;
    }
    store.update_cert(&c, Some(&audit.with_detail(changes.join(", ")))).await?;
    Ok(changes)
}

/// Revokes the latest issued certificate of `name` at its CA (signed by the account, or by
/// the certificate's own key) and records it with `audit`'s entry; returns its serial.
pub async fn revoke_latest(
    store: &Store,
    name: &str,
    reason: Option<&str>,
    with_cert_key: bool,
    audit: AuditEntry,
    acme: &certhub_acme::ClientConfig,
) -> anyhow::Result<String> {
    let c = load(store, name).await?;
    let reason = match reason {
        Some(r) => Some(r.parse::<RevocationReason>().map_err(|e| invalid("reason", e))?),
        None => None,
    };
    let issued = store.latest_issued(name).await?.ok_or_else(|| {
        fail(Kind::NotFound, format!("certificate {name} has no issued certificate to revoke"))
    })?;
    if issued.revoked_at.is_some() {
        return Err(fail(
            Kind::Conflict,
            format!("certificate {} (serial {}) is already revoked", name, issued.serial_hex),
        ));
    }
    let blocks = split_pem_chain(&issued.chain_pem)?;
    let leaf = blocks.first().ok_or_else(|| anyhow!("the stored chain is empty"))?;
    let rec = account::load(store, acme_account(&c)?).await?;
    if with_cert_key {
        if issued.key_pkcs8.is_empty() {
            return Err(invalid(
                "with_cert_key",
                "--with-cert-key needs the certificate's key, and it was ordered from your CSR",
            ));
        }
        let client = account::connect(&rec, acme).await?;
        let key = certhub_acme::SigningKey::from_pkcs8(&issued.key_pkcs8)?;
        let done = client.revoke_with_certificate_key(leaf, &key, reason).await;
        already_revoked(done).map_err(|e| {
            let refused = !e.is_retryable() && e.problem().is_some();
            let e = anyhow::Error::new(e).context("the CA refused the revocation");
            if refused {
                // Not every CA accepts a request signed by the certificate's key.
                e.context(
                    "this CA may not accept revocation signed with the certificate's key; \
                     revoke with the account key instead (without --with-cert-key)",
                )
            } else {
                e
            }
        })?;
    } else {
        let acct = account::open(&rec, acme).await?;
        already_revoked(acct.revoke(leaf, reason).await)
            .context("the CA refused the revocation")?;
    }
    let code = reason.map(|r| i64::from(r.code()));
    let audit = audit.with_detail(issued.serial_hex.clone());
    store.set_revoked(issued.id, now_secs() * 1000, code, Some(&audit)).await?;
    store.set_cert_state(name, certhub_store::CertState::Revoked, None).await?;
    let reason_name = reason.map(|r| format!("{r:?}")).unwrap_or_else(|| "no reason given".into());
    store
        .record_event(
            name,
            certhub_store::EventKind::Revoked,
            Some(&format!("serial {}, {reason_name}", issued.serial_hex)),
        )
        .await?;
    Ok(issued.serial_hex)
}

/// Probes each identifier of certificate `name` the way the CA would validate it, without
/// ordering: one entry per identifier, saying whether it works and why.
pub async fn probe_all(
    solvers: &Solvers,
    dns: certhub_challenge::dns::DnsCheckConfig,
    store: &Store,
    name: &str,
    ports: certhub_challenge::probe::ProbePorts,
) -> anyhow::Result<Vec<Probe>> {
    use certhub_challenge::dns::PropagationChecker;
    use certhub_challenge::probe::probe;
    let cert = load(store, name).await?;
    let ids: Vec<Identifier> = cert.identifiers.clone();
    let specs: Vec<ChallengeSpec> = cert.challenges.clone();
    let assignment = assign_challenges(&ids, &specs).map_err(|v| violations(name, &v))?;
    let checker = PropagationChecker::new(dns);
    let mut report = Vec::new();
    for (id, i) in &assignment {
        let spec = &specs[*i];
        let outcome = match crate::credentials::resolve(store, spec).await {
            Ok(spec) => probe(solvers, &checker, name, &spec, id, ports).await,
            Err(e) => Err(format!("{e:#}")),
        };
        report.push(Probe {
            identifier: id.to_string(),
            challenge: spec.config.kind(),
            works: outcome.is_ok(),
            detail: match outcome {
                Ok(m) | Err(m) => m,
            },
        });
    }
    Ok(report)
}

/// Runs `work` at most `jobs` at a time, each as a task of its own so that what they do
/// between waits (signing, key generation, parsing) spreads over the runtime's threads;
/// their outputs in the order they finish.
pub async fn at_most<T: Send + 'static>(
    jobs: usize,
    work: impl IntoIterator<Item = impl Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    futures::stream::iter(work)
        .map(tokio::spawn)
        .buffer_unordered(jobs.max(1))
        .map(|joined| joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
        .collect()
        .await
}

/// A revocation the CA says was done already counts as done: the answer to an earlier try
/// may have been lost, or someone revoked the certificate elsewhere.
fn already_revoked(done: Result<(), certhub_acme::Error>) -> Result<(), certhub_acme::Error> {
    match done {
        Err(e) if e.problem().is_some_and(|p| p.is("alreadyRevoked")) => {
            tracing::info!("the CA says the certificate was revoked already");
            Ok(())
        }
        other => other,
    }
}
