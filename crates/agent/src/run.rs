//! `certhub agent run`: one outbound connection to the hub's agent endpoint, kept open; the
//! hub pushes what to deploy, the agent deploys it (once) and reports.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use certhub_core::agent::{
    Assignment, ChallengeAction, ChallengeAnswer, ChallengeTask, CsrReport, Delivery, DeployReport,
    DeployState, Push,
};
use certhub_core::{ChallengeSpec, PendingChallenge, Solver};
use certhub_deploy::{Facts, Issued, Outcome, Run};
use certhub_engine::{Error, Kind};
use serde::{Deserialize, Serialize};

use crate::identity::{Identity, cause};
use crate::safety::Safety;

/// The longest wait between two tries to reach the hub.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long the hub may stay silent on the stream (it pings every 25 s) before the
/// connection counts as lost.
const SILENCE_LIMIT: Duration = Duration::from_secs(75);

/// How long the agent keeps presenting a challenge the hub never told it to remove (its
/// orderer died, and the hub forgot it): as long as the hub keeps one.
const CHALLENGE_HELD: Duration = Duration::from_secs(3600);

/// Where the agent keeps what it deployed.
const DEPLOYED_FILE: &str = "deployed.json";

/// How the agent runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub safety: Safety,
    /// The web servers whose configuration the agent reads: the names they serve go to the
    /// hub, and their TLS server blocks are checked after each deployment.
    pub web_servers: Vec<crate::WebConfig>,
    /// Renew the agent's own client certificate when it expires within this.
    pub renew_before: Duration,
}

/// What the agent deployed, by certificate: kept in `deployed.json`, written after each
/// deployment, so that the same serial is never deployed twice (also across restarts).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Deployed {
    certs: BTreeMap<String, DeployedCert>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeployedCert {
    serial: String,
    /// Epoch milliseconds.
    at: i64,
    /// Whether the hub has the report.
    reported: bool,
}

impl Deployed {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let file = dir.join(DEPLOYED_FILE);
        match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is damaged; remove it to deploy all anew", file.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let file = dir.join(DEPLOYED_FILE);
        let json = serde_json::to_vec_pretty(self)?;
        certhub_deploy::files::write_atomic(&file, &json, 0o600, Default::default())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))
    }
}

/// How a connection to the hub ended.
enum Ended {
    /// The hub ended the stream (it stops): reconnect soon.
    Closed,
    /// The hub refused this agent (removed): stop.
    Refused(String),
    /// Lost, or never made: reconnect after a pause.
    Lost(String),
}

/// An agent's work: what it needs while connected.
struct Agent {
    dir: PathBuf,
    identity: Identity,
    client: reqwest::Client,
    deployed: Deployed,
    safety: Safety,
    web_servers: Vec<crate::WebConfig>,
    renew_before: Duration,
    /// Answers challenges on this machine for certificates whose key it keeps.
    solvers: certhub_challenge::Solvers,
    /// The challenges presented now, by the hub's number, until it says to remove them (or
    /// [`CHALLENGE_HELD`] has passed), with when each was presented.
    challenges: HashMap<i64, (std::sync::Arc<dyn Solver>, PendingChallenge, std::time::Instant)>,
}

