//! What the handlers share: the store, the engine, the jobs, the sign-in limiter and the
//! settings.

use std::sync::{Arc, Mutex};

use certhub_engine::{Engine, Settings, SharedSettings};
use certhub_store::Store;

use crate::credentials::{self, LoginLimiter};
use crate::jobs;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Store,
    /// The one-time setup token, while no user exists.
    pub(crate) setup_token: Arc<Mutex<Option<String>>>,
    pub(crate) logins: Arc<LoginLimiter>,
    pub(crate) engine: Option<Arc<Engine>>,
    pub(crate) jobs: Arc<jobs::Jobs>,
    pub(crate) settings: SharedSettings,
    /// Whether the hub serves HTTPS (session cookies are then marked Secure).
    pub(crate) https: bool,
    /// Where the setup token was written for a service's owner, removed once set up.
    pub(crate) setup_token_file: Option<std::path::PathBuf>,
    /// The agent endpoint, when the hub serves agents.
    pub(crate) agents: Option<Arc<crate::agent_link::AgentLink>>,
    /// Addresses allowed to scrape `/metrics` without a token.
    pub(crate) scrapers: Arc<Vec<crate::metrics::ScraperRange>>,
    /// The OpenID provider people may sign in through, if any.
    pub(crate) oidc: Option<Arc<crate::oidc::Oidc>>,
}

impl AppState {
    /// State over `store`; `setup_token` is what `POST /api/v1/setup` must present while no
    /// user exists (see [`AppState::setup_token_if_needed`]).
    pub fn new(store: Store) -> Self {
        Self {
            jobs: Arc::new(jobs::Jobs::new(store.clone())),
            logins: Arc::new(LoginLimiter::new(store.clone())),
            store,
            setup_token: Arc::new(Mutex::new(None)),
            engine: None,
            settings: SharedSettings::new(Settings::default()),
            https: false,
            setup_token_file: None,
            agents: None,
            scrapers: Arc::new(Vec::new()),
            oidc: None,
        }
    }

    /// Says the setup token was written to `file`: it is removed once the hub is set up.
    pub fn with_setup_token_file(mut self, file: std::path::PathBuf) -> Self {
        self.setup_token_file = Some(file);
        self
    }

    /// At start: the jobs a stopped hub left running say they were interrupted. Only on
    /// SQLite, which one hub serves; on PostgreSQL another hub may be running them, and a
    /// job of a hub that died says so once its heartbeat has been silent for two minutes.
    pub async fn recover_jobs(&self) -> Result<u64, certhub_store::Error> {
        if self.store.backend() != certhub_store::Backend::Sqlite {
            return Ok(0);
        }
        self.store.end_running_jobs(certhub_store::JobStatus::Interrupted, jobs::INTERRUPTED).await
    }

    /// Lets people sign in through `oidc` (besides local users with passwords).
    pub fn with_oidc(mut self, oidc: crate::oidc::Oidc) -> Self {
        self.oidc = Some(Arc::new(oidc));
        self
    }

    /// Lets `scrapers` read `/metrics` without a token.
    pub fn with_scrapers(mut self, scrapers: Vec<crate::metrics::ScraperRange>) -> Self {
        self.scrapers = Arc::new(scrapers);
        self
    }

    /// The settings the hub runs with (shared with its background services).
    pub fn with_settings(mut self, settings: SharedSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Says the hub serves HTTPS: session cookies are sent over HTTPS only.
    pub fn serving_https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }

    /// The engine that runs requests, with its settings; without one, request endpoints
    /// answer 503.
    pub fn with_engine(mut self, engine: Arc<Engine>) -> Self {
        self.settings = engine.settings().clone();
        self.engine = Some(engine);
        self
    }

    /// The agent endpoint agents join to and connect with.
    pub fn with_agents(mut self, link: Arc<crate::agent_link::AgentLink>) -> Self {
        self.agents = Some(link);
        self
    }

    /// Waits until no job of this process runs, or `limit` has passed; returns how many
    /// still run, which are then recorded as interrupted. A request cut short is resumed from
    /// the store by the next request of its certificate.
    pub async fn finish_jobs(&self, limit: std::time::Duration) -> usize {
        let started = std::time::Instant::now();
        loop {
            let running = self.jobs.running();
            if running == 0 || started.elapsed() >= limit {
                self.jobs.interrupt_running().await;
                return running;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// When the hub has no user yet, a fresh one-time setup token (replacing any earlier
    /// one); `None` once set up.
    pub async fn setup_token_if_needed(&self) -> Result<Option<String>, certhub_store::Error> {
        if self.store.user_count().await? > 0 {
            return Ok(None);
        }
        let token = credentials::random_secret();
        *self.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(Some(token))
    }
}
