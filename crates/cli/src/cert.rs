//! `certhub cert …`: managed certificates.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use certhub_acme::RevocationReason;
use certhub_challenge::Solvers;
use certhub_core::cert::split_pem_chain;
use certhub_core::csr::ParsedCsr;
use certhub_core::identifier::{RequestRules, assign_challenges, normalize};
use certhub_core::{ChallengeSpec, Identifier};
use certhub_store::{AuditEntry, CertRecord, IssuedRecord, Store};
use futures::StreamExt as _;
use serde_json::json;

use crate::Context;
use crate::account::{self, check_name, parse_key_type};
use crate::args::{CertAdd, CertCommand, CertExport, CertRequest, CertRevoke, ExportFormat};
use crate::exit::{INVALID_INPUT, NOT_FOUND, fail};
use crate::issue::{Issuer, Progress, violations};
use crate::output::{Actor, now_secs, print_json, rfc3339, table};

pub async fn run(ctx: &Context, cmd: CertCommand) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    // What the audit log records of a command that succeeded: every change, and every copy
    // of a key written out.
    // (Changes are written with their entries; a copy of a key changes nothing.)
    let audited = match &cmd {
        CertCommand::Export(a) => Some(("cert.key-export", a.name.clone())),
        _ => None,
    };
    let result = match cmd {
        CertCommand::Add(args) => add(&store, *args).await,
        CertCommand::Request(args) => request(ctx, store.clone(), args).await,
        CertCommand::List(args) => list(&store, args.json).await,
        CertCommand::Show(args) => show(&store, &args.name, args.json).await,
        CertCommand::Export(args) => export(&store, args).await,
        CertCommand::Revoke(args) => revoke(&store, args).await,
        CertCommand::History(args) => history(&store, &args.name, args.json).await,
        CertCommand::Preview(args) => crate::preview::run(&store, args).await,
        CertCommand::Test(args) => test(ctx, &store, args).await,
        CertCommand::Import(args) => crate::import::run(&store, *args).await,
        CertCommand::Set(args) => set(&store, *args).await,
    };
    // An export without a key (a certificate ordered from the owner's CSR) copies no secret.
    let keyless = match &audited {
        Some(("cert.key-export", name)) if result.is_ok() => {
            store.latest_issued(name).await?.is_none_or(|i| i.key_pkcs8.is_empty())
        }
        _ => false,
    };
    crate::output::audit_done(&store, result, audited.filter(|_| !keyless)).await
}

async fn load(store: &Store, name: &str) -> anyhow::Result<CertRecord> {
    store.cert(name).await?.ok_or_else(|| {
        fail(NOT_FOUND, format!("no certificate named {name:?} (see `certhub cert list`)"))
    })
}

pub(crate) async fn add(store: &Store, args: CertAdd) -> anyhow::Result<()> {
    let audit = Actor::cli().entry("cert.create", &args.name);
    let (validation, tasks) = create(store, &args, &audit).await?;
    println!("Certificate {} added:", args.name);
    for (id, kind) in &validation {
        println!("  {id}  {kind}");
    }
    for t in &tasks {
        println!("  then {} ({}): {}", t.name, t.trigger, t.action.describe());
    }
    println!("Request it with: certhub cert request {}", args.name);
    Ok(())
}

