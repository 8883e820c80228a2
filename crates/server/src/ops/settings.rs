//! The hub's settings.

use super::OpResult;
use crate::auth::{Caller, Need};
use crate::state::AppState;

/// Checks, saves and applies changes to the hub's settings (admins only); what changed, in
/// words. Audited.
pub(crate) async fn change_settings(
    state: &AppState,
    caller: &Caller,
    changes: certhub_engine::SettingsChanges,
) -> OpResult<Vec<String>> {
    caller.require(Need::Admin)?;
    Ok(state.settings.change(&state.store, changes, caller.entry("settings.update", "hub")).await?)
}
