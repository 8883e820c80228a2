//! Users: `POST /api/v1/users` adds one, `GET /api/v1/users` lists them, `PATCH` and
//! `DELETE /api/v1/users/{name}` change or remove one, and `PUT /api/v1/me/password`
//! changes the caller's own password.

use axum::Json;
use axum::extract::{Path, State};
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

/// What an admin changes of a user; each field optional, at least one given.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    /// `admin`, `operator` or `viewer`.
    #[schemars(regex(pattern = "^(admin|operator|viewer)$"))]
    role: Option<String>,
    /// Disable (their sessions and tokens stop at once) or enable again.
    disabled: Option<bool>,
    /// A new password, at least 12 characters.
    #[schemars(length(min = 12))]
    password: Option<String>,
}

pub(super) async fn change_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<UserView>> {
    let req: UserPatch = body(&bytes)?;
    let changes =
        ops::UserChanges { role: req.role, disabled: req.disabled, password: req.password };
    Ok(Json(ops::change_user(&state, &caller, &name, changes).await?))
}

pub(super) async fn remove_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_user(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's current password and the new one.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    current_password: String,
    /// At least 12 characters.
    #[schemars(length(min = 12))]
    new_password: String,
}

pub(super) async fn change_own_password(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let req: PasswordBody = body(&bytes)?;
    ops::change_own_password(&state, &caller, &req.current_password, &req.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
