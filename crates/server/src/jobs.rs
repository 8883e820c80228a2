//! Long operations (a request takes seconds to minutes): the API answers at once with a job
//! whose status resource shows its steps as they happen.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use certhub_store::AuditEntry;
use serde::Serialize;

/// Reports the steps of one job.
pub trait Steps: Send + Sync {
    /// Records a step, e.g. "validating www.example.com with http-01".
    fn step(&self, message: &str);
}

/// Why the engine refused or failed: the HTTP status it maps to, and the message.
#[derive(Debug, Clone)]
pub struct WorkError {
    /// 400 (invalid input), 404 (no such thing), 409 (exists), 502 (the CA refused), 503
    /// (try later), 500.
    pub status: u16,
    /// What happened, in one sentence with its cause.
    pub message: String,
}

/// A boxed future of the engine.
pub type WorkFuture<T> = Pin<Box<dyn Future<Output = Result<T, WorkError>> + Send>>;

/// A CA account to register (`POST /api/v1/accounts`).
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Its name.
    pub name: String,
    /// The CA's directory URL, or `letsencrypt`, `letsencrypt-staging`.
    pub directory: String,
    /// Contact email.
    #[serde(default)]
    pub email: Option<String>,
    /// Agreement to the CA's terms of service (required).
    #[serde(default)]
    pub agree_tos: bool,
    /// External Account Binding key id.
    #[serde(default)]
    pub eab_kid: Option<String>,
    /// External Account Binding HMAC key (base64url).
    #[serde(default)]
    pub eab_hmac_key: Option<String>,
    /// Account key type (default ec-p256).
    #[serde(default)]
    pub key_type: Option<String>,
    /// PEM roots to trust for this CA (a private or test CA).
    #[serde(default)]
    pub ca_bundle_pem: Option<String>,
}

/// A managed certificate to add (`POST /api/v1/certificates`).
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCertificate {
    /// Its name.
    pub name: String,
    /// The account that orders it.
    pub account: String,
    /// DNS names (`*.example.com` for a wildcard).
    #[serde(default)]
    pub domains: Vec<String>,
    /// IP addresses.
    #[serde(default)]
    pub ips: Vec<std::net::IpAddr>,
    /// Key type (default ec-p256).
    #[serde(default)]
    pub key_type: Option<String>,
    /// Keep the key across renewals.
    #[serde(default)]
    pub reuse_key: bool,
    /// Challenge SPECs, as for `certhub cert add --challenge`.
    pub challenges: Vec<String>,
    /// Deployment SPECs, as for `certhub cert add --deploy`.
    #[serde(default)]
    pub deploy: Vec<String>,
    /// Renewal policy (75% or 30d).
    #[serde(default)]
    pub renew_at: Option<String>,
}

/// Changes to a managed certificate (`PATCH /api/v1/certificates/{name}`); what is left out
/// stays.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertChanges {
    /// Order with this account.
    #[serde(default)]
    pub account: Option<String>,
    /// Replace the challenge SPECs.
    #[serde(default)]
    pub challenges: Vec<String>,
    /// Renewal policy (75%, 30d, or `default`).
    #[serde(default)]
    pub renew_at: Option<String>,
    /// Fallback account, or `none`.
    #[serde(default)]
    pub fallback_account: Option<String>,
    /// Failures in a row before the fallback account orders.
    #[serde(default)]
    pub fallback_after: Option<u16>,
}

impl CertChanges {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.account.is_none()
            && self.challenges.is_empty()
            && self.renew_at.is_none()
            && self.fallback_account.is_none()
            && self.fallback_after.is_none()
    }
}

/// A certificate obtained elsewhere (`POST /api/v1/certificates/import`): PEM, or PKCS#12.
#[derive(Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewImport {
    /// Its name.
    pub name: String,
    /// The certificate and its chain, PEM, leaf first (the key may follow).
    #[serde(default)]
    pub cert_pem: Option<String>,
    /// The private key, PEM.
    #[serde(default)]
    pub key_pem: Option<String>,
    /// A PKCS#12 file, base64, instead of PEM.
    #[serde(default)]
    pub pkcs12_base64: Option<String>,
    /// The PKCS#12 file's password.
    #[serde(default)]
    pub password: Option<String>,
    /// Have ACME renew it with this account (needs `challenges`).
    #[serde(default)]
    pub account: Option<String>,
    /// Challenge SPECs for ACME renewals.
    #[serde(default)]
    pub challenges: Vec<String>,
    /// Deployment SPECs.
    #[serde(default)]
    pub deploy: Vec<String>,
}

impl std::fmt::Debug for NewImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewImport").field("name", &self.name).finish_non_exhaustive()
    }
}

