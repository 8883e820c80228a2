//! Agents: join tokens, joining, the agents and their labels, removal, and a certificate's
//! targets.

use std::time::Duration;

use certhub_core::agent::{JoinRequest, Joined};
use schemars::JsonSchema;
use serde::Serialize;

use super::{OpResult, cert_or_404, engine};
use crate::auth::{Caller, Need};
use crate::clock::rfc3339_ms;
use crate::problem::Problem;
use crate::state::AppState;

/// A join token, just made: the token itself is shown this once.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct JoinTokenView {
    pub id: String,
    /// For `certhub agent join HUB_URL --token TOKEN`.
    pub token: String,
    /// Given to the agent that joins with it.
    pub labels: Vec<String>,
    /// RFC 3339.
    pub expires_at: String,
}

/// An agent, with what it reported of each certificate it deploys.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct AgentView {
    pub name: String,
    pub id: String,
    pub labels: Vec<String>,
    pub hostname: Option<String>,
    pub os: Option<String>,
    /// Its certhub version.
    pub version: Option<String>,
    /// Whether it has a connection open to this hub now.
    pub connected: bool,
    /// RFC 3339.
    pub joined_at: String,
    /// RFC 3339: when it last connected or disconnected.
    pub last_seen_at: Option<String>,
    /// The names its web servers serve, as it reported them.
    pub discovered: Vec<String>,
    pub certificates: Vec<AgentCertView>,
}

/// What an agent reported of one certificate.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct AgentCertView {
    /// The agent (in a certificate's list) or the certificate (in an agent's).
    pub agent: String,
    pub certificate: String,
    /// `deployed`, `failed` or `refused`.
    pub state: String,
    /// The serial deployed, or tried.
    pub serial: Option<String>,
    /// RFC 3339.
    pub deployed_at: Option<String>,
    pub error: Option<String>,
    /// What the checked endpoints serve, one line each.
    pub verified: Vec<String>,
    /// RFC 3339.
    pub updated_at: String,
}

impl AgentCertView {
    pub fn of(d: certhub_store::AgentDeploymentRecord) -> Self {
        Self {
            agent: d.agent_name,
            certificate: d.cert_name,
            state: d.state,
            serial: d.serial_hex,
            deployed_at: d.deployed_at.map(rfc3339_ms),
            error: d.error,
            verified: d
                .verified
                .map(|v| v.lines().map(str::to_string).collect())
                .unwrap_or_default(),
            updated_at: rfc3339_ms(d.updated_at),
        }
    }
}

fn agent_view(
    state: &AppState,
    a: certhub_store::AgentRecord,
    certificates: Vec<AgentCertView>,
) -> AgentView {
    AgentView {
        connected: state.agents.as_ref().is_some_and(|l| l.is_connected(&a.id)),
        name: a.name,
        id: a.id,
        labels: a.labels,
        hostname: a.hostname,
        os: a.os,
        version: a.version,
        joined_at: rfc3339_ms(a.joined_at),
        last_seen_at: a.last_seen_at.map(rfc3339_ms),
        discovered: a.discovered,
        certificates,
    }
}

/// Makes a join token (admins only), valid for `lifetime` (a day when `None`). Audited.
pub(crate) async fn create_join_token(
    state: &AppState,
    caller: &Caller,
    labels: &[String],
    lifetime: Option<Duration>,
) -> OpResult<JoinTokenView> {
    caller.require(Need::Admin)?;
    let lifetime = lifetime.unwrap_or(certhub_engine::agents::DEFAULT_TOKEN_LIFETIME);
    let entry = caller.entry("agent.token", "join token");
    let t = engine(state)?.create_join_token(labels, lifetime, entry).await?;
    Ok(JoinTokenView {
        id: t.id,
        token: t.token,
        labels: t.labels,
        expires_at: rfc3339_ms(t.expires_at),
    })
}

/// Joins an agent that presents a join token (no other credential: the token is it), which
/// reached the hub at `host`, from `source`. Audited.
pub(crate) async fn join(
    state: &AppState,
    request: &JoinRequest,
    host: Option<&str>,
    source: &str,
) -> OpResult<Joined> {
    let link = state.agents.as_ref().ok_or_else(|| {
        Problem::unavailable(
            "this hub serves no agents: start it with --agent-listen ADDRESS (e.g. 0.0.0.0:8444)",
        )
    })?;
    let url = link.url_for(host);
    Ok(engine(state)?.join_agent(request, link.ca(), &url, source).await?)
}

/// Every agent, by name.
pub(crate) async fn agents(state: &AppState, caller: &Caller) -> OpResult<Vec<AgentView>> {
    caller.require(Need::Read)?;
    let agents = state.store.agents().await?;
    let mut deployments = state.store.agent_deployments(None, None).await?;
    Ok(agents
        .into_iter()
        .map(|a| {
            let mine = deployments.extract_if(.., |d| d.agent_id == a.id).map(AgentCertView::of);
            let mine = mine.collect();
            agent_view(state, a, mine)
        })
        .collect())
}

/// Agent `name`, with what it reported of each certificate.
pub(crate) async fn agent(state: &AppState, caller: &Caller, name: &str) -> OpResult<AgentView> {
    caller.require(Need::Read)?;
    let a = engine(state)?.agent(name).await?;
    let certs = state.store.agent_deployments(None, Some(&a.id)).await?;
    Ok(agent_view(state, a, certs.into_iter().map(AgentCertView::of).collect()))
}

/// Replaces agent `name`'s labels (admins only). Audited.
pub(crate) async fn set_labels(
    state: &AppState,
    caller: &Caller,
    name: &str,
    labels: &[String],
) -> OpResult<AgentView> {
    caller.require(Need::Admin)?;
    let entry = caller.entry("agent.labels", name);
    engine(state)?.set_agent_labels(name, labels, entry).await?;
    agent(state, caller, name).await
}

/// Removes agent `name` (admins only): its identity is refused from then on. Audited.
pub(crate) async fn remove(state: &AppState, caller: &Caller, name: &str) -> OpResult<()> {
    caller.require(Need::Admin)?;
    let entry = caller.entry("agent.remove", name);
    engine(state)?.remove_agent(name, entry).await?;
    Ok(())
}

/// Where certificate `name` is deployed, and what each agent reported.
pub(crate) async fn targets(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<TargetsView> {
    caller.require(Need::Read)?;
    cert_or_404(state, name).await?;
    targets_view(state, name).await
}

async fn targets_view(state: &AppState, name: &str) -> OpResult<TargetsView> {
    let targets = state.store.cert_targets(name).await?;
    let agents = state.store.agent_deployments(Some(name), None).await?;
    Ok(TargetsView { targets, agents: agents.into_iter().map(AgentCertView::of).collect() })
}

/// Replaces where certificate `name` is deployed (admins only: its tasks then run on those
/// agents). Audited.
pub(crate) async fn set_targets(
    state: &AppState,
    caller: &Caller,
    name: &str,
    targets: &[String],
) -> OpResult<TargetsView> {
    caller.require(Need::Admin)?;
    cert_or_404(state, name).await?;
    let entry = caller.entry("cert.targets", name);
    certhub_engine::agents::set_targets(&state.store, name, targets, entry).await?;
    targets_view(state, name).await
}

/// A certificate's targets and what each agent reported.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct TargetsView {
    /// `agent:NAME` or `label:KEY=VALUE` each.
    pub targets: Vec<String>,
    pub agents: Vec<AgentCertView>,
}