/// Checks and stores the managed certificate `args` describes, with `audit`'s entry; returns
/// how each identifier will be validated and the deployment tasks.
pub(crate) async fn create(
    store: &Store,
    args: &CertAdd,
    audit: &AuditEntry,
) -> anyhow::Result<(Vec<(Identifier, certhub_core::ChallengeKind)>, Vec<certhub_core::DeployTask>)>
{
    check_name("certificate", &args.name)?;
    account::load(store, &args.account).await?;
    if store.cert(&args.name).await?.is_some() {
        return Err(fail(
            INVALID_INPUT,
            format!("a certificate named {:?} already exists", args.name),
        ));
    }
    let key_type = parse_key_type(&args.key_type)?;
    let csr_pem = match &args.csr {
        Some(path) => {
            if !args.domains.is_empty() || !args.ips.is_empty() {
                return Err(fail(
                    INVALID_INPUT,
                    "with --csr the identifiers come from the CSR; drop -d and --ip",
                ));
            }
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the CSR {}", path.display()))
                .map_err(|e| fail(INVALID_INPUT, format!("{e:#}")))?;
            let csr = ParsedCsr::parse(&bytes).map_err(|e| {
                fail(INVALID_INPUT, format!("{} is not a usable CSR: {e}", path.display()))
            })?;
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
        return Err(fail(
            INVALID_INPUT,
            "name at least one identifier with -d DOMAIN or --ip ADDR (or bring a --csr)",
        ));
    }
    let rules = RequestRules { public_ca: !args.allow_single_label };
    let normalized = normalize(&inputs, &rules).map_err(|v| violations(&args.name, &v))?;
    for note in &normalized.notes {
        eprintln!("note: {}", note.message);
    }
    let specs = parse_challenges(&args.challenges)?;
    let ids = normalized.identifiers;
    let assignment = assign_challenges(&ids, &specs).map_err(|v| violations(&args.name, &v))?;
    let tasks = crate::deploy::parse_specs(&args.deploy, &[])?;
    let renewal_policy = args.renewal.renew_at.as_deref().map(check_policy).transpose()?;
    if let Some(f) = &args.renewal.fallback_account {
        account::load(store, f).await?;
    }
    if args.preferred_chain.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err(fail(INVALID_INPUT, "--preferred-chain must name an issuer common name"));
    }
    let now = now_secs() * 1000;
    // The certificate and its tasks are stored together, with the audit entry.
    let stored_tasks = crate::deploy::task_values(&tasks)?;
    store
        .insert_cert_with_tasks(
            &CertRecord {
                name: args.name.clone(),
                account_name: Some(args.account.clone()),
                identifiers: json!(ids),
                key_type: if csr_pem.is_some() { "csr".into() } else { key_type.to_string() },
                reuse_key: args.reuse_key,
                csr_pem: csr_pem.map(|(p, _)| p),
                profile: args.profile.clone(),
                preferred_chain: args.preferred_chain.clone(),
                challenges: serde_json::to_value(&specs)?,
                renewal_policy,
                fallback_account: args.renewal.fallback_account.clone(),
                fallback_after: args
                    .renewal
                    .fallback_after
                    .map_or(certhub_store::DEFAULT_FALLBACK_AFTER, i64::from),
                created_at: now,
                updated_at: now,
                ..CertRecord::default()
            },
            &stored_tasks,
            Some(audit),
        )
        .await?;
    let validation =
        assignment.iter().map(|(id, i)| (id.clone(), specs[*i].config.kind())).collect();
    Ok((validation, tasks))
}

/// Says how work goes: spinners on a terminal, plain lines otherwise, or for the hub's
/// own work, the log (the hub's output is its start banner and nothing else).
pub(crate) struct Reporter {
    bars: Option<(
        indicatif::MultiProgress,
        std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
    )>,
    /// Everything goes to the log (tracing), nothing to stdout or stderr.
    logging: bool,
}

impl Reporter {
    /// A reporter for the hub's own work: every line to the log.
    pub(crate) fn logging() -> Self {
        Self { bars: None, logging: true }
    }

    pub(crate) fn new(names: &[String]) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bars: None, logging: false };
        }
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bars = names
            .iter()
            .map(|n| {
                let bar = multi.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(n.clone());
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(120));
                (n.clone(), bar)
            })
            .collect();
        Self { bars: Some((multi, std::sync::Mutex::new(bars))), logging: false }
    }

    /// A result line: stdout, or the log.
    pub(crate) fn say(&self, line: &str) {
        if self.logging {
            tracing::info!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// A warning: stderr, or the log (which names it a warning itself).
    pub(crate) fn warn(&self, line: &str) {
        if self.logging {
            tracing::warn!("{}", line.strip_prefix("warning: ").unwrap_or(line));
        } else {
            eprintln!("{line}");
        }
    }

    /// Whether steps show as spinners (stderr is a terminal).
    pub(crate) fn on_terminal(&self) -> bool {
        self.bars.is_some()
    }

    pub(crate) fn finish(&self, cert: &str, message: &str) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.lock().unwrap_or_else(|p| p.into_inner()).get(cert) {
                    bar.finish_with_message(message.to_string());
                }
            }
            None if self.logging => tracing::info!(cert, "{message}"),
            None => eprintln!("{cert}: {message}"),
        }
    }
}

