//! `certhub serve`: the hub's web UI and REST API (`/api/v1`), its renewal service and its
//! notifier, until SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::args::Serve;

pub async fn run(ctx: &crate::context::Context, args: Serve) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let rate_limits = args.rate_limit.clone();
    let settings = certhub_server::SharedSettings::load(
        &store,
        certhub_server::Settings {
            policy: args.policy.clone(),
            check_interval_secs: args.check_interval,
            expiry_warning_days: args.expiry_warning_days,
            renewal_workers: args.renewal_workers,
        },
    )
    .await?;
    // One engine for the life of the hub: its API, its pages and its scheduler share the
    // store, the challenge responders and the connections to the CAs.
    let ports = certhub_challenge::probe::ProbePorts {
        http: args.probe_http_port,
        tls: args.probe_tls_port,
    };
    let engine = Arc::new(certhub_engine::Engine::with_settings(
        store.clone(),
        ctx.config(ports),
        settings.clone(),
    ));
    let state = certhub_server::AppState::new(store.clone())
        .with_engine(engine.clone())
        .with_setup_token_file(ctx.data_dir.join("setup-token"));
    let interrupted = state.recover_jobs().await?;
    if interrupted > 0 {
        tracing::info!(
            jobs = interrupted,
            "requests cut short by the last stop marked interrupted"
        );
    }
    let hub_cert = hub_cert(&store, &args).await?;
    let tls = match &hub_cert {
        Some((cert, _)) => Some(
            cert.server_config()
                .map_err(|e| certhub_engine::error::fail(certhub_engine::Kind::Invalid, e))?,
        ),
        None => None,
    };
    // With --tls-managed, the hub presents its certificate's renewals as they come.
    let own = hub_cert.and_then(|(cert, serial)| {
        Some(OwnCert {
            cert,
            store: store.clone(),
            name: args.tls_managed.clone()?,
            serial: serial?,
        })
    });
    let state = state.serving_https(tls.is_some());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("certhub hub listening on {scheme}://{addr}/");
    println!(
        "  web UI at {scheme}://{addr}/, REST API at /api/v1 (OpenAPI at /api/v1/openapi.json)"
    );
    // The one-time setup token goes to a terminal, or else (a service's output is kept in
    // logs) to a file only its owner can read, removed once the hub is set up.
    let token_file = ctx.data_dir.join("setup-token");
    match state.setup_token_if_needed().await? {
        Some(token) => {
            use std::io::IsTerminal as _;
            println!("No user yet. Create the first admin within this run with the setup token,");
            println!("  in a browser at {scheme}://{addr}/setup, or with the API:");
            if std::io::stdout().is_terminal() {
                println!("  setup token: {token}");
            } else {
                certhub_deploy::files::write_atomic(
                    &token_file,
                    format!("{token}\n").as_bytes(),
                    0o600,
                    Default::default(),
                )?;
                println!("  setup token: in {} (mode 0600)", token_file.display());
            }
            println!(
                "  curl -X POST {scheme}://{addr}/api/v1/setup -H 'content-type: application/json' \\\n       -d '{{\"token\": \"…\", \"username\": \"admin\", \"password\": \"…\"}}'"
            );
        }
        None => {
            let _ = std::fs::remove_file(&token_file);
        }
    }
    let limits = certhub_server::Limits {
        connections: args.max_connections as usize,
        per_address: args.max_connections_per_address as usize,
        header_timeout: Duration::from_secs(args.header_timeout),
        handshake_timeout: Duration::from_secs(args.header_timeout),
        body_timeout: Duration::from_secs(30),
    };
    let serving = certhub_server::serve(
        listener,
        tls,
        certhub_server::router(state.clone()),
        limits,
        shutdown(),
    );
    // The scheduler runs beside the API until the API stops; a renewal cut short is resumed
    // by the next start (every step of an order is in the store). After each look it removes
    // ended sessions, expired tokens and old jobs, and with --tls-managed presents the hub's
    // renewed certificate.
    let (own, store_ref) = (&tokio::sync::Mutex::new(own), &store);
    let after_each = move || async move {
        if let Err(e) = certhub_server::clean_up(store_ref).await {
            tracing::warn!(error = %e, "removing ended sessions and old jobs failed");
        }
        if let Some(own) = &mut *own.lock().await
            && let Err(e) = own.refresh().await
        {
            tracing::warn!(error = %format!("{e:#}"), "reloading the hub's certificate failed");
        }
    };
    tokio::select! {
        () = serving => {}
        () = certhub_engine::scheduler::run(engine.clone(), rate_limits, after_each) => {}
        () = certhub_engine::notify::run(store.clone(), settings) => {}
    }
    // Requests started through the API get a little time to finish before the store closes.
    let left = state.finish_jobs(Duration::from_secs(30)).await;
    if left > 0 {
        tracing::warn!(
            requests = left,
            "requests still running at stop; the next start resumes them"
        );
    }
    store.close().await;
    tracing::info!("the hub stopped");
    Ok(())
}

/// The hub's TLS identity: PEM files, or the latest certificate of one of its own managed
/// certificates (with the serial it has), or none (plain HTTP).
async fn hub_cert(
    store: &certhub_store::Store,
    args: &Serve,
) -> anyhow::Result<Option<(Arc<certhub_server::HubCert>, Option<String>)>> {
    let invalid = |e: String| certhub_engine::error::fail(certhub_engine::Kind::Invalid, e);
    match (&args.tls_cert, &args.tls_key, &args.tls_managed) {
        (Some(cert), Some(key), None) => {
            let chain =
                std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
            let key =
                std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
            Ok(Some((certhub_server::HubCert::new(&chain, &key).map_err(invalid)?, None)))
        }
        (None, None, Some(name)) => {
            let (chain, key, serial) = managed_identity(store, name).await?;
            Ok(Some((certhub_server::HubCert::new(&chain, &key).map_err(invalid)?, Some(serial))))
        }
        (None, None, None) => Ok(None),
        _ => anyhow::bail!("give --tls-cert and --tls-key together, or --tls-managed alone"),
    }
}

/// The latest chain, key (both PEM) and serial of managed certificate `name`.
async fn managed_identity(
    store: &certhub_store::Store,
    name: &str,
) -> anyhow::Result<(Vec<u8>, Vec<u8>, String)> {
    let issued = store.latest_issued(name).await?.with_context(|| {
        format!("--tls-managed {name}: that certificate has not been issued yet")
    })?;
    if issued.key_pkcs8.is_empty() {
        anyhow::bail!("--tls-managed {name}: the hub does not hold its key");
    }
    let key = certhub_core::pem_block("PRIVATE KEY", &issued.key_pkcs8).into_bytes();
    Ok((issued.chain_pem.into_bytes(), key, issued.serial_hex))
}

/// The hub's own managed certificate, as it presents it.
struct OwnCert {
    cert: Arc<certhub_server::HubCert>,
    store: certhub_store::Store,
    name: String,
    serial: String,
}

impl OwnCert {
    /// Presents the latest certificate if it changed.
    async fn refresh(&mut self) -> anyhow::Result<()> {
        let (chain, key, serial) = managed_identity(&self.store, &self.name).await?;
        if serial != self.serial {
            self.cert.replace(&chain, &key).map_err(anyhow::Error::msg)?;
            tracing::info!(cert = self.name, serial, "the hub presents its renewed certificate");
            self.serial = serial;
        }
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT: requests in flight finish, new ones are refused.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
