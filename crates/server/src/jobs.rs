//! Long operations (a request takes seconds to minutes): the API answers at once with a job
//! whose status resource shows its steps as they happen.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use certhub_engine::{Engine, Progress};
use certhub_store::JobStatus;
use serde::Serialize;

use crate::problem::Problem;

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
    pub status: JobStatus,
    /// The steps so far.
    pub steps: Vec<String>,
    /// The outcome, once it ends.
    pub result: Option<String>,
    /// Why it failed, as the problem document a request answered at once would give: its
    /// kind, the field at fault, the CA's own document and Retry-After.
    pub error: Option<Problem>,
    /// When it started (RFC 3339).
    pub started: String,
}

/// How often a running job without news says it still runs, and how often a hub looks for
/// jobs whose hub died.
pub(crate) const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running job not heard of for this long (four heartbeats) belongs to a hub that died.
const SILENT_LIMIT_MS: i64 = 4 * HEARTBEAT.as_millis() as i64;

/// The step a job taken over from a hub that died shows.
const TAKEN_OVER: &str = "taken over by another hub: the hub running it stopped answering";

/// What an interrupted job says.
pub(crate) const INTERRUPTED: &str = "the hub stopped before the request finished; the CA's \
     order is kept and the next request of this certificate resumes it";

impl Job {
    fn from_record(r: certhub_store::JobRecord, now_ms: i64) -> Result<Self, certhub_store::Error> {
        let lost = r.status == JobStatus::Running && now_ms - r.updated_at > SILENT_LIMIT_MS;
        let mut error: Option<Problem> =
            r.error.as_deref().map(serde_json::from_str).transpose().map_err(|source| {
                certhub_store::Error::Json {
                    table: "jobs",
                    row: r.id.clone(),
                    column: "error",
                    source,
                }
            })?;
        // The CA's wait counts from when the job ended: what is left of it, if anything.
        if let Some(p) = &mut error {
            let waited = u32::try_from((now_ms - r.updated_at).max(0) / 1000).unwrap_or(u32::MAX);
            p.retry_after = p.retry_after.and_then(|s| s.checked_sub(waited)).filter(|s| *s > 0);
        }
        Ok(Job {
            id: r.id,
            kind: r.kind,
            target: r.target,
            status: if lost { JobStatus::Interrupted } else { r.status },
            steps: r.steps,
            result: if lost { Some(INTERRUPTED.into()) } else { r.result },
            error,
            started: crate::clock::rfc3339_ms(r.created_at),
        })
    }
}

/// What a request job that issued `issued` says.
fn issued_result(issued: &certhub_store::IssuedRecord) -> String {
    format!(
        "issued serial {}, expires {}",
        issued.serial_hex,
        certhub_engine::rfc3339(issued.not_after / 1000)
    )
}

/// A step, or the end, of one job, in the order they happen.
enum Update {
    Step(String),
    End { status: JobStatus, result: String, error: Option<String> },
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

impl Progress for JobSteps {
    fn step(&self, _cert: &str, message: &str) {
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
            if let Err(e) =
                self.store.finish_job(&id, JobStatus::Interrupted, INTERRUPTED, None).await
            {
                tracing::warn!(job = id, error = %e, "recording an interrupted job failed");
            }
        }
    }

    /// A job by id.
    pub async fn get(&self, id: &str) -> Result<Option<Job>, certhub_store::Error> {
        let now = crate::clock::now_ms();
        self.store.job(id).await?.map(|r| Job::from_record(r, now)).transpose()
    }

    /// Starts requesting certificate `target` through `engine` as a job, recorded with
    /// `audit`'s entry, and returns it.
    pub async fn start_request(
        self: &Arc<Self>,
        engine: Arc<Engine>,
        target: &str,
        audit: certhub_store::AuditEntry,
    ) -> Result<Job, certhub_store::Error> {
        let id: String = (0..8).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let record = self.store.insert_job(&id, "request", target, Some(&audit)).await?;
        self.run_request(engine, &id, target);
        Job::from_record(record, crate::clock::now_ms())
    }

    /// Takes over the jobs whose hub died (their heartbeat silent for [`SILENT_LIMIT_MS`])
    /// and runs them here: a request resumes the CA's order its hub left in the store.
    /// Several hubs looking at once take each job once. How many were taken over.
    pub async fn take_over(self: &Arc<Self>, engine: &Arc<Engine>) -> usize {
        let silent_since = crate::clock::now_ms() - SILENT_LIMIT_MS;
        let taken = match self.store.take_over_jobs(silent_since, TAKEN_OVER).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(error = %e, "looking for jobs of stopped hubs failed");
                return 0;
            }
        };
        for job in &taken {
            tracing::info!(job = job.id, target = job.target, "{TAKEN_OVER}");
            // Its certificate may have been issued since (its order resumed by a renewal).
            if let Ok(Some(issued)) = self.store.latest_issued(&job.target).await
                && issued.created_at > job.created_at
            {
                let result = issued_result(&issued);
                if let Err(e) =
                    self.store.finish_job(&job.id, JobStatus::Succeeded, &result, None).await
                {
                    tracing::warn!(job = job.id, error = %e, "recording a job's end failed");
                }
                continue;
            }
            self.run_request(engine.clone(), &job.id, &job.target);
        }
        taken.len()
    }

    /// Runs job `id`, a request of certificate `target`, writing its steps and its end.
    fn run_request(self: &Arc<Self>, engine: Arc<Engine>, id: &str, target: &str) {
        let id = id.to_string();
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone());
        // One writer per job keeps its steps in order in the store.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (steps, name) = (JobSteps(tx.clone()), target.to_string());
        tokio::spawn(async move {
            let run = engine.request(&name, certhub_engine::REQUEST_TIMEOUT, &steps).await;
            let end = match run {
                Ok(i) => Update::End {
                    status: JobStatus::Succeeded,
                    result: issued_result(&i),
                    error: None,
                },
                Err(e) => {
                    let result = e.message.clone();
                    let error = match serde_json::to_string(&Problem::from(e)) {
                        Ok(error) => Some(error),
                        Err(e) => {
                            tracing::warn!(error = %e, "recording a job's error failed");
                            None
                        }
                    };
                    Update::End { status: JobStatus::Failed, error, result }
                }
            };
            let _ = tx.send(end);
        });
        let jobs = self.clone();
        tokio::spawn(async move {
            loop {
                let update = match tokio::time::timeout(HEARTBEAT, rx.recv()).await {
                    Ok(Some(update)) => update,
                    Ok(None) => break,
                    Err(_) => {
                        if let Err(e) = jobs.store.touch_job(&id).await {
                            tracing::warn!(job = id, error = %e, "recording a job's progress failed");
                        }
                        continue;
                    }
                };
                let written = match update {
                    Update::Step(step) => jobs.store.add_job_step(&id, &step).await,
                    Update::End { status, result, error } => {
                        let written =
                            jobs.store.finish_job(&id, status, &result, error.as_deref()).await;
                        jobs.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        written
                    }
                };
                if let Err(e) = written {
                    tracing::warn!(job = id, error = %e, "recording a job's progress failed");
                }
            }
        });
    }
}
