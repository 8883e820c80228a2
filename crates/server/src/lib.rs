//! certhub's hub: the REST API under `/api/v1` and the web UI (everything else).
//!
//! Nothing is open before setup: on first start (no users) `certhub serve` prints a one-time
//! setup token; `POST /api/v1/setup` with it creates the first admin. Callers then sign in
//! with `POST /api/v1/tokens` (name and password) for an API token, shown once and stored
//! hashed, and send it as `Authorization: Bearer TOKEN`.
//!
//! Roles: `admin` (everything), `operator` (read, request, download keys), `viewer` (read).
//! A token carries scopes (`cert:read`, `cert:request`, `cert:key`, `admin`) that narrow its
//! owner's role. Long operations answer 202 with a job (`/api/v1/jobs/{id}`) to watch.
//! Every change and every key download is written to the audit log. Errors are
//! `application/problem+json` naming the field and the rule. Lists are paginated
//! (`page`, `per_page`) and filterable.

mod api;
mod auth;
mod jobs;
mod listen;
mod openapi;
mod problem;
mod ui;

use std::sync::{Arc, Mutex};

use certhub_store::Store;

pub use auth::{Role, hash_password};
pub use jobs::{
    CertChanges, Job, NewAccount, NewCertificate, NewImport, Steps, WorkError, WorkFuture, Worker,
};
pub use listen::{HubCert, Peer, TlsListener};
pub use openapi::ROUTES;
pub use problem::Problem;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    /// The one-time setup token, while no user exists.
    setup_token: Arc<Mutex<Option<String>>>,
    logins: Arc<auth::LoginLimiter>,
    worker: Option<Arc<dyn Worker>>,
    jobs: Arc<jobs::Jobs>,
    settings: Settings,
    /// Whether the hub serves HTTPS (session cookies are then marked Secure).
    https: bool,
}

/// The hub's settings the pages show.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The renewal policy of certificates without their own (75%, 30d).
    pub policy: String,
    /// How often the renewal service looks for due work.
    pub check_interval: std::time::Duration,
    /// Days before expiry that a certificate nothing renews is told about.
    pub expiry_warning_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: "75%".into(),
            check_interval: std::time::Duration::from_secs(300),
            expiry_warning_days: 30,
        }
    }
}

impl AppState {
    /// State over `store`; `setup_token` is what `POST /api/v1/setup` must present while no
    /// user exists (see [`AppState::setup_token_if_needed`]).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            setup_token: Arc::new(Mutex::new(None)),
            logins: Arc::new(auth::LoginLimiter::default()),
            worker: None,
            jobs: Arc::new(jobs::Jobs::default()),
            settings: Settings::default(),
            https: false,
        }
    }

    /// The settings the hub runs with.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Says the hub serves HTTPS: session cookies are sent over HTTPS only.
    pub fn serving_https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }

    /// The engine that runs requests; without one, request endpoints answer 503.
    pub fn with_worker(mut self, worker: Arc<dyn Worker>) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Waits until no job runs, or `limit` has passed; returns how many still run. A request
    /// cut short is resumed from the store by the next start.
    pub async fn finish_jobs(&self, limit: std::time::Duration) -> usize {
        let started = std::time::Instant::now();
        loop {
            let running = self.jobs.running();
            if running == 0 || started.elapsed() >= limit {
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
        let token = auth::random_secret();
        *self.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(Some(token))
    }
}

/// Removes expired API tokens and ended web sessions from the store; how many. The hub runs
/// this with its renewal checks.
pub async fn clean_up_sessions(store: &Store) -> Result<u64, certhub_store::Error> {
    let idle_before = api::now_ms() - ui::IDLE_MINUTES * 60_000;
    store.delete_stale_tokens(ui::SESSION_LABEL, idle_before).await
}

/// The hub's routes: the REST API under `/api/v1` and the web UI.
pub fn router(state: AppState) -> axum::Router {
    api::routes().merge(ui::routes()).with_state(state)
}
