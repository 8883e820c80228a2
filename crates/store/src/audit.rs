//! The audit log (table `audit_log`): append-only, each entry chained to the previous one by
//! an HMAC-SHA256 over the previous entry's hash and its own fields, under a key derived from
//! the master key, so whoever can write to the database but lacks the key can neither change
//! an entry nor forge one. The newest entry's id, hash and the number of entries are also
//! kept sealed in `meta`, so removing the newest entries shows too, and so does an empty log
//! in a hub that has users (its setup wrote the first entry with the first user).
//!
//! What the database alone cannot show is a rollback: a copy of an earlier database, or its
//! newest entries removed together with an earlier sealed record put back. An anchor, a line
//! that names the newest entry and is kept outside the database ([`Store::audit_anchor`]),
//! shows that: the log must still hold the entry it names.

use crate::{Backend, Error, Store, now_ms};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    /// Position in the log.
    pub id: i64,
    /// When, epoch milliseconds.
    pub at: i64,
    /// Who: a user name, `token:ID`, or `system`.
    pub actor: String,
    /// What, e.g. `cert.request` or `cert.key-download`.
    pub action: String,
    /// On what, e.g. a certificate's name.
    pub target: String,
    /// From where: the client's address, or `cli`.
    pub source: String,
    /// More, if any.
    pub detail: Option<String>,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// The key the newest entry is kept under in `meta`.
const HEAD: &str = "audit_head";

/// The input of an entry's hash: its fields after `prev_hash`, length-prefixed, so no two
/// different entries hash the same input.
fn entry_input(
    prev_hash: &str,
    at: i64,
    actor: &str,
    action: &str,
    target: &str,
    source: &str,
    detail: Option<&str>,
) -> Vec<u8> {
    let mut input = Vec::new();
    for field in
        [prev_hash, &at.to_string(), actor, action, target, source, detail.unwrap_or("\u{0}")]
    {
        input.extend_from_slice(&(field.len() as u64).to_be_bytes());
        input.extend_from_slice(field.as_bytes());
    }
    input
}

/// An audit entry to write with the change it reports, in the change's own transaction: a
/// change is never stored without its entry, nor an entry without its change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who: a user name with how they came (`ada (web)`, `ada (token ID)`), `cli:USER`, `hub`.
    pub actor: String,
    /// What, e.g. `deploy.add`.
    pub action: String,
    /// On what, e.g. a certificate's name.
    pub target: String,
    /// From where: the client's address, or `cli`.
    pub source: String,
    /// More, if any.
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry without detail.
    pub fn new(actor: &str, action: &str, target: &str, source: &str) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            source: source.into(),
            detail: None,
        }
    }

    /// The entry with `detail`.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Where a verification found the chain broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first entry that does not follow from the one before it.
    pub id: i64,
    /// What is wrong with it.
    pub reason: String,
}

