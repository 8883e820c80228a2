//! `certhub serve`: the hub's web UI and REST API (`/api/v1`), its renewal service and its
//! notifier, until SIGTERM or Ctrl-C.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use certhub_challenge::Solvers;
use certhub_server::Steps;
use certhub_store::AuditEntry;

use crate::args::{Renew, Serve};
use crate::issue::{Issuer, Progress};

/// The issuance engine, as the hub's API runs it.
struct Engine {
    issuer: Arc<Issuer>,
    store: certhub_store::Store,
    dns: certhub_challenge::dns::DnsCheckConfig,
    solvers: Arc<Solvers>,
    /// Where tests expect the CA to connect (80 and 443 but for a test CA).
    probe_ports: certhub_challenge::probe::ProbePorts,
    /// The hub's settings (the renewal policy of certificates without their own).
    settings: certhub_server::SharedSettings,
}

/// An engine error as the API reports it, by the exit code the CLI would give.
fn work_error(e: anyhow::Error) -> certhub_server::WorkError {
    use crate::exit::{CA_REFUSED, INVALID_INPUT, NOT_FOUND, TRANSIENT};
    let status = match crate::exit::code_for(&e) {
        INVALID_INPUT => 400,
        NOT_FOUND => 404,
        CA_REFUSED => 502,
        TRANSIENT => 503,
        _ => 500,
    };
    certhub_server::WorkError { status, message: format!("{e:#}") }
}

/// A job's steps as a request's progress.
struct JobProgress(Arc<dyn Steps>);

impl Progress for JobProgress {
    fn step(&self, _cert: &str, message: &str) {
        self.0.step(message);
    }
}

impl certhub_server::Worker for Engine {
    fn add_account(
        &self,
        a: certhub_server::NewAccount,
        audit: AuditEntry,
    ) -> certhub_server::WorkFuture<serde_json::Value> {
        let store = self.store.clone();
        Box::pin(async move {
            let args = crate::args::AccountAdd {
                name: a.name.clone(),
                directory: a.directory,
                ca_bundle: None,
                email: a.email,
                agree_tos: a.agree_tos,
                eab_kid: a.eab_kid,
                eab_hmac_key: a.eab_hmac_key,
                eab_algorithm: crate::args::EabAlg::Hs256,
                key_type: a.key_type.unwrap_or_else(|| "ec-p256".into()),
                json: false,
            };
            let url = crate::account::register(&store, &args, a.ca_bundle_pem, audit)
                .await
                .map_err(work_error)?;
            Ok(serde_json::json!({ "name": a.name, "account_url": url, "status": "valid" }))
        })
    }

    fn add_certificate(
        &self,
        c: certhub_server::NewCertificate,
        audit: AuditEntry,
    ) -> certhub_server::WorkFuture<serde_json::Value> {
        let store = self.store.clone();
        Box::pin(async move {
            let args = crate::args::CertAdd {
                name: c.name,
                account: c.account,
                domains: c.domains,
                ips: c.ips,
                key_type: c.key_type.unwrap_or_else(|| "ec-p256".into()),
                reuse_key: c.reuse_key,
                csr: None,
                profile: None,
                preferred_chain: None,
                challenges: c.challenges,
                allow_single_label: false,
                deploy: c.deploy,
                renewal: crate::args::RenewalSettings {
                    renew_at: c.renew_at,
                    ..Default::default()
                },
            };
            let (validation, _) =
                crate::cert::create(&store, &args, &audit).await.map_err(work_error)?;
            Ok(serde_json::json!({
                "validation": validation
                    .iter()
                    .map(|(id, kind)| serde_json::json!({ "identifier": id.to_string(), "challenge": kind.to_string() }))
                    .collect::<Vec<_>>()
            }))
        })
    }

    fn preview(&self, name: String) -> certhub_server::WorkFuture<serde_json::Value> {
        let store = self.store.clone();
        let policy = self.settings.get().policy;
        Box::pin(
            async move { crate::preview::plan(&store, &name, &policy).await.map_err(work_error) },
        )
    }

    fn test(&self, name: String) -> certhub_server::WorkFuture<serde_json::Value> {
        let store = self.store.clone();
        let (dns, solvers) = (self.dns.clone(), self.solvers.clone());
        let ports = self.probe_ports;
        Box::pin(async move {
            let report = crate::cert::probe_all(&solvers, dns, &store, &name, ports)
                .await
                .map_err(work_error)?;
            Ok(serde_json::json!(report))
        })
    }

    fn revoke(
        &self,
        name: String,
        reason: Option<String>,
        audit: AuditEntry,
    ) -> certhub_server::WorkFuture<String> {
        let store = self.store.clone();
        Box::pin(async move {
            crate::cert::revoke_latest(&store, &name, reason.as_deref(), false, audit)
                .await
                .map_err(work_error)
        })
    }

    fn edit(
        &self,
        name: String,
        c: certhub_server::CertChanges,
        audit: AuditEntry,
    ) -> certhub_server::WorkFuture<Vec<String>> {
        let store = self.store.clone();
        Box::pin(async move {
            let args = crate::args::CertSet {
                name,
                account: c.account,
                challenges: c.challenges,
                renew_at: c.renew_at,
                fallback_account: c.fallback_account,
                fallback_after: c.fallback_after,
            };
            crate::cert::apply_set(&store, &args, audit).await.map_err(work_error)
        })
    }

