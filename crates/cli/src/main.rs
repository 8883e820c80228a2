//! The `certhub` binary: argument parsing and wiring.

mod account;
mod agent;
mod args;
mod cert;
mod context;
mod credential;
mod deploy;
mod discover;
mod exit;
mod import;
mod output;
mod preview;
mod renew;
mod serve;
mod user;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::context::Context;

/// mimalloc rather than the C library's allocator: the hub allocates on many threads (the
/// runtime's, and the database's, which hand rows to them), where glibc's arenas spend much
/// of a busy hub's time; measured in docs/benchmarks.md (fleet).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.log_format);
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

/// Output piped into a program that stopped reading it (`certhub cert list | head`) ends
/// certhub quietly, with the status a shell gives a process ended by SIGPIPE, as `ls` does,
/// rather than with a panic's message.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn init_tracing(verbose: u8, format: args::LogFormat) {
    // The TLS verifier logs each certificate it refuses as an error of its own; certhub
    // reports that refusal itself, once, so the verifier's line shows only with -vv.
    let default = match verbose {
        0 => "warn,rustls_platform_verifier=off",
        1 => "info,certhub=info,rustls_platform_verifier=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        args::LogFormat::Json => fmt.json().flatten_event(true).with_current_span(false).init(),
        // Colour only for a person at a terminal, never in a log or a pipe.
        args::LogFormat::Text => {
            use std::io::IsTerminal as _;
            fmt.with_ansi(std::io::stderr().is_terminal()).init()
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dns = certhub_challenge::dns::DnsCheckConfig {
        resolver: cli.dns_resolver,
        authoritative_port: cli.dns_port,
        ..Default::default()
    };
    let ctx = Context {
        data_dir: cli.data_dir.clone().unwrap_or_else(context::default_data_dir),
        database: cli.database.clone(),
        dns,
        acme: certhub_acme::ClientConfig {
            request_timeout: std::time::Duration::from_secs(cli.acme_timeout),
            ..Default::default()
        },
    };
    match cli.command {
        Command::Account(cmd) => account::run(&ctx, cmd).await,
        Command::Cert(cmd) => cert::run(&ctx, cmd).await,
        Command::Renew(args) => renew::run(&ctx, args).await,
        Command::Deploy(cmd) => deploy::run(&ctx, cmd).await,
        Command::Discover(args) => discover::run(&ctx, args).await,
        Command::Agent(cmd) => agent::run(&ctx, cmd).await,
        Command::Credential(cmd) => credential::run(&ctx, cmd).await,
        Command::Dns(args::DnsCommand::Providers(args)) => {
            let providers = certhub_core::dns_provider::PROVIDERS.iter();
            credential::print_kinds(providers, args.json, true);
            Ok(())
        }
        Command::User(cmd) => user::run(&ctx, cmd).await,
        Command::Serve(args) => serve::run(&ctx, *args).await,
        Command::Audit(args::AuditCommand::Verify(args)) => audit_verify(&ctx, args).await,
        Command::Audit(args::AuditCommand::Anchor(args)) => audit_anchor(&ctx, args).await,
    }
}

/// `certhub audit verify`.
async fn audit_verify(ctx: &Context, args: args::AuditVerify) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let store = ctx.store().await?;
    let Some(file) = &args.anchor else {
        let n = certhub_engine::audit::verify(&store).await?;
        println!("The audit log is intact: {n} entries, each chained to the one before.");
        return Ok(());
    };
    let anchors = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the anchor file {}", file.display()))?;
    let anchors: Vec<&str> = anchors.lines().filter(|l| !l.trim().is_empty()).collect();
    let source = file.display().to_string();
    let n = certhub_engine::audit::verify_anchors(&store, &anchors, &source).await?;
    println!(
        "The audit log is intact: {n} entries, each chained to the one before, and it holds \
         every entry its {} anchor(s) name.",
        anchors.len()
    );
    Ok(())
}

/// `certhub audit anchor`.
async fn audit_anchor(ctx: &Context, args: args::AuditAnchor) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let store = ctx.store().await?;
    let anchor = certhub_engine::audit::anchor(&store, args.channel.as_deref()).await?;
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
