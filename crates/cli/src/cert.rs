//! `certhub cert …`: managed certificates.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use certhub_core::cert::split_pem_chain;
use certhub_core::{ChallengeSpec, Identifier};
use certhub_engine::cert::at_most;
use certhub_engine::error::{Kind, fail, invalid};
use certhub_engine::records::load;
use certhub_engine::{Actor, CertChanges, NewCertificate, Progress, now_secs, rfc3339};
use certhub_store::{CertRecord, IssuedRecord, Store};
use serde_json::json;

use crate::args::{CertAdd, CertCommand, CertExport, CertRequest, CertRevoke, ExportFormat};
use crate::context::Context;
use crate::output::{print_json, table};

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
        CertCommand::Revoke(args) => revoke(&store, &ctx.acme, args).await,
        CertCommand::History(args) => history(&store, &args.name, args.json).await,
        CertCommand::Preview(args) => crate::preview::run(ctx, &store, args).await,
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

pub(crate) async fn add(store: &Store, mut args: CertAdd) -> anyhow::Result<()> {
    let audit = Actor::cli().entry("cert.create", &args.name);
    if let Some(agent) = &args.from_agent {
        let a = store.agent(agent).await?.ok_or_else(|| {
            invalid(
                "from_agent",
                format!("--from-agent {agent}: no agent has that name (`certhub agent list`)"),
            )
        })?;
        if a.discovered.is_empty() {
            return Err(invalid(
                "from_agent",
                format!(
                    "agent {agent} has reported no names: start it with `certhub agent run \
                     --discover nginx` (or apache)"
                ),
            ));
        }
        for name in a.discovered {
            if !args.domains.contains(&name) {
                args.domains.push(name);
            }
        }
        let target = format!("agent:{agent}");
        if !args.targets.contains(&target) {
            args.targets.push(target);
        }
    }
    let csr = match &args.csr {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the CSR {}", path.display()))
                .map_err(|e| invalid("csr", format!("{e:#}")))?;
            Some((path.display().to_string(), bytes))
        }
        None => None,
    };
    let new = NewCertificate {
        name: args.name.clone(),
        account: args.account.clone(),
        domains: args.domains.clone(),
        ips: args.ips.clone(),
        key_type: Some(args.key_type.clone()),
        reuse_key: args.reuse_key,
        challenges: args.challenges.clone(),
        deploy: args.deploy.clone(),
        targets: args.targets.clone(),
        key_on: Some(args.key_on.clone()),
        renew_at: args.renewal.renew_at.clone(),
        csr,
        profile: args.profile.clone(),
        preferred_chain: args.preferred_chain.clone(),
        allow_single_label: args.allow_single_label,
        fallback_account: args.renewal.fallback_account.clone(),
        fallback_after: args.renewal.fallback_after,
    };
    let added = certhub_engine::cert::create(store, &new, &audit).await?;
    for note in &added.notes {
        eprintln!("note: {note}");
    }
    println!("Certificate {} added:", args.name);
    for (id, kind) in &added.validation {
        println!("  {id}  {kind}");
    }
    for t in &added.tasks {
        println!("  then {} ({}): {}", t.name, t.trigger, t.action.describe());
    }
    println!("Request it with: certhub cert request {}", args.name);
    Ok(())
}

/// Says how work goes: spinners on a terminal, plain lines on stderr otherwise.
pub(crate) struct Reporter {
    bars: Option<(
        indicatif::MultiProgress,
        std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
    )>,
}

impl Reporter {
    /// A reporter with a spinner for each of `names` (more come with [`Progress::begin`]).
    pub(crate) fn new(names: &[String]) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bars: None };
        }
        let reporter =
            Self { bars: Some((indicatif::MultiProgress::new(), std::sync::Mutex::default())) };
        reporter.begin(names);
        reporter
    }

    /// Whether steps show as spinners (stderr is a terminal).
    pub(crate) fn on_terminal(&self) -> bool {
        self.bars.is_some()
    }
}