/// Runs the agent kept in `data_dir` until `stop` resolves, or the hub refuses it.
pub async fn run(
    data_dir: &Path,
    options: RunOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let identity = Identity::load(data_dir)?;
    let client = Identity::client(data_dir)?;
    let deployed = Deployed::load(data_dir)?;
    let mut agent = Agent {
        dir: data_dir.to_path_buf(),
        identity,
        client,
        deployed,
        safety: options.safety,
        web_servers: options.web_servers,
        renew_before: options.renew_before,
        solvers: certhub_challenge::Solvers::new(Default::default()),
        challenges: HashMap::new(),
    };
    tracing::info!(agent = agent.identity.name, hub = agent.identity.agent_url, "agent starting");
    let mut stop = std::pin::pin!(stop);
    let mut backoff = Duration::from_millis(500);
    loop {
        let ended = tokio::select! {
            () = &mut stop => return Ok(()),
            ended = agent.session() => ended,
        };
        let wait = match ended {
            Ended::Refused(why) => {
                return Err(Error::new(
                    Kind::Forbidden,
                    format!("the hub refused this agent: {why}"),
                )
                .into());
            }
            Ended::Closed => {
                backoff = Duration::from_millis(500);
                Duration::from_millis(200)
            }
            Ended::Lost(why) => {
                tracing::warn!(
                    hub = agent.identity.agent_url,
                    "the connection to the hub is lost: {why}; retrying"
                );
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        // Jitter, so that agents cut off together do not come back together.
        let jitter = wait.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(jitter) => {}
        }
    }
}

impl Agent {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.identity.agent_url.trim_end_matches('/'))
    }

    /// Renews the agent's client certificate when it expires within `renew_before`.
    async fn renew_identity_if_due(&mut self) -> anyhow::Result<()> {
        let expires = crate::identity::expires(&self.dir)?;
        let due = certhub_core::time::now_secs() + self.renew_before.as_secs() as i64;
        if expires > due {
            return Ok(());
        }
        crate::identity::renew(&self.dir, &self.client, &self.identity.agent_url).await?;
        self.client = Identity::client(&self.dir)?;
        tracing::info!(agent = self.identity.name, "renewed the agent's client certificate");
        Ok(())
    }

    /// One connection: the stream, and the work it brings, until it ends.
    async fn session(&mut self) -> Ended {
        if let Err(e) = self.renew_identity_if_due().await {
            tracing::warn!(error = format!("{e:#}"), "renewing the agent's certificate failed");
        }
        let mut facts = crate::facts();
        let (found, problems) = crate::verify::discover(&self.web_servers);
        for p in problems {
            tracing::warn!("reading a web server's configuration: {p}");
        }
        facts.discovered = crate::verify::names(&found);
        let rsp = self.client.post(self.url("/agent/v1/stream")).json(&facts).send().await;
        let mut rsp = match rsp {
            Ok(r) => r,
            Err(e) => return Ended::Lost(cause(&e)),
        };
        let status = rsp.status();
        if !status.is_success() {
            let detail = problem_detail(rsp).await;
            return if status == reqwest::StatusCode::FORBIDDEN
                || status == reqwest::StatusCode::UNAUTHORIZED
            {
                Ended::Refused(detail)
            } else {
                Ended::Lost(format!("the hub answered {status}: {detail}"))
            };
        }
        tracing::info!(hub = self.identity.agent_url, "connected to the hub");
        let mut buffer = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(SILENCE_LIMIT, rsp.chunk()).await {
                Err(_) => {
                    return Ended::Lost(format!(
                        "the hub said nothing for {} s",
                        SILENCE_LIMIT.as_secs()
                    ));
                }
                Ok(Err(e)) => return Ended::Lost(cause(&e)),
                Ok(Ok(None)) => return Ended::Closed,
                Ok(Ok(Some(c))) => c,
            };
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                match serde_json::from_slice::<Push>(&line) {
                    Ok(push) => {
                        if let Err(e) = self.handle(push).await {
                            if let Some(refused) = e.downcast_ref::<Refused>() {
                                return Ended::Refused(refused.0.clone());
                            }
                            tracing::warn!(error = format!("{e:#}"), "deploying failed");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "a line from the hub was not understood"),
                }
            }
        }
    }

    async fn handle(&mut self, push: Push) -> anyhow::Result<()> {
        self.drop_stale_challenges().await;
        match push {
            Push::Ping => Ok(()),
            Push::Csr { cert, names } => self.send_csr(&cert, &names).await,
            Push::Challenge(task) => self.challenge(task).await,
            Push::Deploy(a) => self.assignment(a).await,
            Push::Assigned { certs } => {
                let mut first_error = None;
                for a in certs {
                    if let Err(e) = self.assignment(a).await {
                        if e.downcast_ref::<Refused>().is_some() {
                            return Err(e);
                        }
                        tracing::warn!(error = format!("{e:#}"), "deploying failed");
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
        }
    }

    /// Deploys `a` unless it was deployed already (then only reports it, if the hub never
    /// heard).
    async fn assignment(&mut self, a: Assignment) -> anyhow::Result<()> {
        if let Some(done) = self.deployed.certs.get(&a.cert).filter(|d| d.serial == a.serial) {
            if !done.reported {
                let report = DeployReport {
                    cert: a.cert.clone(),
                    serial: a.serial.clone(),
                    state: DeployState::Deployed,
                    error: None,
                    verified: Vec::new(),
                };
                self.report(&report).await?;
                self.mark_reported(&a.cert)?;
            }
            return Ok(());
        }
        let delivery = self.fetch(&a.cert).await?;
        if self.deployed.certs.get(&a.cert).is_some_and(|d| d.serial == delivery.serial) {
            return Ok(());
        }
        let report = self.deploy(&delivery).await;
        if report.state == DeployState::Deployed {
            self.deployed.certs.insert(
                delivery.cert.clone(),
                DeployedCert {
                    serial: delivery.serial.clone(),
                    at: certhub_core::time::now_ms(),
                    reported: false,
                },
            );
            self.deployed.save(&self.dir)?;
            tracing::info!(cert = delivery.cert, serial = delivery.serial, "deployed");
        } else {
            tracing::warn!(
                cert = delivery.cert,
                serial = delivery.serial,
                error = report.error.as_deref().unwrap_or(""),
                "not deployed"
            );
        }
        self.report(&report).await?;
        if report.state == DeployState::Deployed {
            self.mark_reported(&delivery.cert)?;
        }
        Ok(())
    }

    /// Makes the key of certificate `cert` (or takes the one kept), keeps it, and sends the
    /// hub a certificate request for `names`.
    async fn send_csr(&self, cert: &str, names: &[String]) -> anyhow::Result<()> {
        let key = own_key(&self.dir, cert, true)?.context("making the key")?;
        let ids: Vec<certhub_core::Identifier> = names
            .iter()
            .map(|n| certhub_core::Identifier::parse(n))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("certificate {cert}: {e}"))?;
        let der = certhub_core::build_csr(&key, &ids)?;
        let csr = CsrReport {
            cert: cert.to_string(),
            csr_pem: certhub_core::pem_block("CERTIFICATE REQUEST", &der),
        };
        self.post("/agent/v1/csr", &csr, "sending the certificate request").await?;
        tracing::info!(cert, "made the key and sent its certificate request");
        Ok(())
    }

    /// Presents or removes a challenge on this machine, and tells the hub.
    async fn challenge(&mut self, task: ChallengeTask) -> anyhow::Result<()> {
        let answer = match task.action {
            ChallengeAction::Present => match self.present(&task).await {
                Ok(()) => ChallengeAnswer::Presented,
                Err(error) => {
                    tracing::warn!(cert = task.cert, error, "cannot present a challenge");
                    ChallengeAnswer::Failed { error }
                }
            },
            ChallengeAction::Remove => {
                if let Some((solver, pending, _)) = self.challenges.remove(&task.id)
                    && let Err(e) = solver.cleanup(&pending).await
                {
                    tracing::warn!(cert = task.cert, error = %e, "removing a challenge failed");
                }
                ChallengeAnswer::Removed
            }
        };
        let path = format!("/agent/v1/challenges/{}", task.id);
        self.post(&path, &answer, "answering a challenge").await
    }

    /// Presents `task` (once: the hub may send it again until it hears the answer), if this
    /// agent keeps the certificate's key and its options allow the configuration.
    async fn present(&mut self, task: &ChallengeTask) -> Result<(), String> {
        if self.challenges.contains_key(&task.id) {
            return Ok(());
        }
        if let Some(why) = self.safety.challenge_refusal(&task.config) {
            return Err(why);
        }
        match own_key(&self.dir, &task.cert, false) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(format!(
                    "this agent keeps no key for certificate {}: it answers challenges only for \
                     the certificates whose key it made",
                    task.cert
                ));
            }
            Err(e) => return Err(format!("{e:#}")),
        }
        let spec = ChallengeSpec {
            config: task.config.clone(),
            domains: Vec::new(),
            propagation_timeout: None,
            propagation: Default::default(),
        };
        let solver = self.solvers.for_spec(&spec).await.map_err(|e| e.to_string())?;
        let pending = task.pending();
        solver.present(&pending).await.map_err(|e| e.to_string())?;
        tracing::info!(
            cert = task.cert,
            identifier = %pending.identifier,
            "presenting {}: {}",
            pending.kind,
            task.config.describe()
        );
        self.challenges.insert(task.id, (solver, pending, std::time::Instant::now()));
        Ok(())
    }

    /// Removes the challenges presented longer than [`CHALLENGE_HELD`] ago.
    async fn drop_stale_challenges(&mut self) {
        let stale: Vec<i64> = self
            .challenges
            .iter()
            .filter(|(_, (_, _, at))| at.elapsed() > CHALLENGE_HELD)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some((solver, pending, _)) = self.challenges.remove(&id)
                && let Err(e) = solver.cleanup(&pending).await
            {
                tracing::warn!(cert = pending.cert, error = %e, "removing a stale challenge failed");
            }
        }
    }

    fn mark_reported(&mut self, cert: &str) -> anyhow::Result<()> {
        if let Some(d) = self.deployed.certs.get_mut(cert) {
            d.reported = true;
            self.deployed.save(&self.dir)?;
        }
        Ok(())
    }

    async fn fetch(&self, cert: &str) -> anyhow::Result<Delivery> {
        let rsp =
            self.client.get(self.url(&format!("/agent/v1/certs/{cert}"))).send().await.map_err(
                |e| anyhow::anyhow!("fetching certificate {cert} from the hub: {}", cause(&e)),
            )?;
        let status = rsp.status();
        if !status.is_success() {
            let detail = problem_detail(rsp).await;
            if status == reqwest::StatusCode::UNAUTHORIZED {
                return Err(Refused(detail).into());
            }
            anyhow::bail!("fetching certificate {cert} from the hub: {status}: {detail}");
        }
        rsp.json().await.with_context(|| format!("certificate {cert} from the hub does not parse"))
    }

    async fn report(&self, report: &DeployReport) -> anyhow::Result<()> {
        self.post("/agent/v1/report", report, "reporting to the hub").await
    }

    /// Posts `body` to the agent endpoint's `path`; a failure says it was `doing` that.
    async fn post(&self, path: &str, body: &impl Serialize, doing: &str) -> anyhow::Result<()> {
        let rsp = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{doing}: {}", cause(&e)))?;
        let status = rsp.status();
        if !status.is_success() {
            anyhow::bail!("{doing}: {status}: {}", problem_detail(rsp).await);
        }
        Ok(())
    }

    /// Runs the delivery's tasks, unless one may not run here (then none does).
    async fn deploy(&self, d: &Delivery) -> DeployReport {
        let mut report = DeployReport {
            cert: d.cert.clone(),
            serial: d.serial.clone(),
            state: DeployState::Deployed,
            error: None,
            verified: Vec::new(),
        };
        let refusals: Vec<String> = d.tasks.iter().filter_map(|t| self.safety.refusal(t)).collect();
        if !refusals.is_empty() {
            report.state = DeployState::Refused;
            report.error = Some(refusals.join("; "));
            return report;
        }
        let issued = match issued(d, &self.dir) {
            Ok(i) => i,
            Err(e) => {
                report.state = DeployState::Failed;
                report.error = Some(format!("{e:#}"));
                return report;
            }
        };
        let facts = Facts { cert_name: d.cert.clone(), issued: Some(issued), error: None };
        let mut run = Run::new(&facts, false);
        let mut failures = Vec::new();
        for task in &d.tasks {
            if let Outcome::Failed(why) = run.task(task).await {
                failures.push(format!("task {}: {why}", task.name));
            }
        }
        if !failures.is_empty() {
            report.state = DeployState::Failed;
            report.error = Some(failures.join("; "));
            return report;
        }
        let given: Vec<String> = d.tasks.iter().flat_map(|t| t.verify.clone()).collect();
        let (found, _) = crate::verify::discover(&self.web_servers);
        let endpoints = crate::verify::endpoints(&given, &found, &d.domains);
        if let Some(sni) = d.domains.iter().find(|n| n.parse::<std::net::IpAddr>().is_err()) {
            let sni = sni.trim_start_matches("*.");
            report.verified = crate::verify::check(&endpoints, sni, &d.serial).await;
        }
        report
    }
}