    fn add_deployments(
        &self,
        name: String,
        specs: Vec<String>,
        audit: AuditEntry,
    ) -> certhub_server::WorkFuture<serde_json::Value> {
        let store = self.store.clone();
        Box::pin(async move {
            let tasks =
                crate::deploy::add_specs(&store, &name, &specs, audit).await.map_err(work_error)?;
            Ok(serde_json::json!(tasks
                .iter()
                .map(|t| serde_json::json!({ "name": t.name, "when": t.trigger.as_str(), "does": t.action.describe() }))
                .collect::<Vec<_>>()))
        })
    }

    fn import(
        &self,
        i: certhub_server::NewImport,
        audit: AuditEntry,
    ) -> certhub_server::WorkFuture<serde_json::Value> {
        let store = self.store.clone();
        Box::pin(async move {
            let invalid = |m: String| certhub_server::WorkError { status: 400, message: m };
            let bundle = match (&i.cert_pem, &i.pkcs12_base64) {
                (Some(pem), None) => crate::import::bundle_from_pem(pem, i.key_pem.as_deref()),
                (None, Some(b64)) => {
                    use base64::Engine as _;
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| invalid(format!("pkcs12_base64 is not base64: {e}")))?;
                    crate::import::bundle_from_pkcs12(
                        &der,
                        i.password.as_deref().unwrap_or_default(),
                    )
                }
                _ => return Err(invalid("give cert_pem (and key_pem), or pkcs12_base64".into())),
            }
            .map_err(work_error)?;
            let args = crate::args::CertImport {
                name: i.name.clone(),
                cert: None,
                key: None,
                pkcs12: None,
                password: None,
                account: i.account,
                challenges: i.challenges,
                deploy: i.deploy,
            };
            let view = |im: &crate::import::Imported| {
                serde_json::json!({
                    "name": i.name,
                    "imported": im.detail,
                    "names": im.names,
                    "without_key": im.keyless,
                    "renewed_by": im.account,
                    "expired": im.expired,
                    "deployed": im.deployed.iter().map(|(t, d)| serde_json::json!({ "task": t, "did": d })).collect::<Vec<_>>(),
                })
            };
            match crate::import::import(&store, &args, bundle, audit).await {
                Ok(im) => Ok(view(&im)),
                Err((e, _)) => Err(work_error(e)),
            }
        })
    }

    fn request(
        &self,
        name: String,
        steps: Arc<dyn Steps>,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> {
        let issuer = self.issuer.clone();
        Box::pin(async move {
            let progress = JobProgress(steps);
            issuer
                .request(&name, Duration::from_secs(900), &progress)
                .await
                .map(|i| {
                    format!(
                        "issued serial {}, expires {}",
                        i.serial_hex,
                        crate::output::rfc3339(i.not_after)
                    )
                })
                .map_err(|e| format!("{e:#}"))
        })
    }
}

pub async fn run(ctx: &crate::Context, args: Serve) -> anyhow::Result<()> {
    let store = ctx.store().await?;
    let rate_limits = args.rate_limit.clone();
    let issuer = Arc::new(Issuer::new(store.clone(), ctx.solvers.clone(), &ctx.data_dir));
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
    let state = certhub_server::AppState::new(store.clone())
        .with_worker(Arc::new(Engine {
            issuer,
            store: store.clone(),
            dns: ctx.dns.clone(),
            solvers: ctx.solvers.clone(),
            probe_ports: certhub_challenge::probe::ProbePorts {
                http: args.probe_http_port,
                tls: args.probe_tls_port,
            },
            settings: settings.clone(),
        }))
        .with_settings(settings.clone())
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
            cert.server_config().map_err(|e| crate::exit::fail(crate::exit::INVALID_INPUT, e))?,
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
    // The renewal service runs beside the API until the API stops; a renewal cut short is
    // resumed by the next start (every step of an order is in the store).
    tokio::select! {
        () = serving => {}
        () = renewal_service(ctx.clone(), store.clone(), settings.clone(), own, rate_limits) => {}
        () = crate::notify::run(store.clone(), settings) => {}
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
    let invalid = |e: String| crate::exit::fail(crate::exit::INVALID_INPUT, e);
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

/// Renews what is due, like `certhub renew --due`: at start (work a restart interrupted),
/// then every check interval or at once when the settings change, and removes ended
/// sessions, expired tokens and old jobs. Certificates are locked while requested, so this
/// never orders one twice, even beside a cron job or another hub. Each renewal is audited as
/// done by the hub. Orders keep within each CA's `rate_limits` (`--rate-limit`).
async fn renewal_service(
    ctx: crate::Context,
    store: certhub_store::Store,
    settings: certhub_server::SharedSettings,
    mut own: Option<OwnCert>,
    rate_limits: Vec<String>,
) {
    let mut changed = settings.subscribe();
    loop {
        // Another hub sharing the database may have changed them.
        if let Err(e) = settings.reload(&store).await {
            tracing::warn!(error = %e, "reading the settings failed");
        }
        changed.borrow_and_update();
        let now = settings.get();
        let due = Renew {
            names: Vec::new(),
            due: true,
            policy: now.policy.clone(),
            jobs: now.renewal_workers,
            timeout: 900,
            rate_limit: rate_limits.clone(),
        };
        if let Err(e) = crate::renew::renew(&ctx, due, &crate::output::Actor::hub()).await {
            tracing::warn!(error = %format!("{e:#}"), "renewal run failed");
        }
        if let Err(e) = certhub_server::clean_up(&store).await {
            tracing::warn!(error = %e, "removing ended sessions and old jobs failed");
        }
        if let Some(own) = &mut own
            && let Err(e) = own.refresh().await
        {
            tracing::warn!(error = %format!("{e:#}"), "reloading the hub's certificate failed");
        }
        tokio::select! {
            () = tokio::time::sleep(now.check_interval()) => {}
            _ = changed.changed() => {}
        }
    }
}