impl Progress for Reporter {
    fn step(&self, cert: &str, message: &str) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.lock().unwrap_or_else(|p| p.into_inner()).get(cert) {
                    bar.set_message(message.to_string());
                }
            }
            None if self.logging => tracing::info!(cert, "{message}"),
            None => eprintln!("{cert}: {message}"),
        }
    }
}

/// Runs `work` at most `jobs` at a time, each as a task of its own so that what they do
/// between waits (signing, key generation, parsing) spreads over the runtime's threads;
/// their outputs in the order they finish.
pub(crate) async fn at_most<T: Send + 'static>(
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

async fn request(ctx: &Context, store: Store, args: CertRequest) -> anyhow::Result<()> {
    let mut names = args.names.clone();
    names.dedup();
    for n in &names {
        load(&store, n).await?;
    }
    let issuer = Arc::new(Issuer::new(store, ctx.solvers.clone(), &ctx.data_dir));
    let reporter = Arc::new(Reporter::new(&names));
    let timeout = Duration::from_secs(args.timeout);
    // Each outcome is said once: an issued certificate on stdout below, a failure in the
    // error at the end. Off a terminal, where no spinner shows them as they come, only the
    // reasons of several failures are written as they come, since the error names just them.
    let several = names.len() > 1;
    let work = names.iter().map(|name| {
        let (issuer, reporter, name) = (issuer.clone(), reporter.clone(), name.clone());
        async move {
            let r = issuer.request(&name, timeout, &*reporter).await;
            match &r {
                Ok(i) if reporter.on_terminal() => reporter.finish(
                    &name,
                    &format!("valid: serial {}, expires {}", i.serial_hex, rfc3339(i.not_after)),
                ),
                Err(e) if reporter.on_terminal() || several => {
                    reporter.finish(&name, &format!("failed: {e:#}"))
                }
                _ => {}
            }
            (name, r)
        }
    });
    let results: Vec<(String, anyhow::Result<IssuedRecord>)> =
        at_most(usize::from(args.jobs), work).await;
    for (name, r) in &results {
        if let Ok(i) = r {
            println!("{name}: valid, serial {}, expires {}", i.serial_hex, rfc3339(i.not_after));
        }
    }
    let total = results.len();
    let mut failed: Vec<(String, anyhow::Error)> =
        results.into_iter().filter_map(|(name, r)| r.err().map(|e| (name, e))).collect();
    match failed.len() {
        0 => Ok(()),
        1 if total == 1 => {
            let (name, e) = failed.remove(0);
            Err(e.context(format!("certificate {name} was not issued")))
        }
        _ => {
            let codes: Vec<u8> = failed.iter().map(|(_, e)| crate::exit::code_for(e)).collect();
            let code = if codes.windows(2).all(|w| w[0] == w[1]) { codes[0] } else { 1 };
            let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
            Err(fail(
                code,
                format!(
                    "{} of {total} certificates were not issued: {}",
                    failed.len(),
                    names.join(", ")
                ),
            ))
        }
    }
}

