//! Notification channels: `/api/v1/notifications`, `/{name}` (delete) and `/{name}/test`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiResult, body};
use crate::auth::{Caller, Need};
use crate::problem::Problem;
use crate::state::AppState;

/// A channel as shown: where it sends, never its secrets.
pub(crate) fn channel_view(c: &certhub_store::ChannelRecord) -> Value {
    let target = certhub_deploy::notify::target(&c.kind, &c.config);
    json!({ "name": c.name, "kind": c.kind, "events": c.events, "target": target })
}

pub(super) async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    caller.require(Need::Admin)?;
    let items: Vec<Value> = state.store.channels().await?.iter().map(channel_view).collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelBody {
    pub name: String,
    pub kind: String,
    pub config: Value,
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

pub(super) async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let req: ChannelBody = body(&bytes)?;
    let channel = add_channel(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(channel_view(&channel))))
}

/// Adds a notification channel (admins only). Audited.
pub(crate) async fn add_channel(
    state: &AppState,
    caller: &Caller,
    req: ChannelBody,
) -> ApiResult<certhub_store::ChannelRecord> {
    caller.require(Need::Admin)?;
    let name = req.name.trim();
    if !certhub_core::name::is_valid(name) {
        return Err(Problem::invalid("name", format!("use {}", certhub_core::name::RULE)));
    }
    certhub_deploy::notify::check(&req.kind, &req.config)
        .map_err(|e| Problem::invalid(&e.field, e.rule))?;
    let events = req.events.unwrap_or_else(|| vec!["all".into()]);
    if events.is_empty() {
        return Err(Problem::invalid("events", "choose at least one event"));
    }
    for e in &events {
        if e != "all" && !certhub_deploy::notify::EVENTS.contains(&e.as_str()) {
            return Err(Problem::invalid(
                "events",
                format!("{e:?}: events are {} or all", certhub_deploy::notify::EVENTS.join(", ")),
            ));
        }
    }
    let channel = certhub_store::ChannelRecord {
        name: name.to_string(),
        kind: req.kind,
        config: req.config,
        events,
    };
    let entry = caller.entry("channel.create", name).with_detail(channel.kind.clone());
    state.store.insert_channel(&channel, Some(&entry)).await?;
    Ok(channel)
}

pub(super) async fn delete_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    remove_channel(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a notification channel (admins only). Audited.
pub(crate) async fn remove_channel(state: &AppState, caller: &Caller, name: &str) -> ApiResult<()> {
    caller.require(Need::Admin)?;
    state.store.delete_channel(name, Some(&caller.entry("channel.delete", name))).await?;
    Ok(())
}

pub(super) async fn test_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let outcome = send_test(&state, &caller, &name).await?;
    Ok(Json(match outcome {
        Ok(detail) => json!({ "delivered": true, "detail": detail }),
        Err(detail) => json!({ "delivered": false, "detail": detail }),
    }))
}

/// Sends a test notice through channel `name` (admins only): what happened, or why not.
pub(crate) async fn send_test(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<Result<String, String>> {
    caller.require(Need::Admin)?;
    let channel = state
        .store
        .channel(name)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no notification channel {name:?}")))?;
    let notice = certhub_deploy::notify::Notice {
        event: "test".into(),
        cert_name: "(test)".into(),
        summary: format!("test notification from certhub, sent by {}", caller.user),
        detail: Some(format!("Channel {name} works.")),
    };
    let http = reqwest::Client::new();
    Ok(certhub_deploy::notify::send(&http, &channel.kind, &channel.config, &notice).await)
}