impl Progress for Reporter {
    fn begin(&self, names: &[String]) {
        let Some((multi, bars)) = &self.bars else {
            return;
        };
        let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
        for n in names {
            bars.entry(n.clone()).or_insert_with(|| {
                let bar = multi.add(indicatif::ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(n.clone());
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
        }
    }

    fn step(&self, cert: &str, message: &str) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.lock().unwrap_or_else(|p| p.into_inner()).get(cert) {
                    bar.set_message(message.to_string());
                }
            }
            None => eprintln!("{cert}: {message}"),
        }
    }

    fn finish(&self, cert: &str, message: &str) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.lock().unwrap_or_else(|p| p.into_inner()).get(cert) {
                    bar.finish_with_message(message.to_string());
                }
            }
            None => eprintln!("{cert}: {message}"),
        }
    }

    fn warn(&self, message: &str) {
        eprintln!("{message}");
    }
}

async fn request(ctx: &Context, store: Store, args: CertRequest) -> anyhow::Result<()> {
    let mut names = args.names.clone();
    names.dedup();
    for n in &names {
        load(&store, n).await?;
    }
    let engine = Arc::new(ctx.engine(store));
    let reporter = Arc::new(Reporter::new(&names));
    let timeout = Duration::from_secs(args.timeout);
    // Each outcome is said once: an issued certificate on stdout below, a failure in the
    // error at the end. Off a terminal, where no spinner shows them as they come, only the
    // reasons of several failures are written as they come, since the error names just them.
    let several = names.len() > 1;
    let work = names.iter().map(|name| {
        let (engine, reporter, name) = (engine.clone(), reporter.clone(), name.clone());
        async move {
            let r = engine.request(&name, timeout, &*reporter).await;
            match &r {
                Ok(i) if reporter.on_terminal() => reporter.finish(
                    &name,
                    &format!(
                        "valid: serial {}, expires {}",
                        i.serial_hex,
                        rfc3339(i.not_after / 1000)
                    ),
                ),
                Err(e) if reporter.on_terminal() || several => {
                    reporter.finish(&name, &format!("failed: {e}"))
                }
                _ => {}
            }
            (name, r)
        }
    });
    let results: Vec<(String, Result<IssuedRecord, certhub_engine::Error>)> =
        at_most(usize::from(args.jobs), work).await;
    for (name, r) in &results {
        if let Ok(i) = r {
            let expires = rfc3339(i.not_after / 1000);
            println!("{name}: valid, serial {}, expires {expires}", i.serial_hex);
        }
    }
    let total = results.len();
    let mut failed: Vec<(String, certhub_engine::Error)> =
        results.into_iter().filter_map(|(name, r)| r.err().map(|e| (name, e))).collect();
    match failed.len() {
        0 => Ok(()),
        1 if total == 1 => {
            let (name, e) = failed.remove(0);
            Err(anyhow::Error::new(e).context(format!("certificate {name} was not issued")))
        }
        _ => {
            let code = crate::exit::code_for_all(failed.iter().map(|(_, e)| e));
            let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
            Err(crate::exit::fail(
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
        let state = c.effective_state(issued.as_ref(), now_secs() * 1000);
        out.push(cert_json(c, issued.as_ref()));
        let ids: Vec<Identifier> = c.identifiers.clone();
        rows.push(vec![
            c.name.clone(),
            state.to_string(),
            issued.as_ref().map(|i| rfc3339(i.not_after / 1000)).unwrap_or_else(|| "-".into()),
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

/// `certhub cert set`.
async fn set(store: &Store, args: crate::args::CertSet) -> anyhow::Result<()> {
    let changes = CertChanges {
        account: args.account,
        challenges: args.challenges,
        renew_at: args.renew_at,
        fallback_account: args.fallback_account,
        fallback_after: args.fallback_after,
    };
    if !args.targets.is_empty() {
        let targets: Vec<String> =
            args.targets.into_iter().filter(|t| t.trim() != "none").collect();
        let audit = Actor::cli().entry("cert.targets", &args.name);
        let set = certhub_engine::agents::set_targets(store, &args.name, &targets, audit).await?;
        let words: Vec<String> = set.iter().map(ToString::to_string).collect();
        match words.is_empty() {
            true => println!("Certificate {} is deployed by the hub.", args.name),
            false => println!("Certificate {} is deployed on {}.", args.name, words.join(", ")),
        }
        if changes.is_empty() {
            return Ok(());
        }
    }
    let audit = Actor::cli().entry("cert.update", &args.name);
    let changes = certhub_engine::cert::apply_set(store, &args.name, &changes, audit).await?;
    println!("Certificate {} now {}.", args.name, changes.join(", "));
    Ok(())
}

fn cert_json(c: &CertRecord, issued: Option<&IssuedRecord>) -> serde_json::Value {
    let specs: Vec<ChallengeSpec> = c.challenges.clone();
    let ids: Vec<Identifier> = c.identifiers.clone();
    let sans: Vec<Identifier> = issued.map(|i| i.sans.clone()).unwrap_or_default();
    json!({
        "name": c.name,
        "state": c.effective_state(issued, now_secs() * 1000),
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
            "next_attempt": c
                .next_attempt_at
                .filter(|&t| t != certhub_store::RETRY_STOPPED)
                .map(|ms| rfc3339(ms / 1000)),
            "retries_stopped": c.next_attempt_at == Some(certhub_store::RETRY_STOPPED),
        },
        "serial": issued.map(|i| i.serial_hex.clone()),
        "issuer": issued.map(|i| i.issuer.clone()),
        "sans": sans.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "not_before": issued.map(|i| rfc3339(i.not_before / 1000)),
        "not_after": issued.map(|i| rfc3339(i.not_after / 1000)),
        "revoked": issued.and_then(|i| i.revoked_at).map(|ms| rfc3339(ms / 1000)),
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
    if r["retries_stopped"] == true {
        println!(
            "{:<16} {} in a row; {}",
            "Failures:",
            r["failures"],
            certhub_engine::issue::RETRIES_STOPPED
        );
    } else if r["failures"].as_i64().unwrap_or(0) > 0 {
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
            Kind::NotFound,
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
                return Err(invalid(
                    "format",
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

async fn revoke(
    store: &Store,
    acme: &certhub_acme::ClientConfig,
    args: CertRevoke,
) -> anyhow::Result<()> {
    let audit = Actor::cli().entry("cert.revoke", &args.name);
    let reason = args.reason.as_deref();
    let serial = certhub_engine::cert::revoke_latest(
        store,
        &args.name,
        reason,
        args.with_cert_key,
        audit,
        acme,
    )
    .await?;
    println!("Certificate {} (serial {serial}) revoked", args.name);
    Ok(())
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
        .map(|e| {
            vec![rfc3339(e.at / 1000), e.kind.to_string(), e.detail.clone().unwrap_or_default()]
        })
        .collect();
    table(&["WHEN", "EVENT", "DETAIL"], &rows);
    Ok(())
}

async fn test(ctx: &Context, store: &Store, args: crate::args::CertTest) -> anyhow::Result<()> {
    let ports = certhub_challenge::probe::ProbePorts { http: args.http_port, tls: args.tls_port };
    let report = ctx.engine(store.clone()).test(&args.name, Some(ports)).await?;
    if args.json {
        print_json(&json!(report));
    } else {
        for r in &report {
            let word = if r.works { "ok  " } else { "FAIL" };
            println!("{word}  {}  {}: {}", r.identifier, r.challenge, r.detail);
        }
    }
    // An identifier has a line for its challenge and one for CAA per account.
    let ids: std::collections::BTreeSet<&str> =
        report.iter().map(|r| r.identifier.as_str()).collect();
    let failing: std::collections::BTreeSet<&str> =
        report.iter().filter(|r| !r.works).map(|r| r.identifier.as_str()).collect();
    if failing.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{} of {} identifiers would fail validation", failing.len(), ids.len()))
    }
}
