//! Users.

use super::views::UserView;
use super::{OpResult, check_password, check_username};
use crate::auth::{self, Caller, Need, Role};
use crate::clock::rfc3339_ms;
use crate::problem::Problem;
use crate::state::AppState;

/// Adds a user (admins only). Audited.
pub(crate) async fn add_user(
    state: &AppState,
    caller: &Caller,
    username: &str,
    password: &str,
    role: &str,
) -> OpResult<Role> {
    caller.require(Need::Admin)?;
    check_username(username)?;
    check_password(password)?;
    let role = Role::parse(role)
        .ok_or_else(|| Problem::invalid("role", "one of admin, operator, viewer"))?;
    let password = password.to_string();
    let hash = auth::argon2_task(move || auth::hash_password(&password)).await??;
    let entry = caller.entry("user.create", username).with_detail(role.as_str());
    state.store.insert_user(username, &hash, role.as_str(), Some(&entry)).await?;
    Ok(role)
}

/// The users (admins only).
pub(crate) async fn users(state: &AppState, caller: &Caller) -> OpResult<Vec<UserView>> {
    caller.require(Need::Admin)?;
    Ok(state
        .store
        .users()
        .await?
        .into_iter()
        .map(|u| UserView { username: u.name, role: u.role, created_at: rfc3339_ms(u.created_at) })
        .collect())
}
