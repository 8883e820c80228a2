//! A certificate's deployment tasks: `/api/v1/certificates/{name}/deployments[/{task}]`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiResult, Items, Specs, body};
use crate::auth::Caller;
use crate::ops::{self, AddedTaskView, DeployTaskView};
use crate::state::AppState;

pub(super) async fn list_deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Items<DeployTaskView>>> {
    Ok(Json(Items { items: ops::deploy_tasks(&state, &caller, &name).await? }))
}

pub(super) async fn add_deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Items<AddedTaskView>>)> {
    caller.require(crate::auth::Need::Admin)?;
    let req: Specs = body(&bytes)?;
    let items = ops::add_deploy_tasks(&state, &caller, &name, req.specs).await?;
    Ok((StatusCode::CREATED, Json(Items { items })))
}

pub(super) async fn remove_deployment(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ops::remove_deploy_task(&state, &caller, &name, &task).await?;
    Ok(StatusCode::NO_CONTENT)
}
