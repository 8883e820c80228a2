//! Notification channels.

use serde::Deserialize;
use serde_json::Value;

use super::OpResult;
use super::views::ChannelView;
use crate::auth::{Caller, Need};
use crate::problem::Problem;
use crate::state::AppState;

/// The notification channels (admins only).
pub(crate) async fn channels(state: &AppState, caller: &Caller) -> OpResult<Vec<ChannelView>> {
    caller.require(Need::Admin)?;
    Ok(state.store.channels().await?.iter().map(ChannelView::of).collect())
}

/// A new channel: its name, kind, the kind's settings and the events it hears of.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelBody {
    pub name: String,
    pub kind: String,
    pub config: Value,
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// Adds a notification channel (admins only). Audited.
pub(crate) async fn add_channel(
    state: &AppState,
    caller: &Caller,
    req: ChannelBody,
) -> OpResult<ChannelView> {
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
    Ok(ChannelView::of(&channel))
}

/// Removes a notification channel (admins only). Audited.
pub(crate) async fn remove_channel(state: &AppState, caller: &Caller, name: &str) -> OpResult<()> {
    caller.require(Need::Admin)?;
    state.store.delete_channel(name, Some(&caller.entry("channel.delete", name))).await?;
    Ok(())
}

/// Sends a test notice through channel `name` (admins only): what happened, or why not.
pub(crate) async fn send_test(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<Result<String, String>> {
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
