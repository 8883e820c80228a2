//! Deployment: a certificate's tasks run after each request (`certhub cert request`,
//! `certhub renew`), and on demand with `certhub deploy run`. Every task's outcome is stored
//! and written to the history; an `on-success` task that has not delivered the latest
//! certificate (it failed, or was skipped after an earlier failure) is pending, and
//! `certhub renew --due` retries it.

use certhub_core::cert::split_pem_chain;
use certhub_core::{DeployTask, Identifier};
use certhub_deploy::{Facts, Issued, Outcome, Run};
use certhub_store::{AuditEntry, IssuedRecord, Store};

use crate::error::{Kind, fail, invalid};
use crate::progress::Progress;

/// Which tasks a run considers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every task whose trigger fits.
    All,
    /// Only `on-success` tasks that have not delivered the latest certificate.
    Pending,
}

/// What a run did, task by task.
pub struct Report {
    pub outcomes: Vec<(String, Outcome)>,
}

impl Report {
    /// The first failure, as an error naming the task.
    pub fn failure(&self) -> Option<anyhow::Error> {
        self.outcomes.iter().find_map(|(name, o)| match o {
            Outcome::Failed(why) => Some(anyhow::anyhow!("deployment task {name} failed: {why}")),
            _ => None,
        })
    }

    pub fn ran(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Done(_) | Outcome::Failed(_)))
            .count()
    }
}

/// Removes deployment task `task` of certificate `cert`, with `audit`'s entry.
pub async fn remove_task(
    store: &Store,
    cert: &str,
    task: &str,
    audit: AuditEntry,
) -> anyhow::Result<()> {
    cert_exists(store, cert).await?;
    let audit = audit.with_detail(task);
    store.remove_deploy_task(cert, task, Some(&audit)).await.map_err(|e| match e {
        certhub_store::Error::NotFound { .. } => fail(
            Kind::NotFound,
            format!(
                "certificate {cert} has no deployment task {task:?} (see `certhub deploy list {cert}`)"
            ),
        ),
        other => other.into(),
    })
}

/// Fails unless certificate `name` exists.
pub async fn cert_exists(store: &Store, name: &str) -> anyhow::Result<()> {
    crate::records::load(store, name).await.map(drop)
}

/// Parses deployment SPECs, naming each task `KIND-N` after the tasks already there.
pub fn parse_specs(specs: &[String], existing: &[String]) -> anyhow::Result<Vec<DeployTask>> {
    let mut names: Vec<String> = existing.to_vec();
    let mut tasks = Vec::new();
    for spec in specs {
        let kind = spec.split(':').next().unwrap_or_default().trim();
        let default =
            (1..).map(|n| format!("{kind}-{n}")).find(|n| !names.contains(n)).unwrap_or_default();
        let task = DeployTask::parse(spec, &default).map_err(|e| invalid("deploy", e))?;
        if names.contains(&task.name) {
            return Err(invalid("deploy", format!("two deployment tasks are named {}", task.name)));
        }
        names.push(task.name.clone());
        tasks.push(task);
    }
    Ok(tasks)
}

/// Stores `tasks` after the certificate's existing ones, all or none, with `audit`'s entry.
pub async fn store_tasks(
    store: &Store,
    cert: &str,
    tasks: &[DeployTask],
    audit: Option<&AuditEntry>,
) -> anyhow::Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    crate::credentials::check_tasks(store, tasks).await?;
    store.add_deploy_tasks(cert, tasks, audit).await?;
    Ok(())
}

/// Adds deployment tasks from `specs` after the certificate's existing ones, with `audit`'s
/// entry (the tasks' names as its detail); them.
pub async fn add_specs(
    store: &Store,
    cert: &str,
    specs: &[String],
    audit: AuditEntry,
) -> anyhow::Result<Vec<DeployTask>> {
    cert_exists(store, cert).await?;
    let existing: Vec<String> =
        store.deploy_tasks(cert).await?.into_iter().map(|t| t.name).collect();
    let tasks = parse_specs(specs, &existing)?;
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    let audit = audit.with_detail(names.join(" "));
    store_tasks(store, cert, &tasks, Some(&audit)).await?;
    Ok(tasks)
}

