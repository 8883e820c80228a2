//! The hub's agent endpoint (`certhub serve --agent-listen`): mutual TLS only, a client
//! certificate from the hub's agent authority required in the handshake. Each agent keeps
//! one request open, `POST /agent/v1/stream` (its machine's facts in, one JSON [`Push`] per
//! line out), through which the hub pushes work as it happens; it fetches a certificate
//! assigned to it with `GET /agent/v1/certs/{name}`, reports each deployment with
//! `POST /agent/v1/report`, sends the certificate requests of the keys it keeps with
//! `POST /agent/v1/csr`, answers the challenges it presents for them with
//! `POST /agent/v1/challenges/{id}`, and renews its own certificate with
//! `POST /agent/v1/identity`.
//!
//! An agent's identity is checked against the store on every request: a removed agent is
//! refused, and its stream ends at once (the answer says `Connection: close`, so its
//! connection goes with it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use certhub_core::agent::{AgentFacts, Assignment, Delivery, DeployReport, Push};
use certhub_engine::Engine;
use certhub_engine::agent_ca::AgentCa;
use certhub_store::Change;
use tokio::sync::{mpsc, watch};

use crate::listen::PeerCertificate;
use crate::problem::Problem;

/// How often a stream with nothing to say sends a ping: within the idle limits of common
/// proxies and load balancers (60 s).
const PING_EVERY: Duration = Duration::from_secs(25);

/// How often the hub looks for changes that other processes made to the store: on
/// PostgreSQL they are heard at once (`LISTEN`), and the look only catches what was said
/// while that connection was being made again; on SQLite the other processes are `certhub`
/// commands on the hub's machine, and the look (a few index reads) is how they are heard.
const SWEEP_EVERY_POSTGRES: Duration = Duration::from_secs(15);
const SWEEP_EVERY_SQLITE: Duration = Duration::from_secs(2);

/// How long a challenge for an agent is kept at most: one its agent never came back to
/// remove, or whose orderer died waiting, is forgotten after this.
const CHALLENGE_KEPT: Duration = Duration::from_secs(3600);

/// How often challenges kept too long are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Pushes waiting for one agent's stream before it counts as stuck (and is dropped, to
/// reconnect and start from the full list).
const PUSH_BUFFER: usize = 256;

/// The agent endpoint's state: the engine, the agent authority, and the open streams.
pub struct AgentLink {
    engine: Arc<Engine>,
    ca: Arc<AgentCa>,
    /// The agent endpoint's URL as agents are told it, when the hub was given one.
    url: Option<String>,
    /// The agent endpoint's port, for a URL made from the host a joining agent called.
    port: u16,
    /// Open streams by agent id; each has its own number, so a stream that ends removes
    /// itself and not a newer one of the same agent.
    streams: Mutex<Streams>,
    next_stream: AtomicU64,
    closing: watch::Sender<bool>,
}

/// The open streams: by agent id, each stream's number and sender.
type Streams = HashMap<String, Vec<(u64, mpsc::Sender<Push>)>>;

/// The agent a request comes from, once checked against the store.
#[derive(Debug, Clone)]
struct AgentCaller {
    id: String,
    name: String,
    source: String,
}

impl AgentLink {
    /// The endpoint of `engine`'s hub with the agent authority `ca`, listening on `port`;
    /// `url` is what agents are told to connect to (without it: `https://HOST:PORT`, HOST
    /// being the host a joining agent reached the hub at).
    pub fn new(engine: Arc<Engine>, ca: AgentCa, url: Option<String>, port: u16) -> Arc<Self> {
        Arc::new(Self {
            engine,
            ca: Arc::new(ca),
            url,
            port,
            streams: Mutex::default(),
            next_stream: AtomicU64::new(0),
            closing: watch::channel(false).0,
        })
    }

    /// The agent authority.
    pub fn ca(&self) -> &Arc<AgentCa> {
        &self.ca
    }

