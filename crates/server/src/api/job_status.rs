//! A job's status: `GET /api/v1/jobs/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::ApiResult;
use crate::auth::{Caller, Need};
use crate::problem::Problem;
use crate::state::AppState;

pub(super) async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    let job =
        state.jobs.get(&id).await?.ok_or_else(|| Problem::not_found(format!("no job {id:?}")))?;
    Ok(Json(json!(job)))
}
