//! The history of each managed certificate (table `events`).

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
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (cert_name, at, kind, detail) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(cert_name)
        .bind(now_ms())
        .bind(kind)
        .bind(detail)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
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