    /// The URL agents are told, for a join that reached the hub at `host` (a Host header).
    pub fn url_for(&self, host: Option<&str>) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let host = host.unwrap_or("localhost");
        // The host without its port: `example.com:8080`, `[::1]:8080`.
        let bare = match host.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
            _ => host,
        };
        format!("https://{bare}:{}", self.port)
    }

    /// How many agents have a stream open now.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// Whether agent `id` has a stream open.
    pub(crate) fn is_connected(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every stream (at the hub's stop): the agents reconnect to whichever hub serves.
    pub fn close(&self) {
        let _ = self.closing.send(true);
        self.lock().clear();
    }

    /// Sends `push` to agent `id`'s streams; a stream that cannot keep up is dropped.
    fn send(&self, id: &str, push: &Push) {
        let mut streams = self.lock();
        if let Some(list) = streams.get_mut(id) {
            list.retain(|(_, tx)| tx.try_send(push.clone()).is_ok());
            if list.is_empty() {
                streams.remove(id);
            }
        }
    }

    /// The full list of what agent `id` deploys.
    async fn assigned(&self, id: &str) -> Result<Push, certhub_store::Error> {
        let certs = self.engine.store().agent_assignments(id).await?;
        let certs = certs.into_iter().map(|(cert, serial)| Assignment { cert, serial }).collect();
        Ok(Push::Assigned { certs })
    }

    /// Follows the store's changes (and other processes', see [`SWEEP_EVERY_SQLITE`]) and
    /// pushes what each connected agent must hear, until the link closes.
    pub async fn run(self: Arc<Self>) {
        let store = self.engine.store();
        let mut changes = store.subscribe();
        let others = match store.follow_other_processes().await {
            Ok(task) => task.map(AbortOnDrop),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot hear other hubs' changes at once; looking every {} s",
                    SWEEP_EVERY_POSTGRES.as_secs()
                );
                None
            }
        };
        let every = match store.backend() {
            certhub_store::Backend::Postgres => SWEEP_EVERY_POSTGRES,
            certhub_store::Backend::Sqlite => SWEEP_EVERY_SQLITE,
        };
        let mut closing = self.closing.subscribe();
        let mut sweep = tokio::time::interval(every);
        let mut looked = Looked { marker: None, pruned: None };
        loop {
            let change = tokio::select! {
                _ = closing.wait_for(|c| *c) => break,
                change = changes.recv() => change,
                _ = sweep.tick() => {
                    if let Err(e) = self.sweep(&mut looked).await {
                        tracing::warn!(error = %e, "looking for changes to push to agents failed");
                    }
                    continue;
                }
            };
            let result = match change {
                Ok(Change::Issued(cert) | Change::Targets(cert)) => self.push_cert(&cert).await,
                Ok(Change::Labels(id)) => self.push_assigned(&id).await,
                Ok(Change::Challenge(id)) => {
                    self.push_challenges(&id).await;
                    Ok(())
                }
                Ok(Change::AgentRemoved(id)) => {
                    self.lock().remove(&id);
                    Ok(())
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "agent pushes fell behind; sending every agent its list"
                    );
                    let ids: Vec<String> = self.lock().keys().cloned().collect();
                    let mut result = Ok(());
                    for id in ids {
                        result = result.and(self.push_assigned(&id).await);
                    }
                    result
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "pushing to agents failed");
            }
        }
        drop(others);
    }

    /// Pushes every connected agent its full list when the store changed unseen, ends the
    /// streams of agents removed meanwhile, and sends the challenges agents have to present
    /// or remove (wanted by another process perhaps).
    async fn sweep(&self, looked: &mut Looked) -> Result<(), certhub_store::Error> {
        let store = self.engine.store();
        if looked.pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            let kept = certhub_core::time::now_ms() - CHALLENGE_KEPT.as_millis() as i64;
            store.prune_agent_challenges(kept).await?;
            looked.pruned = Some(std::time::Instant::now());
        }
        self.push_open_challenges().await?;
        let now = store.agent_marker().await?;
        let before = looked.marker.replace(now);
        if before.is_none() || before == Some(now) {
            return Ok(());
        }
        let known: std::collections::HashSet<String> =
            store.agent_ids().await?.into_iter().collect();
        self.lock().retain(|id, _| known.contains(id));
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            self.push_assigned(&id).await?;
        }
        Ok(())
    }

    async fn push_cert(&self, cert: &str) -> Result<(), certhub_store::Error> {
        let store = self.engine.store();
        let ids = store.cert_agents(cert).await?;
        let connected: Vec<String> = ids.into_iter().filter(|id| self.is_connected(id)).collect();
        if connected.is_empty() {
            return Ok(());
        }
        let Some(latest) = store.latest_issued(cert).await? else {
            // Not issued yet: an agent that makes its key is asked for its request.
            for id in connected {
                match self.engine.csr_wanted(&id).await {
                    Ok(pushes) => pushes.iter().for_each(|p| self.send(&id, p)),
                    Err(e) => tracing::warn!(error = %e, "listing the requests an agent owes"),
                }
            }
            return Ok(());
        };
        let push = Push::Deploy(Assignment { cert: cert.into(), serial: latest.serial_hex });
        for id in connected {
            self.send(&id, &push);
        }
        Ok(())
    }

    /// Sends agent `id` its full list, the certificate requests it owes, and the
    /// challenges it has to present or remove.
    async fn push_assigned(&self, id: &str) -> Result<(), certhub_store::Error> {
        if self.is_connected(id) {
            let push = self.assigned(id).await?;
            self.send(id, &push);
            match self.engine.csr_wanted(id).await {
                Ok(pushes) => pushes.iter().for_each(|p| self.send(id, p)),
                Err(e) => tracing::warn!(error = %e, "listing the requests an agent owes"),
            }
            self.push_challenges(id).await;
        }
        Ok(())
    }

    /// Sends agent `id` the challenges it has to present or remove, if it is connected.
    async fn push_challenges(&self, id: &str) {
        if self.is_connected(id) {
            match self.engine.challenge_tasks(id).await {
                Ok(pushes) => pushes.iter().for_each(|p| self.send(id, p)),
                Err(e) => tracing::warn!(error = %e, "listing the challenges an agent answers"),
            }
        }
    }

    /// Sends each connected agent the challenges it has to present or remove, whichever
    /// process wants them (an agent answers one it was sent before again, and no more).
    async fn push_open_challenges(&self) -> Result<(), certhub_store::Error> {
        for c in self.engine.store().open_agent_challenges(None).await? {
            self.send(&c.agent_id, &Push::Challenge(c.task));
        }
        Ok(())
    }
}