async fn list(store: &Store, as_json: bool) -> anyhow::Result<()> {
    let certs = store.certs().await?;
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for c in &certs {
        let issued = store.latest_issued(&c.name).await?;
        let state = c.effective_state(issued.as_ref(), now_secs());
        out.push(cert_json(c, issued.as_ref()));
        let ids: Vec<Identifier> =
            serde_json::from_value(c.identifiers.clone()).unwrap_or_default();
        rows.push(vec![
            c.name.clone(),
            state,
            issued.as_ref().map(|i| rfc3339(i.not_after)).unwrap_or_else(|| "-".into()),
            c.account_name.clone().unwrap_or_else(|| "-".into()),
            ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        ]);
    }
    if as_json {
        print_json(&json!(out));
    } else {
        table(&["NAME", "STATE", "EXPIRES", "ACCOUNT", "IDENTIFIERS"], &rows);
    }
    Ok(())
}

/// Challenge SPECs as given on the command line, parsed.
pub(crate) fn parse_challenges(specs: &[String]) -> anyhow::Result<Vec<ChallengeSpec>> {
    specs
        .iter()
        .map(|s| ChallengeSpec::parse(s))
        .collect::<Result<_, _>>()
        .map_err(|e| fail(INVALID_INPUT, e))
}

/// A renewal policy as given (`75%`, `30d`), checked.
pub(crate) fn check_policy(p: &str) -> anyhow::Result<String> {
    p.parse::<certhub_core::renewal::RenewalPolicy>()
        .map_err(|e| fail(INVALID_INPUT, format!("--renew-at {e}")))?;
    Ok(p.trim().to_string())
}

/// `certhub cert set`.
async fn set(store: &Store, args: crate::args::CertSet) -> anyhow::Result<()> {
    let changes = apply_set(store, &args, Actor::cli().entry("cert.update", &args.name)).await?;
    println!("Certificate {} now {}.", args.name, changes.join(", "));
    Ok(())
}

/// Changes how a certificate is ordered and renewed, with `audit`'s entry (what changed as
/// its detail); what changed, in words.
pub(crate) async fn apply_set(
    store: &Store,
    args: &crate::args::CertSet,
    audit: AuditEntry,
) -> anyhow::Result<Vec<String>> {
    let mut c = store.cert(&args.name).await?.ok_or_else(|| {
        fail(NOT_FOUND, format!("no certificate named {:?} (see `certhub cert list`)", args.name))
    })?;
    let mut changes = Vec::new();
    if let Some(a) = &args.account {
        account::load(store, a).await?;
        c.account_name = Some(a.clone());
        changes.push(format!("orders with account {a}"));
    }
    if !args.challenges.is_empty() {
        let specs = parse_challenges(&args.challenges)?;
        c.challenges = serde_json::to_value(&specs)?;
        changes.push(format!("{} challenge configuration(s)", specs.len()));
    }
    if c.account_name.is_some() {
        // The identifiers must all be served by the (new) challenge configuration.
        let ids: Vec<Identifier> = serde_json::from_value(c.identifiers.clone())?;
        let specs: Vec<ChallengeSpec> = serde_json::from_value(c.challenges.clone())?;
        assign_challenges(&ids, &specs).map_err(|v| violations(&args.name, &v))?;
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
            account::load(store, f).await?;
            c.fallback_account = Some(f.to_string());
            changes.push(format!("falls back to account {f}"));
        }
    }
    if let Some(n) = args.fallback_after {
        c.fallback_after = i64::from(n);
        changes.push(format!("falls back after {n} failures in a row"));
    }
    if changes.is_empty() {
        return Err(fail(INVALID_INPUT, "nothing to change; see `certhub cert set --help`"));
    }
    store.update_cert(&c, Some(&audit.with_detail(changes.join(", ")))).await?;
    Ok(changes)
}

/// The ACME account that orders `c`: an imported certificate without one is watched and
/// deployed, but not ordered, renewed or revoked through ACME.
pub(crate) fn acme_account(c: &CertRecord) -> anyhow::Result<&str> {
    c.account_name.as_deref().ok_or_else(|| {
        fail(
            INVALID_INPUT,
            format!(
                "certificate {} was imported and has no ACME account: certhub watches its expiry \
                 and runs its deployment tasks, but cannot order or revoke it (import it again \
                 with --account and --challenge to have it renewed by ACME)",
                c.name
            ),
        )
    })
}