/// The certificate's tasks, with how each last ran.
pub async fn tasks(
    store: &Store,
    cert: &str,
) -> anyhow::Result<Vec<(DeployTask, certhub_store::DeployTaskRecord)>> {
    Ok(store.deploy_tasks(cert).await?.into_iter().map(|r| (r.task.clone(), r)).collect())
}

/// The facts of an issued certificate for the tasks.
fn issued_facts(i: &IssuedRecord) -> anyhow::Result<Issued> {
    let sans: Vec<Identifier> = i.sans.clone();
    Ok(Issued {
        serial_hex: i.serial_hex.clone(),
        not_before: i.not_before / 1000,
        not_after: i.not_after / 1000,
        domains: sans.iter().map(ToString::to_string).collect(),
        chain_der: split_pem_chain(&i.chain_pem)?,
        key_pkcs8: i.key_pkcs8.clone(),
    })
}

/// Runs the certificate's tasks for a request that issued `issued` (or failed with
/// `error`, `issued` then being the latest certificate, if any), recording every outcome.
pub async fn deploy(
    store: &Store,
    cert: &str,
    issued: Option<&IssuedRecord>,
    error: Option<String>,
    scope: Scope,
    dry_run: bool,
    progress: Option<&dyn Progress>,
) -> anyhow::Result<Report> {
    let mut report = Report { outcomes: Vec::new() };
    // A certificate with targets is deployed by its agents, never on the hub: they hear of
    // the new certificate from the store's changes.
    if store.cert_is_targeted(cert).await? {
        return Ok(report);
    }
    let tasks = tasks(store, cert).await?;
    if tasks.is_empty() {
        return Ok(report);
    }
    let facts =
        Facts { cert_name: cert.to_string(), issued: issued.map(issued_facts).transpose()?, error };
    let mut run = Run::new(&facts, dry_run);
    for (task, rec) in &tasks {
        if scope == Scope::Pending {
            if !task.trigger.fires(true) {
                continue;
            }
            if rec.deployed_issued_id == issued.map(|i| i.id) {
                run.already_delivered(task);
                continue;
            }
        }
        if let Some(p) = progress
            && task.trigger.fires(!run.failed())
        {
            p.step(cert, &format!("deploying: {}", task.name));
        }
        // A task signing in with a stored credential gets it as stored now.
        let outcome = match crate::credentials::resolve_task(store, task).await {
            Ok(task) => run.task(&task).await,
            Err(why) => run.refuse(task, why),
        };
        if !dry_run {
            let delivered = issued.map(|i| i.id).filter(|_| facts.error.is_none());
            match &outcome {
                Outcome::Done(d) => {
                    crate::metrics::metrics().deployed("done", "hub");
                    store
                        .record_deploy_outcome(cert, &task.name, delivered, "done", Some(d))
                        .await?;
                    store
                        .record_event(
                            cert,
                            certhub_store::EventKind::Deployed,
                            Some(&format!("{}: {d}", task.name)),
                        )
                        .await?;
                }
                Outcome::Failed(why) => {
                    crate::metrics::metrics().deployed("failed", "hub");
                    store
                        .record_deploy_outcome(cert, &task.name, None, "failed", Some(why))
                        .await?;
                    store
                        .record_event(
                            cert,
                            certhub_store::EventKind::DeployFailed,
                            Some(&format!("{}: {why}", task.name)),
                        )
                        .await?;
                }
                Outcome::Skipped => {
                    crate::metrics::metrics().deployed("skipped", "hub");
                    store
                        .record_deploy_outcome(
                            cert,
                            &task.name,
                            None,
                            "skipped",
                            Some("an earlier task failed"),
                        )
                        .await?;
                }
                Outcome::DryRun(_) | Outcome::NotTriggered => {}
            }
        }
        report.outcomes.push((task.name.clone(), outcome));
    }
    Ok(report)
}

/// Retries the pending tasks of a certificate that is not due; `None` when none are pending.
pub async fn retry_pending(
    store: &Store,
    cert: &str,
    progress: &dyn Progress,
) -> anyhow::Result<Option<Report>> {
    let Some(latest) = store.latest_issued(cert).await? else {
        return Ok(None);
    };
    if latest.revoked_at.is_some() {
        return Ok(None);
    }
    let report =
        deploy(store, cert, Some(&latest), None, Scope::Pending, false, Some(progress)).await?;
    Ok((report.ran() > 0).then_some(report))
}