/// What the periodic look saw last: the store's marker, and when old challenges were
/// last pruned.
struct Looked {
    marker: Option<(i64, i64, i64, i64)>,
    pruned: Option<std::time::Instant>,
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The agent endpoint's routes; every one needs an agent's identity.
pub fn router(link: Arc<AgentLink>) -> Router {
    Router::new()
        .route("/agent/v1/stream", post(stream))
        .route("/agent/v1/certs/{name}", get(certificate))
        .route("/agent/v1/report", post(report))
        .route("/agent/v1/csr", post(csr))
        .route("/agent/v1/identity", post(identity))
        .route("/agent/v1/challenges/{id}", post(challenge))
        .fallback(|| async { Problem::not_found("no such agent endpoint") })
        .layer(axum::middleware::from_fn_with_state(link.clone(), identify))
        .with_state(link)
}

/// Finds the agent a request comes from: its client certificate names it, and it must not
/// have been removed.
async fn identify(State(link): State<Arc<AgentLink>>, mut req: Request, next: Next) -> Response {
    let Some(PeerCertificate(der)) = req.extensions().get::<PeerCertificate>().cloned() else {
        return Problem::unauthorized("the agent endpoint needs an agent's client certificate")
            .into_response();
    };
    let Some(id) = certhub_engine::agent_ca::agent_id(&der) else {
        return Problem::forbidden("the client certificate names no agent").into_response();
    };
    let agent = match link.engine.store().agent_by_id(&id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Problem::forbidden(
                "this agent was removed from the hub: join it again with a new token \
                 (`certhub agent join`)",
            )
            .into_response();
        }
        Err(e) => return Problem::from(e).into_response(),
    };
    let source = crate::auth::source_of(req.extensions());
    req.extensions_mut().insert(AgentCaller { id: agent.id, name: agent.name, source });
    next.run(req).await
}

