//! The CA's renewal windows (table `renewal_info`), cached per issued certificate.

use crate::{Error, Store, is_foreign_key_violation};

/// A renewal window as fetched. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalInfoRecord {
    /// The issued certificate it is for.
    pub issued_id: i64,
    /// Start of the suggested window.
    pub window_start: i64,
    /// End of the suggested window.
    pub window_end: i64,
    /// The directory URL of the CA that answered.
    pub directory_url: String,
    /// The CA's explanation, if it gave one.
    pub explanation_url: Option<String>,
    /// When it was fetched.
    pub fetched_at: i64,
    /// Not to be fetched again before this time.
    pub next_fetch_at: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    issued_id: i64,
    window_start: i64,
    window_end: i64,
    directory_url: String,
    explanation_url: Option<String>,
    fetched_at: i64,
    next_fetch_at: i64,
}

impl Store {
    /// The cached renewal window of an issued certificate, if one was fetched.
    pub async fn renewal_info(&self, issued_id: i64) -> Result<Option<RenewalInfoRecord>, Error> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT issued_id, window_start, window_end, directory_url, explanation_url, \
             fetched_at, next_fetch_at FROM renewal_info WHERE issued_id = $1",
        )
        .bind(issued_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| RenewalInfoRecord {
            issued_id: r.issued_id,
            window_start: r.window_start,
            window_end: r.window_end,
            directory_url: r.directory_url,
            explanation_url: r.explanation_url,
            fetched_at: r.fetched_at,
            next_fetch_at: r.next_fetch_at,
        }))
    }

    /// Stores (or replaces) the renewal window of an issued certificate. Fails with
    /// [`Error::NotFound`] when the issued certificate does not exist.
    pub async fn set_renewal_info(&self, info: &RenewalInfoRecord) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO renewal_info (issued_id, window_start, window_end, directory_url, \
             explanation_url, fetched_at, next_fetch_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (issued_id) DO UPDATE SET window_start = excluded.window_start, \
             window_end = excluded.window_end, directory_url = excluded.directory_url, \
             explanation_url = excluded.explanation_url, fetched_at = excluded.fetched_at, \
             next_fetch_at = excluded.next_fetch_at",
        )
        .bind(info.issued_id)
        .bind(info.window_start)
        .bind(info.window_end)
        .bind(&info.directory_url)
        .bind(&info.explanation_url)
        .bind(info.fetched_at)
        .bind(info.next_fetch_at)
        .execute(&self.writer)
        .await
        .map_err(|err| {
            if is_foreign_key_violation(&err) {
                Error::NotFound { what: "issued certificate", name: info.issued_id.to_string() }
            } else {
                err.into()
            }
        })?;
        Ok(())
    }
}
