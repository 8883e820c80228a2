//! Stored credentials (see `certhub_core::credential`): each a kind and its fields, the
//! fields sealed as one JSON object; and which certificates name each one, kept with the
//! certificates' challenges (which are sealed too, so they cannot be searched).

use std::collections::BTreeMap;

use certhub_core::secret::Secret;

use crate::{AuditEntry, CertRecord, Error, Store, is_unique_violation, now_ms};

const TABLE: &str = "credentials";
const WHAT: &str = "credential";

/// A stored credential, its fields open.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub name: String,
    pub kind: String,
    pub fields: BTreeMap<String, Secret>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    name: String,
    kind: String,
    fields: Vec<u8>,
    created_at: i64,
    updated_at: i64,
}

/// Which certificates name which credential: their challenges (`cert_credentials`) and
/// their deployment tasks.
macro_rules! uses {
    () => {
        "(SELECT credential, cert_name FROM cert_credentials UNION \
         SELECT credential, cert_name FROM deploy_tasks WHERE credential IS NOT NULL) AS uses"
    };
}

/// Records within `tx` which credentials certificate `cert`'s challenges name.
pub(crate) async fn cert_credentials_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    cert: &CertRecord,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM cert_credentials WHERE cert_name = $1")
        .bind(&cert.name)
        .execute(&mut **tx)
        .await?;
    let named: std::collections::BTreeSet<&str> =
        cert.challenges.iter().filter_map(|s| s.config.credential()).collect();
    for credential in named {
        sqlx::query("INSERT INTO cert_credentials (cert_name, credential) VALUES ($1, $2)")
            .bind(&cert.name)
            .bind(credential)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Store {
    fn credential_from_row(&self, row: Row) -> Result<CredentialRecord, Error> {
        let fields = self.open_json(TABLE, &row.name, "fields", &row.fields)?;
        Ok(CredentialRecord {
            name: row.name,
            kind: row.kind,
            fields,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Keeps credential `name` of `kind` with `fields`, with `audit`'s entry. Fails with
    /// [`Error::AlreadyExists`] when the name is taken.
    pub async fn insert_credential(
        &self,
        name: &str,
        kind: &str,
        fields: &BTreeMap<String, Secret>,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let sealed = self.seal_json(TABLE, name, "fields", fields)?;
        let mut tx = self.begin_change(audit).await?;
        sqlx::query(
            "INSERT INTO credentials (name, kind, fields, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(name)
        .bind(kind)
        .bind(sealed)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists { what: WHAT, name: name.to_owned() }
            } else {
                e.into()
            }
        })?;
        self.commit_change(tx, audit).await
    }

    /// Replaces the fields of credential `name`, with `audit`'s entry.
    pub async fn rotate_credential(
        &self,
        name: &str,
        fields: &BTreeMap<String, Secret>,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let sealed = self.seal_json(TABLE, name, "fields", fields)?;
        let mut tx = self.begin_change(audit).await?;
        let done = sqlx::query(
            "UPDATE credentials SET fields = $1, \
             updated_at = CASE WHEN updated_at < $2 THEN $2 ELSE updated_at + 1 END \
             WHERE name = $3",
        )
        .bind(sealed)
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound { what: WHAT, name: name.to_owned() });
        }
        self.commit_change(tx, audit).await
    }

    /// The credential named `name`, if any.
    pub async fn credential(&self, name: &str) -> Result<Option<CredentialRecord>, Error> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT name, kind, fields, created_at, updated_at FROM credentials WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| self.credential_from_row(r)).transpose()
    }

    /// Every credential, by name.
    pub async fn credentials(&self) -> Result<Vec<CredentialRecord>, Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT name, kind, fields, created_at, updated_at FROM credentials ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| self.credential_from_row(r)).collect()
    }

    /// The certificates whose challenges or deployment tasks name credential `name`, by
    /// name.
    pub async fn credential_users(&self, name: &str) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar(concat!(
            "SELECT DISTINCT cert_name FROM ",
            uses!(),
            " WHERE credential = $1 ORDER BY cert_name"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every credential in use, with the certificates that name it, by name.
    pub async fn credentials_in_use(&self) -> Result<BTreeMap<String, Vec<String>>, Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(concat!(
            "SELECT DISTINCT credential, cert_name FROM ",
            uses!(),
            " ORDER BY credential, cert_name"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (credential, cert) in rows {
            uses.entry(credential).or_default().push(cert);
        }
        Ok(uses)
    }

    /// Removes credential `name`, with `audit`'s entry. Fails with [`Error::InUse`] while a
    /// certificate names it.
    pub async fn remove_credential(
        &self,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let users: i64 =
            sqlx::query_scalar(concat!("SELECT COUNT(*) FROM ", uses!(), " WHERE credential = $1"))
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if users > 0 {
            return Err(Error::InUse {
                what: WHAT,
                name: name.to_owned(),
                by: "managed certificates",
            });
        }
        let done = sqlx::query("DELETE FROM credentials WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound { what: WHAT, name: name.to_owned() });
        }
        self.commit_change(tx, audit).await
    }
}
