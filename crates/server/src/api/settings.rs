//! The hub's settings: `GET /api/v1/settings` and `PATCH /api/v1/settings`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiResult, body};
use crate::auth::{Caller, Need};
use crate::state::AppState;

pub(super) async fn settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    Ok(Json(json!(state.settings.get())))
}

pub(super) async fn change_settings(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    change_settings_as(&state, &caller, body(&bytes)?).await?;
    Ok(Json(json!(state.settings.get())))
}

/// Checks, saves and applies changes to the hub's settings (admins only); what changed, in
/// words. Audited.
pub(crate) async fn change_settings_as(
    state: &AppState,
    caller: &Caller,
    changes: certhub_engine::SettingsChanges,
) -> ApiResult<Vec<String>> {
    caller.require(Need::Admin)?;
    Ok(state.settings.change(&state.store, changes, caller.entry("settings.update", "hub")).await?)
}
