//! The `certhub` binary: argument parsing and wiring.

mod account;
mod args;
mod cert;
mod deploy;
mod discover;
mod exit;
mod import;
mod issue;
mod notify;
mod output;
mod preview;
mod renew;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
            ExitCode::from(exit::code_for(&err))
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,certhub=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
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
        solvers: Arc::new(certhub_challenge::Solvers::new(dns.clone())),
        dns,
    };
    match cli.command {
        Command::Account(cmd) => account::run(&ctx, cmd).await,
        Command::Cert(cmd) => cert::run(&ctx, cmd).await,
        Command::Renew(args) => renew::run(&ctx, args).await,
        Command::Deploy(cmd) => deploy::run(&ctx, cmd).await,
        Command::Discover(args) => discover::run(&ctx, args).await,
        Command::Serve(args) => serve::run(&ctx, args).await,
        Command::Audit(args::AuditCommand::Verify) => audit_verify(&ctx).await,
    }
}

/// What every command needs.
#[derive(Clone)]
pub struct Context {
    pub data_dir: PathBuf,
    pub database: Option<String>,
    pub dns: certhub_challenge::dns::DnsCheckConfig,
    /// The challenge responders of this process: one listener per address, whoever orders
    /// (a command, the hub's API, its renewal service, its Test), held while an order uses it.
    pub solvers: Arc<certhub_challenge::Solvers>,
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
async fn audit_verify(ctx: &Context) -> anyhow::Result<()> {
    match ctx.store().await?.verify_audit().await? {
        Ok(n) => {
            println!("The audit log is intact: {n} entries, each chained to the one before.");
            Ok(())
        }
        Err(b) => Err(anyhow::anyhow!("the audit log is broken at entry {}: {}", b.id, b.reason)),
    }
}