/// The agent's push stream: the full list of its certificates first, then each change as it
/// happens, and a ping when nothing happened for a while.
async fn stream(
    State(link): State<Arc<AgentLink>>,
    axum::Extension(agent): axum::Extension<AgentCaller>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let facts: AgentFacts = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid("body", format!("the agent's facts do not parse: {e}")))?;
    let store = link.engine.store();
    store.agent_seen(&agent.id, &facts).await?;
    // Listed before the full list is read, so that nothing issued in between goes unheard
    // (it may come twice: the agent deploys a serial once).
    let (tx, rx) = mpsc::channel(PUSH_BUFFER);
    let number = link.next_stream.fetch_add(1, Ordering::Relaxed);
    link.lock().entry(agent.id.clone()).or_default().push((number, tx));
    let guard = StreamGuard { link: link.clone(), id: agent.id.clone(), name: agent.name, number };
    let first = link.assigned(&agent.id).await?;
    for push in link.engine.csr_wanted(&agent.id).await? {
        link.send(&agent.id, &push);
    }
    for push in link.engine.challenge_tasks(&agent.id).await? {
        link.send(&agent.id, &push);
    }
    tracing::info!(agent = guard.name, from = agent.source, "agent connected");
    let closing = link.closing.subscribe();
    let state = (Some(first), rx, tokio::time::interval(PING_EVERY), closing, guard);
    let lines = futures::stream::unfold(
        state,
        |(first, mut rx, mut ping, mut closing, guard)| async move {
            if let Some(push) = first {
                ping.reset();
                return Some((line(&push), (None, rx, ping, closing, guard)));
            }
            let push = tokio::select! {
                push = rx.recv() => push?,
                _ = ping.tick() => Push::Ping,
                _ = closing.wait_for(|c| *c) => return None,
            };
            ping.reset();
            Some((line(&push), (None, rx, ping, closing, guard)))
        },
    );
    let mut rsp = axum::body::Body::from_stream(lines).into_response();
    let headers = rsp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(rsp)
}

fn line(push: &Push) -> Result<axum::body::Bytes, std::convert::Infallible> {
    // A push is strings and lists of strings: it always serializes.
    let mut text = serde_json::to_vec(push).expect("a push serializes");
    text.push(b'\n');
    Ok(text.into())
}

/// Takes a stream off the list when it ends, and records when its agent was last seen.
struct StreamGuard {
    link: Arc<AgentLink>,
    id: String,
    name: String,
    number: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut streams = self.link.lock();
        if let Some(list) = streams.get_mut(&self.id) {
            list.retain(|(n, _)| *n != self.number);
            if list.is_empty() {
                streams.remove(&self.id);
            }
        }
        drop(streams);
        tracing::info!(agent = self.name, "agent disconnected");
        let (store, id) = (self.link.engine.store().clone(), self.id.clone());
        tokio::spawn(async move {
            if let Err(e) = store.agent_last_seen(&id).await {
                tracing::debug!(error = %e, "recording when an agent was last seen failed");
            }
        });
    }
}

/// A certificate assigned to the agent, with its key and tasks.
async fn certificate(
    State(link): State<Arc<AgentLink>>,
    axum::Extension(agent): axum::Extension<AgentCaller>,
    Path(name): Path<String>,
) -> Result<axum::Json<Delivery>, Problem> {
    let delivery = link.engine.delivery(&agent.id, &agent.name, &name, &agent.source).await?;
    Ok(axum::Json(delivery))
}

