//! A certificate's deployment tasks.

use super::views::{AddedTaskView, DeployTaskView};
use super::{OpResult, cert_or_404, engine};
use crate::auth::{Caller, Need};
use crate::clock::rfc3339_ms;
use crate::problem::Problem;
use crate::state::AppState;

/// The deployment tasks of certificate `name`, with how each last ran (admins only: a
/// task's description can hold a webhook URL with its token).
pub(crate) async fn deploy_tasks(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<Vec<DeployTaskView>> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    Ok(state
        .store
        .deploy_tasks(name)
        .await?
        .into_iter()
        .map(|r| DeployTaskView {
            name: r.name,
            when: r.task.trigger.as_str().to_string(),
            does: r.task.action.describe(),
            timeout: r.task.timeout.as_secs(),
            last_outcome: r.last_outcome,
            last_detail: r.last_detail,
            last_run_at: r.last_run_at.map(rfc3339_ms),
            failures: r.failures,
        })
        .collect())
}

/// Adds deployment tasks to certificate `name` (admins only: tasks run commands and write
/// files on the hub); the tasks added. Audited.
pub(crate) async fn add_deploy_tasks(
    state: &AppState,
    caller: &Caller,
    name: &str,
    specs: Vec<String>,
) -> OpResult<Vec<AddedTaskView>> {
    caller.require(Need::Admin)?;
    if specs.is_empty() {
        return Err(Problem::invalid("specs", "give at least one deployment SPEC"));
    }
    cert_or_404(state, name).await?;
    let entry = caller.entry("deploy.add", name);
    let tasks = engine(state)?.add_deployments(name, &specs, entry).await?;
    Ok(tasks
        .into_iter()
        .map(|t| AddedTaskView {
            when: t.trigger.as_str().to_string(),
            does: t.action.describe(),
            name: t.name,
        })
        .collect())
}

/// Removes deployment task `task` of certificate `name` (admins only). Audited.
pub(crate) async fn remove_deploy_task(
    state: &AppState,
    caller: &Caller,
    name: &str,
    task: &str,
) -> OpResult<()> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("deploy.remove", name).with_detail(task);
    state.store.remove_deploy_task(name, task, Some(&entry)).await?;
    Ok(())
}