impl Store {
    /// Appends an entry to the audit log and returns it.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        source: &str,
        detail: Option<&str>,
    ) -> Result<AuditRecord, Error> {
        let mut tx = self.begin_audited().await?;
        let entry = self.audit_in(&mut tx, actor, action, target, source, detail).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Creates the first user, an admin, and its audit entry in one transaction; fails with
    /// [`Error::AlreadyExists`] when any user exists (two setups at once, even on two hubs
    /// sharing a database, make one admin).
    pub async fn create_first_admin(
        &self,
        name: &str,
        password_hash: &str,
        source: &str,
    ) -> Result<(), Error> {
        let mut tx = self.begin_audited().await?;
        let users: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
        if users > 0 {
            return Err(Error::AlreadyExists { what: "first user", name: name.to_string() });
        }
        crate::user::insert_user_in(&mut tx, name, password_hash, "admin").await?;
        let entry = AuditEntry::new("setup", "user.create", name, source).with_detail("admin");
        self.commit_change(tx, Some(&entry)).await
    }

    /// A write transaction for a change, holding the audit log when the change is audited.
    pub(crate) async fn begin_change(
        &self,
        audit: Option<&AuditEntry>,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, Error> {
        match audit {
            Some(_) => self.begin_audited().await,
            None => self.begin_write().await,
        }
    }

    /// Appends `audit`'s entry to the log in `tx` (begun by [`Store::begin_change`]) and
    /// commits: the change and its entry are stored together or not at all.
    pub(crate) async fn commit_change(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        audit: Option<&AuditEntry>,
    ) -> Result<(), Error> {
        if let Some(a) = audit {
            self.audit_in(&mut tx, &a.actor, &a.action, &a.target, &a.source, a.detail.as_deref())
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A write transaction that holds the audit log: one writer at a time, so the chain stays
    /// a line across hubs (SQLite's immediate transaction; an advisory lock on PostgreSQL).
    async fn begin_audited(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, Error> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7306040853211150451)")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Appends an entry within `tx`, which [`Store::begin_audited`] began.
    pub(crate) async fn audit_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        actor: &str,
        action: &str,
        target: &str,
        source: &str,
        detail: Option<&str>,
    ) -> Result<AuditRecord, Error> {
        let prev: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await?;
        let prev_hash = prev.unwrap_or_else(|| GENESIS.to_string());
        let at = now_ms();
        let hash =
            self.key.audit_mac(&entry_input(&prev_hash, at, actor, action, target, source, detail));
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, target, source, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(source)
        .bind(detail)
        .bind(&prev_hash)
        .bind(&hash)
        .fetch_one(&mut **tx)
        .await?;
        // The count follows from the record of the entry before; without one (the first
        // entry, or a record from before counts were kept) it is counted.
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
            .bind(HEAD)
            .fetch_optional(&mut **tx)
            .await?;
        let count = match sealed.map(|blob| self.read_head(&blob)).transpose()? {
            Some(Head { count: Some(n), .. }) => n + 1,
            _ => sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(&mut **tx).await?,
        };
        let head = self.seal("meta", HEAD, "value", format!("{id} {hash} {count}").as_bytes())?;
        sqlx::query(
            "INSERT INTO meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(HEAD)
        .bind(head)
        .execute(&mut **tx)
        .await?;
        Ok(AuditRecord {
            id,
            at,
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            source: source.into(),
            detail: detail.map(str::to_string),
            prev_hash,
            hash,
        })
    }

    /// Audit entries after `after_id`, oldest first, at most `limit`.
    pub async fn audit_entries(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, Error> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, target, source, detail, prev_hash, hash \
             FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The sealed record of the newest entry: its id, its hash, and how many entries the
    /// log held then (unknown for a record written before the count was kept).
    async fn audit_head(&self) -> Result<Option<Head>, Error> {
        let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM meta WHERE name = $1")
            .bind(HEAD)
            .fetch_optional(&self.pool)
            .await?;
        sealed.map(|blob| self.read_head(&blob)).transpose()
    }

    /// The record of the newest entry, opened.
    fn read_head(&self, blob: &[u8]) -> Result<Head, Error> {
        let text = self.open_blob("meta", HEAD, "value", blob)?;
        let text = String::from_utf8_lossy(&text).into_owned();
        let mut fields = text.split(' ');
        let id = fields.next().and_then(|v| v.parse().ok());
        let hash = fields.next().map(str::to_string);
        let count = fields.next().and_then(|v| v.parse().ok());
        match (id, hash) {
            (Some(id), Some(hash)) => Ok(Head { id, hash, count }),
            _ => Err(Error::Unreadable(format!(
                "meta.{HEAD} holds {text:?}, not an entry's id and hash"
            ))),
        }
    }

    /// Checks the whole chain; returns how many entries it holds, or where it breaks.
    pub async fn verify_audit(&self) -> Result<Result<i64, ChainBreak>, Error> {
        let head = self.audit_head().await?;
        let mut prev = GENESIS.to_string();
        let mut after = 0;
        let mut count = 0;
        loop {
            let batch = self.audit_entries(after, 1000).await?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                if e.prev_hash != prev {
                    let reason = "it does not name the previous entry's hash (an entry before it was removed or changed)";
                    return Ok(Err(ChainBreak { id: e.id, reason: reason.into() }));
                }
                let want = self.key.audit_mac(&entry_input(
                    &e.prev_hash,
                    e.at,
                    &e.actor,
                    &e.action,
                    &e.target,
                    &e.source,
                    e.detail.as_deref(),
                ));
                if want != e.hash {
                    return Ok(Err(ChainBreak {
                        id: e.id,
                        reason: "its fields do not match its hash (it was changed)".into(),
                    }));
                }
                prev = e.hash;
                after = e.id;
                count += 1;
            }
        }
        Ok(match head {
            Some(h) if h.id != after || h.hash != prev => Err(ChainBreak {
                id: h.id,
                reason: "the newest entries were removed (the log ends before its recorded last \
                         entry)"
                    .into(),
            }),
            Some(Head { count: Some(n), id, .. }) if n != count => Err(ChainBreak {
                id,
                reason: format!(
                    "the log holds {count} entries where its record says {n} (entries were \
                     removed or added)"
                ),
            }),
            None if count > 0 => Err(ChainBreak {
                id: after,
                reason: "the record of the newest entry is missing".into(),
            }),
            None if self.user_count().await? > 0 => Err(ChainBreak {
                id: 0,
                reason: "the log is empty, yet the hub has users, and setting it up wrote the \
                         first entry: the log and its record were removed"
                    .into(),
            }),
            _ => Ok(count),
        })
    }

    /// An anchor for the log as it is now: a line naming its newest entry (id, hash, count),
    /// sealed with the audit key, to be kept outside the database. `None` while the log is
    /// empty.
    pub async fn audit_anchor(&self) -> Result<Option<String>, Error> {
        let Some(head) = self.audit_head().await? else { return Ok(None) };
        let count = match head.count {
            Some(n) => n,
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE id <= $1")
                    .bind(head.id)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        let at = now_ms();
        let body = format!("{ANCHOR} id={} count={count} hash={} at={at}", head.id, head.hash);
        let mac = self.key.audit_mac(body.as_bytes());
        Ok(Some(format!("{body} mac={mac}")))
    }

    /// Checks the log against anchors made by [`Store::audit_anchor`] (the whole chain
    /// first, once): it must still hold the entry each names, with its hash, and at least
    /// as many entries as then. Fails naming the anchor (from 1) that does not read or was
    /// not made with this store's key.
    pub async fn verify_audit_anchors(
        &self,
        anchors: &[&str],
    ) -> Result<Result<i64, ChainBreak>, Error> {
        let total = match self.verify_audit().await? {
            Ok(n) => n,
            broken => return Ok(broken),
        };
        for (i, anchor) in anchors.iter().enumerate() {
            let bad = |why: &str| Error::Unreadable(format!("audit anchor {}: {why}", i + 1));
            let anchor = anchor.trim();
            let (body, mac) = anchor.rsplit_once(" mac=").ok_or_else(|| bad("has no mac="))?;
            if !crate::same_secret(&self.key.audit_mac(body.as_bytes()), mac) {
                return Err(bad("was not made from this database (its mac does not match)"));
            }
            let field = |name: &str| {
                body.split(' ')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                    .ok_or_else(|| bad(&format!("has no {name}=")))
            };
            let id: i64 = field("id")?.parse().map_err(|_| bad("has a bad id="))?;
            let count: i64 = field("count")?.parse().map_err(|_| bad("has a bad count="))?;
            let hash = field("hash")?;
            let at: i64 = field("at")?.parse().map_err(|_| bad("has a bad at="))?;
            let held: Option<String> =
                sqlx::query_scalar("SELECT hash FROM audit_log WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            if held.as_deref() != Some(hash) || total < count {
                let when = jiff::Timestamp::from_millisecond(at)
                    .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|_| at.to_string());
                return Ok(Err(ChainBreak {
                    id,
                    reason: format!(
                        "the log was rolled back: it no longer holds entry {id} as the anchor \
                         of {when} recorded it ({count} entries then, {total} now)"
                    ),
                }));
            }
        }
        Ok(Ok(total))
    }
}

/// What an anchor line starts with.
const ANCHOR: &str = "certhub-audit-anchor/1";

/// The sealed record of the newest entry.
struct Head {
    id: i64,
    hash: String,
    count: Option<i64>,
}
