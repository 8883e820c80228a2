//! Orders in flight (table `orders`) and presented challenges (table `presented`).

use crate::vocab::{EventKind, OrderStatus};
use std::fmt;

use sqlx::AnyConnection;
use zeroize::Zeroizing;

use crate::{Error, Store, from_json, is_foreign_key_violation, now_ms, to_json};

const TABLE: &str = "orders";
const WHAT: &str = "order";
const PRESENTED: &str = "presented";

macro_rules! order_columns {
    () => {
        "id, cert_name, account_name, order_url, status, key_pkcs8, key_type, csr_der, error, \
         created_at, updated_at"
    };
}

macro_rules! select_orders {
    ($tail:literal) => {
        concat!("SELECT ", order_columns!(), " FROM orders ", $tail)
    };
}

macro_rules! select_presented {
    ($tail:literal) => {
        concat!("SELECT id, order_id, spec, challenge, created_at FROM presented ", $tail)
    };
}

/// One order attempt for a managed certificate. `key_pkcs8`, the certificate key for this
/// order, is encrypted at rest and persisted before the CSR is sent; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// Generated id.
    pub id: i64,
    /// The managed certificate.
    pub cert_name: String,
    /// The account that placed the order.
    pub account_name: String,
    /// The order URL, once the CA created it.
    pub order_url: Option<String>,
    /// Where it stands.
    pub status: OrderStatus,
    /// The certificate key (PKCS#8 DER), once generated.
    pub key_pkcs8: Option<Zeroizing<Vec<u8>>>,
    /// The certificate key's algorithm, once generated.
    pub key_type: Option<String>,
    /// The CSR sent at finalization (DER), once built.
    pub csr_der: Option<Vec<u8>>,
    /// The error that ended the order, if any.
    pub error: Option<String>,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// Last change, epoch milliseconds.
    pub updated_at: i64,
}

/// A new order's certificate key and the CSR made from it (see [`Store::create_order`]).
#[derive(Clone, Copy)]
pub struct OrderKey<'a> {
    /// The key's type, as [`OrderRecord::key_type`].
    pub key_type: &'a str,
    /// PKCS#8 DER; empty when the owner's CSR is used and the hub holds no key.
    pub key_pkcs8: &'a [u8],
    /// The CSR the order is finalized with.
    pub csr_der: &'a [u8],
}

impl fmt::Debug for OrderRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderRecord")
            .field("id", &self.id)
            .field("cert_name", &self.cert_name)
            .field("account_name", &self.account_name)
            .field("order_url", &self.order_url)
            .field("status", &self.status)
            .field("key_pkcs8", &self.key_pkcs8.as_ref().map(|_| "<redacted>"))
            .field("key_type", &self.key_type)
            .field("csr_der", &self.csr_der.as_ref().map(Vec::len))
            .field("error", &self.error)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A challenge presented (or about to be) that still needs cleanup. The row is written before
/// the challenge is presented and removed after cleanup, so after a crash
/// [`Store::presented_all`] lists what to clean. `spec` (how it was presented, possibly with
/// credentials) is encrypted at rest and redacted in `Debug`.
#[derive(Clone, PartialEq)]
pub struct PresentedRecord {
    /// Generated id.
    pub id: i64,
    /// The order it belongs to.
    pub order_id: i64,
    /// How the challenge was presented (encrypted at rest).
    pub spec: serde_json::Value,
    /// The challenge itself (type, token, URL…).
    pub challenge: serde_json::Value,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
}

impl fmt::Debug for PresentedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedRecord")
            .field("id", &self.id)
            .field("order_id", &self.order_id)
            .field("spec", &"<redacted>")
            .field("challenge", &self.challenge)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// An order placed with a CA, as its rate limits count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    /// When, epoch milliseconds.
    pub at: i64,
    /// The account that placed it.
    pub account_name: String,
    /// The names it was for, lower case (the certificate's current identifiers).
    pub names: Vec<String>,
    /// Whether it renewed a certificate as an ARI renewal (RFC 9773 `replaces`).
    pub ari_renewal: bool,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: i64,
    cert_name: String,
    account_name: String,
    order_url: Option<String>,
    status: String,
    key_pkcs8: Option<Vec<u8>>,
    key_type: Option<String>,
    csr_der: Option<Vec<u8>>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct PresentedRow {
    id: i64,
    order_id: i64,
    spec: Vec<u8>,
    challenge: String,
    created_at: i64,
}

