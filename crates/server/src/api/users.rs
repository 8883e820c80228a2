//! Users: `POST /api/v1/users` adds one, `GET /api/v1/users` lists them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, Items, body};
use crate::auth::Caller;
use crate::ops::{self, UserView};
use crate::state::AppState;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    #[schemars(regex(pattern = r"^[A-Za-z0-9._@-]{1,64}$"))]
    username: String,
    /// At least 12 characters.
    #[schemars(length(min = 12))]
    password: String,
    /// `admin`, `operator` or `viewer`.
    #[schemars(regex(pattern = "^(admin|operator|viewer)$"))]
    role: String,
}

pub(super) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: UserBody = body(&bytes)?;
    let role = ops::add_user(&state, &caller, &req.username, &req.password, &req.role).await?;
    Ok((StatusCode::CREATED, Json(json!({ "username": req.username, "role": role.as_str() }))))
}

pub(super) async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<UserView>>> {
    Ok(Json(Items { items: ops::users(&state, &caller).await? }))
}
