//! The handlers of `/api/v1`.

mod accounts;
mod audit;
mod certificates;
mod deployments;
mod health;
mod job_status;
mod notifications;
mod settings;
mod setup;
mod tokens;
mod users;

pub(crate) use crate::clock::{now_ms, rfc3339_ms};
use axum::Router;
use axum::routing::{get, post};
use certhub_store::RETRY_STOPPED;
use certhub_store::{CertRecord, CertSummary, IssuedRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::problem::Problem;
use crate::state::AppState;

pub(crate) use accounts::add_account;
pub(crate) use audit::AuditQuery;
pub(crate) use certificates::{
    ListQuery, PullQuery, RevokeBody, add_certificate, cert_page, edit, import, pull, revoke,
    start_request,
};
pub(crate) use deployments::{add_deploy_tasks, remove_deploy_task};
pub(crate) use notifications::{ChannelBody, add_channel, remove_channel, send_test};
pub(crate) use settings::change_settings_as;
pub(crate) use setup::{SetupBody, setup_admin};
pub(crate) use tokens::{TokenBody, issue_token, revoke_own_or_any_token, sign_in, token_expiry};
pub(crate) use users::{UserBody, add_user};

type ApiResult<T> = Result<T, Problem>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/setup", post(setup::setup))
        .route("/api/v1/tokens", post(tokens::create_token).get(tokens::list_tokens))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::revoke_token))
        .route("/api/v1/users", post(users::create_user).get(users::list_users))
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

fn check_username(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Problem::invalid("username", "use 1 to 64 letters, digits, '.', '_', '-' or '@'"))
    }
}

fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 12 {
        return Err(Problem::invalid("password", "use at least 12 characters"));
    }
    Ok(())
}

pub(crate) async fn cert_or_404(state: &AppState, name: &str) -> ApiResult<CertRecord> {
    state
        .store
        .cert(name)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no certificate named {name:?}")))
}

/// The hub's engine; 503 without one.
pub(crate) fn engine(state: &AppState) -> ApiResult<std::sync::Arc<certhub_engine::Engine>> {
    state
        .engine
        .clone()
        .ok_or_else(|| Problem::unavailable("this hub runs no issuance engine; use certhub serve"))
}

/// A body of SPECs: challenge or deployment SPECs as the CLI takes them.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Specs {
    specs: Vec<String>,
}

/// The values of a certificate's identifiers.
pub(crate) fn identifiers(identifiers: &[certhub_core::Identifier]) -> Vec<String> {
    identifiers.iter().map(ToString::to_string).collect()
}

/// A certificate as the API shows it, from its record and latest issued certificate.
pub(crate) fn cert_view(c: &CertRecord, issued: Option<&IssuedRecord>) -> Value {
    summary_view(&CertSummary::of(c, issued))
}

/// A certificate as the API shows it, from its summary.
pub(crate) fn summary_view(c: &CertSummary) -> Value {
    let issued = c.latest.as_ref();
    json!({
        "name": c.name,
        "state": c.effective_state(now_ms().div_euclid(1000)),
        "account": c.account_name,
        "identifiers": identifiers(&c.identifiers),
        "key_type": c.key_type,
        "serial": issued.map(|i| i.serial_hex.clone()),
        "issuer": issued.map(|i| i.issuer.clone()),
        "not_before": issued.map(|i| rfc3339_ms(i.not_before * 1000)),
        "not_after": issued.map(|i| rfc3339_ms(i.not_after * 1000)),
        "last_error": c.last_error,
        "renewal": {
            "policy": c.renewal_policy,
            "fallback_account": c.fallback_account,
            "failures": c.failures,
            "next_attempt": c.next_attempt_at.filter(|&t| t != RETRY_STOPPED).map(rfc3339_ms),
            // The CA refused for good: no automatic retry until it is changed or requested.
            "retries_stopped": c.next_attempt_at == Some(RETRY_STOPPED),
        },
    })
}
