//! The hub's settings: `GET /api/v1/settings` and `PATCH /api/v1/settings`.

use axum::Json;
use axum::extract::State;
use certhub_engine::Settings;

use super::{ApiResult, body};
use crate::auth::{Caller, Need};
use crate::ops;
use crate::state::AppState;

pub(super) async fn settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Settings>> {
    caller.require(Need::Read)?;
    Ok(Json(state.settings.get()))
}

pub(super) async fn change_settings(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Settings>> {
    ops::change_settings(&state, &caller, body(&bytes)?).await?;
    Ok(Json(state.settings.get()))
}