impl Store {
    fn order_from_row(&self, row: OrderRow) -> Result<OrderRecord, Error> {
        let key_pkcs8 = row
            .key_pkcs8
            .map(|blob| self.open_blob(TABLE, &row.id.to_string(), "key_pkcs8", &blob))
            .transpose()?;
        Ok(OrderRecord {
            id: row.id,
            cert_name: row.cert_name,
            account_name: row.account_name,
            status: crate::vocab::parse(TABLE, &row.id.to_string(), "status", &row.status)?,
            order_url: row.order_url,
            key_pkcs8,
            key_type: row.key_type,
            csr_der: row.csr_der,
            error: row.error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    fn presented_from_row(&self, row: PresentedRow) -> Result<PresentedRecord, Error> {
        let id = row.id.to_string();
        Ok(PresentedRecord {
            id: row.id,
            order_id: row.order_id,
            spec: self.open_json(PRESENTED, &id, "spec", &row.spec)?,
            challenge: from_json(PRESENTED, &id, "challenge", &row.challenge)?,
            created_at: row.created_at,
        })
    }

    /// Starts a new order attempt with status "new"; `replaces` is the ARI identifier of the
    /// certificate it renews, when it is sent as an ARI renewal, and `key` the certificate key
    /// and CSR it will be finalized with, stored (the key encrypted) in the same transaction.
    /// Fails with [`Error::NotFound`] naming the certificate or the account when either does
    /// not exist.
    pub async fn create_order(
        &self,
        cert_name: &str,
        account_name: &str,
        replaces: Option<&str>,
        key: Option<OrderKey<'_>>,
    ) -> Result<OrderRecord, Error> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // One statement that inserts only when both exist.
        let row: Option<OrderRow> = sqlx::query_as(concat!(
            "INSERT INTO orders (cert_name, account_name, replaces, status, created_at, ",
            "updated_at) ",
            "SELECT c.name, a.name, $3, 'new', $4, $4 FROM certs c, accounts a ",
            "WHERE c.name = $1 AND a.name = $2 ",
            "RETURNING ",
            order_columns!()
        ))
        .bind(cert_name)
        .bind(account_name)
        .bind(replaces)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut row) = row else {
            drop(tx);
            if self.cert(cert_name).await?.is_none() {
                return Err(Error::NotFound {
                    what: "managed certificate",
                    name: cert_name.to_owned(),
                });
            }
            return Err(Error::NotFound { what: "account", name: account_name.to_owned() });
        };
        if let Some(key) = key {
            // Sealed under the id the insert gave, so written after it.
            row.key_pkcs8 = self
                .write_order_key(
                    &mut tx,
                    row.id,
                    key.key_type,
                    key.key_pkcs8,
                    Some(key.csr_der),
                    now,
                )
                .await?;
            row.key_type = Some(key.key_type.to_owned());
            row.csr_der = Some(key.csr_der.to_vec());
        }
        // The order counts in its CA's budget from now: an admitted renewal's hold ends.
        sqlx::query("DELETE FROM budget_holds WHERE cert_name = $1")
            .bind(cert_name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.order_from_row(row)
    }

    /// The order with this id, if it exists.
    pub async fn order(&self, id: i64) -> Result<Option<OrderRecord>, Error> {
        let row: Option<OrderRow> = sqlx::query_as(select_orders!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| self.order_from_row(row)).transpose()
    }

    /// The newest order of the certificate that has not ended, i.e. whose status is none of
    /// "valid", "invalid" and "abandoned".
    pub async fn open_order(&self, cert_name: &str) -> Result<Option<OrderRecord>, Error> {
        let row: Option<OrderRow> = sqlx::query_as(select_orders!(
            "WHERE cert_name = $1 AND status NOT IN ('valid', 'invalid', 'abandoned') \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(cert_name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.order_from_row(row)).transpose()
    }

    /// Records the order URL the CA assigned, and the certificate's `ordered` event with it,
    /// in one transaction.
    pub async fn set_order_url(&self, id: i64, url: &str) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        let cert_name: Option<String> = sqlx::query_scalar(
            "UPDATE orders SET order_url = $1, updated_at = $2 WHERE id = $3 RETURNING cert_name",
        )
        .bind(url)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cert_name) = cert_name else {
            return Err(Error::NotFound { what: WHAT, name: id.to_string() });
        };
        crate::event::record_event_in(&mut tx, &cert_name, EventKind::Ordered, Some(url)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores the order's certificate key (encrypted) with its type and, when already built,
    /// the CSR, in one statement. Call it before sending the CSR, so a crash never loses the
    /// key of a certificate the CA issues.
    pub async fn set_order_key(
        &self,
        id: i64,
        key_type: &str,
        key_pkcs8: &[u8],
        csr_der: Option<&[u8]>,
    ) -> Result<(), Error> {
        let mut conn = self.writer.acquire().await?;
        match self.write_order_key(&mut conn, id, key_type, key_pkcs8, csr_der, now_ms()).await? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound { what: WHAT, name: id.to_string() }),
        }
    }

    /// Seals the order's certificate key and writes it with its type, the CSR and
    /// `updated_at` on `conn`;
    /// the sealed key, or `None` when there is no such order.
    async fn write_order_key(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        key_type: &str,
        key_pkcs8: &[u8],
        csr_der: Option<&[u8]>,
        updated_at: i64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let sealed = self.seal(TABLE, &id.to_string(), "key_pkcs8", key_pkcs8)?;
        let result = sqlx::query(
            "UPDATE orders SET key_type = $1, key_pkcs8 = $2, csr_der = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(key_type)
        .bind(&sealed)
        .bind(csr_der)
        .bind(updated_at)
        .bind(id)
        .execute(conn)
        .await?;
        Ok((result.rows_affected() > 0).then_some(sealed))
    }

    /// Sets the order's status and error.
    pub async fn set_order_status(
        &self,
        id: i64,
        status: OrderStatus,
        error: Option<&str>,
    ) -> Result<(), Error> {
        let result =
            sqlx::query("UPDATE orders SET status = $1, error = $2, updated_at = $3 WHERE id = $4")
                .bind(status.as_str())
                .bind(error)
                .bind(now_ms())
                .bind(id)
                .execute(&self.writer)
                .await?;
        order_found(result.rows_affected(), id)
    }

    /// Every order of the certificate, newest first.
    pub async fn orders_for(&self, cert_name: &str) -> Result<Vec<OrderRecord>, Error> {
        let rows: Vec<OrderRow> =
            sqlx::query_as(select_orders!("WHERE cert_name = $1 ORDER BY id DESC"))
                .bind(cert_name)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(|row| self.order_from_row(row)).collect()
    }

    /// Records a challenge about to be presented for an order and returns the record's id.
    /// Call it before presenting, and [`Store::remove_presented`] after cleanup.
    pub async fn record_presented(
        &self,
        order_id: i64,
        spec: &serde_json::Value,
        challenge: &serde_json::Value,
    ) -> Result<i64, Error> {
        let mut tx = self.begin_write().await?;
        // The id is part of the sealed spec's associated data, so the row is inserted first
        // and sealed within the same transaction.
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO presented (order_id, spec, challenge, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(order_id)
        .bind(Vec::<u8>::new())
        .bind(to_json(PRESENTED, &order_id.to_string(), "challenge", challenge)?)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| {
            if is_foreign_key_violation(&err) {
                Error::NotFound { what: WHAT, name: order_id.to_string() }
            } else {
                err.into()
            }
        })?;
        let sealed = self.seal_json(PRESENTED, &id.to_string(), "spec", spec)?;
        sqlx::query("UPDATE presented SET spec = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The presented challenges of an order, oldest first.
    pub async fn presented_for(&self, order_id: i64) -> Result<Vec<PresentedRecord>, Error> {
        let rows: Vec<PresentedRow> =
            sqlx::query_as(select_presented!("WHERE order_id = $1 ORDER BY id"))
                .bind(order_id)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(|row| self.presented_from_row(row)).collect()
    }

    /// Every presented challenge awaiting cleanup, oldest first.
    pub async fn presented_all(&self) -> Result<Vec<PresentedRecord>, Error> {
        let rows: Vec<PresentedRow> =
            sqlx::query_as(select_presented!("ORDER BY id")).fetch_all(&self.pool).await?;
        rows.into_iter().map(|row| self.presented_from_row(row)).collect()
    }

    /// Removes a presented challenge's record after cleanup. `validated`, when the challenge
    /// succeeded, says what it validated ("NAME with METHOD"): it becomes the certificate's
    /// `validated` event, in the same transaction.
    pub async fn remove_presented(&self, id: i64, validated: Option<&str>) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        let cert_name: Option<String> = sqlx::query_scalar(
            "SELECT o.cert_name FROM presented p JOIN orders o ON o.id = p.order_id \
             WHERE p.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cert_name) = cert_name else {
            return Err(Error::NotFound { what: "presented challenge", name: id.to_string() });
        };
        sqlx::query("DELETE FROM presented WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if validated.is_some() {
            crate::event::record_event_in(&mut tx, &cert_name, EventKind::Validated, validated)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn order_found(rows: u64, id: i64) -> Result<(), Error> {
    if rows == 0 { Err(Error::NotFound { what: WHAT, name: id.to_string() }) } else { Ok(()) }
}
