//! Users: `POST /api/v1/users` adds one, `GET /api/v1/users` lists them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, body, check_password, check_username, rfc3339_ms};
use crate::auth::{self, Caller, Need, Role};
use crate::problem::Problem;
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
    let role = add_user(&state, &caller, &req.username, &req.password, &req.role).await?;
    Ok((StatusCode::CREATED, Json(json!({ "username": req.username, "role": role.as_str() }))))
}

/// Adds a user (admins only). Audited.
pub(crate) async fn add_user(
    state: &AppState,
    caller: &Caller,
    username: &str,
    password: &str,
    role: &str,
) -> ApiResult<Role> {
    caller.require(Need::Admin)?;
    check_username(username)?;
    check_password(password)?;
    let role = Role::parse(role)
        .ok_or_else(|| Problem::invalid("role", "one of admin, operator, viewer"))?;
    let password = password.to_string();
    let hash = auth::argon2_task(move || auth::hash_password(&password)).await??;
    let entry = caller.entry("user.create", username).with_detail(role.as_str());
    state.store.insert_user(username, &hash, role.as_str(), Some(&entry)).await?;
    Ok(role)
}

pub(super) async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    let items: Vec<Value> = state
        .store
        .users()
        .await?
        .into_iter()
        .map(|u| json!({ "username": u.name, "role": u.role, "created_at": rfc3339_ms(u.created_at) }))
        .collect();
    Ok(Json(json!({ "items": items })))
}
