//! The `certhub` binary: argument parsing and wiring.

mod account;
mod args;
mod cert;
mod deploy;
mod discover;
mod exit;
mod import;
mod output;
mod preview;
mod renew;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// mimalloc rather than the C library's allocator: the hub allocates on many threads (the
/// runtime's, and the database's, which hand rows to them), where glibc's arenas spend much
/// of a busy hub's time; measured in docs/benchmarks.md (fleet).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("certhub: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("certhub: {err:#}");
            if let Some(hint) = exit::hint_for(&err) {
                eprintln!("{hint}");
            }
            ExitCode::from(exit::code_for(&err))
        }
    }
}

fn init_tracing(verbose: u8) {
    // The TLS verifier logs each certificate it refuses as an error of its own; certhub
    // reports that refusal itself, once, so the verifier's line shows only with -vv.
    let default = match verbose {
        0 => "warn,rustls_platform_verifier=off",
        1 => "info,certhub=info,rustls_platform_verifier=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal, never in a log or a pipe.
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dns = certhub_challenge::dns::DnsCheckConfig {
        resolver: cli.dns_resolver,
        authoritative_port: cli.dns_port,
        ..Default::default()
    };
    let ctx = Context {
        data_dir: cli.data_dir.clone().unwrap_or_else(default_data_dir),
        database: cli.database.clone(),
        dns,
    };
    match cli.command {
        Command::Account(cmd) => account::run(&ctx, cmd).await,
        Command::Cert(cmd) => cert::run(&ctx, cmd).await,
        Command::Renew(args) => renew::run(&ctx, args).await,
        Command::Deploy(cmd) => deploy::run(&ctx, cmd).await,
        Command::Discover(args) => discover::run(&ctx, args).await,
        Command::Serve(args) => serve::run(&ctx, args).await,
        Command::Audit(args::AuditCommand::Verify(args)) => audit_verify(&ctx, args).await,
        Command::Audit(args::AuditCommand::Anchor(args)) => audit_anchor(&ctx, args).await,
    }
}

/// What every command needs.
#[derive(Clone)]
pub struct Context {
    pub data_dir: PathBuf,
    pub database: Option<String>,
    pub dns: certhub_challenge::dns::DnsCheckConfig,
}

impl Context {
    pub async fn store(&self) -> anyhow::Result<certhub_store::Store> {
        use anyhow::Context as _;
        let store = certhub_store::Store::open_database(&self.data_dir, self.database.as_deref());
        match &self.database {
            None => store.await.with_context(|| {
                format!("cannot open the data directory {}", self.data_dir.display())
            }),
            Some(_) => store.await.context("cannot open the PostgreSQL database"),
        }
    }

    /// The engine over `store`, for a command that orders or probes.
    pub fn engine(&self, store: certhub_store::Store) -> certhub_engine::Engine {
        certhub_engine::Engine::new(store, self.config(Default::default()))
    }

    /// The engine's configuration, with the ports a test probes.
    pub fn config(
        &self,
        probe_ports: certhub_challenge::probe::ProbePorts,
    ) -> certhub_engine::Config {
        certhub_engine::Config {
            data_dir: self.data_dir.clone(),
            dns: self.dns.clone(),
            probe_ports,
        }
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("certhub");
    }
    // Root runs services: its data belongs under /var/lib, not in a home directory.
    let is_root = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
    };
    match std::env::var_os("HOME").filter(|_| !is_root) {
        Some(home) => PathBuf::from(home).join(".local/share/certhub"),
        None => PathBuf::from("/var/lib/certhub"),
    }
}

/// `certhub audit verify`.
async fn audit_verify(ctx: &Context, args: args::AuditVerify) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let store = ctx.store().await?;
    let broken = |b: certhub_store::audit::ChainBreak| {
        anyhow::anyhow!("the audit log is broken at entry {}: {}", b.id, b.reason)
    };
    let Some(file) = &args.anchor else {
        let n = store.verify_audit().await?.map_err(broken)?;
        println!("The audit log is intact: {n} entries, each chained to the one before.");
        return Ok(());
    };
    let anchors = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the anchor file {}", file.display()))?;
    let anchors: Vec<&str> = anchors.lines().filter(|l| !l.trim().is_empty()).collect();
    if anchors.is_empty() {
        return Err(certhub_engine::error::fail(
            certhub_engine::Kind::Invalid,
            format!("{} holds no anchor; make one with `certhub audit anchor`", file.display()),
        ));
    }
    let n = match store.verify_audit_anchors(&anchors).await {
        Err(certhub_store::Error::Unreadable(why)) => {
            return Err(certhub_engine::error::fail(
                certhub_engine::Kind::Invalid,
                format!("{}: {why}", file.display()),
            ));
        }
        other => other?.map_err(broken)?,
    };
    println!(
        "The audit log is intact: {n} entries, each chained to the one before, and it holds \
         every entry its {} anchor(s) name.",
        anchors.len()
    );
    Ok(())
}

async fn audit_anchor(ctx: &Context, args: args::AuditAnchor) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let store = ctx.store().await?;
    // An anchor of a broken log would vouch for it.
    if let Err(b) = store.verify_audit().await? {
        return Err(anyhow::anyhow!(
            "the audit log is broken at entry {}: {}; no anchor made",
            b.id,
            b.reason
        ));
    }
    let Some(anchor) = store.audit_anchor().await? else {
        return Err(certhub_engine::error::fail(
            certhub_engine::Kind::Invalid,
            "the audit log is empty: nothing to anchor",
        ));
    };
    if let Some(name) = &args.channel {
        let channel = store.channel(name).await?.ok_or_else(|| {
            certhub_engine::error::fail(
                certhub_engine::Kind::NotFound,
                format!("no notification channel named {name:?}"),
            )
        })?;
        let notice = certhub_deploy::notify::Notice {
            event: "audit-anchor".into(),
            cert_name: "(audit log)".into(),
            summary: "audit log anchor: keep it to check the log against".into(),
            detail: Some(anchor.clone()),
        };
        certhub_deploy::notify::send(
            &reqwest::Client::new(),
            &channel.kind,
            &channel.config,
            &notice,
        )
        .await
        .map_err(|e| anyhow::anyhow!("sending the anchor to channel {name} failed: {e}"))?;
    }
    match &args.out {
        Some(file) => {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            writeln!(f, "{anchor}")
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write the anchor to {}", file.display()))?;
            println!("Anchor appended to {}", file.display());
        }
        None => println!("{anchor}"),
    }
    Ok(())
}
