//! Users.

use super::views::UserView;
use super::{OpResult, check_password, check_username};
use crate::auth::{self, Caller, Need, Role};
use crate::clock::rfc3339_ms;
use crate::problem::Problem;
use crate::state::AppState;
use certhub_store::UserChange;

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
    Ok(state.store.users().await?.into_iter().map(view).collect())
}

fn view(u: certhub_store::UserRecord) -> UserView {
    UserView {
        username: u.name,
        role: u.role,
        created_at: rfc3339_ms(u.created_at),
        disabled_at: u.disabled_at.map(rfc3339_ms),
        identity_provider: u.oidc_issuer,
    }
}

/// What an admin changes of a user; each part optional.
#[derive(Debug, Default)]
pub(crate) struct UserChanges {
    pub role: Option<String>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

/// Changes a user's role, whether they are disabled, or their password (admins only; an
/// admin changes their own password with [`change_own_password`], and neither disables nor
/// demotes themselves). Each change is audited; the last enabled admin stays one.
pub(crate) async fn change_user(
    state: &AppState,
    caller: &Caller,
    name: &str,
    changes: UserChanges,
) -> OpResult<UserView> {
    caller.require(Need::Admin)?;
    let mut planned = Vec::new();
    if let Some(role) = &changes.role {
        let role = Role::parse(role)
            .ok_or_else(|| Problem::invalid("role", "one of admin, operator, viewer"))?;
        if name == caller.user && role != Role::Admin {
            return Err(Problem::invalid("role", "another admin changes your role"));
        }
        planned.push((
            UserChange::Role(role.as_str().to_string()),
            "user.role",
            Some(role.as_str()),
        ));
    }
    if let Some(disabled) = changes.disabled {
        if name == caller.user && disabled {
            return Err(Problem::invalid("disabled", "another admin disables you"));
        }
        let action = if disabled { "user.disable" } else { "user.enable" };
        planned.push((UserChange::Disabled(disabled), action, None));
    }
    if let Some(password) = &changes.password {
        check_password(password)?;
        let password = password.clone();
        let hash = auth::argon2_task(move || auth::hash_password(&password)).await??;
        planned.push((UserChange::Password(hash), "user.password", None));
    }
    if planned.is_empty() {
        return Err(Problem::invalid("role", "give role, disabled or password"));
    }
    // All or none, each audited.
    let entries: Vec<_> = planned
        .iter()
        .map(|(_, action, detail)| {
            let entry = caller.entry(action, name);
            match detail {
                Some(d) => entry.with_detail(*d),
                None => entry,
            }
        })
        .collect();
    let changes: Vec<_> =
        planned.into_iter().zip(&entries).map(|((change, _, _), e)| (change, Some(e))).collect();
    state.store.change_user_all(name, &changes).await?;
    let user = state
        .store
        .user(name)
        .await?
        .ok_or_else(|| Problem::not_found(format!("user {name:?} was not found")))?;
    Ok(view(user))
}

/// Removes a user with their tokens and sessions (admins only, not themselves). Audited.
pub(crate) async fn remove_user(state: &AppState, caller: &Caller, name: &str) -> OpResult<()> {
    caller.require(Need::Admin)?;
    if name == caller.user {
        return Err(Problem::invalid("username", "another admin removes you"));
    }
    let entry = caller.entry("user.remove", name);
    state.store.change_user(name, &UserChange::Remove, Some(&entry)).await?;
    Ok(())
}

/// Changes the caller's own password, given the current one. Audited.
pub(crate) async fn change_own_password(
    state: &AppState,
    caller: &Caller,
    current: &str,
    new: &str,
) -> OpResult<()> {
    check_password(new)
        .map_err(|_| Problem::invalid("new_password", "use at least 12 characters"))?;
    let user = state
        .store
        .user(&caller.user)
        .await?
        .ok_or_else(|| Problem::unauthorized("this session's user no longer exists"))?;
    if user.signs_in_through_provider() {
        return Err(Problem::invalid(
            "current_password",
            "you sign in through the OpenID provider, which keeps your password",
        ));
    }
    let (phc, given) = (user.password_hash.clone(), current.to_string());
    if !auth::argon2_task(move || auth::verify_password(&given, &phc)).await? {
        return Err(Problem::invalid("current_password", "that is not your current password"));
    }
    let new = new.to_string();
    let hash = auth::argon2_task(move || auth::hash_password(&new)).await??;
    let entry = caller.entry("user.password", &caller.user);
    state.store.change_user(&caller.user, &UserChange::Password(hash), Some(&entry)).await?;
    Ok(())
}
