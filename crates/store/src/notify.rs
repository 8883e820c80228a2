//! Notification channels (table `notification_channels`, configuration encrypted), the
//! dispatch cursor over the events table (in `meta`), and once-only notices (table `notices`).

use crate::{AuditEntry, Error, Store, is_unique_violation, now_ms};

const TABLE: &str = "notification_channels";
const WHAT: &str = "notification channel";
/// The `meta` row holding the id of the last event handed to the channels.
const CURSOR: &str = "notify_cursor";

/// A place the hub sends events to. `config` holds passwords and secrets: it is encrypted at
/// rest and `Debug` redacts it.
#[derive(Clone, PartialEq)]
pub struct ChannelRecord {
    /// Unique name.
    pub name: String,
    /// `smtp`, `slack` or `callback`.
    pub kind: String,
    /// The kind's settings (server, addresses, URL, secret).
    pub config: serde_json::Value,
    /// The event kinds it wants (`issued`, `renewed`, …), or `all`.
    pub events: Vec<String>,
}

impl std::fmt::Debug for ChannelRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRecord")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &"<redacted>")
            .field("events", &self.events)
            .finish()
    }
}

impl ChannelRecord {
    /// Whether the channel wants events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == "all" || e == kind)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    name: String,
    kind: String,
    config: Vec<u8>,
    events: String,
}

impl Store {
    fn channel_from_row(&self, row: Row) -> Result<ChannelRecord, Error> {
        Ok(ChannelRecord {
            config: self.open_json(TABLE, &row.name, "config", &row.config)?,
            name: row.name,
            kind: row.kind,
            events: row.events.split_whitespace().map(str::to_string).collect(),
        })
    }

    /// Adds a channel, with `audit`'s entry. Fails with [`Error::AlreadyExists`] when the
    /// name is taken.
    pub async fn insert_channel(
        &self,
        channel: &ChannelRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let config = self.seal_json(TABLE, &channel.name, "config", &channel.config)?;
        let now = now_ms();
        let mut tx = self.begin_change(audit).await?;
        sqlx::query(
            "INSERT INTO notification_channels (name, kind, config, events, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&channel.name)
        .bind(&channel.kind)
        .bind(config)
        .bind(channel.events.join(" "))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::AlreadyExists { what: WHAT, name: channel.name.clone() }
            } else {
                e.into()
            }
        })?;
        self.commit_change(tx, audit).await
    }

    /// Every channel, by name.
    pub async fn channels(&self) -> Result<Vec<ChannelRecord>, Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT name, kind, config, events FROM notification_channels ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| self.channel_from_row(r)).collect()
    }

    /// The channel named `name`, if any.
    pub async fn channel(&self, name: &str) -> Result<Option<ChannelRecord>, Error> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT name, kind, config, events FROM notification_channels WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| self.channel_from_row(r)).transpose()
    }

    /// Removes a channel, with `audit`'s entry.
    pub async fn delete_channel(
        &self,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_change(audit).await?;
        let done = sqlx::query("DELETE FROM notification_channels WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound { what: WHAT, name: name.to_owned() });
        }
        self.commit_change(tx, audit).await
    }

    /// Events of every certificate after id `after`, oldest first, at most `limit`, each by
    /// its id: an event this version cannot read (of a newer hub sharing the database) is an
    /// error of its own, so that a reader can pass it by without losing the others.
    pub async fn events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Result<crate::EventRecord, Error>)>, Error> {
        let rows: Vec<crate::event::Row> = sqlx::query_as(
            "SELECT id, cert_name, at, kind, detail FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.id, crate::EventRecord::try_from(r))).collect())
    }

    /// The id of the last event handed to the channels; on first use, the newest event's
    /// (history from before notifications were set up is not sent).
    pub async fn notify_cursor(&self) -> Result<i64, Error> {
        if let Some(v) = self.meta(CURSOR).await? {
            return Ok(String::from_utf8_lossy(&v).parse().unwrap_or(0));
        }
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM events").fetch_one(&self.pool).await?;
        let newest = newest.unwrap_or(0);
        self.set_notify_cursor(newest).await?;
        Ok(newest)
    }

    /// Records that the events up to `id` were handed to the channels.
    pub async fn set_notify_cursor(&self, id: i64) -> Result<(), Error> {
        self.set_meta(CURSOR, id.to_string().as_bytes()).await
    }

    /// Records a once-only notice; `false` when it was recorded before (by this hub or
    /// another sharing the database).
    pub async fn first_notice(
        &self,
        cert_name: &str,
        kind: &str,
        occasion: &str,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "INSERT INTO notices (cert_name, kind, occasion, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(cert_name)
        .bind(kind)
        .bind(occasion)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
