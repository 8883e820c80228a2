//! Issued certificates (table `issued`).

use crate::vocab::EventKind;
use std::fmt;

use sqlx::AnyConnection;
use zeroize::Zeroizing;

use crate::{
    AuditEntry, Error, Store, from_json, is_foreign_key_violation, is_unique_violation, now_ms,
    to_json,
};

const TABLE: &str = "issued";
const WHAT: &str = "issued certificate";

macro_rules! select_issued {
    ($tail:literal) => {
        concat!(
            "SELECT id, cert_name, order_id, serial_hex, issuer, sans, not_before, not_after, ",
            "chain_pem, key_type, key_pkcs8, revoked_at, revocation_reason, created_at ",
            "FROM issued ",
            $tail
        )
    };
}

/// A certificate the CA issued, with its key. `key_pkcs8` is encrypted at rest and redacted in
/// `Debug`.
#[derive(Clone, PartialEq)]
pub struct IssuedRecord {
    /// Generated id (ignored on insert).
    pub id: i64,
    /// The managed certificate.
    pub cert_name: String,
    /// The order that produced it, if any (at most one issued row per order).
    pub order_id: Option<i64>,
    /// Serial number, lowercase hex.
    pub serial_hex: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// The subject alternative names (stored as JSON text).
    pub sans: Vec<certhub_core::Identifier>,
    /// Start of validity, epoch milliseconds.
    pub not_before: i64,
    /// End of validity, epoch milliseconds.
    pub not_after: i64,
    /// The certificate chain, leaf first, PEM.
    pub chain_pem: String,
    /// The key's algorithm.
    pub key_type: String,
    /// The certificate key, PKCS#8 DER (encrypted at rest).
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// When it was revoked, epoch milliseconds.
    pub revoked_at: Option<i64>,
    /// The RFC 5280 revocation reason code, if revoked with one.
    pub revocation_reason: Option<i64>,
    /// Creation time, epoch milliseconds (set by the store).
    pub created_at: i64,
}

impl fmt::Debug for IssuedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedRecord")
            .field("id", &self.id)
            .field("cert_name", &self.cert_name)
            .field("order_id", &self.order_id)
            .field("serial_hex", &self.serial_hex)
            .field("issuer", &self.issuer)
            .field("sans", &self.sans)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("chain_pem", &"..")
            .field("key_type", &self.key_type)
            .field("key_pkcs8", &"<redacted>")
            .field("revoked_at", &self.revoked_at)
            .field("revocation_reason", &self.revocation_reason)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct IssuedRow {
    id: i64,
    cert_name: String,
    order_id: Option<i64>,
    serial_hex: String,
    issuer: String,
    sans: String,
    not_before: i64,
    not_after: i64,
    chain_pem: String,
    key_type: String,
    key_pkcs8: Vec<u8>,
    revoked_at: Option<i64>,
    revocation_reason: Option<i64>,
    created_at: i64,
}

impl Store {
    fn issued_from_row(&self, row: IssuedRow) -> Result<IssuedRecord, Error> {
        let id = row.id.to_string();
        Ok(IssuedRecord {
            id: row.id,
            sans: from_json(TABLE, &id, "sans", &row.sans)?,
            key_pkcs8: self.open_blob(TABLE, &id, "key_pkcs8", &row.key_pkcs8)?,
            cert_name: row.cert_name,
            order_id: row.order_id,
            serial_hex: row.serial_hex,
            issuer: row.issuer,
            not_before: row.not_before,
            not_after: row.not_after,
            chain_pem: row.chain_pem,
            key_type: row.key_type,
            revoked_at: row.revoked_at,
            revocation_reason: row.revocation_reason,
            created_at: row.created_at,
        })
    }

