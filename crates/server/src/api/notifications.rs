//! Notification channels: `/api/v1/notifications`, `/{name}` (delete) and `/{name}/test`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiResult, Items, body};
use crate::auth::Caller;
use crate::ops::{self, ChannelBody, ChannelView};
use crate::state::AppState;

pub(super) async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<ChannelView>>> {
    Ok(Json(Items { items: ops::channels(&state, &caller).await? }))
}

pub(super) async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let req: ChannelBody = body(&bytes)?;
    Ok((StatusCode::CREATED, Json(ops::add_channel(&state, &caller, req).await?)))
}

pub(super) async fn delete_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_channel(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn test_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let outcome = ops::send_test(&state, &caller, &name).await?;
    Ok(Json(match outcome {
        Ok(detail) => json!({ "delivered": true, "detail": detail }),
        Err(detail) => json!({ "delivered": false, "detail": detail }),
    }))
}
