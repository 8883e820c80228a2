//! The history of each managed certificate (table `events`).

use sqlx::AnyConnection;

use crate::vocab::{EventKind, parse};
use crate::{Error, Store, now_ms};

/// One thing that happened to a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Generated id; events of a certificate are ordered by it.
    pub id: i64,
    /// The managed certificate.
    pub cert_name: String,
    /// When, epoch milliseconds.
    pub at: i64,
    /// What happened.
    pub kind: EventKind,
    /// Details (the identifier validated, the serial issued, the reason of a failure).
    pub detail: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    pub(crate) id: i64,
    cert_name: String,
    at: i64,
    kind: String,
    detail: Option<String>,
}

impl TryFrom<Row> for EventRecord {
    type Error = Error;

    fn try_from(r: Row) -> Result<Self, Error> {
        Ok(EventRecord {
            kind: parse("events", &r.id.to_string(), "kind", &r.kind)?,
            id: r.id,
            cert_name: r.cert_name,
            at: r.at,
            detail: r.detail,
        })
    }
}

impl Store {
    /// Appends an event to the certificate's history.
    pub async fn record_event(
        &self,
        cert_name: &str,
        kind: EventKind,
        detail: Option<&str>,
    ) -> Result<i64, Error> {
        record_event_in(&mut *self.writer.acquire().await?, cert_name, kind, detail).await
    }

    /// The certificate's history, oldest first.
    pub async fn events_for(&self, cert_name: &str) -> Result<Vec<EventRecord>, Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, cert_name, at, kind, detail FROM events WHERE cert_name = $1 ORDER BY id",
        )
        .bind(cert_name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRecord::try_from).collect()
    }
}

/// Appends an event within `conn`'s transaction, so that what happened and its record are
/// committed together (one commit, one fsync on SQLite, instead of two).
pub(crate) async fn record_event_in(
    conn: &mut AnyConnection,
    cert_name: &str,
    kind: EventKind,
    detail: Option<&str>,
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "INSERT INTO events (cert_name, at, kind, detail) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(cert_name)
    .bind(now_ms())
    .bind(kind.as_str())
    .bind(detail)
    .fetch_one(conn)
    .await?)
}
