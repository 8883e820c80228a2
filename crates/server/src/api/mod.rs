//! The handlers of `/api/v1`.

mod accounts;
mod agents;
mod audit;
mod certificates;
mod credentials;
mod deployments;
mod health;
mod job_status;
mod notifications;
mod settings;
mod setup;
mod tokens;
mod users;

pub(crate) use crate::clock::rfc3339_ms;
use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::state::AppState;

pub(crate) use agents::{JoinTokenBody, LabelsBody, TargetsBody};
pub(crate) use audit::AuditQuery;
pub(crate) use certificates::{PullQuery, RevokeBody};
pub(crate) use setup::SetupBody;
pub(crate) use tokens::TokenBody;
pub(crate) use users::{PasswordBody, UserBody, UserPatch};

type ApiResult<T> = Result<T, Problem>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/ready", get(health::ready))
        .route("/api/v1/setup", post(setup::setup))
        .route("/api/v1/tokens", post(tokens::create_token).get(tokens::list_tokens))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::revoke_token))
        .route("/api/v1/users", post(users::create_user).get(users::list_users))
        .route(
            "/api/v1/users/{name}",
            axum::routing::patch(users::change_user).delete(users::remove_user),
        )
        .route("/api/v1/me/password", axum::routing::put(users::change_own_password))
        .route(
            "/api/v1/certificates",
            get(certificates::list_certificates).post(certificates::create_certificate),
        )
        .route(
            "/api/v1/certificates/{name}",
            get(certificates::get_certificate)
                .delete(certificates::delete_certificate)
                .patch(certificates::edit_certificate),
        )
        .route(
            "/api/v1/certificates/{name}/deployments",
            get(deployments::list_deployments).post(deployments::add_deployments),
        )
        .route(
            "/api/v1/certificates/{name}/deployments/{task}",
            axum::routing::delete(deployments::remove_deployment),
        )
        .route("/api/v1/certificates/import", post(certificates::import_certificate))
        .route("/api/v1/settings", get(settings::settings).patch(settings::change_settings))
        .route(
            "/api/v1/certificates/{name}/challenges",
            get(certificates::list_challenges).put(certificates::replace_challenges),
        )
        .route("/api/v1/certificates/{name}/history", get(certificates::certificate_history))
        .route("/api/v1/certificates/{name}/pull", get(certificates::pull_certificate))
        .route("/api/v1/certificates/{name}/request", post(certificates::request_certificate))
        .route("/api/v1/certificates/{name}/preview", get(certificates::preview_certificate))
        .route("/api/v1/certificates/{name}/test", post(certificates::test_certificate))
        .route("/api/v1/certificates/{name}/revoke", post(certificates::revoke_certificate))
        .route("/api/v1/jobs/{id}", get(job_status::get_job))
        .route("/api/v1/accounts", get(accounts::list_accounts).post(accounts::create_account))
        .route(
            "/api/v1/notifications",
            get(notifications::list_channels).post(notifications::create_channel),
        )
        .route("/api/v1/notifications/{name}", axum::routing::delete(notifications::delete_channel))
        .route("/api/v1/notifications/{name}/test", post(notifications::test_channel))
        .route(
            "/api/v1/credentials",
            get(credentials::list_credentials).post(credentials::create_credential),
        )
        .route(
            "/api/v1/credentials/{name}",
            get(credentials::get_credential)
                .put(credentials::rotate_credential)
                .delete(credentials::delete_credential),
        )
        .route("/api/v1/agent-tokens", post(agents::create_join_token))
        .route("/api/v1/agents/join", post(agents::join))
        .route("/api/v1/agents", get(agents::list_agents))
        .route("/api/v1/agents/{name}", get(agents::get_agent).delete(agents::remove_agent))
        .route("/api/v1/agents/{name}/labels", axum::routing::put(agents::set_labels))
        .route("/api/v1/certificates/{name}/targets", get(agents::targets).put(agents::set_targets))
        .route("/api/v1/audit", get(audit::audit_log))
        .route("/api/v1/audit/verify", get(audit::audit_verify))
        .fallback(|| async { Problem::not_found("no such endpoint; see /api/v1/openapi.json") })
}

/// A request body, with a problem naming the rule when it does not parse.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        // serde names the field in "missing field `x`" and "unknown field `x`".
        let field = msg.split('`').nth(1).unwrap_or("body").to_string();
        Problem::invalid(&field, format!("the JSON body does not fit: {msg}"))
    })
}

/// A body of SPECs: challenge or deployment SPECs as the CLI takes them.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Specs {
    specs: Vec<String>,
}

/// A list answer: `{"items": [...]}`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}
