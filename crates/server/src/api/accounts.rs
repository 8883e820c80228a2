//! CA accounts: `GET /api/v1/accounts` lists them, `POST /api/v1/accounts` registers one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiResult, Items, body};
use crate::auth::Caller;
use crate::ops::{self, AccountView};
use crate::state::AppState;

pub(super) async fn list_accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<AccountView>>> {
    Ok(Json(Items { items: ops::accounts(&state, &caller).await? }))
}

pub(super) async fn create_account(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: certhub_engine::NewAccount = body(&bytes)?;
    let url = ops::add_account(&state, &caller, &req).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": req.name, "account_url": url, "status": "valid" })),
    ))
}
