//! CA accounts.

use super::views::AccountView;
use super::{OpResult, engine};
use crate::auth::{Caller, Need};
use crate::state::AppState;

/// The CA accounts.
pub(crate) async fn accounts(state: &AppState, caller: &Caller) -> OpResult<Vec<AccountView>> {
    caller.require(Need::Read)?;
    Ok(state
        .store
        .accounts()
        .await?
        .into_iter()
        .map(|a| AccountView {
            name: a.name,
            directory: a.directory_url,
            email: a.email,
            status: a.status,
            key_type: a.key_type,
        })
        .collect())
}

/// Registers a CA account (admins only); its account URL at the CA. Audited.
pub(crate) async fn add_account(
    state: &AppState,
    caller: &Caller,
    req: &certhub_engine::NewAccount,
) -> OpResult<String> {
    caller.require(Need::Admin)?;
    let entry = caller.entry("account.create", &req.name);
    Ok(engine(state)?.add_account(req, entry).await?)
}
