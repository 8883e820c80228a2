//! Health: `GET /api/v1/health` (the hub answers) and `GET /api/v1/ready` (and can serve:
//! its database answers, with the schema this hub knows).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiResult;
use crate::state::AppState;

pub(super) async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let users = state.store.user_count().await?;
    Ok(Json(json!({ "status": "ok", "setup_required": users == 0 })))
}

pub(super) async fn ready(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match state.store.ready().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(why) => crate::problem::Problem::unavailable(why).into_response(),
    }
}
