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
        .with_setup_token_file(ctx.data_dir.join("setup-token"))
        .with_scrapers(args.metrics_allow.clone());
    let interrupted = state.recover_jobs().await?;
    if interrupted > 0 {
        tracing::info!(
            jobs = interrupted,
            "requests cut short by the last stop marked interrupted"
        );
    }
    let (tls, managed) = match (&args.tls_cert, &args.tls_key, &args.tls_managed) {
        (Some(cert), Some(key), None) => {
            let chain =
                std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
            let key =
                std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
            let cert = certhub_server::HubCert::new(&chain, &key)
                .map_err(|e| certhub_engine::error::fail(certhub_engine::Kind::Invalid, e))?;
            (Some(cert), None)
        }
        (None, None, Some(name)) => {
            let managed = certhub_server::ManagedIdentity::load(&store, name).await?;
            (Some(managed.cert().clone()), Some(managed))
        }
        (None, None, None) => (None, None),
        _ => anyhow::bail!("give --tls-cert and --tls-key together, or --tls-managed alone"),
    };
    // Browsers reach the hub over HTTPS when it serves TLS, or when its public URL says so
    // (a proxy in front ends TLS): cookies are then Secure.
    let public_https = args.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let mut state = state.serving_https(tls.is_some() || public_https);
    let agents = match args.agent_listen {
        Some(addr) => {
            let agents = agent_listener(&engine, addr, args.agent_url.clone()).await?;
            println!("  agents connect at {} (mutual TLS)", agents.link.url_for(None));
            state = state.with_agents(agents.link.clone());
            Some(agents)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(oidc) = oidc_config(&args, scheme, addr)? {
        let issuer = oidc.issuer.clone();
        let oidc = certhub_server::Oidc::new(oidc)
            .map_err(|e| certhub_engine::Error::invalid("oidc", e))?;
        // Read now so that a wrong issuer shows at the start (a warning: local users can
        // still sign in, and it is read again at the first sign-in).
        let _ = oidc.discover().await;
        println!("  sign-in also through the OpenID provider at {issuer}");
        state = state.with_oidc(oidc);
    }
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
    let hub = certhub_server::Hub { listener, tls, managed, limits, rate_limits, agents };
    let app = certhub_server::router(state.clone());
    Ok(hub.run(app, state, engine, shutdown()).await?)
}

/// The OpenID sign-in settings, when `--oidc-issuer` is given. The redirect URI is the
/// hub's public URL (`--public-url`, else where it listens) with `/login/oidc/callback`.
fn oidc_config(
    args: &Serve,
    scheme: &str,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Option<certhub_server::OidcConfig>> {
    let (Some(issuer), Some(client_id)) = (&args.oidc.issuer, &args.oidc.client_id) else {
        return Ok(None);
    };
    let public = match &args.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None if addr.ip().is_unspecified() => anyhow::bail!(certhub_engine::Error::invalid(
            "public_url",
            format!(
                "give --public-url: the OpenID provider sends browsers back to the hub's URL, \
                 and {addr} does not say which name or address they reach it at"
            )
        )),
        None => format!("{scheme}://{addr}"),
    };
    let client_secret = match &args.oidc.client_secret_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| {
                    format!("cannot read --oidc-client-secret-file {}", file.display())
                })?
                .trim()
                .to_string(),
        ),
        None => std::env::var("CERTHUB_OIDC_CLIENT_SECRET").ok().filter(|s| !s.is_empty()),
    };
    let mut scopes = vec!["profile".to_string(), "email".to_string()];
    scopes.extend(
        args.oidc.scope.iter().filter(|s| !scopes.contains(s)).cloned().collect::<Vec<_>>(),
    );
    Ok(Some(certhub_server::OidcConfig {
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        client_secret,
        redirect_url: format!("{public}/login/oidc/callback"),
        scopes,
        username_claim: args.oidc.username_claim.clone(),
        role_claim: args.oidc.role_claim.clone(),
        roles: args.oidc.role.clone(),
        default_role: args.oidc.default_role.clone(),
        label: args.oidc.name.clone(),
    }))
}

/// The agent endpoint at `addr`: the agent authority (made now if the store has none), and
/// a server certificate from it for this machine's names and `url`'s host.
async fn agent_listener(
    engine: &Arc<certhub_engine::Engine>,
    addr: std::net::SocketAddr,
    url: Option<String>,
) -> anyhow::Result<certhub_server::AgentListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for agents (--agent-listen)"))?;
    let port = listener.local_addr()?.port();
    let hostname = certhub_agent::hostname().unwrap_or_else(|| "localhost".into());
    let ca = engine.agent_ca(&hostname).await?;
    let mut names = vec![hostname, "localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(u) = &url {
        let parsed = url::Url::parse(u).map_err(|e| {
            certhub_engine::Error::invalid("agent_url", format!("--agent-url {u:?}: {e}"))
        })?;
        if parsed.scheme() != "https" {
            anyhow::bail!(certhub_engine::Error::invalid(
                "agent_url",
                format!("--agent-url {u:?}: agents connect over https://")
            ));
        }
        if let Some(host) = parsed.host_str() {
            names.push(host.trim_matches(|c| c == '[' || c == ']').to_string());
        }
    }
    names.dedup();
    let link = certhub_server::AgentLink::new(engine.clone(), ca, url, port);
    let cert = certhub_server::AgentServerCert::new(link.ca().clone(), &names)
        .map_err(|e| certhub_engine::Error::new(certhub_engine::Kind::Internal, e))?;
    // Agents keep a connection open each, many from one address behind NAT.
    let limits = certhub_server::Limits {
        connections: 65_536,
        per_address: 65_536,
        ..certhub_server::Limits::default()
    };
    Ok(certhub_server::AgentListener { listener, link, cert, limits })
}

/// Resolves on SIGTERM or SIGINT: requests in flight finish, new ones are refused.
pub(crate) async fn shutdown() {
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