/// The account the next request of `c` orders with, and whether it is the fallback: the
/// fallback once `fallback_after` requests in a row have failed, else its own.
pub(crate) fn ordering_account(c: &CertRecord) -> anyhow::Result<(&str, bool)> {
    match (&c.fallback_account, c.failures >= c.fallback_after) {
        (Some(fallback), true) => Ok((fallback.as_str(), true)),
        _ => Ok((acme_account(c)?, false)),
    }
}

fn cert_json(c: &CertRecord, issued: Option<&IssuedRecord>) -> serde_json::Value {
    let specs: Vec<ChallengeSpec> =
        serde_json::from_value(c.challenges.clone()).unwrap_or_default();
    let ids: Vec<Identifier> = serde_json::from_value(c.identifiers.clone()).unwrap_or_default();
    let sans: Vec<Identifier> = issued
        .map(|i| serde_json::from_value(i.sans.clone()).unwrap_or_default())
        .unwrap_or_default();
    json!({
        "name": c.name,
        "state": c.effective_state(issued, now_secs()),
        "account": c.account_name,
        "identifiers": ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "key_type": c.key_type,
        "reuse_key": c.reuse_key,
        "csr": c.csr_pem.is_some(),
        "profile": c.profile,
        "preferred_chain": c.preferred_chain,
        "challenges": specs.iter().map(|s| json!({ "type": s.config.kind(), "domains": s.domains })).collect::<Vec<_>>(),
        "last_error": c.last_error,
        "renewal": {
            "policy": c.renewal_policy,
            "fallback_account": c.fallback_account,
            "fallback_after": c.fallback_after,
            "failures": c.failures,
            "next_attempt": c.next_attempt_at.map(|ms| rfc3339(ms / 1000)),
        },
        "serial": issued.map(|i| i.serial_hex.clone()),
        "issuer": issued.map(|i| i.issuer.clone()),
        "sans": sans.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "not_before": issued.map(|i| rfc3339(i.not_before)),
        "not_after": issued.map(|i| rfc3339(i.not_after)),
        "revoked": issued.and_then(|i| i.revoked_at).map(rfc3339),
    })
}

async fn show(store: &Store, name: &str, as_json: bool) -> anyhow::Result<()> {
    let c = load(store, name).await?;
    let issued = store.latest_issued(name).await?;
    let j = cert_json(&c, issued.as_ref());
    if as_json {
        print_json(&j);
        return Ok(());
    }
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    for (label, key) in [
        ("Certificate", "name"),
        ("State", "state"),
        ("Account", "account"),
        ("Identifiers", "identifiers"),
        ("Key type", "key_type"),
        ("Profile", "profile"),
        ("Preferred chain", "preferred_chain"),
        ("Serial", "serial"),
        ("Issuer", "issuer"),
        ("SANs", "sans"),
        ("Not before", "not_before"),
        ("Not after", "not_after"),
        ("Revoked", "revoked"),
        ("Last error", "last_error"),
    ] {
        println!("{:<16} {}", format!("{label}:"), s(&j[key]));
    }
    for spec in j["challenges"].as_array().into_iter().flatten() {
        println!("{:<16} {} {}", "Challenge:", s(&spec["type"]), s(&spec["domains"]));
    }
    let r = &j["renewal"];
    let policy = r["policy"].as_str().unwrap_or("default (renew --policy)");
    println!("{:<16} {policy}", "Renew at:");
    if let Some(f) = r["fallback_account"].as_str() {
        println!("{:<16} {f} after {} failures in a row", "Fallback:", r["fallback_after"]);
    }
    if r["failures"].as_i64().unwrap_or(0) > 0 {
        println!(
            "{:<16} {} in a row; next attempt after {}",
            "Failures:",
            r["failures"],
            s(&r["next_attempt"])
        );
    }
    Ok(())
}

fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    Ok(certhub_deploy::files::write_atomic(path, data, mode, Default::default())?)
}

