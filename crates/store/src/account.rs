//! ACME accounts (table `accounts`).

use std::fmt;

use zeroize::Zeroizing;

use crate::{AuditEntry, Error, Store, is_foreign_key_violation, is_unique_violation, now_ms};

const TABLE: &str = "accounts";
const WHAT: &str = "account";

macro_rules! select_accounts {
    ($tail:literal) => {
        concat!(
            "SELECT name, directory_url, ca_bundle_pem, email, key_type, key_pkcs8, account_url, ",
            "status, eab_kid, created_at, updated_at FROM accounts ",
            $tail
        )
    };
}

/// An ACME account. `key_pkcs8` is the decrypted account key; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Unique name chosen by the user.
    pub name: String,
    /// The CA's directory URL.
    pub directory_url: String,
    /// PEM bundle of extra roots to trust for this CA's TLS, if any.
    pub ca_bundle_pem: Option<String>,
    /// Contact email, if any.
    pub email: Option<String>,
    /// Key algorithm of `key_pkcs8`, e.g. "ES256".
    pub key_type: String,
    /// The account key as PKCS#8 DER (encrypted at rest).
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// The account URL the CA assigned, once registered.
    pub account_url: Option<String>,
    /// Account status, e.g. "valid".
    pub status: String,
    /// External account binding key id, if one was used.
    pub eab_kid: Option<String>,
    /// Creation time, epoch milliseconds (set by the store).
    pub created_at: i64,
    /// Last change, epoch milliseconds (set by the store).
    pub updated_at: i64,
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("name", &self.name)
            .field("directory_url", &self.directory_url)
            .field("ca_bundle_pem", &self.ca_bundle_pem.as_ref().map(|_| ".."))
            .field("email", &self.email)
            .field("key_type", &self.key_type)
            .field("key_pkcs8", &"<redacted>")
            .field("account_url", &self.account_url)
            .field("status", &self.status)
            .field("eab_kid", &self.eab_kid)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    name: String,
    directory_url: String,
    ca_bundle_pem: Option<String>,
    email: Option<String>,
    key_type: String,
    key_pkcs8: Vec<u8>,
    account_url: Option<String>,
    status: String,
    eab_kid: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl Store {
    fn account_from_row(&self, row: AccountRow) -> Result<AccountRecord, Error> {
        let key_pkcs8 = self.open_blob(TABLE, &row.name, "key_pkcs8", &row.key_pkcs8)?;
        Ok(AccountRecord {
            name: row.name,
            directory_url: row.directory_url,
            ca_bundle_pem: row.ca_bundle_pem,
            email: row.email,
            key_type: row.key_type,
            key_pkcs8,
            account_url: row.account_url,
            status: row.status,
            eab_kid: row.eab_kid,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Inserts an account; `created_at` and `updated_at` are set to now. Fails with
    /// [`Error::AlreadyExists`] when the name is taken.
    pub async fn insert_account(&self, account: &AccountRecord) -> Result<(), Error> {
        let key = self.seal(TABLE, &account.name, "key_pkcs8", &account.key_pkcs8)?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO accounts (name, directory_url, ca_bundle_pem, email, key_type, key_pkcs8, \
             account_url, status, eab_kid, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&account.name)
        .bind(&account.directory_url)
        .bind(&account.ca_bundle_pem)
        .bind(&account.email)
        .bind(&account.key_type)
        .bind(key)
        .bind(&account.account_url)
        .bind(&account.status)
        .bind(&account.eab_kid)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                Error::AlreadyExists { what: WHAT, name: account.name.clone() }
            } else {
                err.into()
            }
        })?;
        Ok(())
    }

    /// The account named `name`, if it exists.
    pub async fn account(&self, name: &str) -> Result<Option<AccountRecord>, Error> {
        let row: Option<AccountRow> = sqlx::query_as(select_accounts!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| self.account_from_row(row)).transpose()
    }

    /// All accounts, ordered by name.
    pub async fn accounts(&self) -> Result<Vec<AccountRecord>, Error> {
        let rows: Vec<AccountRow> =
            sqlx::query_as(select_accounts!("ORDER BY name")).fetch_all(&self.pool).await?;
        rows.into_iter().map(|row| self.account_from_row(row)).collect()
    }

    /// Records the account URL the CA assigned, and that the account is valid (registered),
    /// with `audit`'s entry.
    pub async fn set_account_registered(
        &self,
        name: &str,
        url: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let result = sqlx::query(
            "UPDATE accounts SET account_url = $1, status = 'valid', updated_at = $2 \
             WHERE name = $3",
        )
        .bind(url)
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await?;
        found(result.rows_affected(), name)?;
        self.commit_change(tx, audit).await
    }

    /// Replaces the account key and its type in one statement (key rollover), with `audit`'s
    /// entry: a reader sees
    /// either the old pair or the new one.
    pub async fn set_account_key(
        &self,
        name: &str,
        key_type: &str,
        key_pkcs8: &[u8],
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let key = self.seal(TABLE, name, "key_pkcs8", key_pkcs8)?;
        let mut tx = self.begin_change(audit).await?;
        let result = sqlx::query(
            "UPDATE accounts SET key_type = $1, key_pkcs8 = $2, updated_at = $3 WHERE name = $4",
        )
        .bind(key_type)
        .bind(key)
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await?;
        found(result.rows_affected(), name)?;
        self.commit_change(tx, audit).await
    }

    /// Sets the account status, e.g. "deactivated", with `audit`'s entry.
    pub async fn set_account_status(
        &self,
        name: &str,
        status: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let result =
            sqlx::query("UPDATE accounts SET status = $1, updated_at = $2 WHERE name = $3")
                .bind(status)
                .bind(now_ms())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        found(result.rows_affected(), name)?;
        self.commit_change(tx, audit).await
    }

    /// Sets or clears the contact email, with `audit`'s entry.
    pub async fn set_account_email(
        &self,
        name: &str,
        email: Option<String>,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let result = sqlx::query("UPDATE accounts SET email = $1, updated_at = $2 WHERE name = $3")
            .bind(email)
            .bind(now_ms())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        found(result.rows_affected(), name)?;
        self.commit_change(tx, audit).await
    }

    /// Deletes an account. Fails with [`Error::InUse`] while managed certificates use it.
    pub async fn delete_account(&self, name: &str) -> Result<(), Error> {
        let result = sqlx::query("DELETE FROM accounts WHERE name = $1")
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(|err| {
                if is_foreign_key_violation(&err) {
                    Error::InUse { what: WHAT, name: name.to_owned(), by: "managed certificates" }
                } else {
                    err.into()
                }
            })?;
        found(result.rows_affected(), name)
    }
}

fn found(rows: u64, name: &str) -> Result<(), Error> {
    if rows == 0 { Err(Error::NotFound { what: WHAT, name: name.to_owned() }) } else { Ok(()) }
}
