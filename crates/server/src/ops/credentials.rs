//! Stored credentials: named secrets that challenge SPECs refer to (`credential=NAME`),
//! never shown back.

use std::collections::BTreeMap;

use certhub_core::secret::Secret;
use certhub_engine::credentials::CredentialView;
use serde::Deserialize;

use super::{OpResult, engine};
use crate::auth::{Caller, Need};
use crate::state::AppState;

/// A new credential: its name, kind, and each field's value.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialBody {
    pub name: String,
    /// `tsig`, `callback` or a DNS provider's name (`certhub credential kinds` lists them
    /// with their fields).
    pub kind: String,
    #[schemars(with = "BTreeMap<String, String>")]
    pub fields: BTreeMap<String, Secret>,
}

/// New values for every field of a credential.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateBody {
    #[schemars(with = "BTreeMap<String, String>")]
    pub fields: BTreeMap<String, Secret>,
}

/// The credentials, secrets left out (admins only).
pub(crate) async fn credentials(
    state: &AppState,
    caller: &Caller,
) -> OpResult<Vec<CredentialView>> {
    caller.require(Need::Admin)?;
    Ok(engine(state)?.credentials().await?)
}

/// One credential, secrets left out (admins only).
pub(crate) async fn credential(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<CredentialView> {
    caller.require(Need::Admin)?;
    Ok(engine(state)?.credential(name).await?)
}

/// Keeps a new credential (admins only). Audited, its kind as the detail.
pub(crate) async fn add_credential(
    state: &AppState,
    caller: &Caller,
    req: CredentialBody,
) -> OpResult<CredentialView> {
    caller.require(Need::Admin)?;
    let name = req.name.trim();
    let entry = caller.entry("credential.add", name).with_detail(req.kind.clone());
    Ok(engine(state)?.add_credential(name, &req.kind, req.fields, entry).await?)
}

/// Replaces a credential's fields (admins only). Audited.
pub(crate) async fn rotate_credential(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: RotateBody,
) -> OpResult<CredentialView> {
    caller.require(Need::Admin)?;
    let entry = caller.entry("credential.rotate", name);
    Ok(engine(state)?.rotate_credential(name, req.fields, entry).await?)
}

/// Removes a credential no certificate uses (admins only). Audited.
pub(crate) async fn remove_credential(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> OpResult<()> {
    caller.require(Need::Admin)?;
    let entry = caller.entry("credential.remove", name);
    Ok(engine(state)?.remove_credential(name, entry).await?)
}