async fn export(store: &Store, args: CertExport) -> anyhow::Result<()> {
    load(store, &args.name).await?;
    let issued = store.latest_issued(&args.name).await?.ok_or_else(|| {
        fail(
            NOT_FOUND,
            format!(
                "certificate {} has not been issued yet; run `certhub cert request {}`",
                args.name, args.name
            ),
        )
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let blocks = split_pem_chain(&issued.chain_pem)?;
    let to_pem = |der: &[u8]| certhub_core::pem_block("CERTIFICATE", der);
    let leaf = blocks.first().ok_or_else(|| anyhow!("the stored chain is empty"))?;
    let chain: String = blocks[1..].iter().map(|d| to_pem(d)).collect();
    let has_key = !issued.key_pkcs8.is_empty();
    match args.format {
        ExportFormat::Pem => {
            write_atomic(&args.out.join("cert.pem"), to_pem(leaf).as_bytes(), 0o644)?;
            write_atomic(&args.out.join("chain.pem"), chain.as_bytes(), 0o644)?;
            write_atomic(
                &args.out.join("fullchain.pem"),
                format!("{}{chain}", to_pem(leaf)).as_bytes(),
                0o644,
            )?;
            if has_key {
                let key_pem = zeroize::Zeroizing::new(certhub_core::pem_block(
                    "PRIVATE KEY",
                    &issued.key_pkcs8,
                ));
                write_atomic(&args.out.join("privkey.pem"), key_pem.as_bytes(), 0o600)?;
            }
            println!(
                "Wrote cert.pem, chain.pem, fullchain.pem{} to {}",
                if has_key { ", privkey.pem" } else { " (no key: it was ordered from your CSR)" },
                args.out.display()
            );
        }
        ExportFormat::Pkcs12 => {
            if !has_key {
                return Err(fail(
                    INVALID_INPUT,
                    "a PKCS#12 file needs the private key, and this certificate was ordered from your CSR",
                ));
            }
            let p12 = certhub_deploy::pkcs12::build(
                &args.name,
                &issued.key_pkcs8,
                &blocks,
                &args.password,
                args.legacy,
            )?;
            let path = args.out.join(format!("{}.p12", args.name));
            write_atomic(&path, &p12, 0o600)?;
            println!("Wrote {}", path.display());
        }
    }
    Ok(())
}

async fn revoke(store: &Store, args: CertRevoke) -> anyhow::Result<()> {
    let audit = Actor::cli().entry("cert.revoke", &args.name);
    let reason = args.reason.as_deref();
    let serial = revoke_latest(store, &args.name, reason, args.with_cert_key, audit).await?;
    println!("Certificate {} (serial {serial}) revoked", args.name);
    Ok(())
}

/// Revokes the latest issued certificate of `name` at its CA (signed by the account, or by
/// the certificate's own key) and records it with `audit`'s entry; returns its serial.
pub(crate) async fn revoke_latest(
    store: &Store,
    name: &str,
    reason: Option<&str>,
    with_cert_key: bool,
    audit: AuditEntry,
) -> anyhow::Result<String> {
    let c = load(store, name).await?;
    let reason = match reason {
        Some(r) => Some(r.parse::<RevocationReason>().map_err(|e| fail(INVALID_INPUT, e))?),
        None => None,
    };
    let issued = store.latest_issued(name).await?.ok_or_else(|| {
        fail(NOT_FOUND, format!("certificate {name} has no issued certificate to revoke"))
    })?;
    if issued.revoked_at.is_some() {
        return Err(fail(
            INVALID_INPUT,
            format!("certificate {} (serial {}) is already revoked", name, issued.serial_hex),
        ));
    }
    let blocks = split_pem_chain(&issued.chain_pem)?;
    let leaf = blocks.first().ok_or_else(|| anyhow!("the stored chain is empty"))?;
    let rec = account::load(store, acme_account(&c)?).await?;
    if with_cert_key {
        if issued.key_pkcs8.is_empty() {
            return Err(fail(
                INVALID_INPUT,
                "--with-cert-key needs the certificate's key, and it was ordered from your CSR",
            ));
        }
        let client = account::connect(&rec).await?;
        let key = certhub_acme::SigningKey::from_pkcs8(&issued.key_pkcs8)?;
        client.revoke_with_certificate_key(leaf, &key, reason).await.map_err(|e| {
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
        let acct = account::open(&rec).await?;
        acct.revoke(leaf, reason).await.context("the CA refused the revocation")?;
    }
    let code = reason.map(|r| i64::from(r.code()));
    let audit = audit.with_detail(issued.serial_hex.clone());
    store.set_revoked(issued.id, now_secs(), code, Some(&audit)).await?;
    store.set_cert_state(name, "revoked", None).await?;
    let reason_name = reason.map(|r| format!("{r:?}")).unwrap_or_else(|| "no reason given".into());
    store
        .record_event(
            name,
            "revoked",
            Some(&format!("serial {}, {reason_name}", issued.serial_hex)),
        )
        .await?;
    Ok(issued.serial_hex)
}

async fn history(store: &Store, name: &str, as_json: bool) -> anyhow::Result<()> {
    load(store, name).await?;
    let events = store.events_for(name).await?;
    if as_json {
        let list: Vec<serde_json::Value> = events
            .iter()
            .map(|e| json!({ "at": rfc3339(e.at / 1000), "event": e.kind, "detail": e.detail }))
            .collect();
        print_json(&json!(list));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| vec![rfc3339(e.at / 1000), e.kind.clone(), e.detail.clone().unwrap_or_default()])
        .collect();
    table(&["WHEN", "EVENT", "DETAIL"], &rows);
    Ok(())
}

async fn test(ctx: &Context, store: &Store, args: crate::args::CertTest) -> anyhow::Result<()> {
    let ports = certhub_challenge::probe::ProbePorts { http: args.http_port, tls: args.tls_port };
    let report = probe_all(&ctx.solvers, ctx.dns.clone(), store, &args.name, ports).await?;
    if args.json {
        print_json(&json!(report));
    } else {
        for r in &report {
            let word = if r["works"] == true { "ok  " } else { "FAIL" };
            println!(
                "{word}  {}  {}: {}",
                r["identifier"].as_str().unwrap_or_default(),
                r["challenge"].as_str().unwrap_or_default(),
                r["detail"].as_str().unwrap_or_default()
            );
        }
    }
    let failed = report.iter().filter(|r| r["works"] == false).count();
    if failed == 0 {
        Ok(())
    } else {
        Err(anyhow!("{failed} of {} identifiers would fail validation", report.len()))
    }
}

/// Probes each identifier of certificate `name` the way the CA would validate it, without
/// ordering: one entry per identifier, saying whether it works and why.
pub(crate) async fn probe_all(
    solvers: &Solvers,
    dns: certhub_challenge::dns::DnsCheckConfig,
    store: &Store,
    name: &str,
    ports: certhub_challenge::probe::ProbePorts,
) -> anyhow::Result<Vec<serde_json::Value>> {
    use certhub_challenge::dns::PropagationChecker;
    use certhub_challenge::probe::probe;
    let cert = load(store, name).await?;
    let ids: Vec<Identifier> = serde_json::from_value(cert.identifiers.clone())?;
    let specs: Vec<ChallengeSpec> = serde_json::from_value(cert.challenges.clone())?;
    let assignment = assign_challenges(&ids, &specs).map_err(|v| violations(name, &v))?;
    let checker = PropagationChecker::new(dns);
    let mut report = Vec::new();
    for (id, i) in &assignment {
        let spec = &specs[*i];
        let outcome = probe(solvers, &checker, spec, id, ports).await;
        report.push(json!({
            "identifier": id.to_string(),
            "challenge": spec.config.kind(),
            "works": outcome.is_ok(),
            "detail": match &outcome { Ok(m) | Err(m) => m.clone() },
        }));
    }
    Ok(report)
}
