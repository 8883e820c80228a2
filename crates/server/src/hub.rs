//! A running hub: the API and the pages served beside the engine's scheduler and notifier,
//! until shutdown, then the requests in flight given time to finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use certhub_engine::{Engine, Error, Kind};
use certhub_store::Store;
use tokio::net::TcpListener;

use crate::agent_link::{AgentLink, AgentServerCert};
use crate::listen::{HubCert, Limits, serve};
use crate::state::AppState;

/// How long requests started through the API may go on after shutdown is asked for.
const FINISH_LIMIT: Duration = Duration::from_secs(30);

/// How long a finished job's status stays readable: 7 days.
const JOB_KEEP_MS: i64 = 7 * 86_400_000;

/// Removes expired API tokens, ended web sessions, jobs that ended over 7 days ago, and
/// failed sign-ins that no longer count from the store; how many tokens and jobs. The hub
/// runs this after each look of its scheduler.
pub async fn clean_up(store: &Store) -> Result<(u64, u64), certhub_store::Error> {
    let now = crate::clock::now_ms();
    let tokens = store.delete_stale_tokens(now - crate::ui::IDLE_MINUTES * 60_000).await?;
    let jobs = store.delete_jobs_before(now - JOB_KEEP_MS).await?;
    let window = crate::credentials::LoginLimiter::WINDOW.as_millis() as i64;
    store.delete_login_failures_before(now - window).await?;
    Ok((tokens, jobs))
}

/// The hub's TLS identity taken from one of its own managed certificates: presented anew
/// whenever that certificate is renewed.
pub struct ManagedIdentity {
    cert: Arc<HubCert>,
    store: Store,
    name: String,
    serial: String,
}

impl ManagedIdentity {
    /// The latest certificate of managed certificate `name`, ready to present.
    pub async fn load(store: &Store, name: &str) -> Result<Self, Error> {
        let (chain, key, serial) = latest(store, name).await?;
        let cert = HubCert::new(&chain, &key).map_err(|e| Error::new(Kind::Invalid, e))?;
        Ok(Self { cert, store: store.clone(), name: name.to_string(), serial })
    }

    /// The certificate the hub presents.
    pub fn cert(&self) -> &Arc<HubCert> {
        &self.cert
    }

    /// Presents the latest certificate if it changed.
    async fn refresh(&mut self) -> Result<(), Error> {
        let (chain, key, serial) = latest(&self.store, &self.name).await?;
        if serial != self.serial {
            self.cert.replace(&chain, &key).map_err(|e| Error::new(Kind::Invalid, e))?;
            tracing::info!(cert = self.name, serial, "the hub presents its renewed certificate");
            self.serial = serial;
        }
        Ok(())
    }
}

/// The latest chain, key (both PEM) and serial of managed certificate `name`.
async fn latest(store: &Store, name: &str) -> Result<(Vec<u8>, Vec<u8>, String), Error> {
    let issued = store.latest_issued(name).await.map_err(|e| Error::new(Kind::Internal, e))?;
    let issued = issued.ok_or_else(|| {
        Error::new(
            Kind::NotFound,
            format!("--tls-managed {name}: that certificate has not been issued yet"),
        )
    })?;
    if issued.key_pkcs8.is_empty() {
        return Err(Error::new(
            Kind::Invalid,
            format!("--tls-managed {name}: the hub does not hold its key"),
        ));
    }
    let key = certhub_core::pem_block("PRIVATE KEY", &issued.key_pkcs8).into_bytes();
    Ok((issued.chain_pem.into_bytes(), key, issued.serial_hex))
}

/// The agent endpoint: its listener, its state and TLS identity, and its limits.
pub struct AgentListener {
    pub listener: TcpListener,
    pub link: Arc<AgentLink>,
    pub cert: Arc<AgentServerCert>,
    pub limits: Limits,
}

/// What a hub runs with besides its state and engine.
pub struct Hub {
    pub listener: TcpListener,
    /// Its TLS identity (plain HTTP without one).
    pub tls: Option<Arc<HubCert>>,
    /// Set when the identity is one of its managed certificates, to present its renewals.
    pub managed: Option<ManagedIdentity>,
    pub limits: Limits,
    /// The CAs' rate limits, as `DIRECTORY=LIMITS` (see `--rate-limit`).
    pub rate_limits: Vec<String>,
    /// The agent endpoint, when the hub serves agents.
    pub agents: Option<AgentListener>,
}

impl Hub {
    /// Serves `app` (the hub's router over `state`) until `shutdown` resolves, with
    /// `engine`'s scheduler and notifier beside it. After each look the scheduler removes
    /// ended sessions, expired tokens and old jobs, and presents the managed identity's
    /// renewal. At shutdown, requests started through the API get a little time to finish
    /// (the next start resumes the rest, every step of an order being in the store) and the
    /// store is closed.
    pub async fn run(
        self,
        app: axum::Router,
        state: AppState,
        engine: Arc<Engine>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let tls = match &self.tls {
            Some(cert) => Some(cert.server_config().map_err(|e| Error::new(Kind::Invalid, e))?),
            None => None,
        };
        let store = engine.store().clone();
        // One stop for both listeners: the agents' streams end with it, so that they
        // reconnect to whichever hub serves next.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop_on = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let agents = match self.agents {
            Some(a) => {
                let config = a.cert.server_config().map_err(|e| Error::new(Kind::Internal, e))?;
                let link = a.link.clone();
                let stopping = stop_on(stopped.clone());
                let shutdown = async move {
                    stopping.await;
                    link.close();
                };
                let app = crate::agent_link::router(a.link.clone());
                Some((serve(a.listener, Some(config), app, a.limits, shutdown), a.link.run()))
            }
            None => None,
        };
        let agents = async move {
            match agents {
                Some((serving, pushing)) => {
                    tokio::join!(serving, pushing);
                }
                None => std::future::pending().await,
            }
        };
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
            std::future::pending::<()>().await
        };
        let serving = serve(self.listener, tls, app, self.limits, stop_on(stopped.clone()));
        let (managed, store_ref) = (&tokio::sync::Mutex::new(self.managed), &store);
        let after_each = move || async move {
            if let Err(e) = clean_up(store_ref).await {
                tracing::warn!(error = %e, "removing ended sessions and old jobs failed");
            }
            if let Some(managed) = &mut *managed.lock().await
                && let Err(e) = managed.refresh().await
            {
                tracing::warn!(error = %e, "reloading the hub's certificate failed");
            }
        };
        // Jobs whose hub died go on here: another hub's, sharing the database (on SQLite, a
        // restart has already ended its own as interrupted, see `AppState::recover_jobs`).
        let (jobs, runner) = (state.jobs.clone(), engine.clone());
        let take_over = async move {
            let mut every = tokio::time::interval(crate::jobs::HEARTBEAT);
            loop {
                every.tick().await;
                jobs.take_over(&runner).await;
            }
        };
        tokio::select! {
            () = signal => {}
            () = take_over => {}
            () = serving => {}
            () = agents => {}
            () = certhub_engine::scheduler::run(engine.clone(), self.rate_limits, after_each) => {}
            () = certhub_engine::notify::run(store.clone(), engine.settings().clone()) => {}
        }
        let left = state.finish_jobs(FINISH_LIMIT).await;
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
}
