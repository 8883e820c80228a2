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
pub use certhub_engine::{
    CertChanges, Engine, Import, NewAccount, NewCertificate, Settings, SettingsChanges,
    SharedSettings,
};
pub use jobs::Job;
pub use listen::{HubCert, Limits, Peer, serve};
pub use openapi::ROUTES;
pub use problem::Problem;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    /// The one-time setup token, while no user exists.
    setup_token: Arc<Mutex<Option<String>>>,
    logins: Arc<auth::LoginLimiter>,
    engine: Option<Arc<Engine>>,
    jobs: Arc<jobs::Jobs>,
    settings: SharedSettings,
    /// Whether the hub serves HTTPS (session cookies are then marked Secure).
    https: bool,
    /// Where the setup token was written for a service's owner, removed once set up.
    setup_token_file: Option<std::path::PathBuf>,
}

impl AppState {
    /// State over `store`; `setup_token` is what `POST /api/v1/setup` must present while no
    /// user exists (see [`AppState::setup_token_if_needed`]).
    pub fn new(store: Store) -> Self {
        Self {
            jobs: Arc::new(jobs::Jobs::new(store.clone())),
            store,
            setup_token: Arc::new(Mutex::new(None)),
            logins: Arc::new(auth::LoginLimiter::default()),
            engine: None,
            settings: SharedSettings::new(Settings::default()),
            https: false,
            setup_token_file: None,
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
        let token = auth::random_secret();
        *self.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(Some(token))
    }
}

/// How long a finished job's status stays readable: 7 days.
const JOB_KEEP_MS: i64 = 7 * 86_400_000;

/// Removes expired API tokens, ended web sessions, and jobs that ended over 7 days ago from
/// the store; how many of each. The hub runs this with its renewal checks.
pub async fn clean_up(store: &Store) -> Result<(u64, u64), certhub_store::Error> {
    let now = api::now_ms();
    let tokens = store.delete_stale_tokens(now - ui::IDLE_MINUTES * 60_000).await?;
    let jobs = store.delete_jobs_before(now - JOB_KEEP_MS).await?;
    Ok((tokens, jobs))
}

/// The hub's routes: the REST API under `/api/v1` and the web UI, every answer with the
/// security headers of [`secure_headers`].
pub fn router(state: AppState) -> axum::Router {
    let https = state.https;
    api::routes()
        .merge(ui::routes())
        .with_state(state)
        .layer(axum::middleware::map_response(move |rsp| secure_headers(rsp, https)))
}

/// What the UI needs and no more: its own scripts (htmx) and stylesheet, pictures of its own
/// or inline SVG, requests and forms to this hub only, and no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Adds the headers every answer carries: no framing, no type sniffing, no referrer sent
/// off this hub, the content security policy, and over HTTPS, Strict-Transport-Security
/// (a year), so a browser that has been here never uses plain HTTP again.
async fn secure_headers(
    mut rsp: axum::response::Response,
    https: bool,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = rsp.headers_mut();
    let mut set = |name, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "same-origin");
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    if https {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    rsp
}
