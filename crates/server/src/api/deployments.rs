//! A certificate's deployment tasks: `/api/v1/certificates/{name}/deployments[/{task}]`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiResult, Specs, body, cert_or_404, engine, rfc3339_ms};
use crate::auth::{Caller, Need};
use crate::problem::Problem;
use crate::state::AppState;

pub(super) async fn list_deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    // A task's description can hold a webhook URL with its token: admins only.
    caller.require(Need::Admin)?;
    cert_or_404(&state, &name).await?;
    let items: Vec<Value> = state
        .store
        .deploy_tasks(&name)
        .await?
        .into_iter()
        .map(|r| {
            let task = serde_json::from_value::<certhub_core::DeployTask>(r.task.clone()).ok();
            json!({
                "name": r.name,
                "when": task.as_ref().map(|t| t.trigger.as_str()),
                "does": task.as_ref().map(|t| t.action.describe()),
                "timeout": task.as_ref().map(|t| t.timeout.as_secs()),
                "last_outcome": r.last_outcome,
                "last_detail": r.last_detail,
                "last_run_at": r.last_run_at.map(rfc3339_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(super) async fn add_deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Need::Admin)?;
    let req: Specs = body(&bytes)?;
    let added = add_deploy_tasks(&state, &caller, &name, req.specs).await?;
    Ok((StatusCode::CREATED, Json(json!({ "items": added }))))
}

/// Adds deployment tasks to certificate `name` (admins only: tasks run commands and write
/// files on the hub); the tasks added. Audited.
pub(crate) async fn add_deploy_tasks(
    state: &AppState,
    caller: &Caller,
    name: &str,
    specs: Vec<String>,
) -> ApiResult<Value> {
    caller.require(Need::Admin)?;
    if specs.is_empty() {
        return Err(Problem::invalid("specs", "give at least one deployment SPEC"));
    }
    cert_or_404(state, name).await?;
    let entry = caller.entry("deploy.add", name);
    let tasks = engine(state)?.add_deployments(name, &specs, entry).await?;
    Ok(json!(tasks
        .iter()
        .map(|t| json!({ "name": t.name, "when": t.trigger.as_str(), "does": t.action.describe() }))
        .collect::<Vec<_>>()))
}

pub(super) async fn remove_deployment(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    remove_deploy_task(&state, &caller, &name, &task).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes deployment task `task` of certificate `name` (admins only). Audited.
pub(crate) async fn remove_deploy_task(
    state: &AppState,
    caller: &Caller,
    name: &str,
    task: &str,
) -> ApiResult<()> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("deploy.remove", name).with_detail(task);
    state.store.remove_deploy_task(name, task, Some(&entry)).await?;
    Ok(())
}
