//! Stored credentials (`certhub credential`, `/api/v1/credentials`): added, rotated and
//! removed with their audit entries, and read at each order to fill in the secrets of the
//! challenge SPECs that name them, so that a rotation reaches every certificate at its next
//! order.

use std::collections::BTreeMap;

use certhub_core::ChallengeSpec;
use certhub_core::credential::{check_name, kind};
use certhub_core::secret::Secret;
use certhub_store::{AuditEntry, CredentialRecord, Store};

use crate::Engine;
use crate::error::{Error, Kind, invalid};

/// A credential as shown: its kind, and each field's value only when it is not a secret.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct CredentialView {
    pub name: String,
    pub kind: String,
    /// Each field given: its value, or `(secret)`.
    pub fields: BTreeMap<String, String>,
    /// The certificates whose challenges name it.
    pub used_by: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a secret field shows instead of its value.
pub const HIDDEN: &str = "(secret)";

fn view(c: CredentialRecord, used_by: Vec<String>) -> CredentialView {
    let secret =
        |field: &str| kind(&c.kind).ok().and_then(|k| k.field(field)).is_none_or(|f| f.secret);
    let fields = c
        .fields
        .iter()
        .map(|(k, v)| {
            let shown = if secret(k) { HIDDEN.to_string() } else { v.expose().to_string() };
            (k.clone(), shown)
        })
        .collect();
    CredentialView {
        name: c.name,
        kind: c.kind,
        fields,
        used_by,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// `fields` without empty optional values, checked against kind `kind`.
fn checked(
    kind_name: &str,
    fields: BTreeMap<String, Secret>,
) -> Result<BTreeMap<String, Secret>, Error> {
    let k = kind(kind_name).map_err(|e| Error::invalid("kind", e))?;
    let fields: BTreeMap<String, Secret> =
        fields.into_iter().filter(|(_, v)| !v.expose().trim().is_empty()).collect();
    k.check(&fields).map_err(|e| Error::invalid("fields", e))?;
    Ok(fields)
}

impl Engine {
    /// Keeps credential `name` of kind `kind` with `fields`, with `audit`'s entry.
    pub async fn add_credential(
        &self,
        name: &str,
        kind_name: &str,
        fields: BTreeMap<String, Secret>,
        audit: AuditEntry,
    ) -> Result<CredentialView, Error> {
        check_name(name).map_err(|e| Error::invalid("name", e))?;
        let fields = checked(kind_name, fields)?;
        self.store().insert_credential(name, kind_name, &fields, Some(&audit)).await?;
        self.credential(name).await
    }

    /// Replaces the fields of credential `name` (its kind stays), with `audit`'s entry: every
    /// certificate that names it uses the new ones at its next order.
    pub async fn rotate_credential(
        &self,
        name: &str,
        fields: BTreeMap<String, Secret>,
        audit: AuditEntry,
    ) -> Result<CredentialView, Error> {
        let kept = self.credential(name).await?;
        let fields = checked(&kept.kind, fields)?;
        self.store().rotate_credential(name, &fields, Some(&audit)).await?;
        self.credential(name).await
    }

    /// Removes credential `name`, with `audit`'s entry; refused while a certificate names it.
    pub async fn remove_credential(&self, name: &str, audit: AuditEntry) -> Result<(), Error> {
        let users = self.store().credential_users(name).await?;
        if !users.is_empty() {
            return Err(Error::new(
                Kind::Conflict,
                format!(
                    "credential {name} is used by {}: change their challenges or deployment \
                     tasks first (`certhub cert set NAME --challenge …`, `certhub deploy \
                     remove NAME TASK`)",
                    users.join(", ")
                ),
            ));
        }
        Ok(self.store().remove_credential(name, Some(&audit)).await?)
    }

    /// Credential `name`, its secrets left out.
    pub async fn credential(&self, name: &str) -> Result<CredentialView, Error> {
        let c = self.store().credential(name).await?.ok_or_else(|| not_found(name))?;
        let users = self.store().credential_users(name).await?;
        Ok(view(c, users))
    }

    /// Every credential, secrets left out.
    pub async fn credentials(&self) -> Result<Vec<CredentialView>, Error> {
        let mut in_use = self.store().credentials_in_use().await?;
        let list = self.store().credentials().await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let users = in_use.remove(&c.name).unwrap_or_default();
                view(c, users)
            })
            .collect())
    }
}

fn not_found(name: &str) -> Error {
    Error::new(
        Kind::NotFound,
        format!("no credential {name}: add it with `certhub credential add {name} --kind KIND`"),
    )
}

/// Checks that the credentials `specs` name exist and fit where they are named.
pub async fn check_specs(store: &Store, specs: &[ChallengeSpec]) -> anyhow::Result<()> {
    for spec in specs {
        resolve(store, spec).await?;
    }
    Ok(())
}

/// `spec` with the secrets of the credential it names filled in (as stored now).
pub async fn resolve(store: &Store, spec: &ChallengeSpec) -> anyhow::Result<ChallengeSpec> {
    let Some(name) = spec.config.credential() else { return Ok(spec.clone()) };
    let Some(c) = store.credential(name).await? else {
        return Err(invalid(
            "challenges",
            format!(
                "no credential {name}: add it with `certhub credential add {name} --kind {}`",
                spec.config.credential_kind().unwrap_or("KIND")
            ),
        ));
    };
    let config =
        spec.config.with_credential(&c.kind, &c.fields).map_err(|e| invalid("challenges", e))?;
    Ok(ChallengeSpec { config, ..spec.clone() })
}

/// Checks that the credentials `tasks` name exist and are of the kind they take.
pub async fn check_tasks(store: &Store, tasks: &[certhub_core::DeployTask]) -> anyhow::Result<()> {
    for task in tasks {
        resolve_task(store, task).await.map_err(|e| invalid("deploy", e))?;
    }
    Ok(())
}

/// `task` with the secrets of the credential it names filled in (as stored now), or why
/// they cannot be.
pub async fn resolve_task(
    store: &Store,
    task: &certhub_core::DeployTask,
) -> Result<certhub_core::DeployTask, String> {
    let Some(name) = task.action.credential() else { return Ok(task.clone()) };
    let Some(c) = store.credential(name).await.map_err(|e| e.to_string())? else {
        return Err(format!(
            "task {}: no credential {name}: add it with `certhub credential add {name} --kind \
             ssh --from-file private-key=PATH`",
            task.name
        ));
    };
    let action = task
        .action
        .with_credential(&c.kind, &c.fields)
        .map_err(|e| format!("task {}: {e}", task.name))?;
    Ok(certhub_core::DeployTask { action, ..task.clone() })
}
