//! First-run setup.

use super::{OpResult, check_password, check_username};
use crate::auth;
use crate::problem::Problem;
use crate::state::AppState;

/// Creates the first admin with the one-time setup token (the API's and the web UI's setup).
pub(crate) async fn setup_admin(
    state: &AppState,
    token: &str,
    username: &str,
    password: &str,
    source: &str,
) -> OpResult<()> {
    if state.store.user_count().await? > 0 {
        return Err(Problem::conflict("the hub is already set up; sign in instead"));
    }
    check_username(username)?;
    check_password(password)?;
    // The token is taken, not read: of two setups at once, one gets it.
    let taken = {
        let mut setup = state.setup_token.lock().unwrap_or_else(|p| p.into_inner());
        match setup.as_deref() {
            Some(t) if certhub_store::same_secret(t, token.trim()) => setup.take(),
            _ => None,
        }
    };
    let Some(taken) = taken else {
        return Err(Problem::unauthorized(
            "the setup token is wrong or used; use the one `certhub serve` printed at start",
        ));
    };
    let created = async {
        let password = password.to_string();
        let hash = auth::argon2_task(move || auth::hash_password(&password)).await??;
        // The admin and its audit entry together, and only if no user exists yet.
        state.store.create_first_admin(username, &hash, source).await.map_err(|e| match e {
            certhub_store::Error::AlreadyExists { .. } => {
                Problem::conflict("the hub is already set up; sign in instead")
            }
            other => other.into(),
        })
    }
    .await;
    if let Err(e) = created {
        // Nothing was created: the token stays good for another try.
        *state.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(taken);
        return Err(e);
    }
    if let Some(file) = &state.setup_token_file
        && let Err(e) = std::fs::remove_file(file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %file.display(), error = %e, "removing the spent setup token failed");
    }
    Ok(())
}