/// What runs the hub's long operations (the issuance engine, provided by the binary). A
/// method that changes something takes the audit entry of that change (its detail, such as
/// a serial or the tasks added, is the worker's to fill in), to store with the change in
/// one transaction.
pub trait Worker: Send + Sync + 'static {
    /// Registers a CA account; returns its view.
    fn add_account(&self, account: NewAccount, audit: AuditEntry) -> WorkFuture<serde_json::Value>;

    /// Adds a managed certificate (nothing is ordered yet); returns its view.
    fn add_certificate(
        &self,
        cert: NewCertificate,
        audit: AuditEntry,
    ) -> WorkFuture<serde_json::Value>;

    /// The plan of requesting certificate `name` now, with nothing sent or written: JSON
    /// with a `summary` (lines in plain language) and the details.
    fn preview(&self, name: String) -> WorkFuture<serde_json::Value>;

    /// Probes each identifier of certificate `name` as the CA would validate it, without
    /// ordering: a list of `{identifier, challenge, works, detail}`.
    fn test(&self, name: String) -> WorkFuture<serde_json::Value>;

    /// Revokes the latest issued certificate of `name` (RFC 5280 `reason` name, e.g.
    /// `keyCompromise`); returns its serial.
    fn revoke(&self, name: String, reason: Option<String>, audit: AuditEntry)
    -> WorkFuture<String>;

    /// Changes how certificate `name` is ordered and renewed; what changed, in words.
    fn edit(
        &self,
        name: String,
        changes: CertChanges,
        audit: AuditEntry,
    ) -> WorkFuture<Vec<String>>;

    /// Adds deployment tasks (SPECs as for `certhub deploy add`) to certificate `name`.
    fn add_deployments(
        &self,
        name: String,
        specs: Vec<String>,
        audit: AuditEntry,
    ) -> WorkFuture<serde_json::Value>;

    /// Imports a certificate obtained elsewhere and runs its deployment tasks.
    fn import(&self, import: NewImport, audit: AuditEntry) -> WorkFuture<serde_json::Value>;

    /// Requests certificate `name` now; the result says what was issued, or why not.
    fn request(
        &self,
        name: String,
        steps: Arc<dyn Steps>,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;
}

/// A job's state, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// What it does, e.g. `request`.
    pub kind: String,
    /// On what.
    pub target: String,
    /// `running`, `succeeded`, `failed`, or `interrupted` (the hub running it stopped).
    pub status: String,
    /// The steps so far.
    pub steps: Vec<String>,
    /// The outcome, once it ends.
    pub result: Option<String>,
    /// When it started (RFC 3339).
    pub started: String,
}

/// How often a running job without news says it still runs.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// A running job not heard of for this long (four heartbeats) belongs to a hub that died.
const SILENT_LIMIT_MS: i64 = 4 * HEARTBEAT.as_millis() as i64;

/// What an interrupted job says.
pub(crate) const INTERRUPTED: &str = "the hub stopped before the request finished; the CA's \
     order is kept and the next request of this certificate resumes it";

impl Job {
    fn from_record(r: certhub_store::JobRecord, now_ms: i64) -> Self {
        let lost = r.status == "running" && now_ms - r.updated_at > SILENT_LIMIT_MS;
        Job {
            id: r.id,
            kind: r.kind,
            target: r.target,
            status: if lost { "interrupted".into() } else { r.status },
            steps: r.steps,
            result: if lost { Some(INTERRUPTED.into()) } else { r.result },
            started: crate::api::rfc3339_ms(r.created_at),
        }
    }
}

/// A step, or the end, of one job, in the order they happen.
enum Update {
    Step(String),
    End { status: &'static str, result: String },
}

/// The jobs of this hub: kept in the store, so their status outlives the process and any hub
/// sharing the database can show it. The work itself resumes from the store after a restart.
pub struct Jobs {
    store: certhub_store::Store,
    /// The ids of the jobs this process runs.
    running: Mutex<HashSet<String>>,
}

/// Sends a job's steps to its writer.
struct JobSteps(tokio::sync::mpsc::UnboundedSender<Update>);

impl Steps for JobSteps {
    fn step(&self, message: &str) {
        let _ = self.0.send(Update::Step(message.to_string()));
    }
}

impl Jobs {
    pub fn new(store: certhub_store::Store) -> Self {
        Self { store, running: Mutex::new(HashSet::new()) }
    }

    /// How many jobs this process still runs.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Marks the jobs this process still runs as interrupted (the hub is stopping).
    pub async fn interrupt_running(&self) {
        let ids: Vec<String> =
            self.running.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        for id in ids {
            if let Err(e) = self.store.finish_job(&id, "interrupted", INTERRUPTED).await {
                tracing::warn!(job = id, error = %e, "recording an interrupted job failed");
            }
        }
    }

    /// A job by id.
    pub async fn get(&self, id: &str) -> Result<Option<Job>, certhub_store::Error> {
        let now = crate::api::now_ms();
        Ok(self.store.job(id).await?.map(|r| Job::from_record(r, now)))
    }

    /// Starts `worker.request(target)` as a job, recorded with `audit`'s entry, and returns it.
    pub async fn start_request(
        self: &Arc<Self>,
        worker: Arc<dyn Worker>,
        target: &str,
        audit: certhub_store::AuditEntry,
    ) -> Result<Job, certhub_store::Error> {
        let id: String = (0..8).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let record = self.store.insert_job(&id, "request", target, Some(&audit)).await?;
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone());
        // One writer per job keeps its steps in order in the store.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let run = worker.request(target.to_string(), Arc::new(JobSteps(tx.clone())));
        tokio::spawn(async move {
            let (status, result) = match run.await {
                Ok(r) => ("succeeded", r),
                Err(e) => ("failed", e),
            };
            let _ = tx.send(Update::End { status, result });
        });
        let jobs = self.clone();
        let job_id = id.clone();
        tokio::spawn(async move {
            loop {
                let update = match tokio::time::timeout(HEARTBEAT, rx.recv()).await {
                    Ok(Some(update)) => update,
                    Ok(None) => break,
                    Err(_) => {
                        if let Err(e) = jobs.store.touch_job(&job_id).await {
                            tracing::warn!(job = job_id, error = %e, "recording a job's progress failed");
                        }
                        continue;
                    }
                };
                let written = match update {
                    Update::Step(step) => jobs.store.add_job_step(&job_id, &step).await,
                    Update::End { status, result } => {
                        let written = jobs.store.finish_job(&job_id, status, &result).await;
                        jobs.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&job_id);
                        written
                    }
                };
                if let Err(e) = written {
                    tracing::warn!(job = job_id, error = %e, "recording a job's progress failed");
                }
            }
        });
        Ok(Job::from_record(record, crate::api::now_ms()))
    }
}
