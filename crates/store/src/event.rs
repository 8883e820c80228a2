//! The history of each managed certificate (table `events`).

use sqlx::AnyConnection;

use crate::{Error, Store, now_ms};

/// One thing that happened to a certificate.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRecord {
    /// Generated id; events of a certificate are ordered by it.
    pub id: i64,
    /// The managed certificate.
    pub cert_name: String,
    /// When, epoch milliseconds.
    pub at: i64,
    /// What: `ordered`, `validated`, `issued`, `failed`, `revoked`, …
    pub kind: String,
    /// Details (the identifier validated, the serial issued, the reason of a failure).
    pub detail: Option<String>,
}

impl Store {
    /// Appends an event to the certificate's history.
    pub async fn record_event(
        &self,
        cert_name: &str,
        kind: &str,
        detail: Option<&str>,
    ) -> Result<i64, Error> {
        record_event_in(&mut *self.writer.acquire().await?, cert_name, kind, detail).await
    }

    /// The certificate's history, oldest first.
    pub async fn events_for(&self, cert_name: &str) -> Result<Vec<EventRecord>, Error> {
        Ok(sqlx::query_as(
            "SELECT id, cert_name, at, kind, detail FROM events WHERE cert_name = $1 ORDER BY id",
        )
        .bind(cert_name)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Appends an event within `conn`'s transaction, so that what happened and its record are
/// committed together (one commit, one fsync on SQLite, instead of two).
pub(crate) async fn record_event_in(
    conn: &mut AnyConnection,
    cert_name: &str,
    kind: &str,
    detail: Option<&str>,
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "INSERT INTO events (cert_name, at, kind, detail) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(cert_name)
    .bind(now_ms())
    .bind(kind)
    .bind(detail)
    .fetch_one(conn)
    .await?)
}
