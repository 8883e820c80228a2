//! Agents: `POST /api/v1/agent-tokens`, `POST /api/v1/agents/join`, `GET /api/v1/agents`,
//! `GET`/`DELETE /api/v1/agents/{name}`, `PUT /api/v1/agents/{name}/labels`, and a
//! certificate's targets, `GET`/`PUT /api/v1/certificates/{name}/targets`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use certhub_core::agent::{JoinRequest, Joined};
use serde::Deserialize;

use super::{ApiResult, Items, body};
use crate::auth::{self, Caller};
use crate::ops::{self, AgentView, JoinTokenView, TargetsView};
use crate::state::AppState;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinTokenBody {
    /// `KEY=VALUE` each, given to the agent that joins with it.
    #[serde(default)]
    labels: Vec<String>,
    /// Hours until it expires (default 24, at most 720).
    #[serde(default)]
    #[schemars(range(min = 1, max = 720))]
    expires_in_hours: Option<u32>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabelsBody {
    /// `KEY=VALUE` each; replaces the agent's labels.
    labels: Vec<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetsBody {
    /// `agent:NAME` or `label:KEY=VALUE` each; replaces the certificate's targets (none:
    /// deployed by the hub again).
    targets: Vec<String>,
}

pub(super) async fn create_join_token(
    State(state): State<AppState>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<JoinTokenView>)> {
    caller.require(auth::Need::Admin)?;
    let req: JoinTokenBody = body(&bytes)?;
    let lifetime =
        req.expires_in_hours.map(|h| std::time::Duration::from_secs(u64::from(h) * 3600));
    let view = ops::create_join_token(&state, &caller, &req.labels, lifetime).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(super) async fn join(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Joined>)> {
    let req: JoinRequest = body(&bytes)?;
    let host = parts.headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let joined = ops::join(&state, &req, host, &auth::source(&parts)).await?;
    Ok((StatusCode::CREATED, Json(joined)))
}

pub(super) async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Items<AgentView>>> {
    Ok(Json(Items { items: ops::agents(&state, &caller).await? }))
}

pub(super) async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(ops::agent(&state, &caller, &name).await?))
}

pub(super) async fn remove_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_agent(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn set_labels(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<AgentView>> {
    caller.require(auth::Need::Admin)?;
    let req: LabelsBody = body(&bytes)?;
    Ok(Json(ops::set_agent_labels(&state, &caller, &name, &req.labels).await?))
}

pub(super) async fn targets(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<TargetsView>> {
    Ok(Json(ops::cert_targets(&state, &caller, &name).await?))
}

pub(super) async fn set_targets(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<Json<TargetsView>> {
    caller.require(auth::Need::Admin)?;
    let req: TargetsBody = body(&bytes)?;
    Ok(Json(ops::set_cert_targets(&state, &caller, &name, &req.targets).await?))
}