    /// Inserts the row within `conn`'s transaction and seals its key under the new id.
    async fn insert_issued_in(
        &self,
        conn: &mut AnyConnection,
        issued: &IssuedRecord,
        order_id: Option<i64>,
    ) -> Result<i64, Error> {
        let sans = to_json(TABLE, &issued.cert_name, "sans", &issued.sans)?;
        // Checked first: after a failed statement PostgreSQL refuses every other one in the
        // transaction, so a foreign key violation cannot be explained afterwards. A new
        // certificate changes when the next renewal is due: the scheduler looks again.
        if crate::cert::recheck(&mut *conn, &issued.cert_name).await? == 0 {
            return Err(Error::NotFound {
                what: "managed certificate",
                name: issued.cert_name.clone(),
            });
        }
        // The id is part of the sealed key's associated data, so the row is inserted first
        // and sealed within the same transaction.
        let inserted = sqlx::query_scalar(
            "INSERT INTO issued (cert_name, order_id, serial_hex, issuer, sans, not_before, \
             not_after, chain_pem, key_type, key_pkcs8, revoked_at, revocation_reason, \
             created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(&issued.cert_name)
        .bind(order_id)
        .bind(&issued.serial_hex)
        .bind(&issued.issuer)
        .bind(sans)
        .bind(issued.not_before)
        .bind(issued.not_after)
        .bind(&issued.chain_pem)
        .bind(&issued.key_type)
        .bind(Vec::<u8>::new())
        .bind(issued.revoked_at)
        .bind(issued.revocation_reason)
        .bind(now_ms())
        .fetch_one(&mut *conn)
        .await;
        let id: i64 = match inserted {
            Ok(id) => id,
            Err(err) if is_unique_violation(&err) => {
                return Err(Error::AlreadyExists {
                    what: "issued certificate for order",
                    name: order_id.map(|id| id.to_string()).unwrap_or_default(),
                });
            }
            Err(err) if is_foreign_key_violation(&err) => {
                // The certificate exists, so the order does not.
                return Err(Error::NotFound {
                    what: "order",
                    name: order_id.map(|id| id.to_string()).unwrap_or_default(),
                });
            }
            Err(err) => return Err(err.into()),
        };
        let key = self.seal(TABLE, &id.to_string(), "key_pkcs8", &issued.key_pkcs8)?;
        sqlx::query("UPDATE issued SET key_pkcs8 = $1 WHERE id = $2")
            .bind(key)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(id)
    }

    /// Inserts an issued certificate (its `id` and `created_at` are ignored) and returns the
    /// new id. Fails with [`Error::NotFound`] naming the certificate or order, and with
    /// [`Error::AlreadyExists`] when the order already has an issued certificate.
    /// `audit`'s entry is stored with it.
    pub async fn insert_issued(
        &self,
        issued: &IssuedRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<i64, Error> {
        let mut tx = self.begin_change(audit).await?;
        let id = self.insert_issued_in(&mut tx, issued, issued.order_id).await?;
        self.commit_change(tx, audit).await?;
        Ok(id)
    }

    /// Imports a certificate obtained elsewhere, all in one transaction: the managed
    /// certificate (inserted when `new`, else replaced), its new deployment tasks, the issued
    /// certificate, its `imported` event (`detail`), and `audit`'s entry. Returns the issued
    /// row's id.
    pub async fn import_issued(
        &self,
        cert: &crate::CertRecord,
        new: bool,
        tasks: &[certhub_core::DeployTask],
        issued: &IssuedRecord,
        detail: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<i64, Error> {
        let mut tx = self.begin_change(audit).await?;
        if new {
            self.insert_cert_in(&mut tx, cert).await?;
        } else {
            self.update_cert_in(&mut tx, cert).await?;
        }
        self.add_deploy_tasks_in(&mut tx, &cert.name, tasks).await?;
        let id = self.insert_issued_in(&mut tx, issued, None).await?;
        crate::event::record_event_in(&mut tx, &cert.name, EventKind::Imported, Some(detail))
            .await?;
        self.commit_change(tx, audit).await?;
        self.changed(crate::Change::Issued(cert.name.clone()));
        Ok(id)
    }

    /// Completes an order in one transaction: inserts the issued certificate (its `order_id` is
    /// set to `order_id`), sets the order's status to "valid", the certificate's state to
    /// "valid" with no last error and no failures in a row (so no retry is pending), and
    /// records its `issued` event (the serial and the expiry). Returns the issued row's id.
    /// Either all of it is stored or none. Fails with [`Error::NotFound`] for an unknown
    /// order, [`Error::Invalid`] when the order belongs to another certificate than
    /// `issued.cert_name`, and [`Error::AlreadyExists`] when the order was already completed.
    /// `audit`'s entry is stored with it.
    pub async fn complete_order(
        &self,
        order_id: i64,
        issued: &IssuedRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<i64, Error> {
        let now = now_ms();
        let mut tx = self.begin_change(audit).await?;
        let cert_name: Option<String> = sqlx::query_scalar(
            "UPDATE orders SET status = 'valid', error = NULL, updated_at = $1 WHERE id = $2 \
             RETURNING cert_name",
        )
        .bind(now)
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cert_name) = cert_name else {
            return Err(Error::NotFound { what: "order", name: order_id.to_string() });
        };
        if cert_name != issued.cert_name {
            return Err(Error::Invalid {
                what: WHAT,
                name: issued.serial_hex.clone(),
                reason: format!(
                    "order {order_id} belongs to managed certificate {cert_name:?}, not {:?}",
                    issued.cert_name
                ),
            });
        }
        let id = self.insert_issued_in(&mut tx, issued, Some(order_id)).await?;
        sqlx::query(
            "UPDATE certs SET state = 'valid', last_error = NULL, failures = 0, \
             next_attempt_at = NULL, updated_at = $1 WHERE name = $2",
        )
        .bind(now)
        .bind(&cert_name)
        .execute(&mut *tx)
        .await?;
        let detail = format!(
            "serial {}, expires {}",
            issued.serial_hex,
            certhub_core::time::rfc3339(issued.not_after / 1000)
        );
        crate::event::record_event_in(&mut tx, &cert_name, EventKind::Issued, Some(&detail))
            .await?;
        self.commit_change(tx, audit).await?;
        self.changed(crate::Change::Issued(cert_name));
        Ok(id)
    }

    /// The newest issued certificate of the managed certificate, if any.
    pub async fn latest_issued(&self, cert_name: &str) -> Result<Option<IssuedRecord>, Error> {
        let row: Option<IssuedRow> =
            sqlx::query_as(select_issued!("WHERE cert_name = $1 ORDER BY id DESC LIMIT 1"))
                .bind(cert_name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| self.issued_from_row(row)).transpose()
    }

    /// The chain (PEM) of the newest issued certificate of the managed certificate, if any:
    /// what a pull of the public certificate needs, read without the key's column.
    pub async fn latest_chain(&self, cert_name: &str) -> Result<Option<String>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT chain_pem FROM issued WHERE cert_name = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(cert_name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The issued certificate with this id, if it exists.
    pub async fn issued(&self, id: i64) -> Result<Option<IssuedRecord>, Error> {
        let row: Option<IssuedRow> = sqlx::query_as(select_issued!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| self.issued_from_row(row)).transpose()
    }

    /// Every issued certificate of the managed certificate, newest first.
    pub async fn issued_for(&self, cert_name: &str) -> Result<Vec<IssuedRecord>, Error> {
        let rows: Vec<IssuedRow> =
            sqlx::query_as(select_issued!("WHERE cert_name = $1 ORDER BY id DESC"))
                .bind(cert_name)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(|row| self.issued_from_row(row)).collect()
    }

    /// Marks an issued certificate revoked at `at` (epoch milliseconds) with an optional
    /// RFC 5280 reason code.
    /// Its certificate is then due for renewal: the scheduler looks at it at its next run.
    /// `audit`'s entry is stored with the change.
    pub async fn set_revoked(
        &self,
        id: i64,
        at: i64,
        reason: Option<i64>,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let cert_name: Option<String> = sqlx::query_scalar(
            "UPDATE issued SET revoked_at = $1, revocation_reason = $2 WHERE id = $3 \
             RETURNING cert_name",
        )
        .bind(at)
        .bind(reason)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cert_name) = cert_name else {
            return Err(Error::NotFound { what: WHAT, name: id.to_string() });
        };
        crate::cert::recheck(&mut tx, &cert_name).await?;
        self.commit_change(tx, audit).await
    }
}