/// The agent's certificate request for a certificate whose key it keeps.
async fn csr(
    State(link): State<Arc<AgentLink>>,
    axum::Extension(agent): axum::Extension<AgentCaller>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Problem> {
    let csr: certhub_core::agent::CsrReport = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid("body", format!("the request does not parse: {e}")))?;
    link.engine.agent_csr(&agent.id, &agent.name, &csr, &agent.source).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new client certificate for the agent, for its new key.
async fn identity(
    State(link): State<Arc<AgentLink>>,
    axum::Extension(agent): axum::Extension<AgentCaller>,
    body: axum::body::Bytes,
) -> Result<axum::Json<certhub_core::agent::IdentityRenewal>, Problem> {
    let req: certhub_core::agent::IdentityRenewal = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid("body", format!("the request does not parse: {e}")))?;
    let pem = link
        .engine
        .renew_agent_identity(link.ca(), &agent.id, &agent.name, &req.pem, &agent.source)
        .await?;
    Ok(axum::Json(certhub_core::agent::IdentityRenewal { pem }))
}

/// The agent's answer to a challenge it was asked to present or remove.
async fn challenge(
    State(link): State<Arc<AgentLink>>,
    axum::Extension(agent): axum::Extension<AgentCaller>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Problem> {
    let answer: certhub_core::agent::ChallengeAnswer = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid("body", format!("the answer does not parse: {e}")))?;
    link.engine.answer_challenge(&agent.id, id, &answer).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The agent's report of a deployment.
async fn report(
    State(link): State<Arc<AgentLink>>,
    axum::Extension(agent): axum::Extension<AgentCaller>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Problem> {
    let report: DeployReport = serde_json::from_slice(&body)
        .map_err(|e| Problem::invalid("body", format!("the report does not parse: {e}")))?;
    link.engine.record_report(&agent.id, &agent.name, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The agent listener's TLS identity: a certificate from the agent authority for whatever
/// name an agent asks for (the authority is this hub's alone, and agents trust nothing else
/// for it), made on first use; with no name asked (an IP address), one for the hub's own
/// names and addresses.
pub struct AgentServerCert {
    ca: Arc<AgentCa>,
    fallback: Arc<rustls::sign::CertifiedKey>,
    by_name: Mutex<HashMap<String, Arc<rustls::sign::CertifiedKey>>>,
}

/// Names an agent listener keeps certificates for, at most; others get the fallback.
const MAX_SERVER_NAMES: usize = 64;

impl AgentServerCert {
    /// The identity for the names in `names` (host names and addresses) when no other is
    /// asked for.
    pub fn new(ca: Arc<AgentCa>, names: &[String]) -> Result<Arc<Self>, String> {
        let (chain, key) = ca.server_cert(names).map_err(|e| e.to_string())?;
        let fallback = crate::listen::certified_key(chain.as_bytes(), key.as_bytes())?;
        Ok(Arc::new(Self { ca, fallback, by_name: Mutex::default() }))
    }

    /// The listener's TLS configuration: this identity, and a client certificate from the
    /// agent authority required.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from(self.ca.cert_der().to_vec()))
            .map_err(|e| format!("the agent authority's certificate: {e}"))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("the agent client verifier: {e}"))?;
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.clone()))
    }
}

impl std::fmt::Debug for AgentServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentServerCert").finish_non_exhaustive()
    }
}

impl rustls::server::ResolvesServerCert for AgentServerCert {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let Some(name) = hello.server_name().map(str::to_ascii_lowercase) else {
            return Some(self.fallback.clone());
        };
        let mut by_name = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = by_name.get(&name) {
            return Some(key.clone());
        }
        if by_name.len() >= MAX_SERVER_NAMES {
            return Some(self.fallback.clone());
        }
        let made =
            self.ca.server_cert(std::slice::from_ref(&name)).ok().and_then(|(chain, key)| {
                crate::listen::certified_key(chain.as_bytes(), key.as_bytes()).ok()
            });
        let key = made.unwrap_or_else(|| self.fallback.clone());
        by_name.insert(name, key.clone());
        Some(key)
    }
}
