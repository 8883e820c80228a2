//! Stored credentials: `/api/v1/credentials` and `/{name}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use certhub_engine::credentials::CredentialView;

use super::{ApiResult, Items, body};
use crate::auth::Caller;
use crate::ops::{self, CredentialBody, RotateBody};
use crate::state::AppState;

pub(super) async fn list_credentials(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<CredentialView>>> {
    Ok(Json(Items { items: ops::credentials(&state, &caller).await? }))
}

pub(super) async fn get_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<CredentialView>> {
    Ok(Json(ops::credential(&state, &caller, &name).await?))
}

pub(super) async fn create_credential(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<CredentialView>)> {
    caller.require(crate::auth::Need::Admin)?;
    let req: CredentialBody = body(&bytes)?;
    Ok((StatusCode::CREATED, Json(ops::add_credential(&state, &caller, req).await?)))
}

pub(super) async fn rotate_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<CredentialView>> {
    caller.require(crate::auth::Need::Admin)?;
    let req: RotateBody = body(&bytes)?;
    Ok(Json(ops::rotate_credential(&state, &caller, &name, req).await?))
}

pub(super) async fn delete_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_credential(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
