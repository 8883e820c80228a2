//! Health: `GET /api/v1/health`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiResult;
use crate::state::AppState;

pub(super) async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let users = state.store.user_count().await?;
    Ok(Json(json!({ "status": "ok", "setup_required": users == 0 })))
}
