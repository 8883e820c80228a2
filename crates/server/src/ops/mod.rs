//! The operations the REST API and the web UI share. Each one checks the caller's role,
//! calls the engine or the store, and writes its audit entry with the change, so a page and
//! an endpoint that do the same thing cannot differ in who may do it or what is recorded.
//! The API's handlers and the UI's pages read their input, call the operations and show their
//! typed results (a handler that must refuse a caller before reading a body checks the role
//! first, as the operation will again).

mod accounts;
mod agents;
mod certificates;
mod credentials;
mod deployments;
mod notifications;
mod settings;
mod setup;
mod tokens;
mod users;
mod views;

pub(crate) use accounts::{accounts, add_account};
pub(crate) use agents::{
    AgentView, JoinTokenView, TargetsView, agent, agents, create_join_token, join,
    remove as remove_agent, set_labels as set_agent_labels, set_targets as set_cert_targets,
    targets as cert_targets,
};
pub(crate) use certificates::{
    ListQuery, PKCS12_PASSWORD_HEADER, add_certificate, cert_history, cert_page, certificate,
    challenges, delete_certificate, edit, import, preview, pull, revoke, start_request, test,
};
pub(crate) use credentials::{
    CredentialBody, RotateBody, add_credential, credential, credentials, remove_credential,
    rotate_credential,
};
pub(crate) use deployments::{add_deploy_tasks, deploy_tasks, remove_deploy_task};
pub(crate) use notifications::{ChannelBody, add_channel, channels, remove_channel, send_test};
pub(crate) use settings::change_settings;
pub(crate) use setup::setup_admin;
pub(crate) use tokens::{issue_token, revoke_token, sign_in, sign_in_oidc, token_expiry, tokens};
pub(crate) use users::{
    UserChanges, add_user, change_own_password, change_user, remove_user, users,
};
pub(crate) use views::{
    AccountView, AddedTaskView, CertPage, CertView, ChallengeView, ChannelView, DeployTaskView,
    EditedView, EventView, ImportView, TokenView, UserView,
};

use certhub_store::CertRecord;

use crate::problem::Problem;
use crate::state::AppState;

/// What an operation gives: its result, or the problem to show.
pub(crate) type OpResult<T> = Result<T, Problem>;

/// Certificate `name`'s record, or 404.
pub(crate) async fn cert_or_404(state: &AppState, name: &str) -> OpResult<CertRecord> {
    state
        .store
        .cert(name)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no certificate named {name:?}")))
}

/// The hub's engine; 503 without one.
pub(crate) fn engine(state: &AppState) -> OpResult<std::sync::Arc<certhub_engine::Engine>> {
    state
        .engine
        .clone()
        .ok_or_else(|| Problem::unavailable("this hub runs no issuance engine; use certhub serve"))
}

fn check_username(name: &str) -> OpResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Problem::invalid("username", "use 1 to 64 letters, digits, '.', '_', '-' or '@'"))
    }
}

fn check_password(password: &str) -> OpResult<()> {
    if password.chars().count() < 12 {
        return Err(Problem::invalid("password", "use at least 12 characters"));
    }
    Ok(())
}
