//! CA accounts: `GET /api/v1/accounts` lists them, `POST /api/v1/accounts` registers one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiResult, body, engine};
use crate::auth::{Caller, Need};
use crate::state::AppState;

pub(super) async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Read)?;
    let items: Vec<Value> = state
        .store
        .accounts()
        .await?
        .into_iter()
        .map(|a| {
            json!({
                "name": a.name,
                "directory": a.directory_url,
                "email": a.email,
                "status": a.status,
                "key_type": a.key_type,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(super) async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: certhub_engine::NewAccount = body(&bytes)?;
    Ok((StatusCode::CREATED, Json(add_account(&state, &caller, req).await?)))
}

/// Registers a CA account (admins only). Audited.
pub(crate) async fn add_account(
    state: &AppState,
    caller: &Caller,
    req: certhub_engine::NewAccount,
) -> ApiResult<Value> {
    caller.require(Need::Admin)?;
    let entry = caller.entry("account.create", &req.name);
    let url = engine(state)?.add_account(&req, entry).await?;
    Ok(json!({ "name": req.name, "account_url": url, "status": "valid" }))
}