/// The hub refused this agent: it stops.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn issued(d: &Delivery, dir: &Path) -> anyhow::Result<Issued> {
    let chain_der = certhub_core::split_pem_chain(&d.chain_pem)
        .context("the certificate from the hub does not parse")?;
    // A key the hub does not hold is this agent's own, if it made one.
    let key_pkcs8 = if d.key_pem.is_empty() {
        own_key(dir, &d.cert, false)?.map(|k| k.pkcs8_der().to_vec()).unwrap_or_default()
    } else {
        pem::parse(&d.key_pem).context("the key from the hub does not parse")?.into_contents()
    };
    Ok(Issued {
        serial_hex: d.serial.clone(),
        not_before: d.not_before,
        not_after: d.not_after,
        domains: d.domains.clone(),
        chain_der,
        key_pkcs8: zeroize::Zeroizing::new(key_pkcs8),
    })
}

/// The key this agent keeps for certificate `cert` (`keys/CERT.pem`, mode 0600), made now
/// when `make` and there is none.
fn own_key(dir: &Path, cert: &str, make: bool) -> anyhow::Result<Option<certhub_core::PrivateKey>> {
    let file = dir.join("keys").join(format!("{cert}.pem"));
    match std::fs::read_to_string(&file) {
        Ok(pem) => {
            let key = certhub_core::PrivateKey::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            return Ok(Some(key));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
    if !make {
        return Ok(None);
    }
    let key = certhub_core::PrivateKey::generate(certhub_core::KeyType::EcP256)?;
    std::fs::create_dir_all(dir.join("keys"))?;
    certhub_deploy::files::write_atomic(&file, key.to_pem().as_bytes(), 0o600, Default::default())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    Ok(Some(key))
}

/// The `detail` of a problem document answer, or its status (and why there is no more).
async fn problem_detail(rsp: reqwest::Response) -> String {
    let status = rsp.status();
    let body = match rsp.bytes().await {
        Ok(b) => b,
        Err(e) => return format!("{status} (the answer broke off: {})", cause(&e)),
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|p| p["detail"].as_str().map(str::to_string))
        .unwrap_or_else(|| status.to_string())
}
